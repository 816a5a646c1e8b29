import Foundation
@testable import PixelAnalytics
import PixeldTestSupport
import Testing

/// The analytics handler's own connection, on which a consumer loads a new day's visitor keys: used
/// about once a day, it idles in between, and Redis may close it meanwhile (its `timeout`, a
/// restart, a `CLIENT KILL`) or stall while it is used.
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

    /// SIGTERM while the load of a day's visitor key waits on a stalled Redis: `--shutdown-timeout`
    /// abandoned the consumer's own connections, not the handler's, so the stop waited for that
    /// load's reply up to the 5 s command timeout. The deadline now reaches it. To stall the key's
    /// load and nothing else: the consumer idles (`BLMOVE` on the list, 1 s at a time; heartbeat and
    /// recovery only every 100 and 300 s); a hit is put straight into its processing list, and
    /// `CLIENT PAUSE … WRITE` follows it in the same write. At its next round the consumer reads its
    /// processing list (`LRANGE` and `LLEN`, which the pause lets through), finds the hit, and loads
    /// today's key (`EVAL`, which the pause holds).
    @Test func aStopDuringAStalledKeyLoadEndsAtTheShutdownDeadline() throws {
        let timeoutSeconds = 1, pauseMilliseconds = 10_000
        _ = dayAwayFromMidnight()
        let redis = try RedisServer.start()
        let consumer = try PixeldProcess.start([
            "consume", "pixel", "--redis", redis.url, "--site", "example.com", "--consumer-id", "c1", "--heartbeat-seconds", "300",
            "--shutdown-timeout", String(timeoutSeconds),
        ])
        try consumer.waitForStderr(containing: "consume ready")
        Thread.sleep(forTimeInterval: 0.5)  // past its first round: waiting in BLMOVE

        let pauser = try redis.connect()
        let replies = try pauser.pipeline([
            ["LPUSH", "pixel:processing:c1"] + pageviews(0..<1, at: Self.nowMilliseconds()),
            ["CLIENT", "PAUSE", String(pauseMilliseconds), "WRITE"],
        ])
        let pausedAt = ContinuousClock.now
        #expect(replies.last == .simpleString("OK"), "\(replies)")
        // Held in the key's load: a client blocked in EVAL (the pause), the consumer's own connection
        // last used for its read of the processing list (LRANGE, LLEN).
        var clients: [Substring] = []
        let held = Poll.until(timeout: 3, interval: 0.02) {
            clients = ((try? pauser.command(["CLIENT", "LIST"]).string) ?? "").split(separator: "\n")
            return clients.contains { $0.contains(" cmd=lrange ") || $0.contains(" cmd=llen ") }
                && clients.contains { $0.contains(" flags=b ") && $0.contains(" cmd=eval ") }
        }
        try #require(held, "the consumer is not held in the key's load:\n\(clients.joined(separator: "\n"))")
        let signalledAt = ContinuousClock.now
        consumer.terminate()
        let status = try consumer.waitForExit(timeout: 30)
        let exit = ContinuousClock.now - signalledAt
        let exitMilliseconds = Int(exit.components.seconds * 1000 + exit.components.attoseconds / 1_000_000_000_000_000)
        print("stop during a stalled key load: exit \(exitMilliseconds) ms after SIGTERM (--shutdown-timeout \(timeoutSeconds))")
        #expect(exitMilliseconds <= timeoutSeconds * 1000 + 1500, "SIGTERM to exit took \(exitMilliseconds) ms")
        #expect(status == 0, "exit status \(status)\(consumer.process.tail)")
        #expect(consumer.stderrText.contains("stopped at the shutdown deadline"), "\(consumer.stderrText)")
        // The abandoned load is the stop's, not a failure of the handler.
        #expect(!consumer.stderrText.contains("handler failed"), "\(consumer.stderrText)")
        #expect(ContinuousClock.now - pausedAt < .milliseconds(pauseMilliseconds), "the pause ended before the consumer did")
        _ = try pauser.command(["CLIENT", "UNPAUSE"])  // (not a write: the pause lets it through)
    }

    /// In the first half hour after midnight (the session timeout), a hit's visit may have begun the
    /// day before, whose visitor key the consumer reads (it does not make it). Nobody made it when
    /// that day had no hit: every batch asked Redis for it again (40 batches of one hit: 40 reads).
    /// A miss is now remembered for ``DailyKeys/missRecheckSeconds``: here one read for 40 batches
    /// (one more per 10 s they took). The key made later — by another consumer, from a late hit of
    /// that day — is found at the first batch after that wait, and kept: one read for the next 10.
    @Test func aMissingKeyOfTheDayBeforeIsNotAskedForByEveryBatch() throws {
        let today = dayAwayFromMidnight()
        let previousKey = "pixeld:key:\(today.previous)"
        let redis = try RedisServer.start()
        let consumer = try PixeldProcess.start([
            "consume", "pixel", "--redis", redis.url, "--site", "example.com", "--consumer-id", "c1", "--batch-size", "1",
        ])
        defer { consumer.process.stop(timeout: 5) }
        try consumer.waitForStderr(containing: "consume ready")
        let monitor = try redis.connect(timeout: 1)
        #expect(try monitor.command(["MONITOR"]) == .simpleString("OK"))
        /// The loads of the day before's key (its `EVAL` of the fetch script) MONITOR shows until now.
        func keyLoads() -> Int {
            var loads = 0
            while let line = try? monitor.readReply() {
                guard case .simpleString(let text) = line else { continue }
                if text.contains("\"EVAL\""), text.contains("ARGV[3 * i - 2]"), text.contains("\"\(previousKey)\"") { loads += 1 }
            }
            return loads
        }
        func pageviewCount() -> Int {
            (try? redis.command(["HGET", "pixeld:site:example.com:\(today):totals", "pageviews"]).string.flatMap { Int($0) }) ?? 0
        }
        // Just after midnight (the test waits for a second past it if it runs right before).
        let afterMidnight = Int(today.startTimestamp) * 1000 + 100
        let started = Date()
        _ = try redis.command(["LPUSH", "pixel"] + pageviews(0..<40, at: afterMidnight))
        #expect(Poll.until(timeout: 20) { pageviewCount() == 40 }, "\(consumer.stderrText)")
        let seconds = Date().timeIntervalSince(started)
        let loads = keyLoads()
        #expect(loads >= 1 && loads <= 1 + Int(seconds / DailyKeys.missRecheckSeconds), "\(loads) reads of \(previousKey) in \(seconds) s")

        // Made by another consumer meanwhile, as it would be.
        let made = (0..<32).map { _ in Character(Unicode.Scalar(UInt8.random(in: 97...122))) }
        _ = try redis.command(["SET", previousKey, String(made), "NX", "EXAT", String(DailyKey.expiresAt(today.previous))])
        Thread.sleep(forTimeInterval: DailyKeys.missRecheckSeconds + 0.5)
        _ = try redis.command(["LPUSH", "pixel"] + pageviews(40..<50, at: afterMidnight))
        #expect(Poll.until(timeout: 20) { pageviewCount() == 50 }, "\(consumer.stderrText)")
        #expect(keyLoads() == 1, "the key made later was not read once")
        consumer.terminate()
        #expect(try consumer.waitForExit(timeout: 10) == 0, "\(consumer.process.tail)")
    }
}
