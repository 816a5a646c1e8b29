@testable import PixelAnalytics
import PixeldTestSupport
import PixelEvents
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// ``ArchiveReport``: without a filter it reproduces the live rollups from the archive of known
/// traffic; with one, its numbers are exact on a small hand-computed example.
struct ArchiveReportTests {
    // MARK: - Hand-computed example

    static let site = "s.example"
    static let day = Day(number: 20_000)

    static func hit(
        _ dayOffset: Int, _ hour: Int, _ minute: Int, vid: String?, pvid: String? = nil, event: String = "pageview",
        path: String, source: String = "(direct)", campaign: Campaign = Campaign(), browser: String = "Firefox",
        country: String? = "DE"
    ) -> HitOutcome {
        let seconds = Double((day.number + dayOffset) * 86_400 + hour * 3600 + minute * 60)
        return .accepted(
            EnrichedHit(
                timestampText: String(Int(seconds)) + ".000", timestamp: seconds, site: site, visitorID: vid,
                previousVisitorID: pvid, event: event, path: path, source: source, campaign: campaign, browser: browser,
                os: "Linux", device: "desktop", country: country
            )
        )
    }

    /// Visitor A: one visit of 15 min (/, /pricing, a signup event on /pricing), from Google.
    /// Visitor B: a bounce on /pricing from a newsletter, then 55 min later a second bounce on /.
    /// Visitor C: a visit across midnight (/blog at 23:50, /pricing at 00:10 under the next day's
    /// id), from Twitter, no country. One pageview without a visitor id from Bing. One bot drop.
    static let outcomes: [HitOutcome] = [
        hit(0, 10, 0, vid: "a1", path: "/", source: "Google"),
        hit(0, 10, 5, vid: "b1", path: "/pricing", source: "Newsletter", campaign: Campaign(source: "news", medium: "email"), browser: "Chrome", country: "US"),
        hit(0, 10, 10, vid: "a1", path: "/pricing", source: "(internal)"),
        hit(0, 10, 15, vid: "a1", event: "signup", path: "/pricing"),
        hit(0, 11, 0, vid: "b1", path: "/", browser: "Chrome", country: "US"),
        hit(0, 12, 0, vid: nil, path: "/pricing", source: "Bing"),
        hit(0, 23, 50, vid: "c1", path: "/blog", source: "Twitter", country: nil),
        hit(1, 0, 10, vid: "c2", pvid: "c1", path: "/pricing", country: nil),
        .dropped(DroppedHit(timestampText: "0", timestamp: Double(day.number * 86_400 + 3600), reason: .listedBot, site: site)),
        // Another site's hit is ignored.
        .accepted(
            EnrichedHit(
                timestampText: "0", timestamp: Double(day.number * 86_400 + 7200), site: "other.example", visitorID: "x",
                event: "pageview", path: "/pricing", source: "(direct)", browser: "Firefox", os: "Linux", device: "desktop"
            )
        ),
    ]

    func filtered(_ filter: String?, days: Int = 2) throws -> Report {
        var parsed: ReportFilter?
        if let filter { parsed = try ReportFilter(parsing: filter) }
        let aggregator = ArchiveReport(
            site: Self.site, from: Self.day, to: Day(number: Self.day.number + days - 1), filter: parsed
        )
        // Any input order: the aggregator sorts by time.
        return aggregator.report(Self.outcomes.reversed())
    }

    @Test func unfiltered() throws {
        let report = try filtered(nil)
        #expect(report.pageviews == 7)
        #expect(report.events == 1)
        #expect(report.visits == 4)
        #expect(report.bounces == 2)
        #expect(report.durationMilliseconds == 900_000 + 1_200_000)
        #expect(report.visitors == 3 + 1)  // a1, b1, c1 on the day; c2 on the next
        #expect(report.drops == ["bot_list": 1])
        #expect(report.breakdowns[.sources] == ["Google": 2, "Newsletter": 1, "(direct)": 1, "Bing": 1, "Twitter": 2])
        #expect(report.breakdowns[.entryPages] == ["/": 2, "/pricing": 1, "/blog": 1])
        #expect(report.breakdowns[.utmSources] == ["news": 1])
        #expect(report.breakdowns[.countries] == ["DE": 3, "US": 2, "(unknown)": 2])
        #expect(report.breakdowns[.hours] == ["10": 3, "11": 1, "12": 1, "23": 1, "00": 1])
        // Every hour, in order, whatever the limit: the first N hours would hide the rest of the day.
        #expect(report.top(.hours, limit: 2).map(\.name) == ["00", "10", "11", "12", "23"])
        #expect(report.top(.sources, limit: 2).map(\.name) == ["Google", "Twitter"])
    }

    @Test func hitLevelFilterCountsMatchingHitsAndTheirVisits() throws {
        let report = try filtered("pages:/pricing")
        #expect(report.pageviews == 4)  // A, B, C (next day), the one without id
        #expect(report.events == 1)  // A's signup was sent from /pricing
        #expect(report.visits == 3)  // A, B's first, C — not B's second
        #expect(report.bounces == 1)  // B's first
        #expect(report.durationMilliseconds == 900_000 + 1_200_000)  // whole visits
        #expect(report.visitors == 2 + 1)
        #expect(report.drops.isEmpty)
        #expect(report.breakdowns[.pages] == ["/pricing": 4])
        #expect(report.breakdowns[.sources] == ["Google": 1, "Newsletter": 1, "Twitter": 1, "Bing": 1])
        #expect(report.breakdowns[.entryPages] == ["/": 1, "/pricing": 1, "/blog": 1])

        // Only the first day: C's pageview after midnight is out, its visit (started on the day,
        // with its full duration) is in.
        let first = try self.filtered("pages:/pricing", days: 1)
        #expect(first.pageviews == 3)
        #expect(first.visits == 3)
        #expect(first.durationMilliseconds == 900_000 + 1_200_000)
        #expect(first.visitors == 2)

        let events = try filtered("events:signup")
        #expect(events.pageviews == 0)
        #expect(events.events == 1)
        #expect(events.visits == 1)
        #expect(events.bounces == 0)
        #expect(events.durationMilliseconds == 900_000)
        #expect(events.visitors == 1)

        let unknown = try filtered("countries:(unknown)")
        #expect(unknown.pageviews == 2)
        #expect(unknown.visits == 1)
        #expect(unknown.visitors == 2)  // c1 and c2: one per day

        let chrome = try filtered("browsers:Chrome")
        #expect(chrome.pageviews == 2)
        #expect(chrome.visits == 2)
        #expect(chrome.bounces == 2)
        #expect(chrome.durationMilliseconds == 0)
    }

    @Test func visitLevelFilterKeepsWholeVisits() throws {
        let google = try filtered("sources:Google")
        #expect(google.pageviews == 2)
        #expect(google.events == 1)
        #expect(google.visits == 1)
        #expect(google.bounces == 0)
        #expect(google.durationMilliseconds == 900_000)
        #expect(google.visitors == 1)
        #expect(google.breakdowns[.pages] == ["/": 1, "/pricing": 1])

        let bing = try filtered("sources:Bing")  // no visitor id: its own source, no visit
        #expect(bing.pageviews == 1)
        #expect(bing.visits == 0)
        #expect(bing.visitors == 0)

        let entry = try filtered("entry_pages:/blog")
        #expect(entry.pageviews == 2)
        #expect(entry.visits == 1)
        #expect(entry.durationMilliseconds == 1_200_000)
        #expect(entry.visitors == 2)
        #expect(entry.breakdowns[.sources] == ["Twitter": 2])

        let news = try filtered("utm_sources:news")
        #expect(news.pageviews == 1)
        #expect(news.visits == 1)
        #expect(news.bounces == 1)
        #expect(try filtered("utm_mediums:email").pageviews == 1)
        #expect(try filtered("utm_campaigns:launch").pageviews == 0)
    }

    /// A day's numbers do not depend on the range they were computed in: the days of a longer
    /// range, cut to a shorter one and added up, are exactly that range's report over the same
    /// records (the site page reads and aggregates once for both of its periods). The example's
    /// visit across midnight (C) starts on one day and ends on the next.
    @Test(arguments: [nil, "pages:/pricing", "sources:Twitter", "entry_pages:/blog", "countries:(unknown)"])
    func theDaysOfALongerRangeAddUpToAShorterOnesReport(filter: String?) throws {
        let parsed = try filter.map { try ReportFilter(parsing: $0) }
        let first = Self.day.number
        let records = Array(Self.outcomes.reversed())
        let long = ArchiveReport(site: Self.site, from: Day(number: first - 1), to: Day(number: first + 2), filter: parsed)
        let days = long.dailyReports(records)
        #expect(days.map(\.from) == long.days)
        let ranges = [(first - 1, first - 1), (first, first), (first + 1, first + 1), (first, first + 1), (first - 1, first + 2)]
        for (from, to) in ranges {
            let range = ArchiveReport(site: Self.site, from: Day(number: from), to: Day(number: to), filter: parsed)
            #expect(range.report(days: days) == range.report(records), "\(filter ?? "-") \(from - first)…\(to - first)")
        }
        #expect(long.report(days: days).pageviews > 0)  // not vacuous
    }

    @Test(arguments: [
        ("pages", false), ("hours:00", false), ("source_visits:x", false), ("nope:x", false), ("pages:", false),
        (":x", false), ("pages:" + String(repeating: "a", count: 2049), false), ("pages:/a:b", true),
        ("countries:(unknown)", true), ("utm_campaigns:spring sale", true),
    ])
    func parsing(text: String, valid: Bool) {
        let filter = try? ReportFilter(parsing: text)
        #expect((filter != nil) == valid, "\(text.prefix(40))")
        if let filter { #expect(filter.description == text) }
    }

    @Test func scopes() throws {
        #expect(try ReportFilter(parsing: "pages:/").scope == .hit)
        #expect(try ReportFilter(parsing: "events:x").scope == .hit)
        #expect(try ReportFilter(parsing: "entry_pages:/").scope == .visit)
        #expect(try ReportFilter(parsing: "utm_sources:x").scope == .visit)
    }

    // MARK: - Known traffic through the real rollups

    /// The archive the consumer's code writes for simulated traffic, aggregated without a filter,
    /// equals the live rollup report read from Redis (visitors: exact here, HyperLogLog there).
    @Test(.enabled(if: TestEnvironment.canRun("redis-server")))
    func unfilteredEqualsTheLiveRollups() throws {
        let server = try RedisServer.start()
        let connection = try server.connect(timeout: 30)
        var redis = try RedisRollups(connection: connection)
        let today = Day(timestamp: Double(time(nil)))
        let simulation = Simulation(seed: 7, humans: 600, day0: Day(number: today.number - 3))
        #expect(simulation.midnightVisits > 5, "the traffic must cross midnight")
        let archive = try KnownTruthTests.run(simulation, redis: &redis)
        let outcomes = try archive.split(separator: UInt8(ascii: "\n")).map {
            try ArchiveRecord.outcome(from: PixelEventDecoder.decode(Array($0)))
        }
        let ranges = [
            (simulation.day0, simulation.day0), (simulation.day0.next, simulation.day0.next),
            (simulation.day0, simulation.day0.next),
        ]
        for site in simulation.sites {
            for (from, to) in ranges {
                let live = try redis.report(site: site, from: from, to: to)
                var fromArchive = ArchiveReport(site: site, from: from, to: to).report(outcomes)
                #expect(fromArchive.pageviews == live.pageviews, "\(site) \(from)…\(to)")
                #expect(fromArchive.visits == live.visits, "\(site) \(from)…\(to)")
                #expect(fromArchive.bounces == live.bounces, "\(site) \(from)…\(to)")
                #expect(fromArchive.durationMilliseconds == live.durationMilliseconds, "\(site) \(from)…\(to)")
                // Exact visitors: the truth per day, summed; the HyperLogLog within 2 % of it.
                let truth = (from.number...to.number).map {
                    simulation.truth[Simulation.DayKey(site: site, day: Day(number: $0))]?.visitors.count ?? 0
                }.reduce(0, +)
                #expect(fromArchive.visitors == truth, "\(site) \(from)…\(to) visitors")
                #expect(abs(Double(live.visitors - truth)) <= 0.02 * Double(max(1, truth)))
                fromArchive.visitors = live.visitors
                #expect(fromArchive == live, "\(site) \(from)…\(to): the whole report")
            }
        }
    }
}
