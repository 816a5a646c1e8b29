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
/// message of ingest's memory queue lost and uncounted. So did SIGXFSZ, which the kernel raises at a
/// write past the file size limit: ignored too, silently.
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

    /// Under a file size limit (`ulimit -f`, systemd's `LimitFSIZE=`), a write past it raises
    /// SIGXFSZ, whose default action ends the process (with a core) and every message it holds in
    /// memory. pixeld ingest survived it only because its writer thread happens to inherit the
    /// signal mask of the Dispatch thread that starts it, which blocks SIGXFSZ (the signal then stays
    /// pending on that thread); a file written from a thread without that mask (the main thread has
    /// none) would end the process. SIGXFSZ is ignored now, process-wide: the write fails with
    /// `EFBIG`, which the writer takes as any failed spool write — counted, warned about once, the
    /// batch held in memory behind what the spool already has — and once Redis is back everything
    /// arrives, once and in order.
    @Test func ingestSpoolingPastTheFileSizeLimitLivesOnAndDeliversEverything() throws {
        let waves = 8, perWave = 50, count = 8 * 50
        // A wave (~12 KB of records) fits in a segment under the limit; the second one does not.
        let fileSizeLimit = 16_384
        let redis = try RedisServer.start()
        redis.stop()
        let spool = try TempDirectory(prefix: "pixeld-spool")
        let ingest = try IngestUnderTest(
            redisURL: redis.url, extra: ["--spool", spool.appending("spool").path], fileSizeLimit: fileSizeLimit
        )
        let status = try String(contentsOfFile: "/proc/\(ingest.pid)/status", encoding: .utf8)
        let ignored = status.split(separator: "\n").first { $0.hasPrefix("SigIgn:") }.flatMap { UInt64($0.dropFirst(7).trimmingCharacters(in: .whitespaces), radix: 16) }
        #expect(ignored.map { $0 & (1 << UInt64(SIGXFSZ - 1)) != 0 } == true, "SIGXFSZ not ignored by the process: SigIgn \(ignored.map { String($0, radix: 16) } ?? "?")")
        let sender = try UDPSyslogSender(port: ingest.udpPort!)
        defer { sender.close() }
        var spooledPeak = 0
        for wave in 0..<waves {
            for seq in wave * perWave + 1...(wave + 1) * perWave { _ = sender.send(PixelMessage.syslog(seq: seq, padTo: 200)) }
            // Each wave its own batches, spooled (or failing to be) before the next.
            Poll.until(timeout: 0.3, interval: 0.02) {
                guard let metrics = try? ingest.scrape() else { return !ingest.process.isRunning }
                spooledPeak = max(spooledPeak, metrics.spooled)
                return false
            }
        }
        var seen: IngestMetrics?
        let failing = Poll.until(timeout: 15, interval: 0.05) {
            guard ingest.process.isRunning else { return true }
            seen = try? ingest.scrape()
            if let seen { spooledPeak = max(spooledPeak, seen.spooled) }
            return seen.map { $0.received == count && $0.spoolWriteErrors > 0 } ?? false
        }
        let exit = ingest.process.process.exitStatus(waitingUpTo: 0)
        try #require(ingest.process.isRunning, "pixeld ingest ended (status \(exit.map(String.init) ?? "?"))\(ingest.process.process.tail)")
        try #require(failing, "no failed spool write with all \(count) in: \(seen.map { "\($0.invariantText), spool write errors \($0.spoolWriteErrors)" } ?? "no /metrics")")
        let held = try ingest.scrape()
        #expect(spooledPeak > 0 && spooledPeak < count, "spooled at most \(spooledPeak) of \(count)")
        #expect(held.invariantHolds, "\(held.invariantText)")
        let warnings = ingest.process.stderrText.split(separator: "\n").filter { $0.contains("spool write failed; holding messages in memory") }
        #expect(warnings.count == 1 && warnings[0].contains("File too large"), "\(warnings)")

        try redis.restart()
        let outcome = try ingest.waitUntilQuiescent(received: count)
        let tally = Tally(try redis.arrivalOrder("pixel"), expected: Set(1...count))
        reportFault(
            "file-size-limit-spool",
            ["sent": count, "spooled_peak": spooledPeak, "spool_write_errors": held.spoolWriteErrors, "delivered": tally.delivered, "lost": tally.lost]
        )
        #expect(outcome.pushed == count && outcome.droppedTotal == 0, "\(outcome.invariantText)")
        #expect(tally.lost == 0 && tally.duplicated == 0 && tally.inOrder, "\(tally.summary)")
        #expect(try ingest.stop() == 0, "\(ingest.process.process.tail)")
        withExtendedLifetime((redis, spool)) {}
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
