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

/// Without `--site`, `/` and `/api/sites` list the sites found by a `SCAN` of the whole keyspace:
/// kept for a minute, one discovery at a time, and a scan that stopped at its limit is said.
@Suite(.serialized, .enabled(if: TestEnvironment.canRun("redis-server")))
struct SiteDiscoveryTests {
    /// A site's totals key, as the consumer writes it.
    static func addSite(_ site: String, redis: RedisServer, day: Day) throws {
        _ = try redis.command(["HSET", RollupKeys().totals(site: site, day: day), "pageviews", "1"])
    }

    static func dashboard(_ redis: RedisServer, clock: Clock) throws -> Dashboard {
        let reader = RedisReader(configuration: try RedisConfiguration(url: redis.url), threads: 2, logger: Logger(label: "test"))
        return Dashboard(
            store: RollupStore(reader: reader), live: nil, configuration: DashboardConfiguration(),
            clock: { clock.now }
        )
    }

    /// Seconds since the epoch, set by the test.
    final class Clock: Sendable {
        private let seconds: Mutex<Double>
        init(_ seconds: Double) { self.seconds = Mutex(seconds) }
        var now: Double { seconds.withLock { $0 } }
        func advance(_ delta: Double) { seconds.withLock { $0 += delta } }
    }

    static func listed(_ response: TestResponse) -> [String] {
        (response.json["sites"] as? [[String: Any]] ?? []).compactMap { $0["site"] as? String }
    }

    /// Two requests within the minute make one `SCAN` sequence between them (a site added meanwhile
    /// appears only after it); the pages and the API share the list; after the minute, concurrent
    /// requests make one more.
    @Test func theListIsDiscoveredOnceAMinute() async throws {
        let redis = try RedisServer.start()
        defer { redis.stop() }
        let clock = Clock(Date().timeIntervalSince1970)
        let today = Day(timestamp: clock.now)
        try Self.addSite("a.example", redis: redis, day: today)
        let app = Application(router: try Self.dashboard(redis, clock: clock).router())
        try await app.test(.router) { client in
            let first = try await client.execute(uri: "/api/sites", method: .get)
            #expect(first.status == .ok)
            #expect(Self.listed(first) == ["a.example"])
            let sequence = try redis.calls(of: "scan")
            #expect(sequence >= 1)

            try Self.addSite("b.example", redis: redis, day: today)
            clock.advance(59)
            let second = try await client.execute(uri: "/api/sites", method: .get)
            #expect(Self.listed(second) == ["a.example"])
            let page = try await client.execute(uri: "/", method: .get)
            #expect(page.status == .ok)
            #expect(page.text.contains("a.example") && !page.text.contains("b.example"))
            #expect(try redis.calls(of: "scan") == sequence)

            clock.advance(2)
            let lists = try await withThrowingTaskGroup(of: [String].self) { group in
                for _ in 0..<4 {
                    group.addTask { Self.listed(try await client.execute(uri: "/api/sites", method: .get)) }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(lists == Array(repeating: ["a.example", "b.example"], count: 4))
            #expect(try redis.calls(of: "scan") == 2 * sequence)
        }
    }

    /// Requests that arrive while a discovery runs wait for it instead of starting their own; a
    /// failed discovery is not kept.
    @Test func concurrentRequestsShareTheRunningDiscovery() async throws {
        let calls = Mutex(0)
        let open = Mutex(false)
        let failing = Mutex(true)
        let cache = SiteListCache(logger: Logger(label: "test")) { () async throws(RespError) -> SiteDiscovery in
            calls.withLock { $0 += 1 }
            if failing.withLock({ $0 }) { throw RespError(code: .io, operation: "SCAN", message: "test") }
            // Held until the test opens it (bounded: 10 s).
            for _ in 0..<1000 where !open.withLock({ $0 }) { try? await Task.sleep(for: .milliseconds(10)) }
            return SiteDiscovery(sites: ["a.example"], complete: true, rounds: 1)
        }
        await #expect(throws: RespError.self) { try await cache.sites(now: 0) }
        failing.withLock { $0 = false }
        let waiting = (0..<3).map { _ in Task { try await cache.sites(now: 1) } }
        // Bounded: each of the three has called sites() (and so joined the discovery) well before.
        var rounds = 0
        while calls.withLock({ $0 }) < 2 && rounds < 500 {
            try await Task.sleep(for: .milliseconds(10))
            rounds += 1
        }
        try await Task.sleep(for: .milliseconds(100))
        open.withLock { $0 = true }
        for task in waiting { #expect(try await task.value == ["a.example"]) }
        #expect(calls.withLock { $0 } == 2)  // the failed one, then one for the three
        #expect(try await cache.sites(now: 60) == ["a.example"])
        #expect(calls.withLock { $0 } == 2)
    }

    /// A scan stopped by its limit of `SCAN` calls (or of sites) says so, and the dashboard warns
    /// once, not on every discovery.
    @Test func aScanStoppedAtItsLimitIsWarnedOnce() async throws {
        let redis = try RedisServer.start()
        defer { redis.stop() }
        let today = Day(timestamp: Date().timeIntervalSince1970)
        _ = try redis.command(["EVAL", "for i = 1, 5000 do redis.call('SET', 'filler:' .. i, 'x') end", "0"])
        for site in ["a.example", "b.example", "c.example"] { try Self.addSite(site, redis: redis, day: today) }
        let reader = RedisReader(configuration: try RedisConfiguration(url: redis.url), threads: 1, logger: Logger(label: "test"))
        let store = RollupStore(reader: reader)
        let whole = try await store.discoverSites()
        #expect(whole.sites == ["a.example", "b.example", "c.example"] && whole.complete)
        #expect(try await store.discoverSites(maxRounds: 1).complete == false)
        #expect(try await store.discoverSites(limit: 2).complete == false)

        let handler = InMemoryLogHandler()
        let cache = SiteListCache(logger: Logger(label: "test") { _ in handler }) { () async throws(RespError) in
            try await store.discoverSites(maxRounds: 1)
        }
        _ = try await cache.sites(now: 0)
        _ = try await cache.sites(now: 61)
        let warnings = handler.entries.filter { $0.level == .warning }
        #expect(warnings.count == 1)
        #expect(warnings.first?.metadata["scan.rounds"] == "1")
        await reader.stop()
    }
}
