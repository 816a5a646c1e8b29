@testable import PixelAnalytics
import PixeldTestSupport
import PixelEvents
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Synthetic traffic with known answers, processed and rolled up in a real Redis exactly as the
/// consumer does: pageviews, visits, bounces and durations must be exact, unique visitors within
/// ±2 %, every dropped hit counted under the right reason, and no IP address or user agent may be
/// found anywhere in Redis or the archive lines.
@Suite(.serialized, .enabled(if: TestEnvironment.canRun("redis-server")))
struct KnownTruthTests {
    static let humans = 3000

    /// Processes `simulation` in batches of 500; returns the archive lines, rendered as the consumer
    /// renders them (previous-day ids held back until the batch's visits are resolved).
    static func run(
        _ simulation: Simulation, redis: inout RedisRollups, abortEvery: Int = 0
    ) throws -> [UInt8] {
        let processor = HitProcessor(
            validator: HitValidator(
                sites: try SiteList(simulation.sites), maxAgeSeconds: 3 * 86_400, maxFutureSeconds: 600
            ),
            respectPrivacySignals: true
        )
        var archive: [UInt8] = []
        var batchNumber = 0
        var index = 0
        let lines = simulation.lines
        while index < lines.count {
            let slice = lines[index..<min(index + 500, lines.count)]
            index += slice.count
            let events = try slice.map { try PixelEventDecoder.decode(Array($0.line.utf8)) }
            try redis.loadKeys(for: events.map(\.timestamp))
            var batch = RollupBatch(configuration: redis.configuration)
            var lines: [[UInt8]] = [[]]
            var heldBack = HeldBackPreviousIDs()
            var live = LiveUpdate(keys: redis.configuration.keys, now: simulation.now)
            for event in events {
                let outcome = try processor.process(event, now: simulation.now, keys: redis.keys)
                heldBack.appendLine(outcome, visitHit: batch.add(outcome), to: &lines, buffer: 0)
            }
            batchNumber += 1
            let continued = try redis.apply(batch, abortFirst: abortEvery > 0 && batchNumber % abortEvery == 0)
            heldBack.insert(continued: continued, into: &lines, live: &live)
            archive += lines[0]
        }
        return archive
    }

    @Test func knownTruth() throws {
        let server = try RedisServer.start()
        let connection = try server.connect(timeout: 30)
        var redis = try RedisRollups(connection: connection)
        let today = Day(timestamp: Double(time(nil)))
        let simulation = Simulation(seed: 42, humans: Self.humans, day0: Day(number: today.number - 3))
        #expect(simulation.midnightVisits > 50, "the traffic must cross midnight")
        let archive = try Self.run(simulation, redis: &redis, abortEvery: 5)

        // Exact numbers per site and day.
        for site in simulation.sites {
            for day in [simulation.day0, simulation.day0.next] {
                let truth = simulation.truth[Simulation.DayKey(site: site, day: day)] ?? Simulation.Truth()
                let report = try redis.report(site: site, from: day, to: day)
                #expect(report.pageviews == truth.pageviews, "\(site) \(day) pageviews")
                #expect(report.events == truth.events, "\(site) \(day) events")
                #expect(report.visits == truth.visits, "\(site) \(day) visits")
                #expect(report.bounces == truth.bounces, "\(site) \(day) bounces")
                #expect(report.durationMilliseconds == truth.durationMilliseconds, "\(site) \(day) duration")
                let error = abs(Double(report.visitors - truth.visitors.count)) / Double(max(1, truth.visitors.count))
                #expect(error <= 0.02, "\(site) \(day) visitors \(report.visitors) vs \(truth.visitors.count)")
                // Breakdowns add up to the totals.
                #expect(report.breakdowns[.pages, default: [:]].values.reduce(0, +) == truth.pageviews)
                #expect(report.breakdowns[.sources, default: [:]].values.reduce(0, +) == truth.pageviews)
                #expect(report.breakdowns[.sourceVisits, default: [:]].values.reduce(0, +) == truth.visits)
                #expect(report.breakdowns[.entryPages, default: [:]].values.reduce(0, +) == truth.visits)
                #expect(report.breakdowns[.hours, default: [:]].values.reduce(0, +) == truth.pageviews)
                #expect(report.breakdowns[.events, default: [:]]["signup", default: 0] == truth.events)
                #expect(report.breakdowns[.devices, default: [:]].values.reduce(0, +) == truth.pageviews)
            }
        }

        // Every drop under its reason, over all days (too old and future hits land on other days).
        var drops: [String: Int] = [:]
        for day in (simulation.day0.number - 5)...(simulation.day0.number + 3) {
            drops.merge(try redis.hash(RollupKeys().globalDrops(day: Day(number: day))), uniquingKeysWith: +)
        }
        for (reason, count) in simulation.drops {
            if [.listedBot, .headless, .genericBot, .emptyUserAgent].contains(reason) { continue }
            #expect(drops[reason.rawValue] == count, "\(reason)")
        }
        let botDrops = ["bot_list", "bot_headless", "bot_generic", "bot_empty_ua"].map { drops[$0] ?? 0 }.reduce(0, +)
        let expectedBots = [.listedBot, .headless, .genericBot, .emptyUserAgent].map { simulation.drops[$0] ?? 0 }
            .reduce(0, +) + simulation.anyBotDrops
        #expect(botDrops == expectedBots)
        #expect(drops["bot_headless", default: 0] >= simulation.drops[.headless]!)
        #expect(drops["bot_empty_ua"] == simulation.drops[.emptyUserAgent])
        #expect(drops["bot_list", default: 0] >= simulation.drops[.listedBot]!)

        // Archive: one line per hit, and the dropped ones carry their reasons.
        let archiveLines = archive.split(separator: UInt8(ascii: "\n"))
        #expect(archiveLines.count == simulation.lines.count)
        // A previous day's id only where a visit went on across midnight: at most one id per such visit.
        var previousIDs = Set<[UInt8]>()
        for line in archiveLines {
            guard let range = line.firstRange(of: Array(#""pvid":""#.utf8)) else { continue }
            previousIDs.insert(Array(line[range.upperBound...].prefix(32)))
        }
        #expect(previousIDs.count > 0 && previousIDs.count <= simulation.midnightVisits, "\(previousIDs.count) previous-day ids, \(simulation.midnightVisits) visits across midnight")

        // Privacy: no IP address or user agent in any Redis key, value or archive line.
        try PersonalData.expectNone(of: simulation.ips + Array(simulation.userAgents), in: server, archive: [archive])
        #expect(try server.keys().count > 20)

        // Replay of the archive into another prefix gives the same numbers.
        let replay = try RedisRollups(connection: connection, configuration: RollupConfiguration(keys: RollupKeys(prefix: "replay:")))
        var index = 0
        while index < archiveLines.count {
            var batch = RollupBatch(configuration: replay.configuration)
            for line in archiveLines[index..<min(index + 700, archiveLines.count)] {
                batch.add(try ArchiveRecord.outcome(from: PixelEventDecoder.decode(Array(line))))
            }
            index += 700
            try replay.apply(batch)
        }
        for site in simulation.sites {
            let live = try redis.report(site: site, from: simulation.day0, to: simulation.day0.next)
            var replayed = try replay.report(site: site, from: simulation.day0, to: simulation.day0.next)
            replayed.site = live.site
            #expect(replayed == live, "replay of \(site)")
        }
    }

    @Test("a daily key expires at 01:00 UTC two days after its day began, whenever it was created")
    func dailyKeysExpireAtAFixedTime() throws {
        let server = try RedisServer.start()
        let connection = try server.connect()
        let today = Day(timestamp: Double(time(nil)))
        // Tomorrow's key, created today (a hit from a clock that runs ahead), and today's.
        let days = [today.next, today]
        let reply = try connection.command(bytes: DailyKey.fetchCommand(days.map { (day: $0, create: true) }))
        #expect(reply.array?.compactMap(\.bytes).map(\.count) == [32, 32])
        for day in days {
            let expiry = try connection.command(["EXPIRETIME", DailyKey.redisKey(for: day)]).integer
            #expect(expiry == Int64((day.number + 2) * 86_400 + 3600), "\(day)")
        }
        // Read-only: an existing key is returned, a missing one is not created.
        let read = try connection.command(bytes: DailyKey.fetchCommand([(day: today, create: false), (day: today.previous, create: false)]))
        #expect(read.array?.map(\.bytes?.count) == [32, nil])
    }

    /// Hits from a clock far off (1970, 2099), dropped as `too_old`, `in_future` or — the URL is checked
    /// first — `unknown_site`, count on the day they are processed on, and expire with it: on the
    /// hit's own day, 1970's counts expired as they were written and 2099's keys stayed for decades.
    @Test func dropsOutsideTheTimeWindowCountOnTheDayTheyAreProcessed() throws {
        let server = try RedisServer.start()
        let redis = try RedisRollups(connection: try server.connect(timeout: 30))
        let processor = HitProcessor(validator: HitValidator(sites: try SiteList(["example.com"])))
        let now = Double(time(nil))
        let userAgent = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
        let year2099 = 4_070_908_800_000  // 2099-01-01, in milliseconds
        var batch = RollupBatch(configuration: redis.configuration)
        for (milliseconds, url) in [(1_000, "https://example.com/"), (year2099, "https://example.com/"), (year2099, "https://evil.example/")] {
            let line = nginxJSONLine(milliseconds: milliseconds, args: [("u", url)], ip: "192.0.2.7", ua: userAgent)
            batch.add(try processor.process(PixelEventDecoder.decode(Array(line.utf8)), now: now, keys: DailyKeys()))
        }
        try redis.apply(batch)
        let today = Day(timestamp: now)
        let global = redis.configuration.keys.globalDrops(day: today)
        let site = redis.configuration.keys.base(site: "example.com", day: today) + "drops"
        #expect(try redis.hash(global) == ["too_old": 1, "in_future": 1, "unknown_site": 1])
        #expect(try redis.hash(site) == ["too_old": 1, "in_future": 1])
        for key in [global, site] {
            #expect(try server.command(["EXPIRETIME", key]).integer == Int64(redis.configuration.expireAt(today)), "\(key)")
        }
        let keys = try server.keys()
        #expect(!keys.contains { $0.contains("1970-") || $0.contains("2099-") }, "\(keys)")
    }

    /// 10:00 and 10:20, 09:00 and 09:05 (held up somewhere), 10:25 — in these batches: two visits of
    /// two and three pageviews, as replay (which reads them in time order) counts them, whether the
    /// late visit's hits share a batch, arrive in two, or come after the visit in progress.
    @Test(
        "a late hit continues the earlier visit it belongs to and leaves the visit in progress alone",
        arguments: [
            [[(10, 0), (10, 20)], [(9, 0), (9, 5)], [(10, 25)]],
            [[(10, 0), (10, 20)], [(9, 0)], [(9, 5)], [(10, 25)]],
            [[(9, 0)], [(10, 0), (10, 20)], [(10, 25)], [(9, 5)]],
        ]
    )
    func lateHitsContinueTheirOwnVisit(batches: [[(Int, Int)]]) throws {
        let server = try RedisServer.start()
        let redis = try RedisRollups(connection: try server.connect(timeout: 30))
        let day = Day(timestamp: Double(time(nil))).previous
        let at = { (hour: Int, minute: Int) in Double(day.number * 86_400 + hour * 3600 + minute * 60) }
        for hits in batches {
            var batch = RollupBatch(configuration: redis.configuration)
            for (hour, minute) in hits { batch.add(BreakdownCapTests.hit("/", visitor: "v", at: at(hour, minute))) }
            try redis.apply(batch)
        }
        let report = try redis.report(site: "example.com", from: day, to: day)
        #expect(report.pageviews == 5)
        #expect(report.visits == 2 && report.bounces == 0, "visits \(report.visits), bounces \(report.bounces)")
        #expect(report.durationMilliseconds == 30 * 60_000)
    }

    /// Late hits around midnight, visitor "y" yesterday and "t" today (each hit of the first 30
    /// minutes after midnight carrying "y" as its previous-day id), one batch per hit, in this order;
    /// the visits replay counts (reading the hits in time order).
    @Test(
        "a visit moves across midnight alone, also when today's id already has a visit",
        arguments: [
            // 22:00 and 23:50 yesterday; 00:10 continues 23:50 under today's id; then 22:10 arrives late
            // and continues 22:00 (before, the move took every visit of yesterday's id with it).
            ([(-1, 22, 0), (-1, 23, 50), (0, 0, 10), (-1, 22, 10)], 2),
            // 23:50 yesterday; 00:40 today (a visit of its own, 50 minutes later); then 00:05 arrives
            // late and continues 23:50 (before, it moved only when today's id had no visit yet).
            ([(-1, 23, 50), (0, 0, 40), (0, 0, 5)], 2),
        ] as [([(Int, Int, Int)], Int)]
    )
    func lateHitsAroundMidnight(hits: [(Int, Int, Int)], visits expected: Int) throws {
        let server = try RedisServer.start()
        let redis = try RedisRollups(connection: try server.connect(timeout: 30))
        let today = Day(timestamp: Double(time(nil))).previous
        for (dayOffset, hour, minute) in hits {
            let seconds = Double((today.number + dayOffset) * 86_400 + hour * 3600 + minute * 60)
            let afterMidnight = dayOffset == 0 && hour == 0 && minute < 30
            var batch = RollupBatch(configuration: redis.configuration)
            batch.add(
                .accepted(
                    EnrichedHit(
                        timestampText: String(seconds), timestamp: seconds, site: "example.com", visitorID: dayOffset == 0 ? "t" : "y",
                        previousVisitorID: afterMidnight ? "y" : nil, event: HitProcessor.pageviewEvent, path: "/", source: "(direct)",
                        browser: "Chrome", os: "Linux", device: "desktop"
                    )
                )
            )
            try redis.apply(batch)
        }
        let report = try redis.report(site: "example.com", from: today.previous, to: today)
        #expect(report.pageviews == hits.count)
        #expect(report.visits == expected, "visits \(report.visits)")
    }

    /// Out of order, a hit within the timeout of two visits joins the nearer one: spans never
    /// overlap, and the stored visits stay in order (the two are not merged: replay would see one).
    @Test func aHitBetweenTwoVisitsJoinsTheNearer() throws {
        let server = try RedisServer.start()
        let redis = try RedisRollups(connection: try server.connect(timeout: 30))
        let day = Day(timestamp: Double(time(nil))).previous
        let at = { (hour: Int, minute: Int) in Double(day.number * 86_400 + hour * 3600 + minute * 60) }
        for (hour, minute) in [(9, 58), (10, 40), (10, 20), (9, 55)] {
            var batch = RollupBatch(configuration: redis.configuration)
            batch.add(BreakdownCapTests.hit("/", visitor: "v", at: at(hour, minute)))
            try redis.apply(batch)
        }
        let stateKey = Array((redis.configuration.visitPrefix + "example.com:v").utf8)
        let stored = try #require(try redis.connection.command(bytes: [Array("GET".utf8), stateKey]).bytes)
        let spans = try #require(VisitState.decodeVisits(stored)).map { [$0.first, $0.last] }
        #expect(spans == [[at(9, 55), at(9, 58)], [at(10, 20), at(10, 40)]].map { $0.map { Int($0 * 1000) } })
    }

    /// A visitor's state keeps their last ``VisitState/keptPerVisitor`` visits: a late hit of one of
    /// them continues it; one of an older, forgotten visit counts as a visit of its own.
    @Test func aVisitorKeepsTheirRecentVisits() throws {
        let server = try RedisServer.start()
        let redis = try RedisRollups(connection: try server.connect(timeout: 30))
        let day = Day(timestamp: Double(time(nil))).previous
        let at = { (hour: Int, minute: Int) in Double(day.number * 86_400 + hour * 3600 + minute * 60) }
        func visit(_ hour: Int, _ minute: Int) throws -> Report {
            var batch = RollupBatch(configuration: redis.configuration)
            batch.add(BreakdownCapTests.hit("/", visitor: "v", at: at(hour, minute)))
            try redis.apply(batch)
            return try redis.report(site: "example.com", from: day, to: day)
        }
        let visits = 6
        for hour in 8..<(8 + visits) { _ = try visit(hour, 0) }
        let stateKey = Array((redis.configuration.visitPrefix + "example.com:v").utf8)
        let stored = try #require(try redis.connection.command(bytes: [Array("GET".utf8), stateKey]).bytes)
        #expect(VisitState.decodeVisits(stored)?.map(\.first) == (8 + visits - VisitState.keptPerVisitor ..< 8 + visits).map { Int(at($0, 0) * 1000) })
        // 10:10 continues the 10:00 visit (kept); 08:10 would have continued 08:00 (forgotten).
        let kept = try visit(10, 10)
        #expect(kept.visits == visits && kept.bounces == visits - 1, "visits \(kept.visits), bounces \(kept.bounces)")
        let forgotten = try visit(8, 10)
        #expect(forgotten.visits == visits + 1, "visits \(forgotten.visits)")
    }
}
