import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import PixelAnalytics
@testable import PixelDashboard
import PixeldTestSupport
import RespBridge
import Testing

/// The JSON API through Hummingbird's test client, over rollups the real consumer wrote from known
/// traffic: the numbers equal `pixeld report --json`, bad input is a 400.
@Suite(.serialized, .enabled(if: TestEnvironment.canRun("redis-server")))
struct APITests {
    @Test func statsAreTheReportJSON() async throws {
        let fixture = try DashboardFixture.shared()
        let expected = try fixture.reportText(site: DashboardFixture.site)
        let app = Application(router: try fixture.dashboard().router())
        try await app.test(.router) { client in
            let response = try await client.execute(uri: "/api/stats?site=example.com&\(fixture.rangeQuery)", method: .get)
            #expect(response.status == .ok)
            #expect(response.headers[.contentType] == "application/json")
            #expect(response.text == expected)
            #expect(response.json["pageviews"] as? Int == DashboardFixture.expectedPageviews)
        }
    }

    @Test func timeseriesBreakdownAndCounts() async throws {
        let fixture = try DashboardFixture.shared()
        let report = try fixture.reportJSON(site: DashboardFixture.site)
        let expectedPages = (report["pages"] as? [[String: Any]] ?? []).map { "\($0["name"]!)=\($0["pageviews"]!)" }
        let app = Application(router: try fixture.dashboard().router())
        try await app.test(.router) { client in
            let series = try await client.execute(uri: "/api/timeseries?site=example.com&\(fixture.rangeQuery)&interval=day", method: .get)
            #expect(series.status == .ok)
            let points = series.json["points"] as? [[String: Any]] ?? []
            #expect(points.count == fixture.to.number - fixture.from.number + 1)
            #expect(points.reduce(0) { $0 + ($1["pageviews"] as? Int ?? 0) } == DashboardFixture.expectedPageviews)

            let pages = try await client.execute(
                uri: "/api/breakdown?site=example.com&\(fixture.rangeQuery)&dimension=pages", method: .get
            )
            #expect(pages.status == .ok)
            let items = pages.json["items"] as? [[String: Any]] ?? []
            #expect(items.map { "\($0["name"]!)=\($0["count"]!)" } == expectedPages)
            #expect(items.contains { $0["name"] as? String == DashboardFixture.hostilePath })
            #expect(!pages.text.contains("<script>"))  // JSON escapes < and > too

            let csv = try await client.execute(
                uri: "/api/breakdown?site=example.com&\(fixture.rangeQuery)&dimension=pages&format=csv", method: .get
            )
            #expect(csv.status == .ok)
            #expect(csv.headers[.contentType] == "text/csv; charset=utf-8")
            #expect(csv.text.hasPrefix("name,count\r\n"))
            #expect(csv.text.contains("/blog/,2\r\n"))

            let counts = try await client.execute(uri: "/api/counts?site=example.com&\(fixture.rangeQuery)", method: .get)
            #expect(counts.json["/blog/"] as? Int == 2)
            let count = try await client.execute(uri: "/api/count?site=example.com&\(fixture.rangeQuery)&path=%2Fblog%2F", method: .get)
            #expect(count.json["count"] as? Int == 2)

            let sites = try await client.execute(uri: "/api/sites", method: .get)
            #expect(sites.status == .ok)
            #expect((sites.json["sites"] as? [[String: Any]])?.compactMap { $0["site"] as? String } == ["example.com", "secret.example"])
            // Today's figures of the list (the trend's last day) are the day's report's.
            let listed = (sites.json["sites"] as? [[String: Any]])?.first { $0["site"] as? String == "example.com" }?["today"] as? [String: Any]
            let day = sites.json["day"] as? String ?? "?"
            let stats = try await client.execute(uri: "/api/stats?site=example.com&from=\(day)&to=\(day)", method: .get)
            #expect(stats.status == .ok)
            #expect(listed?["pageviews"] as? Int == stats.json["pageviews"] as? Int, "\(listed ?? [:]) \(stats.text.prefix(200))")
            #expect(listed?["visitors"] as? Int == stats.json["visitors"] as? Int, "\(listed ?? [:]) \(stats.text.prefix(200))")
        }
    }

    /// A range may span the days the rollups are kept (`--retention-days`) and one more (today's):
    /// one day longer is a 400 that names the limit and the flag, on the pages as in the API.
    @Test(arguments: [30, 400])
    func rangesAreLimitedByTheRetention(retentionDays: Int) async throws {
        let fixture = try DashboardFixture.shared()
        let app = Application(router: try fixture.dashboard(retentionDays: retentionDays).router())
        let to = fixture.to
        try await app.test(.router) { client in
            for path in ["/api/stats", "/api/timeseries", "/site"] {
                let atTheLimit = Day(number: to.number - retentionDays)
                let longest = try await client.execute(uri: "\(path)?site=example.com&from=\(atTheLimit)&to=\(to)", method: .get)
                #expect(longest.status == .ok, "\(path) \(retentionDays + 1) days: \(longest.text.prefix(200))")

                let over = Day(number: to.number - retentionDays - 1)
                let tooLong = try await client.execute(uri: "\(path)?site=example.com&from=\(over)&to=\(to)", method: .get)
                #expect(tooLong.status == .badRequest, "\(path) \(retentionDays + 2) days")
                let message = "the range is limited to \(retentionDays + 1) days: rollups are kept \(retentionDays) days after "
                    + "the day ends (pixeld serve --retention-days, as the consumer's)"
                // The page says it as a page, the API as JSON.
                #expect(tooLong.text.contains(path == "/site" ? Escape.html(message) : message), "\(path): \(tooLong.text.prefix(300))")
                #expect(tooLong.headers[.contentType]?.hasPrefix(path == "/site" ? "text/html" : "application/json") == true, "\(path)")
            }
        }
    }

    /// The preset periods stop at the oldest day kept: under a 3-day retention "30 days" is the
    /// last 4 days, not a 400.
    @Test func presetPeriodsStopAtTheOldestDayKept() async throws {
        let fixture = try DashboardFixture.shared()
        let app = Application(router: try fixture.dashboard(retentionDays: 3).router())
        try await app.test(.router) { client in
            for period in ["7d", "30d"] {
                let response = try await client.execute(uri: "/api/timeseries?site=example.com&period=\(period)", method: .get)
                #expect(response.status == .ok, "\(period): \(response.text.prefix(200))")
                let today = Day(timestamp: Date().timeIntervalSince1970)
                #expect(response.json["from"] as? String == Day(number: today.number - 3).description, "\(period)")
            }
        }
    }

    /// A previous period that starts before the oldest day kept (today − `--retention-days`) is not
    /// compared with: its deleted days would count as zeros and show a rise that never was. Under a
    /// 40-day retention the 30-day period's (days −59…−30) is not, nor a 21-day range's (from −41);
    /// a 20-day range's (from −39) is. Filtered pages alike.
    @Test func aPreviousPeriodPastTheRetentionIsNotCompared() async throws {
        let fixture = try DashboardFixture.shared()
        let app = Application(router: try fixture.dashboard(archive: true, retentionDays: 40).router())
        let today = Day(timestamp: Date().timeIntervalSince1970)
        let title = "<span class=\"change\" title=\"not compared: the previous period starts before the oldest day kept (--retention-days)\">–</span>"
        try await app.test(.router) { client in
            for filter in ["", "&" + FilterTests.query("pages:/blog/")] {
                let month = try await client.execute(uri: "/site?site=example.com&period=30d" + filter, method: .get)
                #expect(month.status == .ok)
                #expect(month.text.components(separatedBy: title).count == 6, "5 cards without a change\(filter)")
                let notCompared = "; not compared: the previous period, \(Day(number: today.number - 59)) – "
                    + "\(Day(number: today.number - 30)), starts before the oldest day kept, \(Day(number: today.number - 40)) (--retention-days)</p>"
                #expect(month.text.contains(notCompared), "\(filter)")

                let over = try await client.execute(
                    uri: "/site?site=example.com&from=\(Day(number: today.number - 20))&to=\(today)" + filter, method: .get
                )
                #expect(over.text.components(separatedBy: title).count == 6, "21 days\(filter)")
                let kept = try await client.execute(
                    uri: "/site?site=example.com&from=\(Day(number: today.number - 19))&to=\(today)" + filter, method: .get
                )
                #expect(kept.status == .ok)
                #expect(!kept.text.contains(title), "20 days\(filter)")
                #expect(kept.text.contains(", compared with \(Day(number: today.number - 39)) – \(Day(number: today.number - 20))"))
            }
        }
    }

    @Test(arguments: [
        ("/api/stats", 400),
        ("/api/stats?site=", 400),
        ("/api/stats?site=%3Cscript%3E", 400),
        ("/api/stats?site=unknown.example", 404),
        ("/api/stats?site=example.com&from=2026-13-01", 400),
        ("/api/stats?site=example.com&from=yesterday", 400),
        ("/api/stats?site=example.com&from=2026-02-30", 400),
        ("/api/stats?site=example.com&from=2026-05-02&to=2026-05-01", 400),
        ("/api/stats?site=example.com&from=2000-01-01&to=2026-01-01", 400),
        ("/api/stats?site=example.com&limit=0", 400),
        ("/api/stats?site=example.com&limit=abc", 400),
        ("/api/stats?site=example.com&period=year", 400),
        ("/api/stats?site=example.com&period=7d&from=2026-05-01", 400),
        ("/api/stats?site=example.com&period=custom", 400),
        ("/api/breakdown?site=example.com", 400),
        ("/api/breakdown?site=example.com&dimension=passwords", 400),
        ("/api/breakdown?site=example.com&dimension=pages&format=xml", 400),
        ("/api/timeseries?site=example.com&interval=minute", 400),
        ("/api/timeseries?site=example.com&from=2026-05-01&to=2026-05-03&interval=hour", 400),
        ("/api/count?site=example.com", 400),
        ("/site?site=example.com&from=nope", 400),
        ("/nothing-here", 404),
        ("/api/nothing-here", 404),
    ])
    func badInputIsAClearClientError(uri: String, status: Int) async throws {
        let fixture = try DashboardFixture.shared()
        let app = Application(router: try fixture.dashboard().router())
        try await app.test(.router) { client in
            let response = try await client.execute(uri: uri, method: .get)
            #expect(response.status.code == status, "\(uri): \(response.text)")
            // Every error says what is wrong: the pages in a page, the API in JSON.
            #expect(!response.text.isEmpty, "\(uri)")
            let type = uri.hasPrefix("/api/") ? "application/json" : "text/html"
            #expect(response.headers[.contentType]?.hasPrefix(type) == true, "\(uri): \(response.headers[.contentType] ?? "no type")")
            #expect(response.headers[.contentSecurityPolicy] != nil)
        }
    }

    /// A parameter given twice is a `400` that names it, on the pages as in the API (the first one
    /// was taken silently: `?site=a&site=b` showed a); a parameter no endpoint reads may repeat.
    @Test(arguments: [
        ("/api/stats?site=example.com&site=secret.example", "site"),
        ("/api/stats?site=example.com&from=2026-01-01&from=2026-01-02", "from"),
        ("/api/stats?site=example.com&limit=1&limit=2", "limit"),
        ("/api/breakdown?site=example.com&dimension=pages&dimension=sources", "dimension"),
        ("/api/timeseries?site=example.com&interval=day&interval=hour", "interval"),
        ("/api/realtime?site=example.com&site=example.com", "site"),
        ("/site?site=example.com&period=today&period=7d", "period"),
    ])
    func aParameterGivenTwiceIsNamed(uri: String, name: String) async throws {
        let fixture = try DashboardFixture.shared()
        let app = Application(router: try fixture.dashboard().router())
        try await app.test(.router) { client in
            let response = try await client.execute(uri: uri, method: .get)
            #expect(response.status == .badRequest, "\(uri): \(response.text.prefix(300))")
            #expect(response.text.contains("\(name): given 2 times; give it once"), "\(uri): \(response.text.prefix(300))")
            let repeated = try await client.execute(uri: "/api/stats?site=example.com&x=1&x=2", method: .get)
            #expect(repeated.status == .ok)
        }
    }

    @Test func healthAndMetrics() async throws {
        let fixture = try DashboardFixture.shared()
        let app = Application(router: try fixture.dashboard().router())
        try await app.test(.router) { client in
            let health = try await client.execute(uri: "/healthz", method: .get)
            #expect(health.status == .ok)
            #expect(health.text == "ok\n")
            let metrics = try await client.execute(uri: "/metrics", method: .get)
            #expect(metrics.status == .ok)
            #expect(metrics.text.contains("# pixeld test metrics"))
        }
        // Redis gone: 503, not 500.
        let dead = try RedisConfiguration(url: "redis://127.0.0.1:\(try PortAllocator.freeTCPPort())/0")
        let reader = RedisReader(configuration: dead, threads: 1, logger: .init(label: "test"))
        let down = Dashboard(store: RollupStore(reader: reader), live: nil, configuration: .init(sites: ["example.com"]))
        try await Application(router: down.router()).test(.router) { client in
            let status1 = try await client.execute(uri: "/healthz", method: .get).status
            #expect(status1 == .serviceUnavailable)
            let status2 = try await client.execute(uri: "/api/stats?site=example.com", method: .get).status
            #expect(status2 == .serviceUnavailable)
            let realtime = try await client.execute(uri: "/api/realtime?site=example.com", method: .get)
            #expect(realtime.status == .serviceUnavailable, "\(realtime.text)")
        }
        await reader.stop()
    }

    /// A flood of `/healthz` while Redis is slow (paused for 1.5 s here) sends one `PING`: the
    /// callers share the check under way, and a request behind them is not refused as busy (each
    /// `PING` of its own would queue beyond the 64 waiting requests, and the stats request got a
    /// `503`). A result is reused for a second, and then checked again.
    @Test func aFloodOfHealthChecksSendsOnePing() async throws {
        let redis = try RedisServer.start()
        let reader = RedisReader(configuration: try RedisConfiguration(url: redis.url), threads: 2, logger: .init(label: "test"))
        let dashboard = Dashboard(store: RollupStore(reader: reader), live: nil, configuration: .init(sites: ["example.com"]))
        // Both connections open before the pause (a connect does not wait for it; the commands would).
        _ = try await reader.pipeline([[Array("PING".utf8)]])
        _ = try redis.command(["CONFIG", "RESETSTAT"])
        try await Application(router: dashboard.router()).test(.router) { client in
            let pause = try redis.connect()
            _ = try pause.command(["CLIENT", "PAUSE", "1500", "ALL"])
            let statuses = try await withThrowingTaskGroup(of: HTTPResponse.Status.self) { group in
                for _ in 0..<100 {
                    group.addTask { try await client.execute(uri: "/healthz", method: .get).status }
                }
                try await Task.sleep(for: .milliseconds(300))
                let stats = try await client.execute(uri: "/api/stats?site=example.com", method: .get)
                #expect(stats.status == .ok, "a request behind the health checks: \(stats.text)")
                return try await group.reduce(into: [HTTPResponse.Status]()) { $0.append($1) }
            }
            #expect(statuses.count == 100 && statuses.allSatisfy { $0 == .ok }, "\(Set(statuses.map(\.code)))")
            #expect(try redis.calls(of: "ping") == 1)
            let cached = try await client.execute(uri: "/healthz", method: .get)
            #expect(cached.status == .ok)
            #expect(try redis.calls(of: "ping") == 1, "a check within the second is the last one's")
            try await Task.sleep(for: .milliseconds(1100))
            let again = try await client.execute(uri: "/healthz", method: .get)
            #expect(again.status == .ok)
            #expect(try redis.calls(of: "ping") == 2, "a second later Redis is asked again")
        }
        await reader.stop()
    }

    /// A Redis that stopped answering (paused 4 s here, a command timeout of 1 s) costs each request
    /// about one command timeout: the requests waiting for a connection fail with the one that timed
    /// out, and `/healthz` behind them says so too. Before, each waited for the ones ahead of it,
    /// and each of those for two timeouts (a retry on a new connection): 12 requests on 2 connections
    /// took up to 12 s, so the later ones (and `/healthz`) waited out the whole pause. Once Redis
    /// answers again, so do the requests.
    @Test func aStalledRedisFailsTheWaitingRequestsTogether() async throws {
        let redis = try RedisServer.start()
        var configuration = try RedisConfiguration(url: redis.url)
        configuration.commandTimeoutMilliseconds = 1_000
        let reader = RedisReader(configuration: configuration, threads: 2, logger: .init(label: "test"))
        let dashboard = Dashboard(store: RollupStore(reader: reader), live: nil, configuration: .init(sites: ["example.com"]))
        // Both connections open before the pause.
        async let first = reader.pipeline([[Array("PING".utf8)], [Array("DEBUG".utf8), Array("SLEEP".utf8), Array("0.2".utf8)]])
        async let second = reader.pipeline([[Array("PING".utf8)]])
        _ = try await (first, second)
        try await Application(router: dashboard.router()).test(.router) { client in
            let pause = try redis.connect()
            _ = try pause.command(["CLIENT", "PAUSE", "4000", "ALL"])
            let paused = ContinuousClock.now
            let answers = try await withThrowingTaskGroup(of: (String, HTTPResponse.Status, Duration).self) { group in
                for index in 0..<13 {
                    let uri = index == 12 ? "/healthz" : "/api/stats?site=example.com"
                    group.addTask {
                        if index == 12 { try await Task.sleep(for: .milliseconds(200)) }
                        let status = try await client.execute(uri: uri, method: .get).status
                        return (uri, status, ContinuousClock.now - paused)
                    }
                }
                return try await group.reduce(into: [(String, HTTPResponse.Status, Duration)]()) { $0.append($1) }
            }
            let described = answers.map { "\($0.0) \($0.1.code) after \($0.2)" }.joined(separator: "; ")
            #expect(answers.count == 13 && answers.allSatisfy { $0.1 == .serviceUnavailable }, "\(described)")
            #expect(answers.allSatisfy { $0.2 < .milliseconds(2_500) }, "\(described)")
            try await Task.sleep(until: paused + .milliseconds(4_300))
            let after = try await client.execute(uri: "/api/stats?site=example.com", method: .get)
            #expect(after.status == .ok, "after the pause: \(after.text)")
        }
        await reader.stop()
    }
}
