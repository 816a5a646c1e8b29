import Foundation
import Hummingbird
import HummingbirdTesting
import InMemoryLogging
import Logging
import PixelAnalytics
@testable import PixelDashboard
import PixeldTestSupport
import RespBridge
import Synchronization
import Testing

/// Rollup keys damaged by hand (a string where a HyperLogLog belongs, a corrupt HyperLogLog, a count
/// that is not a number) and series of a day still going on, over a Redis of hand-written keys.
@Suite(.serialized, .enabled(if: TestEnvironment.canRun("redis-server")))
struct DamagedRollupTests {
    static func dashboard(_ redis: RedisServer, sites: [String], clock: @escaping @Sendable () -> Double, logger: Logger) throws -> Dashboard {
        let reader = RedisReader(configuration: try RedisConfiguration(url: redis.url), threads: 2, logger: Logger(label: "test"))
        return Dashboard(
            store: RollupStore(reader: reader, logger: logger), live: nil, configuration: DashboardConfiguration(sites: sites),
            clock: clock, logger: logger
        )
    }

    /// One damaged site's figures are unknown (`null` in the API, "–" on the page) and its keys
    /// logged; the other sites keep their numbers. (Any of these keys made `/api/sites` and `/` a
    /// `503` for every site, and a non-numeric `pageviews` read as 0 without a word.)
    @Test func aDamagedKeyCostsOnlyItsOwnFigure() async throws {
        let redis = try RedisServer.start()
        defer { redis.stop() }
        let now = Date().timeIntervalSince1970
        let today = Day(timestamp: now)
        let keys = RollupKeys()
        // Healthy.
        _ = try redis.command(["HSET", keys.totals(site: "a.example", day: today), "pageviews", "5", "visits", "3", "bounces", "1"])
        _ = try redis.command(["PFADD", keys.uniques(site: "a.example", day: today), "v1", "v2"])
        // A string at the HyperLogLog's key and a count that is no number.
        _ = try redis.command(["HSET", keys.totals(site: "b.example", day: today), "pageviews", "many", "visits", "2"])
        _ = try redis.command(["SET", keys.uniques(site: "b.example", day: today), "garbage"])
        // A corrupt HyperLogLog (bytes after its sparse encoding: INVALIDOBJ).
        _ = try redis.command(["HSET", keys.totals(site: "c.example", day: today), "pageviews", "4"])
        _ = try redis.command(["PFADD", keys.uniques(site: "c.example", day: today), "v1"])
        _ = try redis.command(["APPEND", keys.uniques(site: "c.example", day: today), "hello"])
        // A string at the totals hash's key.
        _ = try redis.command(["SET", keys.totals(site: "d.example", day: today), "5"])
        _ = try redis.command(["PFADD", keys.uniques(site: "d.example", day: today), "v1"])
        let handler = InMemoryLogHandler()
        let dashboard = try Self.dashboard(
            redis, sites: ["a.example", "b.example", "c.example", "d.example"], clock: { now }, logger: Logger(label: "test") { _ in handler }
        )
        let app = Application(router: dashboard.router())
        try await app.test(.router) { client in
            let sites = try await client.execute(uri: "/api/sites", method: .get)
            #expect(sites.status == .ok, "\(sites.text)")
            let listed = (sites.json["sites"] as? [[String: Any]] ?? []).reduce(into: [String: [String: Any]]()) {
                $0[$1["site"] as? String ?? "?"] = $1["today"] as? [String: Any]
            }
            #expect(listed["a.example"]?["visitors"] as? Int == 2 && listed["a.example"]?["pageviews"] as? Int == 5, "\(sites.text)")
            #expect(listed["b.example"]?["visitors"] is NSNull && listed["b.example"]?["pageviews"] is NSNull, "\(sites.text)")
            #expect(listed["c.example"]?["visitors"] is NSNull && listed["c.example"]?["pageviews"] as? Int == 4, "\(sites.text)")
            #expect(listed["d.example"]?["visitors"] as? Int == 1 && listed["d.example"]?["pageviews"] is NSNull, "\(sites.text)")
            #expect(sites.text.contains(#""trend":["#) && sites.text.contains(",null]}"), "b's trend ends with an unknown day: \(sites.text)")

            let page = try await client.execute(uri: "/", method: .get)
            #expect(page.status == .ok)
            #expect(page.text.contains(">b.example</a></td><td class=\"n\"><span title=\"unknown"), "\(page.text)")

            let series = try await client.execute(uri: "/api/timeseries?site=b.example&from=\(today)&to=\(today)&interval=day", method: .get)
            #expect(series.status == .ok, "\(series.text)")
            #expect(series.text.contains(#"{"date":"\#(today)","pageviews":null,"visitors":null,"visits":2,"bounces":0}"#), "\(series.text)")

            let warnings = handler.entries.filter { $0.level == .warning }
            let named = Set(warnings.compactMap { $0.metadata["key"].map { "\($0)" } })
            #expect(named.contains(keys.uniques(site: "b.example", day: today)), "\(warnings)")
            #expect(named.contains(keys.uniques(site: "c.example", day: today)), "\(warnings)")
            #expect(named.contains(keys.totals(site: "d.example", day: today)), "\(warnings)")
            #expect(warnings.contains { $0.metadata["field"] == "pageviews" && "\($0.metadata["key"] ?? "")" == keys.totals(site: "b.example", day: today) })
            #expect(!named.contains { $0.contains("a.example") }, "\(warnings)")
            // A report (the site's page, /api/stats) has no unknown figure: a 503 that says a key is
            // damaged, the key in the log; the other sites' reports are whole.
            handler.clear()
            for (site, key) in [
                ("b.example", keys.uniques(site: "b.example", day: today)), ("c.example", keys.uniques(site: "c.example", day: today)),
                ("d.example", keys.totals(site: "d.example", day: today)),
            ] {
                let stats = try await client.execute(uri: "/api/stats?site=\(site)", method: .get)
                #expect(stats.status == .serviceUnavailable && stats.text.contains("a rollup key of this range is damaged"), "\(stats.text)")
                let reported = handler.entries.filter { $0.message.description.contains("the reports of its days fail") }
                #expect(reported.contains { "\($0.metadata["key"] ?? "")" == key }, "\(reported)")
            }
            let whole = try await client.execute(uri: "/api/stats?site=a.example", method: .get)
            #expect(whole.status == .ok && whole.json["visitors"] as? Int == 2, "\(whole.text)")
        }
        // pixeld report names the key too (it said only Redis's WRONGTYPE text).
        for (site, key, text) in [
            ("b.example", keys.uniques(site: "b.example", day: today), "WRONGTYPE"),
            ("c.example", keys.uniques(site: "c.example", day: today), "INVALIDOBJ"),
            ("d.example", keys.totals(site: "d.example", day: today), "WRONGTYPE"),
        ] {
            let (status, stderr) = try Self.report(redis, site: site)
            #expect(status == 1 && stderr.contains("damaged rollup key, not written by pixeld consume: \(key) (\(text)"), "\(stderr)")
        }
    }

    /// `pixeld report --json` of `site`'s today: its exit status and standard error.
    static func report(_ redis: RedisServer, site: String) throws -> (Int32, String) {
        let report = try PixeldProcess.start(["report", "--redis", redis.url, "--site", site, "--json"])
        return (try report.waitForExit(timeout: 30), report.stderrText)
    }

    /// A site whose only damage is a count that is not a number (its HyperLogLog is whole): its
    /// reports fail like any damaged key's — `/api/stats` and the site's page `503`, the key and
    /// field logged, `pixeld report` exits 1 naming both. (They answered 200 with pageviews 0 and
    /// no word, while `/api/sites` showed the figure as unknown.)
    @Test func aCountThatIsNotANumberFailsTheReport() async throws {
        let redis = try RedisServer.start()
        defer { redis.stop() }
        let now = Date().timeIntervalSince1970
        let today = Day(timestamp: now)
        let keys = RollupKeys()
        let totals = keys.totals(site: "e.example", day: today)
        _ = try redis.command(["HSET", totals, "pageviews", "many", "visits", "2"])
        _ = try redis.command(["PFADD", keys.uniques(site: "e.example", day: today), "v1", "v2"])
        let handler = InMemoryLogHandler()
        let dashboard = try Self.dashboard(redis, sites: ["e.example"], clock: { now }, logger: Logger(label: "test") { _ in handler })
        let app = Application(router: dashboard.router())
        try await app.test(.router) { client in
            for uri in ["/api/stats?site=e.example", "/site?site=e.example"] {
                let answer = try await client.execute(uri: uri, method: .get)
                #expect(answer.status == .serviceUnavailable && answer.text.contains("a rollup key of this range is damaged"), "\(uri): \(answer.text)")
            }
            let reported = handler.entries.filter { $0.message.description.contains("the reports of its days fail") }
            #expect(reported.contains { "\($0.metadata["key"] ?? "")" == totals && $0.metadata["field"] == "pageviews" }, "\(handler.entries)")
        }
        let (status, stderr) = try Self.report(redis, site: "e.example")
        #expect(status == 1 && stderr.contains("damaged rollup key, not written by pixeld consume: \(totals) field pageviews (not a number)"), "\(stderr)")
    }

    /// The all-sites drop counts (the text report's line of hits dropped before a site was known)
    /// are every site's: a count there that is not a number leaves its part out of that line, with a
    /// note naming it, and the site's own report stands (it failed every site's text report, while
    /// `--json` and serve, which do not read them, answered).
    @Test func damagedAllSitesDropCountsDoNotFailASitesReport() throws {
        let redis = try RedisServer.start()
        defer { redis.stop() }
        let today = Day(timestamp: Date().timeIntervalSince1970)
        let keys = RollupKeys()
        _ = try redis.command(["HSET", keys.totals(site: "f.example", day: today), "pageviews", "3"])
        _ = try redis.command(["HSET", keys.globalDrops(day: today), "bad_url", "many", "unknown_site", "2"])
        let report = try PixeldProcess.start(["report", "--redis", redis.url, "--site", "f.example"])
        #expect(try report.waitForExit(timeout: 30) == 0, "\(report.stderrText)")
        #expect(report.stdoutText.contains("3") && report.stdoutText.contains("Dropped before a site was known"), "\(report.stdoutText)")
        #expect(
            report.stderrText.contains("damaged all-sites drop counts left out, not written by pixeld consume: \(keys.globalDrops(day: today)) field bad_url (not a number)"),
            "\(report.stderrText)"
        )
    }

    /// Each request for `/` or `/api/sites` reads the same damaged keys: each key (and field) is
    /// logged once a minute, not once a request (a warning per key and field per request).
    @Test func aDamagedKeyIsLoggedOnceAMinute() async throws {
        let redis = try RedisServer.start()
        defer { redis.stop() }
        let now = Date().timeIntervalSince1970
        let today = Day(timestamp: now)
        let keys = RollupKeys()
        _ = try redis.command(["HSET", keys.totals(site: "b.example", day: today), "pageviews", "many"])
        _ = try redis.command(["SET", keys.uniques(site: "b.example", day: today), "garbage"])
        let handler = InMemoryLogHandler()
        let elapsed = Mutex(0.0)
        let reader = RedisReader(configuration: try RedisConfiguration(url: redis.url), threads: 2, logger: Logger(label: "test"))
        let logger = Logger(label: "test") { _ in handler }
        let dashboard = Dashboard(
            store: RollupStore(reader: reader, logger: logger, clock: { elapsed.withLock { $0 } }), live: nil,
            configuration: DashboardConfiguration(sites: ["b.example"]), clock: { now }, logger: logger
        )
        let app = Application(router: dashboard.router())
        try await app.test(.router) { client in
            func warnings() -> [String] {
                handler.entries.filter { $0.level == .warning }.map { "\($0.metadata["key"] ?? "") \($0.metadata["field"] ?? "")" }.sorted()
            }
            let once = [keys.totals(site: "b.example", day: today) + " pageviews", keys.uniques(site: "b.example", day: today) + " "]
            for (seconds, uri) in [(0.0, "/api/sites"), (1, "/"), (59, "/api/sites")] {
                elapsed.withLock { $0 = seconds }
                #expect(try await client.execute(uri: uri, method: .get).status == .ok)
            }
            #expect(warnings() == once, "within a minute: \(warnings())")
            elapsed.withLock { $0 = 61 }
            _ = try await client.execute(uri: "/api/sites", method: .get)
            #expect(warnings() == (once + once).sorted(), "a minute later: \(warnings())")
        }
    }

    /// More damage within a minute than the warnings remember (4096 keys and fields): past that, a
    /// new one is logged each time rather than remembered, so the memory stays bounded; the ones
    /// remembered stay quiet for their minute.
    @Test func damageWarningsRememberAtMostTheirCapacity() {
        let handler = InMemoryLogHandler()
        let warnings = DamageWarnings(logger: Logger(label: "test") { _ in handler }, clock: { 0 })
        func warn(_ index: Int) { warnings.warn("damaged", RollupDamage(key: "k\(index)", field: nil, error: "WRONGTYPE")) }
        for index in 0...DamageWarnings.capacity { warn(index) }
        #expect(handler.entries.count == DamageWarnings.capacity + 1)
        warn(DamageWarnings.capacity)
        warn(0)
        #expect(handler.entries.map { $0.metadata["key"].map { "\($0)" } ?? "" }.suffix(1) == ["k\(DamageWarnings.capacity)"])
        #expect(handler.entries.count == DamageWarnings.capacity + 2, "the one past the capacity again, not k0")
    }

    /// A day still going on: the API's hourly series stops at the current hour and the chart draws
    /// no point after it (its axis still spans the day); days after today are left out of a daily
    /// series. (The hours to come were 24 − now zeros, and the chart fell to 0 at the present.)
    @Test func hoursStillToComeAreLeftOut() async throws {
        let redis = try RedisServer.start()
        defer { redis.stop() }
        let today = Day(timestamp: Date().timeIntervalSince1970)
        let now = Double(today.number) * 86_400 + 10.5 * 3600  // 10:30 UTC
        let keys = RollupKeys()
        _ = try redis.command(["HSET", keys.breakdown(.hours, site: "a.example", day: today), "09", "3", "10", "1"])
        _ = try redis.command(["HSET", keys.totals(site: "a.example", day: today), "pageviews", "4"])
        let dashboard = try Self.dashboard(redis, sites: ["a.example"], clock: { now }, logger: Logger(label: "test"))
        let app = Application(router: dashboard.router())
        try await app.test(.router) { client in
            let hours = try await client.execute(uri: "/api/timeseries?site=a.example", method: .get)
            #expect(hours.status == .ok)
            let points = hours.json["points"] as? [[String: Any]] ?? []
            #expect(points.compactMap { $0["hour"] as? String } == (0...10).map { $0 < 10 ? "0\($0)" : "\($0)" }, "\(hours.text)")
            #expect(points.last?["pageviews"] as? Int == 1)

            let yesterday = Day(number: today.number - 1)
            let past = try await client.execute(uri: "/api/timeseries?site=a.example&from=\(yesterday)&to=\(yesterday)", method: .get)
            #expect((past.json["points"] as? [[String: Any]])?.count == 24, "a past day has all its hours")

            let tomorrow = Day(number: today.number + 1)
            let days = try await client.execute(uri: "/api/timeseries?site=a.example&from=\(yesterday)&to=\(tomorrow)", method: .get)
            #expect(days.status == .ok)
            #expect((days.json["points"] as? [[String: Any]])?.compactMap { $0["date"] as? String } == ["\(yesterday)", "\(today)"], "\(days.text)")

            let page = try await client.execute(uri: "/site?site=a.example", method: .get)
            #expect(page.status == .ok)
            let start = page.text.firstRange(of: "<svg class=\"chart\"")?.lowerBound ?? page.text.endIndex
            let chart = String(page.text[start...]).components(separatedBy: "</svg>")[0]
            #expect(chart.components(separatedBy: "<circle class=\"point\"").count - 1 == 11, "points drawn: \(chart.prefix(3000))")
            #expect(chart.contains(">21h</text>"), "the axis spans the day")
        }
    }
}
