import Foundation
import PixeldTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// SIGHUP, SIGUSR1 and SIGUSR2 (a `kill -HUP` sent out of habit to reopen logs, a terminal that
/// closes) stop no long-running pixeld command: each is logged once as ignored, and SIGTERM still
/// stops the command gracefully. Before, their default action ended the process at once, with every
/// message of ingest's memory queue lost and uncounted.
@Suite(.serialized, .enabled(if: TestEnvironment.canRun("redis-server")))
struct IgnoredSignalsTests {
    static let signals: [(number: Int32, name: String)] = [(SIGHUP, "SIGHUP"), (SIGUSR1, "SIGUSR1"), (SIGUSR2, "SIGUSR2")]

    /// Sends each of ``signals`` to `process` and checks that it still runs and logged each one once.
    /// - Throws: when the process exited or logged nothing within 5 s of a signal.
    private func sendIgnoredSignals(to process: PixeldProcess) throws {
        func ignoredLines() -> [Substring] {
            process.stderrText.split(separator: "\n").filter { $0.contains("signal ignored") }
        }
        for (number, name) in Self.signals {
            let before = ignoredLines().count
            #expect(kill(process.pid, number) == 0)
            let logged = Poll.until(timeout: 5, interval: 0.01) { ignoredLines().count > before || !process.isRunning }
            try #require(logged && process.isRunning, "after \(name): \(process.isRunning ? "running" : "exited")\(process.process.tail)")
            let lines = ignoredLines()
            #expect(lines.count == before + 1, "one line per signal: \(lines)")
            let line = lines.last ?? ""
            #expect(line.contains("notice") && line.contains("signal=\(name)") && line.contains("SIGTERM stops it"), "\(line)")
        }
    }

    /// The tester's case: Redis down, messages held in ingest's memory queue, `kill -HUP`. The
    /// process lives on with all of them; once Redis starts they all arrive, and SIGTERM ends it with 0.
    @Test func ingestHoldingMessagesForADownRedisSurvivesHupAndUsrSignals() throws {
        let count = 200
        let redis = try RedisServer.start()
        redis.stop()
        let ingest = try IngestUnderTest(redisURL: redis.url)
        let sender = try UDPSyslogSender(port: ingest.udpPort!)
        defer { sender.close() }
        for seq in 1...count { _ = sender.send(PixelMessage.syslog(seq: seq)) }
        var held: IngestMetrics?
        let holding = Poll.until(timeout: 10, interval: 0.05) {
            held = try? ingest.scrape()
            return held?.received == count && held?.queued == count
        }
        try #require(holding, "not all \(count) held in memory: \(held?.invariantText ?? "no /metrics")")

        try sendIgnoredSignals(to: ingest.process)
        let after = try ingest.scrape()
        #expect(after.received == count && after.queued == count && after.pushed == 0, "\(after.invariantText)")

        try redis.restart()
        let outcome = try ingest.waitUntilQuiescent(received: count)
        let tally = Tally(try redis.arrivalOrder("pixel"), expected: 1...count)
        reportFault("ignored-signals", ["sent": count, "held": held?.queued ?? 0, "delivered": tally.delivered, "lost": tally.lost])
        #expect(outcome.pushed == count, "\(outcome.invariantText)")
        #expect(tally.lost == 0 && tally.duplicated == 0, "\(tally.summary)")
        #expect(try ingest.stop() == 0, "\(ingest.process.process.tail)")
        withExtendedLifetime(redis) {}
    }

    /// consume and serve, the other long-running commands, ignore the signals too.
    @Test(arguments: ["consume", "serve"])
    func consumeAndServeSurviveHupAndUsrSignals(command: String) throws {
        let redis = try RedisServer.start()
        let arguments =
            command == "consume"
            ? ["consume", "pixel", "--redis", redis.url]
            : ["serve", "--redis", redis.url, "--listen", "127.0.0.1:\(try PortAllocator.freeTCPPort())"]
        let process = try PixeldProcess.start(arguments)
        defer { process.process.stop(timeout: 5) }
        try process.waitForStderr(containing: "\(command) ready", timeout: 20)
        try sendIgnoredSignals(to: process)
        process.terminate()
        #expect(try process.waitForExit(timeout: 10) == 0, "\(process.process.tail)")
    }
}
