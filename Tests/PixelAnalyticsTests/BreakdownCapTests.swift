@testable import PixelAnalytics
import PixeldTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The distinct-value cap of the breakdowns (`--breakdown-cap`), in a real Redis: values beyond the
/// cap, in the order they first appeared, are counted as `(other)`, across batches, for counters
/// summed per hit (pages) and for those that come from visit state (entry pages).
@Suite(.serialized, .enabled(if: TestEnvironment.canRun("redis-server")))
struct BreakdownCapTests {
    static func hit(_ path: String, visitor: String, at seconds: Double) -> HitOutcome {
        .accepted(
            EnrichedHit(
                timestampText: String(seconds), timestamp: seconds, site: "example.com", visitorID: visitor,
                event: HitProcessor.pageviewEvent, path: path, source: "(direct)", browser: "Chrome", os: "Linux",
                device: "desktop"
            )
        )
    }

    static func hash(_ server: RedisServer, _ key: String) throws -> [String: Int] {
        let items = try server.command(["HGETALL", key]).array ?? []
        var hash: [String: Int] = [:]
        for index in stride(from: 0, to: items.count - 1, by: 2) {
            hash[items[index].string ?? ""] = Int(items[index + 1].string ?? "")
        }
        return hash
    }

    @Test func valuesBeyondTheCapAreCountedAsOther() throws {
        let server = try RedisServer.start()
        let redis = try RedisRollups(connection: try server.connect(timeout: 30), configuration: RollupConfiguration(breakdownCap: 3))
        let day = Day(timestamp: Double(time(nil))).previous  // within the retention: the keys must not expire at once
        let start = Double(day.number) * 86_400 + 3600
        // One visitor per hit, so every hit is also a visit's entry page.
        let batches = [["/a", "/b"], ["/c", "/d", "/e", "/a", "/d"]]
        var visitor = 0
        for paths in batches {
            var batch = RollupBatch(configuration: redis.configuration)
            for path in paths {
                visitor += 1
                batch.add(Self.hit(path, visitor: String(visitor), at: start + Double(visitor)))
            }
            try redis.apply(batch)
        }
        let keys = redis.configuration.keys
        let expected = ["/a": 2, "/b": 1, "/c": 1, "(other)": 3]
        #expect(try Self.hash(server, keys.breakdown(.pages, site: "example.com", day: day)) == expected)
        #expect(try Self.hash(server, keys.breakdown(.entryPages, site: "example.com", day: day)) == expected)
        let report = try redis.report(site: "example.com", from: day, to: day)
        #expect(report.pageviews == 7 && report.visits == 7 && report.bounces == 7)
    }

    /// Hours and device classes have a fixed set of values: a cap below their number leaves them
    /// whole (with a cap of 3, a day's 4th hour went to `(other)` and the hourly chart lost it).
    @Test func hoursAndDevicesAreNeverCapped() throws {
        let server = try RedisServer.start()
        let redis = try RedisRollups(connection: try server.connect(timeout: 30), configuration: RollupConfiguration(breakdownCap: 3))
        let day = Day(timestamp: Double(time(nil))).previous
        let start = Double(day.number) * 86_400 + 3600
        let devices = ["desktop", "mobile", "tablet", "other"]
        var batch = RollupBatch(configuration: redis.configuration)
        for hour in 0..<6 {
            batch.add(
                .accepted(
                    EnrichedHit(
                        timestampText: String(start + Double(hour) * 3600), timestamp: start + Double(hour) * 3600, site: "example.com",
                        visitorID: String(hour), event: HitProcessor.pageviewEvent, path: "/p\(hour)", source: "(direct)",
                        browser: "Chrome", os: "Linux", device: devices[hour % devices.count]
                    )
                )
            )
        }
        try redis.apply(batch)
        let keys = redis.configuration.keys
        #expect(try Self.hash(server, keys.breakdown(.hours, site: "example.com", day: day)) == ["01": 1, "02": 1, "03": 1, "04": 1, "05": 1, "06": 1])
        #expect(try Self.hash(server, keys.breakdown(.devices, site: "example.com", day: day)) == ["desktop": 2, "mobile": 2, "tablet": 1, "other": 1])
        #expect(try Self.hash(server, keys.breakdown(.pages, site: "example.com", day: day)) == ["/p0": 1, "/p1": 1, "/p2": 1, "(other)": 3])
    }

    /// A breakdown that grows past 64 values becomes a hashtable (``RollupScript``), whether it is new
    /// or already holds values, keeps exact counts and its cap, and carries no trace of the field that
    /// converted it; a small breakdown stays a listpack.
    @Test func wideBreakdownsBecomeHashtablesWithExactCounts() throws {
        let server = try RedisServer.start()
        let redis = try RedisRollups(
            connection: try server.connect(timeout: 30), configuration: RollupConfiguration(breakdownCap: 100)
        )
        let day = Day(timestamp: Double(time(nil))).previous
        let start = Double(day.number) * 86_400 + 3600
        let keys = redis.configuration.keys
        let pages = keys.breakdown(.pages, site: "example.com", day: day)
        var visitor = 0
        func apply(_ paths: [String]) throws {
            var batch = RollupBatch(configuration: redis.configuration)
            for path in paths {
                visitor += 1
                batch.add(Self.hit(path, visitor: String(visitor), at: start + Double(visitor)))
            }
            try redis.apply(batch)
        }
        // 1. A small first batch: a listpack. 2. 40 more values (60 in all): still one.
        try apply((0..<20).map { "/p\($0)" })
        try apply((20..<60).map { "/p\($0)" } + ["/p0"])
        #expect(try server.command(["OBJECT", "ENCODING", pages]).string != "hashtable")
        // 3. 60 more: 40 under the cap of 100, 20 to (other); the hash is converted first.
        try apply((60..<120).map { "/p\($0)" })
        #expect(try server.command(["OBJECT", "ENCODING", pages]).string == "hashtable")
        var expected = Dictionary(uniqueKeysWithValues: (0..<100).map { ("/p\($0)", $0 == 0 ? 2 : 1) })
        expected["(other)"] = 20
        #expect(try Self.hash(server, pages) == expected)
        #expect(try server.command(["TTL", pages]).integer ?? -1 > 0)
        // A hash that is already a hashtable is not written the wide field again.
        let hsets = try server.calls(of: "hset")
        #expect(hsets > 0, "the conversions wrote the wide field")
        try apply((0..<70).map { "/p\($0)" })
        #expect(try server.calls(of: "hset") == hsets)
        var after = Dictionary(uniqueKeysWithValues: (0..<100).map { ("/p\($0)", $0 < 70 ? 2 : 1) })
        after["/p0"] = 3
        after["(other)"] = 20
        #expect(try Self.hash(server, pages) == after)
        // A breakdown created by a batch of more than 64 values is converted too, and kept.
        let entryPages = keys.breakdown(.entryPages, site: "example.com", day: day)
        #expect(try server.command(["OBJECT", "ENCODING", entryPages]).string == "hashtable")
        #expect(try server.command(["HLEN", entryPages]).integer == 101)
        _ = try server.command(["DEL", pages])
        try apply((0..<70).map { "/q\($0)" })
        #expect(try server.command(["OBJECT", "ENCODING", pages]).string == "hashtable")
        #expect(try server.command(["HLEN", pages]).integer == 70)
        // Small breakdowns stay compact.
        let devices = keys.breakdown(.devices, site: "example.com", day: day)
        #expect(try server.command(["OBJECT", "ENCODING", devices]).string != "hashtable")
        let report = try redis.report(site: "example.com", from: day, to: day)
        #expect(report.pageviews == 261)
    }
}
