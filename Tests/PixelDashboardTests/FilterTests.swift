import Foundation
import Hummingbird
import HummingbirdTesting
import InMemoryLogging
import Logging
import PixelAnalytics
@testable import PixelDashboard
import PixeldTestSupport
import Synchronization
import Testing

/// Filtered views (`&filter=DIMENSION:VALUE`) computed from the archive the real consumer wrote
/// for the fixture's known traffic: exact numbers, escaped hostile values, clear 400s.
///
/// The fixture's visits on example.com: v1 `/` (Google) → `/blog/` 60 s later; v2 `/?utm_source=news`
/// (bounce); v3 the hostile path (bounce); v4 `/pricing` + a `signup` event 10 s later; v5 `/blog/`
/// (bounce).
@Suite(.serialized, .enabled(if: TestEnvironment.canRun("redis-server")))
struct FilterTests {
    struct Truth: Sendable {
        var filter: String
        var pageviews: Int
        var events: Int
        var visitors: Int
        var visits: Int
        var bounces: Int
        var durationSeconds: Double
    }

    static let truths: [Truth] = [
        // Hit-level: the /blog/ pageviews of v1 and v5; both visits, whole.
        Truth(filter: "pages:/blog/", pageviews: 2, events: 0, visitors: 2, visits: 2, bounces: 1, durationSeconds: 60),
        // Visit-level: v1 and v2, all their hits.
        Truth(filter: "entry_pages:/", pageviews: 3, events: 0, visitors: 2, visits: 2, bounces: 1, durationSeconds: 60),
        Truth(filter: "events:signup", pageviews: 0, events: 1, visitors: 1, visits: 1, bounces: 0, durationSeconds: 10),
        Truth(filter: "utm_sources:news", pageviews: 1, events: 0, visitors: 1, visits: 1, bounces: 1, durationSeconds: 0),
        Truth(
            filter: "pages:" + DashboardFixture.hostilePath, pageviews: 1, events: 0, visitors: 1, visits: 1, bounces: 1,
            durationSeconds: 0
        ),
    ]

    static func query(_ filter: String) -> String { "filter=" + DashboardFixture.encode(filter) }

    @Test(arguments: truths.indices)
    func filteredStatsEqualTheTruth(index: Int) async throws {
        let truth = Self.truths[index]
        let fixture = try DashboardFixture.shared()
        let app = Application(router: try fixture.dashboard(archive: true).router())
        try await app.test(.router) { client in
            let uri = "/api/stats?site=example.com&\(fixture.rangeQuery)&" + Self.query(truth.filter)
            let response = try await client.execute(uri: uri, method: .get)
            #expect(response.status == .ok, "\(truth.filter): \(response.text)")
            let json = response.json
            #expect(json["pageviews"] as? Int == truth.pageviews, "\(truth.filter)")
            // `events` is both a total and, later in the object, the custom-event table: read the table.
            let events = (json["events"] as? [[String: Any]] ?? []).reduce(0) { $0 + ($1["events"] as? Int ?? 0) }
            #expect(events == truth.events, "\(truth.filter)")
            #expect(json["visits"] as? Int == truth.visits, "\(truth.filter)")
            #expect(json["bounces"] as? Int == truth.bounces, "\(truth.filter)")
            let duration = json["total_duration_s"] as? Double ?? -1
            #expect(abs(duration - truth.durationSeconds) < 0.01, "\(truth.filter): \(duration)")
            // A visit crossing midnight counts once per day (daily ids); the fixture's 5 minutes
            // of traffic only cross it when the range has two days.
            if fixture.from == fixture.to { #expect(json["visitors"] as? Int == truth.visitors, "\(truth.filter)") }
            #expect(json["drops"] as? [String: Int] == [:])
        }
    }

    @Test func filteredBreakdownAndTimeseries() async throws {
        let fixture = try DashboardFixture.shared()
        let now = Date().timeIntervalSince1970
        let app = Application(router: try fixture.dashboard(archive: true, clock: { now }).router())
        let filter = Self.query("pages:/blog/")
        try await app.test(.router) { client in
            let entry = try await client.execute(
                uri: "/api/breakdown?site=example.com&\(fixture.rangeQuery)&dimension=entry_pages&\(filter)", method: .get
            )
            #expect(entry.status == .ok)
            let items = (entry.json["items"] as? [[String: Any]] ?? []).map { "\($0["name"]!)=\($0["count"]!)" }
            #expect(items == ["/=1", "/blog/=1"])

            let csv = try await client.execute(
                uri: "/api/breakdown?site=example.com&\(fixture.rangeQuery)&dimension=pages&format=csv&\(filter)", method: .get
            )
            #expect(csv.text == "name,count\r\n/blog/,2\r\n")

            let series = try await client.execute(
                uri: "/api/timeseries?site=example.com&\(fixture.rangeQuery)&interval=day&\(filter)", method: .get
            )
            #expect(series.status == .ok)
            let points = series.json["points"] as? [[String: Any]] ?? []
            #expect(points.count == fixture.to.number - fixture.from.number + 1)
            #expect(points.reduce(0) { $0 + ($1["pageviews"] as? Int ?? 0) } == 2)
            #expect(points.reduce(0) { $0 + ($1["visits"] as? Int ?? 0) } == 2)

            let hourly = try await client.execute(
                uri: "/api/timeseries?site=example.com&from=\(fixture.to)&to=\(fixture.to)&interval=hour&\(filter)", method: .get
            )
            #expect(hourly.status == .ok)
            // Today's hours up to the current one (the hours still to come are left out).
            let hours = fixture.to < Day(timestamp: now) ? 24 : Int(now.truncatingRemainder(dividingBy: 86_400)) / 3600 + 1
            #expect((hourly.json["points"] as? [[String: Any]])?.count == hours)
        }
    }

    @Test func pageLinksRowsAndEscapesAHostileFilter() async throws {
        let fixture = try DashboardFixture.shared()
        let app = Application(router: try fixture.dashboard(archive: true).router())
        let hostileQuery = Escape.query("pages:" + DashboardFixture.hostilePath)
        try await app.test(.router) { client in
            let page = try await client.execute(uri: "/site?site=example.com&\(fixture.rangeQuery)", method: .get)
            #expect(page.status == .ok)
            let range = "from=\(fixture.from)&amp;to=\(fixture.to)"
            #expect(page.text.contains("<a href=\"/site?site=example.com&amp;\(range)&amp;filter=pages%3A%2Fblog%2F\">/blog/</a>"))
            #expect(page.text.contains("&amp;filter=events%3Asignup\">signup</a>"))
            #expect(page.text.contains("&amp;filter=" + hostileQuery + "\">"))
            #expect(!page.text.contains("<script>document"))
            #expect(!page.text.contains("clear filter"))

            let filtered = try await client.execute(
                uri: "/site?site=example.com&\(fixture.rangeQuery)&" + Self.query("pages:" + DashboardFixture.hostilePath), method: .get
            )
            #expect(filtered.status == .ok)
            let csp = filtered.headers[.contentSecurityPolicy] ?? ""
            #expect(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"))
            let text = filtered.text
            #expect(!text.contains("<script>document"))
            #expect(text.contains("Filtered by Pages = <strong>/&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;</strong>"))
            #expect(text.contains("<a href=\"/site?site=example.com&amp;\(range)\">clear filter</a>"))
            #expect(text.contains("<div class=\"value\">1</div>"))  // one pageview
            // The filter is kept by the period links and the date form.
            #expect(text.contains("&amp;period=7d&amp;filter=" + hostileQuery + "\""))
            #expect(text.contains("<input type=\"hidden\" name=\"filter\" value=\"pages:/&lt;script&gt;"))
        }
    }

    /// The aggregation of a filtered view (a copy and a sort of every record read, up to a million)
    /// runs on the archive's own thread, as the read does, so filtered requests never hold the two
    /// threads of the cooperative pool that `/healthz` and every other request need. The site page
    /// aggregates once for both of its periods; its numbers are those of `/api/stats`.
    @Test func filteredViewsAggregateOnTheArchiveThread() async throws {
        let fixture = try DashboardFixture.shared()
        let threads = ThreadNames()
        let store = ArchiveStore(directory: fixture.archive.path, afterAggregation: { threads.record() })
        let app = Application(router: try fixture.dashboard(archiveStore: store).router())
        let filter = Self.query("pages:/blog/")
        try await app.test(.router) { client in
            let range = "site=example.com&\(fixture.rangeQuery)&\(filter)"
            let page = try await client.execute(uri: "/site?\(range)", method: .get)
            #expect(page.status == .ok)
            #expect(threads.names == ["pixeld-arch-0"])
            let stats = try await client.execute(uri: "/api/stats?\(range)", method: .get)
            #expect(stats.status == .ok)
            for (key, label) in [("visitors", "Unique visitors"), ("visits", "Visits"), ("pageviews", "Pageviews")] {
                let value = stats.json[key] as? Int ?? -1
                let card = "id=\"stat-\(key)\"><div class=\"label\">\(label)</div><div class=\"value\">\(value)</div>"
                #expect(page.text.contains(card), "\(key) = \(value)")
            }
            for path in ["/api/breakdown?dimension=pages&", "/api/timeseries?"] {
                let response = try await client.execute(uri: path + range, method: .get)
                #expect(response.status == .ok, "\(path)")
            }
        }
        #expect(threads.names == Array(repeating: "pixeld-arch-0", count: 4))
        await store.stop()
    }

    /// A range with more archive lines than the store reads asks for too much: a 400 (choose a
    /// shorter range), not a 503; a stopped (or busy) store is the server's trouble: a 503.
    @Test func tooManyArchiveLinesIsAClientErrorAndAStoppedStoreIsNot() async throws {
        let fixture = try DashboardFixture.shared()
        let small = ArchiveStore(directory: fixture.archive.path, maxRecords: 2)
        let stopped = ArchiveStore(directory: fixture.archive.path)
        await stopped.stop()
        let range = "site=example.com&\(fixture.rangeQuery)&" + Self.query("pages:/blog/")
        try await Application(router: try fixture.dashboard(archiveStore: small).router()).test(.router) { client in
            for path in ["/site", "/api/stats", "/api/timeseries"] {
                let response = try await client.execute(uri: "\(path)?\(range)", method: .get)
                #expect(response.status == .badRequest, "\(path)")
                #expect(response.text.contains("more than 2 archive lines in the range; choose a shorter one"), "\(path)")
            }
        }
        try await Application(router: try fixture.dashboard(archiveStore: stopped).router()).test(.router) { client in
            let response = try await client.execute(uri: "/api/stats?\(range)", method: .get)
            #expect(response.status == .serviceUnavailable)
            #expect(response.text.contains("the archive reader is stopped"))
        }
        await small.stop()
    }

    /// An archive file that cannot be read (a directory under a day file's name: `read` fails with
    /// EISDIR, also as root) is a `503` that names neither the file nor the system's reason; both
    /// go to the log.
    @Test func anUnreadableArchiveFileIsLoggedNotShown() async throws {
        let fixture = try DashboardFixture.shared()
        let directory = try TempDirectory(prefix: "pixeld-dash-unreadable")
        let file = directory.appending("\(fixture.from).broken.jsonl")
        try FileManager.default.createDirectory(at: file, withIntermediateDirectories: false)
        let store = ArchiveStore(directory: directory.path)
        let handler = InMemoryLogHandler()
        let dashboard = try fixture.dashboard(archiveStore: store, logger: Logger(label: "test") { _ in handler })
        try await Application(router: dashboard.router()).test(.router) { client in
            let response = try await client.execute(
                uri: "/api/stats?site=example.com&\(fixture.rangeQuery)&" + Self.query("pages:/blog/"), method: .get
            )
            #expect(response.status == .serviceUnavailable)
            let message = (response.json["error"] as? [String: Any])?["message"] as? String ?? ""
            #expect(message == "cannot read the archive (the server's log says why)", "\(response.text)")
            #expect(!message.contains(directory.path) && !message.contains("Is a directory"), "\(response.text)")
        }
        let errors = handler.entries.filter { $0.level == .error }
        #expect(errors.count == 1)
        let logged = errors.first?.metadata["error"].map { "\($0)" } ?? ""
        #expect(logged.contains(file.path) && logged.contains("Is a directory"), "\(logged)")
        await store.stop()
    }

    /// Table rows link to the filtered page only where it can answer: not on a range longer than
    /// the archive's ``ArchiveStore/maxDays`` (every click would be a 400), and never for the
    /// rollups' `(other)` bucket (no value a filter could match).
    @Test func rowsLinkOnlyWhereAFilterCanAnswer() async throws {
        let fixture = try DashboardFixture.shared()
        let app = Application(router: try fixture.dashboard(archive: true).router())
        try await app.test(.router) { client in
            let longest = Day(number: fixture.to.number - 91)  // 92 days
            let linked = try await client.execute(uri: "/site?site=example.com&from=\(longest)&to=\(fixture.to)", method: .get)
            #expect(linked.status == .ok)
            #expect(linked.text.contains("&amp;filter=pages%3A%2Fblog%2F\">/blog/</a>"))
            let over = Day(number: fixture.to.number - 92)  // 93 days
            let plain = try await client.execute(uri: "/site?site=example.com&from=\(over)&to=\(fixture.to)", method: .get)
            #expect(plain.status == .ok)
            #expect(!plain.text.contains("filter="))
            #expect(plain.text.contains("<span class=\"name\">/blog/</span>"))
        }

        let range = RangeInput(site: DashboardFixture.site, from: fixture.from, to: fixture.to, period: "custom")
        let report = Report(
            site: DashboardFixture.site, from: fixture.from, to: fixture.to, pageviews: 8, visitors: 1, visits: 1, bounces: 0,
            durationMilliseconds: 0, events: 0, breakdowns: [.pages: ["/a": 3, "(other)": 5], .browsers: ["(other)": 8]],
            drops: [:]
        )
        let html = Pages.sitePage(
            range: range, today: fixture.to.next, report: report, previous: report, series: [], realtime: 0, limit: 10, filterable: true
        )
        #expect(html.contains("&amp;filter=pages%3A%2Fa\">/a</a>"))
        #expect(html.components(separatedBy: "<span class=\"name\">(other)</span>").count == 3)
        #expect(!html.contains("(other)</a>"))
    }

    /// The headline changes: in percent rounded to the nearest (991 against 1,000 pageviews is −1 %,
    /// not +0 %), the bounce rate in percentage points (40 % against 42 % is −2 pp, not −4 %), and a
    /// range that ends today says that it holds part of a day.
    @Test func headlineChangesRoundAndBounceRateChangesInPoints() throws {
        func report(pageviews: Int, bounces: Int) -> Report {
            Report(
                site: "example.com", from: Day(number: 20_000), to: Day(number: 20_000), pageviews: pageviews, visitors: 10, visits: 50,
                bounces: bounces, durationMilliseconds: 0, events: 0, breakdowns: [:], drops: [:]
            )
        }
        let today = Day(number: 20_000)
        let html = Pages.sitePage(
            range: RangeInput(site: "example.com", from: today, to: today, period: "today"), today: today,
            report: report(pageviews: 991, bounces: 20), previous: report(pageviews: 1000, bounces: 21), series: [], realtime: 0, limit: 10
        )
        #expect(html.contains("id=\"stat-pageviews\"><div class=\"label\">Pageviews</div><div class=\"value\">991</div><span class=\"change down\">−1 %</span>"), "\(html)")
        #expect(html.contains("id=\"stat-bounce\"><div class=\"label\">Bounce rate</div><div class=\"value\">40.0 %</div><span class=\"change up\">−2 pp</span>"), "\(html)")
        #expect(html.contains("id=\"stat-visitors\"><div class=\"label\">Unique visitors</div><div class=\"value\">10</div><span class=\"change up\">±0 %</span>"), "\(html)")
        #expect(html.contains("; today so far, against whole days</p>"))
        let yesterday = Pages.sitePage(
            range: RangeInput(site: "example.com", from: today, to: today, period: "custom"), today: today.next,
            report: report(pageviews: 1, bounces: 0), previous: report(pageviews: 1, bounces: 0), series: [], realtime: 0, limit: 10
        )
        #expect(!yesterday.contains("today so far"))
    }

    /// A period without visits (one hit that continued yesterday's visit, or none at all) has no
    /// bounce rate or visit duration: "–", not 0.0 % and 0 s, and no change against the previous
    /// period; in the text report too.
    @Test func aPeriodWithoutVisitsHasNoBounceRateOrDuration() throws {
        let today = Day(number: 20_000)
        func report(visits: Int, bounces: Int) -> Report {
            Report(
                site: "example.com", from: today, to: today, pageviews: 1, visitors: 1, visits: visits,
                bounces: bounces, durationMilliseconds: visits * 60_000, events: 0, breakdowns: [:], drops: [:]
            )
        }
        let html = Pages.sitePage(
            range: RangeInput(site: "example.com", from: today, to: today, period: "today"), today: today,
            report: report(visits: 0, bounces: 0), previous: report(visits: 2, bounces: 1), series: [], realtime: 0, limit: 10
        )
        #expect(html.contains("id=\"stat-bounce\"><div class=\"label\">Bounce rate</div><div class=\"value\">–</div><span class=\"change\">–</span>"), "\(html)")
        #expect(html.contains("id=\"stat-duration\"><div class=\"label\">Visit duration</div><div class=\"value\">–</div><span class=\"change\">–</span>"), "\(html)")
        #expect(!html.contains("id=\"drops\""), "no drops, no line")
        var dropped = report(visits: 2, bounces: 1)
        dropped.drops = ["bot_list": 3, "dnt": 1]
        let withDrops = Pages.sitePage(
            range: RangeInput(site: "example.com", from: today, to: today, period: "today"), today: today,
            report: dropped, previous: nil, series: [], realtime: 0, limit: 10
        )
        #expect(withDrops.contains("<p class=\"muted\" id=\"drops\">Hits not counted: bot_list 3, dnt 1</p>"), "\(withDrops)")
        let text = report(visits: 0, bounces: 0).text()
        #expect(text.contains("Bounce rate      –\n") && text.contains("Visit duration   –\n"), "\(text)")
        let visited = report(visits: 2, bounces: 1).text()
        #expect(visited.contains("Bounce rate      50.0 %\n") && visited.contains("Visit duration   1 min 0 s\n"), "\(visited)")
        // A breakdown cut at the limit says how much is left out.
        var wide = report(visits: 2, bounces: 1)
        wide.breakdowns[.pages] = Dictionary(uniqueKeysWithValues: (0..<12).map { ("/p\($0)", 12 - $0) })
        #expect(wide.text(limit: 10).contains("  … and 2 more (--limit, or --json)\n"), "\(wide.text(limit: 10))")
        #expect(!wide.text(limit: 12).contains("more (--limit"))
    }

    /// The date form is a GET form: the browser sends a space in the kept filter as `+`.
    @Test func aFilterFromTheDateFormReadsPlusAsASpace() async throws {
        let fixture = try DashboardFixture.shared()
        let app = Application(router: try fixture.dashboard(archive: true).router())
        try await app.test(.router) { client in
            let page = try await client.execute(
                uri: "/site?site=example.com&from=\(fixture.from)&to=\(fixture.to)&filter=sources%3AHacker+News", method: .get
            )
            #expect(page.status == .ok)
            #expect(page.text.contains("Filtered by Sources = <strong>Hacker News</strong>"), "\(page.text.prefix(2000))")
            // A real value: the entry page `/` of v1 and v2, 3 pageviews, as with %2F.
            let stats = try await client.execute(
                uri: "/api/stats?site=example.com&\(fixture.rangeQuery)&filter=entry_pages:%2F&limit=5", method: .get
            )
            #expect(stats.json["pageviews"] as? Int == 3)
        }
    }

    @Test func withoutTheArchiveRowsAreTextAndFiltersAre400() async throws {
        let fixture = try DashboardFixture.shared()
        let app = Application(router: try fixture.dashboard().router())
        try await app.test(.router) { client in
            let page = try await client.execute(uri: "/site?site=example.com&\(fixture.rangeQuery)", method: .get)
            #expect(page.status == .ok)
            #expect(!page.text.contains("filter="))
            #expect(page.text.contains("<span class=\"name\">/blog/</span>"))
            for path in ["/site", "/api/stats", "/api/breakdown", "/api/timeseries"] {
                let response = try await client.execute(
                    uri: "\(path)?site=example.com&\(fixture.rangeQuery)&dimension=pages&filter=pages:%2F", method: .get
                )
                #expect(response.status == .badRequest, "\(path)")
                let message = "filters need `pixeld serve --archive DIR`"
                #expect(response.text.contains(path == "/site" ? Escape.html(message) : message), "\(path): \(response.text)")
            }
        }
    }

    @Test(arguments: [
        ("filter=nope:x", "unknown dimension"),
        ("filter=hours:00", "unknown dimension"),
        ("filter=source_visits:x", "unknown dimension"),
        ("filter=pages", "DIMENSION:VALUE"),
        ("filter=pages:", "empty"),
        ("filter=pages:" + String(repeating: "a", count: 2049), "longer than 2048 bytes"),
        ("from=2026-01-01&to=2026-06-01&filter=pages:%2F", "limited to 92 days"),
    ])
    func badFiltersAre400(query: String, message: String) async throws {
        let fixture = try DashboardFixture.shared()
        let app = Application(router: try fixture.dashboard(archive: true).router())
        try await app.test(.router) { client in
            for path in ["/site", "/api/stats", "/api/breakdown", "/api/timeseries"] {
                let response = try await client.execute(uri: "\(path)?site=example.com&dimension=pages&\(query)", method: .get)
                #expect(response.status == .badRequest, "\(path) \(query.prefix(40))")
                #expect(response.text.contains(message), "\(path) \(query.prefix(40)): \(response.text.prefix(200))")
            }
            let counts = try await client.execute(uri: "/api/counts?site=example.com&filter=pages:%2F", method: .get)
            #expect(counts.status == .badRequest)
        }
    }
}

/// The names of the threads that called ``record()`` (`/proc/thread-self/comm`).
final class ThreadNames: Sendable {
    private let recorded = Mutex<[String]>([])

    func record() {
        let name = (try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)) ?? "?"
        recorded.withLock { $0.append(name.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    var names: [String] { recorded.withLock { $0 } }
}
