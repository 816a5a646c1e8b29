import Foundation
@testable import PixelAnalytics
import PixeldTestSupport
import Testing

/// The analytics handler's own connection, on which a consumer loads a new day's visitor keys: used
/// about once a day, it idles in between, and Redis may close it meanwhile (its `timeout`, a
/// restart, a `CLIENT KILL`).
@Suite(.serialized, .enabled(if: TestEnvironment.canRun("redis-server")))
struct HandlerConnectionTests {
    static let userAgent = DailyKeyLossTests.userAgent

    /// One pageview from each address `192.0.2.<visitor + 1>` at `milliseconds` (+ the visitor's number).
    private func pageviews(_ visitors: Range<Int>, at milliseconds: Int) -> [String] {
        visitors.map { visitor in
            nginxJSONLine(
                milliseconds: milliseconds + visitor, args: [("e", "pageview"), ("u", "https://example.com/p\(visitor)")],
                ip: "192.0.2.\(visitor + 1)", ua: Self.userAgent
            )
        }
    }

    private static func nowMilliseconds() -> Int { Int(Date().timeIntervalSince1970 * 1000) }

    /// Chaos finding: with Redis's `timeout 2`, the first hit of a new day failed its batch — `handler
    /// failed; batch kept for retry` at error, `pixeld_consume_handler_failures_total` 1 — although
    /// Redis was up: the handler's connection, idle since the day's key was loaded, had been closed by
    /// Redis, and the next day's key was loaded on it (the retry succeeded). A connection that idled
    /// is now made anew before that load. Here Redis closes connections idle for a second; the
    /// consumer counts hits of today, idles 3.5 s, then takes hits of yesterday 23:59:59 (within
    /// `--max-age-hours` 24), whose key it has to load.
    @Test func aHandlerConnectionRedisClosedWhileIdleIsNotAFailure() throws {
        let today = dayAwayFromMidnight()
        let yesterday = today.previous
        let redis = try RedisServer.start(extraArgs: ["--timeout", "1"])
        let metricsPort = try PortAllocator.freeTCPPort()
        let consumer = try PixeldProcess.start([
            "consume", "pixel", "--redis", redis.url, "--site", "example.com", "--consumer-id", "c1",
            "--metrics", "127.0.0.1:\(metricsPort)",
        ])
        try consumer.waitForStderr(containing: "consume ready")
        func pageviewCount(on day: Day) -> Int {
            (try? redis.command(["HGET", "pixeld:site:example.com:\(day):totals", "pageviews"]).string.flatMap { Int($0) }) ?? 0
        }

        _ = try redis.command(["LPUSH", "pixel"] + pageviews(0..<10, at: Self.nowMilliseconds()))
        #expect(Poll.until(timeout: 20) { pageviewCount(on: today) == 10 }, "\(consumer.stderrText)")
        // Redis closes a connection idle for more than its `timeout` (whole seconds, checked about ten
        // times a second): the handler's, and the take connection.
        Thread.sleep(forTimeInterval: 3.5)
        let beforeMidnight = Int(today.startTimestamp) * 1000 - 1000
        _ = try redis.command(["LPUSH", "pixel"] + pageviews(10..<20, at: beforeMidnight) + pageviews(0..<10, at: Self.nowMilliseconds()))
        #expect(Poll.until(timeout: 20) { pageviewCount(on: yesterday) == 10 && pageviewCount(on: today) == 20 }, "\(consumer.stderrText)")

        var metrics: [Substring] = []
        let counted = Poll.until(timeout: 5, interval: 0.05) {
            metrics = ((try? httpGet(port: metricsPort, path: "/metrics")) ?? "").split(separator: "\n")
            return metrics.contains("pixeld_consume_events_total 30")
        }
        #expect(counted, "\(metrics)")
        #expect(metrics.contains("pixeld_consume_handler_failures_total 0"), "\(metrics.filter { $0.contains("handler") })")
        #expect(!consumer.stderrText.contains("handler failed"), "\(consumer.stderrText)")
        consumer.terminate()
        #expect(try consumer.waitForExit(timeout: 10) == 0)
        // Visitors from the lines' ids, exactly (the report's count is a HyperLogLog estimate).
        var visitors: [Day: Set<String>] = [:]
        for line in consumer.stdoutLines() {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            guard let timestamp = object?["ts"] as? Double, let vid = object?["vid"] as? String else { continue }
            visitors[Day(timestamp: timestamp), default: []].insert(vid)
        }
        #expect(visitors[today]?.count == 10 && visitors[yesterday]?.count == 10, "\(visitors.mapValues(\.count))")
    }
}
