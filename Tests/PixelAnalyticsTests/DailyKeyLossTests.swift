import Foundation
@testable import PixelAnalytics
import PixeldTestSupport
import Testing

/// Redis loses the day's visitor key while a consumer runs (a restart without persistence, a flush,
/// a failover to a replica without it): the chaos test saw every visitor of the day count twice
/// afterwards (599 of 300), as the running consumer kept its key in memory and the next one to start
/// made a new one. The running consumer now puts its key back with its next batch.
@Suite(.serialized, .enabled(if: TestEnvironment.canRun("redis-server")))
struct DailyKeyLossTests {
    static let userAgent = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"

    /// One pageview from each of `visitors` addresses, now.
    private func push(visitors: Int, into redis: RedisServer) throws {
        let now = Int(Date().timeIntervalSince1970 * 1000)
        for visitor in 0..<visitors {
            let line = nginxJSONLine(
                milliseconds: now + visitor, args: [("e", "pageview"), ("u", "https://example.com/p\(visitor)")], ip: "192.0.2.\(visitor + 1)",
                ua: Self.userAgent
            )
            _ = try redis.command(["LPUSH", "pixel", line])
        }
    }

    private func consumer(_ id: String, _ redis: RedisServer, archive: TempDirectory) throws -> PixeldProcess {
        let process = try PixeldProcess.start([
            "consume", "pixel", "--redis", redis.url, "--site", "example.com", "--archive", archive.path, "--consumer-id", id,
            "--heartbeat-seconds", "3",
        ])
        try process.waitForStderr(containing: "consume ready")
        return process
    }

    @Test func aConsumerPutsBackTheKeyRedisLostSoTheNextConsumerMakesTheSameIDs() throws {
        let redis = try RedisServer.start()
        let archive = try TempDirectory(prefix: "pixeld-daily-key-loss")
        let today = Day(timestamp: Date().timeIntervalSince1970)
        let totals = "pixeld:site:example.com:\(today):totals", dailyKey = "pixeld:key:\(today)"
        func pageviews() -> Int { (try? redis.command(["HGET", totals, "pageviews"]).string.flatMap { Int($0) }) ?? 0 }

        let first = try consumer("c1", redis, archive: archive)
        try push(visitors: 20, into: redis)
        #expect(Poll.until(timeout: 20) { pageviews() == 20 }, "\(first.stderrText)")
        _ = try redis.command(["DEL", dailyKey])  // lost
        try push(visitors: 20, into: redis)
        #expect(Poll.until(timeout: 20) { pageviews() == 40 }, "\(first.stderrText)")
        #expect(try redis.command(["EXISTS", dailyKey]).integer == 1, "the key was not put back")
        #expect(first.stderrText.contains("the visitor key of a day was gone from redis"), "\(first.stderrText)")
        first.terminate()
        #expect(try first.waitForExit(timeout: 10) == 0)

        let second = try consumer("c2", redis, archive: archive)
        try push(visitors: 20, into: redis)
        #expect(Poll.until(timeout: 20) { pageviews() == 60 }, "\(second.stderrText)")
        second.terminate()
        #expect(try second.waitForExit(timeout: 10) == 0)
        let report = try AnalyticsEndToEndTests.report(redis, site: "example.com", from: today, to: today)
        #expect(report["visitors"] as? Int == 20, "20 people came three times: \(report["visitors"] ?? "none") visitors")
    }
}
