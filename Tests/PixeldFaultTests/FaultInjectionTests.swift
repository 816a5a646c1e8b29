import Foundation
import PixeldTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Fault injection against real `redis-server` and `pixeld` processes on loopback: the promise under
/// test is "lose nothing, duplicate nothing". Every message carries a sequence number (`seq=000123`),
/// so loss, duplicates and order are counted exactly, and each scenario prints one line
/// `FAULT <name>: sent=… delivered=… lost=… duplicated=… …`.
///
/// Transport per scenario: UDP (nginx's path) where Redis is the thing that fails — pixeld's receive
/// thread does not depend on Redis, and the kernel's own drops (SO_RXQ_OVFL / `/proc/net/udp`) are
/// read and reported separately, never blamed on pixeld; TCP where backpressure is part of the
/// scenario (slow Redis) or where an exact "sent before the crash" figure is needed (SIGKILL while
/// spooling), because TCP neither drops nor lets the sender run ahead of pixeld unseen.
@Suite("pixeld fault injection", .serialized, .enabled(if: TestEnvironment.canRun("redis-server")))
struct FaultInjectionTests {
    static let rate = 5000

    // MARK: 1

    @Test("Redis SIGKILLed mid-stream, restarted from its AOF (appendfsync always): nothing lost or doubled, recovery < 1.5 s")
    func redisSIGKILLWithAOF() throws {
        let count = 20_000
        let redis = try RedisServer.start(appendOnly: true, extraArgs: ["--appendfsync", "always"])
        let ingest = try IngestUnderTest(redisURL: redis.url)
        let stream = PacedStream(sender: try UDPSyslogSender(port: ingest.udpPort!), seqs: Array(1...count), rate: Self.rate) {
            PixelMessage.syslog(seq: $0)
        }
        defer { stream.stop() }
        try #require(stream.waitUntilSent(count * 3 / 10, timeout: 30), "stream: \(stream.error ?? "too slow")")

        redis.kill()
        let killedAt = ContinuousClock.now
        Thread.sleep(forTimeInterval: 1.0)
        try redis.restart()
        let outageMs = milliseconds(since: killedAt)
        let recoveryMs = try firstGrowth(of: "pixel", in: redis, timeout: 5)

        #expect(stream.wait(timeout: 30), "stream: \(stream.error ?? "did not finish")")
        let outcome = try settle(ingest: ingest, redis: redis, expected: Set(1...count), sent: count)
        reportFault(
            "redis-sigkill-aof",
            [
                "transport": "udp", "sent": count, "delivered": outcome.tally.delivered, "lost": outcome.lost,
                "duplicated": outcome.tally.duplicated, "kernel_drops": outcome.kernelDrops, "outage_ms": outageMs,
                "recovery_ms": recoveryMs.map(String.init) ?? "none", "reconnects": outcome.metrics.reconnects,
            ]
        )
        #expect(outcome.lost == 0, "\(outcome.tally.summary)")
        #expect(outcome.tally.duplicated == 0, "\(outcome.tally.summary)")
        #expect(outcome.tally.inOrder, "values out of arrival order")
        #expect(outcome.metrics.invariantHolds, "\(outcome.metrics.invariantText)")
        let recovery = try #require(recoveryMs, "no push within 5 s of Redis answering PING again")
        #expect(recovery < 1500, "first push \(recovery) ms after Redis was back (bound: 1 s + 500 ms backoff)")
        withExtendedLifetime((redis, ingest)) {}
    }

    // MARK: 2

    @Test("Redis down when pixeld starts: messages wait in memory and all arrive once Redis starts")
    func redisDownAtStart() throws {
        let count = 10_000
        let redis = try RedisServer.start()
        redis.stop()
        let ingest = try IngestUnderTest(redisURL: redis.url)
        // The writer connects at start: the outage shows before the first message (a wrong --redis
        // is seen at once, not when traffic comes and waits).
        var healthBeforeTraffic = ""
        let degradedBeforeTraffic = Poll.until(timeout: 5, interval: 0.02) {
            healthBeforeTraffic = (try? httpGet(port: ingest.metricsPort, path: "/healthz")) ?? ""
            return healthBeforeTraffic.hasPrefix(#"{"status":"degraded","redis":"unavailable","failing_ms":"#)
        }
        let warnedBeforeTraffic = ingest.process.stderrText.contains("redis unavailable, holding messages and retrying")
        let stream = PacedStream(sender: try UDPSyslogSender(port: ingest.udpPort!), seqs: Array(1...count), rate: Self.rate) {
            PixelMessage.syslog(seq: $0)
        }
        defer { stream.stop() }
        try #require(stream.waitUntilSent(count / 2, timeout: 30), "stream: \(stream.error ?? "too slow")")
        let waiting = try ingest.scrape()
        let healthDuringOutage = try httpGet(port: ingest.metricsPort, path: "/healthz")
        try redis.restart()
        let recoveryMs = try firstGrowth(of: "pixel", in: redis, timeout: 5)

        #expect(stream.wait(timeout: 30), "stream: \(stream.error ?? "did not finish")")
        let outcome = try settle(ingest: ingest, redis: redis, expected: Set(1...count), sent: count)
        reportFault(
            "redis-down-at-start",
            [
                "transport": "udp", "sent": count, "delivered": outcome.tally.delivered, "lost": outcome.lost,
                "duplicated": outcome.tally.duplicated, "kernel_drops": outcome.kernelDrops,
                "held_in_memory": waiting.queued, "recovery_ms": recoveryMs.map(String.init) ?? "none",
            ]
        )
        #expect(waiting.pushed == 0 && waiting.queued > 0, "before Redis started: \(waiting.invariantText)")
        #expect(degradedBeforeTraffic && healthBeforeTraffic.contains(#""received":0,"#), "/healthz before any message: \(healthBeforeTraffic)")
        #expect(warnedBeforeTraffic, "no warning before the first message: \(ingest.process.stderrText)")
        #expect(
            healthDuringOutage.hasPrefix(#"{"status":"degraded","redis":"unavailable","failing_ms":"#),
            "/healthz while Redis was down: \(healthDuringOutage)"
        )
        let healthAfter = try httpGet(port: ingest.metricsPort, path: "/healthz")
        #expect(healthAfter.hasPrefix(#"{"status":"ok","redis":"ok","received":"#), "/healthz after the recovery: \(healthAfter)")
        let stderr = ingest.process.stderrText
        #expect(
            stderr.components(separatedBy: "redis unavailable, holding messages and retrying").count == 2
                && stderr.contains("redis available again"),
            "one warning for the outage, then its end: \(stderr)"
        )
        #expect(outcome.lost == 0, "\(outcome.tally.summary)")
        #expect(outcome.tally.duplicated == 0, "\(outcome.tally.summary)")
        #expect(outcome.tally.inOrder, "values out of arrival order")
        #expect(outcome.metrics.invariantHolds, "\(outcome.metrics.invariantText)")
        let recovery = try #require(recoveryMs, "no push within 5 s of Redis starting")
        #expect(recovery < 1500, "first push \(recovery) ms after Redis started")
        withExtendedLifetime((redis, ingest)) {}
    }

    // MARK: 3

    @Test("CLIENT KILL TYPE normal every 300 ms: reconnects, and the commit marker keeps retries from duplicating")
    func clientKillStorm() throws {
        let count = 20_000
        let redis = try RedisServer.start()
        let ingest = try IngestUnderTest(redisURL: redis.url)
        let port = redis.port
        let killed = Shared(0)
        let stream = PacedStream(sender: try UDPSyslogSender(port: ingest.udpPort!), seqs: Array(1...count), rate: Self.rate) {
            PixelMessage.syslog(seq: $0)
        }
        defer { stream.stop() }
        let killer = Repeater(interval: 0.3, maxRounds: 60) {
            guard let connection = try? RESPConnection(port: port, timeout: 2),
                let reply = try? connection.command(["CLIENT", "KILL", "TYPE", "normal"])
            else { return }
            if let number = reply.integer { killed.update { $0 += Int(number) } }
        }
        #expect(stream.wait(timeout: 30), "stream: \(stream.error ?? "did not finish")")
        killer.stop()
        let outcome = try settle(ingest: ingest, redis: redis, expected: Set(1...count), sent: count)
        reportFault(
            "client-kill-every-300ms",
            [
                "transport": "udp", "sent": count, "delivered": outcome.tally.delivered, "lost": outcome.lost,
                "duplicated": outcome.tally.duplicated, "kernel_drops": outcome.kernelDrops, "kill_rounds": killer.rounds,
                "connections_killed": killed.current, "reconnects": outcome.metrics.reconnects,
            ]
        )
        #expect(killed.current > 0, "CLIENT KILL never hit pixeld's connection")
        #expect(outcome.metrics.reconnects > 0, "pixeld never reconnected")
        #expect(outcome.lost == 0, "\(outcome.tally.summary)")
        #expect(outcome.tally.duplicated == 0, "\(outcome.tally.summary)")
        #expect(outcome.tally.inOrder, "values out of arrival order")
        #expect(outcome.metrics.invariantHolds, "\(outcome.metrics.invariantText)")
        withExtendedLifetime((redis, ingest)) {}
    }

    // MARK: 4

    @Test("CLIENT PAUSE 3000 WRITE (slow Redis): the queue stops at --buffer-bytes, TCP pushes back, RSS stays < 64 MiB")
    func clientPauseBoundedMemory() throws {
        let count = 25_000
        let bufferBytes = 4 << 20
        let redis = try RedisServer.start()
        let ingest = try IngestUnderTest(redisURL: redis.url, udp: false, tcp: true, extra: ["--buffer-bytes", String(bufferBytes)])
        // 600-byte values: 3 MB/s, so a 3 s pause is more than twice the memory queue.
        let stream = PacedStream(sender: try TCPSyslogSender(port: ingest.tcpPort!), seqs: Array(1...count), rate: Self.rate) {
            PixelMessage.syslog(seq: $0, padTo: 600)
        }
        defer { stream.stop() }
        try #require(stream.waitUntilSent(count / 5, timeout: 30), "stream: \(stream.error ?? "too slow")")

        let pauser = try redis.connect()
        let reply = try pauser.command(["CLIENT", "PAUSE", "3000", "WRITE"])
        try #require(reply == .simpleString("OK"), "CLIENT PAUSE replied \(reply)")
        let pausedAt = ContinuousClock.now
        var rssPeakKiB = 0
        var queuePeakBytes = 0
        var sentDuringPause = stream.sent
        for _ in 0..<100 where milliseconds(since: pausedAt) < 3300 {
            if let memory = ingest.memory { rssPeakKiB = max(rssPeakKiB, memory.rssKiB) }
            if let metrics = try? ingest.scrape() { queuePeakBytes = max(queuePeakBytes, metrics.queueBytes) }
            Thread.sleep(forTimeInterval: 0.05)
        }
        sentDuringPause = stream.sent - sentDuringPause

        #expect(stream.wait(timeout: 60), "stream: \(stream.error ?? "did not finish")")
        let outcome = try settle(ingest: ingest, redis: redis, expected: Set(1...count), sent: count, udp: false)
        let highWaterKiB = ingest.memory?.peakKiB ?? 0
        reportFault(
            "client-pause-3s-write",
            [
                "transport": "tcp", "sent": count, "delivered": outcome.tally.delivered, "lost": outcome.lost,
                "duplicated": outcome.tally.duplicated, "value_bytes": 600, "sent_during_pause": sentDuringPause,
                "queue_peak_bytes": queuePeakBytes, "buffer_bytes": bufferBytes,
                "rss_peak_during_pause_mib": String(format: "%.1f", Double(rssPeakKiB) / 1024),
                "vmhwm_mib": String(format: "%.1f", Double(highWaterKiB) / 1024),
            ]
        )
        #expect(queuePeakBytes > bufferBytes / 2, "the pause never filled the queue (peak \(queuePeakBytes) bytes): no pressure was applied")
        #expect(queuePeakBytes <= bufferBytes, "queue held \(queuePeakBytes) bytes, more than --buffer-bytes \(bufferBytes)")
        #expect(rssPeakKiB > 0 && rssPeakKiB < 64 * 1024, "RSS during the pause peaked at \(rssPeakKiB) KiB")
        #expect(highWaterKiB < 64 * 1024, "VmHWM \(highWaterKiB) KiB")
        #expect(outcome.lost == 0, "\(outcome.tally.summary)")
        #expect(outcome.tally.duplicated == 0, "\(outcome.tally.summary)")
        #expect(outcome.tally.inOrder, "values out of arrival order")
        #expect(outcome.metrics.invariantHolds, "\(outcome.metrics.invariantText)")
        withExtendedLifetime((redis, ingest, pauser)) {}
    }

    /// With every file descriptor in use, a pending connection keeps the listening socket readable
    /// while `accept` fails (`EMFILE`): ingest used to poll and fail again at once, a core at 100 %.
    /// Now it warns once, stops listening for 200 ms at a time, serves the connections it has, and
    /// takes new ones once some close.
    @Test("TCP out of file descriptors (RLIMIT_NOFILE 48): no spinning, one warning, connections taken again once some close")
    func tcpOutOfDescriptors() throws {
        let redis = try RedisServer.start()
        let ingest = try IngestUnderTest(redisURL: redis.url, udp: false, tcp: true, openFileLimit: 48)
        var idle = try (0..<60).map { _ in try TCPSyslogSender(port: ingest.tcpPort!) }  // more than it has descriptors for
        Thread.sleep(forTimeInterval: 0.5)
        let before = try #require(cpuSeconds(pid: ingest.pid))
        Thread.sleep(forTimeInterval: 2)
        let used = try #require(cpuSeconds(pid: ingest.pid)) - before
        #expect(used < 0.5, "ingest used \(used) CPU s in 2 s while out of descriptors")
        let warnings = ingest.process.stderrText.components(separatedBy: "cannot accept syslog connections").count - 1
        #expect(warnings == 1, "\(ingest.process.stderrText.suffix(2000))")
        for sender in idle { sender.close() }
        idle.removeAll()
        Thread.sleep(forTimeInterval: 0.5)
        let sender = try TCPSyslogSender(port: ingest.tcpPort!)
        for seq in 1...20 { #expect(sender.send(PixelMessage.syslog(seq: seq))) }
        sender.close()
        #expect(try redis.waitForLength("pixel", atLeast: 20, timeout: 10) == 20)
        withExtendedLifetime((redis, ingest)) {}
    }

    // MARK: 5

    @Test("WRONGTYPE key next to a healthy one: every pixel message arrives, every broken one is in broken:dead")
    func wrongTypeDeadLetters() throws {
        let count = 10_000
        let redis = try RedisServer.start()
        #expect(try redis.command(["SET", "broken", "x"]) == .simpleString("OK"))
        let ingest = try IngestUnderTest(redisURL: redis.url)
        let stream = PacedStream(sender: try UDPSyslogSender(port: ingest.udpPort!), seqs: Array(1...count), rate: Self.rate) {
            PixelMessage.syslog(seq: $0, program: $0 % 2 == 1 ? "broken" : "pixel")
        }
        defer { stream.stop() }
        #expect(stream.wait(timeout: 30), "stream: \(stream.error ?? "did not finish")")
        let evens = Set(stride(from: 2, through: count, by: 2))
        let odds = Set(stride(from: 1, through: count, by: 2))
        let outcome = try settle(ingest: ingest, redis: redis, expected: evens, sent: count)
        let dead = Tally(try redis.arrivalOrder("broken:dead"), expected: odds)
        let metrics = outcome.metrics
        reportFault(
            "wrongtype-dead-letter",
            [
                "transport": "udp", "sent": count, "delivered": outcome.tally.delivered + dead.delivered,
                "lost": outcome.tally.lost + dead.lost, "duplicated": outcome.tally.duplicated + dead.duplicated,
                "kernel_drops": outcome.kernelDrops, "pixel": outcome.tally.delivered, "broken_dead": dead.delivered,
                "pushed_total": metrics.pushed, "dead_lettered_total": metrics.deadLettered,
            ]
        )
        #expect(outcome.kernelDrops == 0, "the kernel dropped \(outcome.kernelDrops) datagrams; per-key counts are inexact")
        #expect(outcome.tally.lost == 0 && outcome.tally.duplicated == 0, "pixel: \(outcome.tally.summary)")
        #expect(dead.lost == 0 && dead.duplicated == 0, "broken:dead: \(dead.summary)")
        #expect(dead.inOrder, "broken:dead out of arrival order")
        #expect(try redis.command(["GET", "broken"]) == .bulkString(Array("x".utf8)), "the string key was touched")
        #expect(metrics.pushed == evens.count, "pixeld_redis_pushed_total \(metrics.pushed)")
        #expect(metrics.deadLettered == odds.count, "pixeld_redis_dead_lettered_total \(metrics.deadLettered)")
        #expect(metrics.invariantHolds, "\(metrics.invariantText)")
        withExtendedLifetime((redis, ingest)) {}
    }

    // MARK: 6

    @Test("30-second Redis outage with a spool and a 256 KiB memory queue: spooled, then all delivered in order")
    func thirtySecondOutageWithSpool() throws {
        let count = 36_000
        let rate = 1000
        let redis = try RedisServer.start(appendOnly: true)
        let spool = try TempDirectory(prefix: "pixeld-spool")
        let ingest = try IngestUnderTest(
            redisURL: redis.url,
            extra: ["--spool", spool.appending("spool").path, "--buffer-bytes", "262144"]
        )
        let stream = PacedStream(sender: try UDPSyslogSender(port: ingest.udpPort!), seqs: Array(1...count), rate: rate) {
            PixelMessage.syslog(seq: $0)
        }
        defer { stream.stop() }
        try #require(stream.waitUntilSent(3 * rate, timeout: 30), "stream: \(stream.error ?? "too slow")")

        redis.stop()
        let stoppedAt = ContinuousClock.now
        var spoolPeak = 0
        var queuePeakBytes = 0
        var spoolBytesOnDisk = 0
        for _ in 0..<100 where milliseconds(since: stoppedAt) < 30_000 {
            if let metrics = try? ingest.scrape() {
                spoolPeak = max(spoolPeak, metrics.spooled)
                queuePeakBytes = max(queuePeakBytes, metrics.queueBytes)
            }
            spoolBytesOnDisk = max(spoolBytesOnDisk, directorySize(spool.appending("spool").path))
            Thread.sleep(forTimeInterval: 0.5)
        }
        try redis.restart()
        let outageMs = milliseconds(since: stoppedAt)
        let restartedAt = ContinuousClock.now
        let recoveryMs = try firstGrowth(of: "pixel", in: redis, timeout: 5)
        var drainMs: Int?
        Poll.until(timeout: 30, interval: 0.02) {
            guard let metrics = try? ingest.scrape(), metrics.spooled == 0 else { return false }
            drainMs = milliseconds(since: restartedAt)
            return true
        }

        #expect(stream.wait(timeout: 30), "stream: \(stream.error ?? "did not finish")")
        let outcome = try settle(ingest: ingest, redis: redis, expected: Set(1...count), sent: count, timeout: 60)
        reportFault(
            "redis-outage-30s-spool",
            [
                "transport": "udp", "sent": count, "delivered": outcome.tally.delivered, "lost": outcome.lost,
                "duplicated": outcome.tally.duplicated, "kernel_drops": outcome.kernelDrops, "in_order": outcome.tally.inOrder,
                "outage_ms": outageMs, "spool_peak_messages": spoolPeak, "spool_peak_bytes": spoolBytesOnDisk,
                "queue_peak_bytes": queuePeakBytes, "recovery_ms": recoveryMs.map(String.init) ?? "none",
                "spool_drained_ms": drainMs.map(String.init) ?? "never",
            ]
        )
        #expect(spoolPeak > 0, "nothing was spooled during a 30 s outage with a 256 KiB queue")
        #expect(queuePeakBytes <= 262_144, "memory queue held \(queuePeakBytes) bytes")
        #expect(outcome.lost == 0, "\(outcome.tally.summary)")
        #expect(outcome.tally.duplicated == 0, "\(outcome.tally.summary)")
        #expect(outcome.tally.inOrder, "values out of arrival order after the spool replay")
        #expect(outcome.metrics.invariantHolds, "\(outcome.metrics.invariantText)")
        #expect(drainMs != nil, "spool never drained")
        #expect(recoveryMs.map { $0 < 1500 } ?? false, "first push after restart: \(recoveryMs.map(String.init) ?? "none") ms")
        withExtendedLifetime((redis, ingest, spool)) {}
    }

    /// One stall of ``stalledRedisSpillsToTheSpool(_:)``.
    struct Stall: Sendable, CustomTestStringConvertible {
        /// `CLIENT PAUSE` mode: `WRITE` or `ALL`.
        var mode: String
        var pauseMilliseconds: Int
        /// Whether arrival order is kept (paused for everything, the commit under way follows the spilled batches).
        var inOrder: Bool
        /// Bytes per stored value (0: ~30).
        var padTo = 0
        var rate = 2000
        /// `--buffer-bytes`, the memory queue.
        var queueBytes = 262_144
        var testDescription: String {
            "\(mode) \(pauseMilliseconds) ms, \(padTo == 0 ? "small" : "\(padTo)-byte") messages at \(rate)/s, \(queueBytes / 1024) KiB queue"
        }
    }

    /// A stalled Redis (`CLIENT PAUSE`) answers a commit only after seconds: the writer waits for the
    /// reply (up to the 5 s command timeout) while the receivers fill the queue. With a spool, the
    /// queue spills there once it is half full, instead of filling and leaving the kernel to drop what
    /// the socket buffer cannot hold (7,319 of 30,000 here before; the spool was written only between
    /// attempts). Paused for writes, the commit under way goes in when the pause ends, before the
    /// spilled batches: all in order. Paused for everything for 11 s, its two attempts time out and it
    /// is spooled behind the spilled batches, under its own marker: once, but after them.
    ///
    /// With 3 KB messages, one receiver's batch (a `recvmmsg` of up to 64) is more than a 64 KiB queue:
    /// it waits for room while the queue is less than half full, and the spill waited for half — so
    /// nothing moved until the reply came (15,749 of 24,000 dropped by the kernel in a `DEBUG SLEEP 8`
    /// by hand, 256 KiB queue). A receiver waiting for room now counts as a full queue
    /// (`PushQueueTests.aWaitingProducerMeansTheQueueNeedsRoom`). And the commit under way, timed out
    /// once with the queue needing room, was spooled behind the spilled batches (out of order); now
    /// only a second failure spools it once a spill has happened.
    @Test(
        "Redis stalled (CLIENT PAUSE) with a spool and a small queue: the queue spills to the spool, the kernel drops nothing, all arrive once",
        arguments: [
            Stall(mode: "WRITE", pauseMilliseconds: 8000, inOrder: true),
            Stall(mode: "ALL", pauseMilliseconds: 11_000, inOrder: false),
            Stall(mode: "WRITE", pauseMilliseconds: 8000, inOrder: true, padTo: 3000, rate: 1000, queueBytes: 65536),
        ]
    )
    func stalledRedisSpillsToTheSpool(_ stall: Stall) throws {
        let rate = stall.rate
        let count = 15 * rate
        let redis = try RedisServer.start()
        let spool = try TempDirectory(prefix: "pixeld-spool")
        // (A socket buffer that holds the 100 ms before a spill at 3 MB/s; the queue stays small.)
        let receiveBuffer = stall.padTo == 0 ? 262_144 : 1_048_576
        let ingest = try IngestUnderTest(
            redisURL: redis.url,
            extra: [
                "--spool", spool.appending("spool").path, "--buffer-bytes", String(stall.queueBytes),
                "--receive-buffer-bytes", String(receiveBuffer),
            ]
        )
        let stream = PacedStream(sender: try UDPSyslogSender(port: ingest.udpPort!), seqs: Array(1...count), rate: rate) {
            PixelMessage.syslog(seq: $0, padTo: stall.padTo)
        }
        defer { stream.stop() }
        try #require(stream.waitUntilSent(3 * rate, timeout: 30), "stream: \(stream.error ?? "too slow")")

        let pauser = try redis.connect()
        let reply = try pauser.command(["CLIENT", "PAUSE", String(stall.pauseMilliseconds), stall.mode])
        try #require(reply == .simpleString("OK"), "CLIENT PAUSE replied \(reply)")
        let pausedAt = ContinuousClock.now
        var spoolPeak = 0
        var queuePeakBytes = 0
        var slowAfterMs: Int?  // when /healthz first said the commit under way waits
        for _ in 0..<300 where milliseconds(since: pausedAt) < stall.pauseMilliseconds + 500 {
            if let metrics = try? ingest.scrape() {
                spoolPeak = max(spoolPeak, metrics.spooled)
                queuePeakBytes = max(queuePeakBytes, metrics.queueBytes)
            }
            if slowAfterMs == nil, let health = try? httpGet(port: ingest.metricsPort, path: "/healthz"),
                health.hasPrefix(#"{"status":"degraded","redis":"slow","waiting_ms":"#)
            {
                slowAfterMs = milliseconds(since: pausedAt)
            }
            Thread.sleep(forTimeInterval: 0.1)
        }

        #expect(stream.wait(timeout: 60), "stream: \(stream.error ?? "did not finish")")
        let outcome = try settle(ingest: ingest, redis: redis, expected: Set(1...count), sent: count, timeout: 60)
        reportFault(
            "redis-stall-spool",
            [
                "pause": "\(stall.pauseMilliseconds) ms \(stall.mode)", "message_bytes": stall.padTo,
                "transport": "udp", "sent": count, "delivered": outcome.tally.delivered, "lost": outcome.lost,
                "duplicated": outcome.tally.duplicated, "kernel_drops": outcome.kernelDrops, "in_order": outcome.tally.inOrder,
                "spool_peak_messages": spoolPeak, "queue_peak_bytes": queuePeakBytes,
                "healthz_slow_after_ms": slowAfterMs.map(String.init) ?? "never",
            ]
        )
        #expect(spoolPeak > 0, "nothing was spooled during an 8 s stall with a \(stall.queueBytes / 1024) KiB queue")
        // A stall shows in /healthz a second in, not only at the 5 s command timeout.
        #expect(slowAfterMs.map { $0 < 3000 } ?? false, "/healthz said slow after \(slowAfterMs.map { "\($0) ms" } ?? "never")")
        #expect(outcome.kernelDrops == 0, "the kernel dropped \(outcome.kernelDrops) while Redis stalled")
        #expect(outcome.lost == 0, "\(outcome.tally.summary)")
        #expect(outcome.tally.duplicated == 0, "\(outcome.tally.summary)")
        if stall.inOrder { #expect(outcome.tally.inOrder, "values out of arrival order after the spill") }
        #expect(outcome.metrics.invariantHolds, "\(outcome.metrics.invariantText)")
        withExtendedLifetime((redis, ingest, spool, pauser)) {}
    }

    // MARK: 7

    @Test("SIGTERM mid-stream (Redis up): exit 0 within --shutdown-timeout; everything sent before it is in Redis")
    func sigtermMidStream() throws {
        let count = 20_000
        let shutdownTimeout = 5
        let redis = try RedisServer.start()
        let ingest = try IngestUnderTest(redisURL: redis.url, extra: ["--shutdown-timeout", String(shutdownTimeout)])
        let port = ingest.udpPort!
        let stream = PacedStream(sender: try UDPSyslogSender(port: port), seqs: Array(1...count), rate: Self.rate) {
            PixelMessage.syslog(seq: $0)
        }
        defer { stream.stop() }
        try #require(stream.waitUntilSent(count / 2, timeout: 30), "stream: \(stream.error ?? "too slow")")

        // Order matters: every message counted in `sentBefore` had left sendto() before the drop
        // counter was read, and both before the signal.
        let sentBefore = stream.sent
        let kernelDrops = kernelUDPDrops(port: port) ?? 0
        ingest.process.terminate()
        let signalledAt = ContinuousClock.now
        let status = ingest.process.process.exitStatus(waitingUpTo: Double(shutdownTimeout) + 3)
        let exitMs = milliseconds(since: signalledAt)
        stream.stop()
        stream.wait(timeout: 10)

        let values = try redis.arrivalOrder("pixel")
        let before = Tally(values, expected: Set(1...sentBefore))
        let all = Tally(values, expected: Set(1...count))
        let lost = before.lost - kernelDrops
        reportFault(
            "sigterm-mid-stream",
            [
                "transport": "udp", "sent": sentBefore, "delivered": before.delivered, "lost": lost,
                "duplicated": all.duplicated, "kernel_drops": kernelDrops, "exit_code": status.map(String.init) ?? "none",
                "exit_ms": exitMs, "sent_after_sigterm": stream.sent - sentBefore,
                "delivered_after_sigterm": all.delivered - before.delivered,
            ]
        )
        #expect(status == 0, "exit status \(status.map(String.init) ?? "none (still running)")\(ingest.process.process.tail)")
        #expect(exitMs < (shutdownTimeout + 2) * 1000, "exit took \(exitMs) ms")
        #expect(lost == 0, "sent before SIGTERM: \(before.summary); kernel drops \(kernelDrops)")
        #expect(all.duplicated == 0, "\(all.summary)")
        #expect(before.inOrder, "values out of arrival order")
        #expect(ingest.process.stderrText.contains("ingest stopped"), "no final summary\(ingest.process.process.tail)")
        withExtendedLifetime((redis, ingest)) {}
    }

    // MARK: 7b

    @Test("SIGTERM while Redis is down and the memory queue is full (no spool): exits within --shutdown-timeout")
    func sigtermDuringOutageWithFullQueue() throws {
        let count = 5000
        let shutdownTimeout = 2
        let redis = try RedisServer.start()
        redis.stop()
        let ingest = try IngestUnderTest(
            redisURL: redis.url,
            extra: ["--buffer-bytes", "65536", "--shutdown-timeout", String(shutdownTimeout)]
        )
        let stream = PacedStream(sender: try UDPSyslogSender(port: ingest.udpPort!), seqs: Array(1...count), rate: Self.rate) {
            PixelMessage.syslog(seq: $0)
        }
        defer { stream.stop() }
        #expect(stream.wait(timeout: 30), "stream: \(stream.error ?? "did not finish")")
        var metrics = try ingest.scrape()
        let filled = Poll.until(timeout: 5, interval: 0.05) {
            metrics = (try? ingest.scrape()) ?? metrics
            return metrics.queueBytes > 65536 / 2
        }
        try #require(filled, "the memory queue never filled: \(metrics.invariantText)")

        ingest.process.terminate()
        let signalledAt = ContinuousClock.now
        let status = ingest.process.process.exitStatus(waitingUpTo: Double(shutdownTimeout) + 5)
        let exitMs = milliseconds(since: signalledAt)
        let stderr = ingest.process.stderrText
        let lostLogged = stderr.range(of: #"lost=\d+"#, options: .regularExpression).map { String(stderr[$0].dropFirst(5)) }
        reportFault(
            "sigterm-redis-down-full-queue",
            [
                "transport": "udp", "sent": count, "received": metrics.received, "held_in_memory": metrics.queued,
                "queue_bytes": metrics.queueBytes, "exit_code": status.map(String.init) ?? "hung",
                "exit_ms": status == nil ? "> \(exitMs)" : String(exitMs), "lost_logged": lostLogged ?? "none",
            ]
        )
        #expect(
            status != nil,
            """
            pixeld ingest still runs \(exitMs) ms after SIGTERM (--shutdown-timeout \(shutdownTimeout)): the listener \
            is blocked in PushQueue.enqueue on the full queue, and the queue is only closed by the writer's shutdown, \
            which IngestService starts after every listener has stopped.\(ingest.process.process.tail)
            """
        )
        #expect(status == 0, "exit status \(status.map(String.init) ?? "none")")
        if status == nil { ingest.process.kill() }
        withExtendedLifetime((redis, ingest)) {}
    }

    /// A SIGTERM while Redis stalls (`CLIENT PAUSE … ALL`), with a spool: the reply under way is no
    /// longer waited for at the deadline (it could take the 5 s command timeout past it, 5.6 s for a
    /// 1 s timeout in the chaos test), and what was accepted is in the spool for the next start.
    @Test("SIGTERM while Redis stalls, with a spool: exits within --shutdown-timeout, not the command timeout later; a restart delivers everything once")
    func sigtermDuringAStallWithASpool() throws {
        let count = 4000
        let shutdownTimeout = 1
        let redis = try RedisServer.start()
        let spool = try TempDirectory(prefix: "pixeld-spool")
        let flags = ["--spool", spool.appending("spool").path, "--shutdown-timeout", String(shutdownTimeout)]
        let ingest = try IngestUnderTest(redisURL: redis.url, extra: flags)
        let stream = PacedStream(sender: try UDPSyslogSender(port: ingest.udpPort!), seqs: Array(1...count), rate: 2000) {
            PixelMessage.syslog(seq: $0)
        }
        defer { stream.stop() }
        try #require(stream.waitUntilSent(count / 4, timeout: 30), "stream: \(stream.error ?? "too slow")")
        let pauser = try redis.connect()
        let reply = try pauser.command(["CLIENT", "PAUSE", "7000", "ALL"])
        try #require(reply == .simpleString("OK"), "CLIENT PAUSE replied \(reply)")
        let pausedAt = ContinuousClock.now
        #expect(stream.wait(timeout: 30), "stream: \(stream.error ?? "did not finish")")
        let port = try #require(ingest.udpPort)
        var received = 0
        let allIn = Poll.until(timeout: 10, interval: 0.05) {
            received = (try? ingest.scrape().received) ?? received
            return received + (kernelUDPDrops(port: port) ?? 0) == count
        }
        try #require(allIn, "ingest received \(received) of \(count)")

        ingest.process.terminate()
        let signalledAt = ContinuousClock.now
        let status = ingest.process.process.exitStatus(waitingUpTo: 10)
        let exitMs = milliseconds(since: signalledAt)
        reportFault("sigterm-redis-stalled-spool", ["sent": count, "received": received, "exit_ms": exitMs, "exit_code": status.map(String.init) ?? "hung"])
        #expect(status == 0, "exit status \(status.map(String.init) ?? "none")")
        #expect(exitMs < (shutdownTimeout + 2) * 1000, "exited \(exitMs) ms after SIGTERM with --shutdown-timeout \(shutdownTimeout)")
        if status == nil { ingest.process.kill() }

        try #require(milliseconds(since: pausedAt) < 6000, "the shutdown ended after the pause: nothing was stalled")
        Thread.sleep(forTimeInterval: Double(7500 - milliseconds(since: pausedAt)) / 1000)  // (CLIENT UNPAUSE is paused too)
        let again = try IngestUnderTest(redisURL: redis.url, extra: flags)
        _ = try again.waitUntilQuiescent(received: 0, timeout: 30)
        let tally = Tally(try redis.arrivalOrder("pixel"), expected: Set(1...count))
        #expect(tally.duplicated == 0, "\(tally.summary)")
        #expect(tally.delivered == received, "ingest received \(received); \(tally.summary)")
        withExtendedLifetime((redis, ingest, again, spool, pauser)) {}
    }

    // MARK: 8

    @Test("SIGKILL while spooling (Redis down, --spool-sync always), restart with the same spool: all spooled arrive once")
    func sigkillWhileSpooling() throws {
        let firstCount = 10_000
        let secondCount = 1000
        let redis = try RedisServer.start()
        redis.stop()
        let spool = try TempDirectory(prefix: "pixeld-spool")
        let spoolArguments = ["--spool", spool.appending("spool").path, "--spool-sync", "always", "--buffer-bytes", "65536"]
        let first = try IngestUnderTest(redisURL: redis.url, udp: false, tcp: true, extra: spoolArguments)
        let stream = PacedStream(sender: try TCPSyslogSender(port: first.tcpPort!), seqs: Array(1...firstCount), rate: Self.rate) {
            PixelMessage.syslog(seq: $0)
        }
        defer { stream.stop() }
        #expect(stream.wait(timeout: 30), "stream: \(stream.error ?? "did not finish")")
        let lastSend = stream.lastSent ?? .now

        // The sender waits until pixeld holds nothing in memory (bounded): how long that takes after the
        // last send is the window in which a SIGKILL loses messages.
        var before = try first.scrape()
        Poll.until(timeout: 5, interval: 0.01) {
            before = (try? first.scrape()) ?? before
            return before.received == firstCount && before.queued == 0 && before.spooled == firstCount
        }
        let inMemoryWindowMs = milliseconds(since: lastSend)
        Thread.sleep(forTimeInterval: 0.1)
        before = try first.scrape()
        first.process.kill()
        _ = try first.process.waitForExit(timeout: 10)

        let second = try IngestUnderTest(redisURL: redis.url, udp: false, tcp: true, extra: spoolArguments)
        let inherited = try second.scrape()
        try redis.restart()
        let sender = try TCPSyslogSender(port: second.tcpPort!)
        // New messages during the replay must line up behind the spooled ones.
        let more = PacedStream(sender: sender, seqs: Array((firstCount + 1)...(firstCount + secondCount)), rate: Self.rate) {
            PixelMessage.syslog(seq: $0)
        }
        defer { more.stop() }
        #expect(more.wait(timeout: 30), "stream: \(more.error ?? "did not finish")")
        let after = try second.waitUntilQuiescent(received: secondCount, timeout: 30)
        let values = try redis.arrivalOrder("pixel")
        let spooledPart = Tally(values, expected: Set(1...firstCount))
        let all = Tally(values, expected: Set(1...(firstCount + secondCount)))
        reportFault(
            "sigkill-while-spooling",
            [
                "transport": "tcp", "sent": firstCount, "spooled_at_kill": before.spooled, "in_memory_at_kill": before.queued,
                "delivered": spooledPart.delivered, "lost": spooledPart.lost, "duplicated": all.duplicated,
                "recovered_total": after.recovered, "memory_to_spool_ms": inMemoryWindowMs,
                "then_sent": secondCount, "then_delivered": all.delivered - spooledPart.delivered, "in_order": all.inOrder,
            ]
        )
        #expect(before.spooled == firstCount && before.queued == 0, "at the kill: \(before.invariantText)")
        #expect(inherited.spooled == before.spooled, "the restarted pixeld found \(inherited.spooled) spooled messages")
        #expect(spooledPart.lost == 0, "\(spooledPart.summary)")
        #expect(all.lost == 0 && all.duplicated == 0, "\(all.summary)")
        #expect(all.inOrder, "spooled messages and newer ones out of order")
        #expect(after.recovered == before.spooled, "pixeld_redis_recovered_total \(after.recovered)")
        #expect(after.pushed == secondCount, "pixeld_redis_pushed_total \(after.pushed)")
        #expect(after.invariantHolds, "\(after.invariantText)")
        #expect(directorySize(spool.appending("spool").path) == 0, "spool files left after the replay")
        withExtendedLifetime((redis, first, second, spool)) {}
    }

    // MARK: 9

    @Test("Consumer SIGKILLed mid-batch and restarted with --output: every event exactly once in the file")
    func consumerSIGKILLExactlyOnceFile() throws {
        let help = try ChildProcess.run(try PixeldProcess.binaryURL().path, ["consume", "--help"], checkStatus: false)
        guard help.stdout.contains("--output") else {
            Issue.record("waiting for `pixeld consume --output FILE` (exactly-once file output): not in this binary yet")
            return
        }
        let count = 50_000
        let redis = try RedisServer.start()
        try redis.prefill("pixel", (1...count).map { PixelMessage.value(seq: $0) })
        let directory = try TempDirectory(prefix: "pixeld-out")
        let file = directory.appending("events.jsonl").path
        // A restart after SIGKILL waits for the dead run's heartbeat: 3 s instead of 15.
        let arguments = ["consume", "pixel", "--redis", redis.url, "--consumer-id", "c1", "--output", file, "--batch-size", "512", "--heartbeat-seconds", "3"]

        let first = try PixeldProcess.start(arguments)
        defer { first.process.stop(timeout: 5) }
        // Kill once about a third of the output is written (line length measured on the first line).
        var thirdReachedAtBytes = 0
        let reached = Poll.until(timeout: 60, interval: 0.002) {
            guard first.isRunning else { return true }
            let data = FileManager.default.contents(atPath: file) ?? Data()
            guard let newline = data.firstIndex(of: UInt8(ascii: "\n")) else { return false }
            thirdReachedAtBytes = data.count
            return data.count >= (newline + 1) * count / 3
        }
        try #require(reached && first.isRunning, "consume did not write a third of the events\(first.process.tail)")
        // Mid-batch for certain: once the consumer has taken its next batch (its processing list is not
        // empty), writes are paused, so it writes that batch's lines and then waits on its ack
        // (MULTI … EXEC is a write); the SIGKILL lands there, between output and ack.
        let pauser = try redis.connect()
        let holding = Poll.until(timeout: 5, interval: 0.0005) {
            ((try? pauser.command(["LLEN", "pixel:processing:c1"]))?.integer ?? 0) > 0
        }
        #expect(holding, "never saw the consumer holding a batch")
        #expect(try pauser.command(["CLIENT", "PAUSE", "5000", "WRITE"]) == .simpleString("OK"))
        Thread.sleep(forTimeInterval: 0.3)
        first.kill()
        _ = try first.waitForExit(timeout: 10)
        _ = try pauser.command(["CLIENT", "UNPAUSE"])
        let bytesAtKill = (try? FileManager.default.attributesOfItem(atPath: file)[.size] as? NSNumber)?.intValue ?? 0
        let acknowledged = Int(try redis.command(["GET", "pixel:output:c1"]).string ?? "0") ?? 0
        let linesAtKill = completeLines(ofFile: file).count
        let processingAtKill = try redis.llen("pixel:processing:c1")

        let (second, drained, status, tally) = try drainAgain(arguments, redis: redis, file: file, events: count)
        reportFault(
            "consumer-sigkill-restart",
            [
                "events": count, "delivered": tally.delivered, "lost": tally.lost, "duplicated": tally.duplicated,
                "lines": tally.delivered + tally.duplicated + tally.unexpected, "lines_at_kill": linesAtKill, "processing_at_kill": processingAtKill,
                "unacked_bytes_at_kill": bytesAtKill - acknowledged, "third_reached_at_bytes": thirdReachedAtBytes,
            ]
        )
        #expect(drained, "pixel / pixel:processing:c1 not drained\(second.process.tail)")
        #expect(status == 0, "consume exit status \(status)")
        #expect(tally.lost == 0 && tally.duplicated == 0 && tally.unexpected == 0, "\(tally.summary)")
        #expect(tally.inOrder, "events out of order in the file")
        #expect(try redis.llen("pixel:processing:c1") == 0)
        #expect(processingAtKill > 0, "the kill did not land mid-batch (nothing in pixel:processing:c1)")
        withExtendedLifetime((redis, directory, pauser)) {}
    }

    /// SIGTERM while Redis stalls (`CLIENT PAUSE … ALL`: every command waits, none fails) with a
    /// backlog. The stop used to wait a command timeout (6 s) for each call it made — the reply in
    /// flight, the take in advance, the give-back —: 6.8–18.4 s, past systemd's `TimeoutStopSec=10`.
    /// Now it ends at `--shutdown-timeout` with status 0 (a requested stop; nothing is lost), leaving
    /// what it took in its processing list, and a restart with its id handles every event once. The
    /// line it logs there says how many events it leaves (`events_in_hand`): the processing list's
    /// length once the pause ends (it used to count only the batch in the loop's hands: 512 of 1,536
    /// here, leaving out the batch whose ack the stall held up and the batch taken in advance).
    @Test("Consumer --output SIGTERMed while Redis is paused: exits 0 at --shutdown-timeout; a restart with its id writes every event once")
    func consumerStopDuringRedisPause() throws {
        let count = 60_000, timeoutSeconds = 2, pauseMilliseconds = 10_000
        let redis = try RedisServer.start()
        try redis.prefill("pixel", (1...count).map { PixelMessage.value(seq: $0) })
        let directory = try TempDirectory(prefix: "pixeld-out")
        let file = directory.appending("events.jsonl").path
        let arguments = [
            "consume", "pixel", "--redis", redis.url, "--consumer-id", "c1", "--output", file, "--heartbeat-seconds", "3",
            "--shutdown-timeout", String(timeoutSeconds),
        ]
        let first = try PixeldProcess.start(arguments)
        defer { first.process.stop(timeout: 5) }
        // Mid-stream: a few thousand lines written, most of the backlog still to come.
        let working = Poll.until(timeout: 60, interval: 0.005) {
            ((try? FileManager.default.attributesOfItem(atPath: file)[.size] as? NSNumber)?.intValue ?? 0) >= 100_000
        }
        try #require(working && first.isRunning, "consume did not start writing\(first.process.tail)")
        let pauser = try redis.connect()
        #expect(try pauser.command(["CLIENT", "PAUSE", String(pauseMilliseconds), "ALL"]) == .simpleString("OK"))
        let pausedAt = ContinuousClock.now
        Thread.sleep(forTimeInterval: 0.3)  // the consumer's calls now wait on the pause
        let signalledAt = ContinuousClock.now
        first.terminate()
        let status = try first.waitForExit(timeout: 30)
        let exitMilliseconds = milliseconds(since: signalledAt)
        // Nothing answers before the pause ends (CLIENT UNPAUSE would wait too).
        Thread.sleep(forTimeInterval: max(0, Double(pauseMilliseconds - milliseconds(since: pausedAt)) / 1000 + 0.2))
        let processingAtStop = try redis.llen("pixel:processing:c1")
        let deadlineLines = first.stderrText.components(separatedBy: "stopped at the shutdown deadline").count - 1
        let deadlineLine = first.stderrText.split(separator: "\n").first { $0.contains("stopped at the shutdown deadline") } ?? ""
        let inHand = deadlineLine.range(of: "events_in_hand=").flatMap { Int(deadlineLine[$0.upperBound...].prefix { $0.isNumber }) }

        let (second, drained, secondStatus, tally) = try drainAgain(arguments, redis: redis, file: file, events: count)
        reportFault(
            "consumer-stop-during-redis-pause",
            [
                "events": count, "delivered": tally.delivered, "lost": tally.lost, "duplicated": tally.duplicated,
                "shutdown_timeout_s": timeoutSeconds, "exit_ms": exitMilliseconds, "exit_status": status,
                "processing_at_stop": processingAtStop, "events_in_hand": inHand ?? -1,
            ]
        )
        #expect(exitMilliseconds <= timeoutSeconds * 1000 + 1500, "SIGTERM to exit took \(exitMilliseconds) ms with --shutdown-timeout \(timeoutSeconds)")
        #expect(status == 0, "exit status \(status)\(first.process.tail)")
        #expect(deadlineLines == 1, "\(deadlineLines) deadline lines:\n\(first.stderrText)")
        #expect(processingAtStop > 0, "nothing left in pixel:processing:c1: the stop was not cut short mid-batch")
        #expect(inHand == processingAtStop, "events_in_hand \(inHand ?? -1), pixel:processing:c1 \(processingAtStop) after the pause: \(deadlineLine)")
        #expect(drained, "pixel / pixel:processing:c1 not drained\(second.process.tail)")
        #expect(secondStatus == 0, "second run's exit status \(secondStatus)")
        #expect(tally.lost == 0 && tally.duplicated == 0 && tally.unexpected == 0, "\(tally.summary)")
        #expect(tally.inOrder, "events out of order in the file")
        withExtendedLifetime((redis, directory, pauser)) {}
    }

    /// Printing to standard output, the consumer's preparation reads nothing from Redis, and a
    /// heartbeat written less than 5 s ago is not written again: only its reads tell it Redis is back.
    @Test("Consumer started while Redis is down, then Redis stopped mid-run: one warning per outage, ready and back only when Redis answers, every event once")
    func consumerAcrossRedisOutages() throws {
        let count = 2_000
        let redis = try RedisServer.start()
        redis.stop()
        let consumer = try PixeldProcess.start(["consume", "pixel", "--redis", redis.url, "--consumer-id", "c1", "--heartbeat-seconds", "3"])
        defer { consumer.process.stop(timeout: 5) }
        func occurrences(_ text: String) -> Int { consumer.stderrText.components(separatedBy: text).count - 1 }
        let warning = "redis error in consumer, retrying", back = "redis available again"
        func drained() -> Bool {
            Poll.until(timeout: 30, interval: 0.05) {
                ((try? redis.llen("pixel")) ?? 1) == 0 && ((try? redis.llen("pixel:processing:c1")) ?? 1) == 0
            }
        }

        // Outage 1, from the start: the first retry warns; a few more retries (0.05 → 0.5 s apart) do not.
        #expect(Poll.until(timeout: 30, interval: 0.05) { occurrences(warning) == 1 }, "\(consumer.stderrText)")
        Thread.sleep(forTimeInterval: 1.5)
        let firstOutage = consumer.stderrText
        try redis.restart()
        try redis.prefill("pixel", (1...count / 2).map { PixelMessage.value(seq: $0) })
        let firstDrained = drained()

        // Outage 2, mid-run, with a fresh heartbeat.
        redis.stop()
        #expect(Poll.until(timeout: 30, interval: 0.05) { occurrences(warning) == 2 }, "\(consumer.stderrText)")
        Thread.sleep(forTimeInterval: 1.5)
        let secondOutage = consumer.stderrText
        try redis.restart()
        try redis.prefill("pixel", (count / 2 + 1...count).map { PixelMessage.value(seq: $0) })
        let secondDrained = drained()
        consumer.terminate()
        let status = try consumer.waitForExit(timeout: 10)
        let lines = consumer.stdoutText.split(separator: "\n").map { Array($0.utf8) }
        let tally = Tally(lines, expected: 1...count)
        reportFault(
            "consumer-across-redis-outages",
            ["events": count, "delivered": tally.delivered, "warnings": occurrences(warning), "back": occurrences(back)]
        )
        #expect(firstOutage.components(separatedBy: warning).count - 1 == 1, "one warning for the first outage:\n\(firstOutage)")
        #expect(!firstOutage.contains("consume ready") && !firstOutage.contains(back), "ready or back before Redis answered:\n\(firstOutage)")
        #expect(
            secondOutage.components(separatedBy: warning).count - 1 == 2 && secondOutage.components(separatedBy: back).count - 1 == 1,
            "one warning for the second outage, and no 'available again' before Redis returned:\n\(secondOutage)"
        )
        #expect(occurrences(back) == 2 && occurrences("consume ready") == 1, "\(consumer.stderrText)")
        #expect(firstDrained && secondDrained && status == 0, "\(consumer.process.tail)")
        #expect(tally.lost == 0 && tally.duplicated == 0, "\(tally.summary)")
        withExtendedLifetime(redis) {}
    }

    @Test("Consumer c1 SIGKILLed; c2 recovers c1's processing list once c1's heartbeat is gone")
    func consumerOrphanRecovery() throws {
        let count = 20_000
        let batchSize = 512
        let redis = try RedisServer.start()
        try redis.prefill("pixel", (1...count).map { PixelMessage.value(seq: $0) })
        func arguments(_ id: String) -> [String] {
            ["consume", "pixel", "--redis", redis.url, "--consumer-id", id, "--batch-size", String(batchSize)]
        }
        let c1 = try PixeldProcess.start(arguments("c1"))
        defer { c1.process.stop(timeout: 5) }
        // Stop at a third of the output (about 46 bytes per JSON line), while c1 holds a batch.
        let reached = Poll.until(timeout: 60, interval: 0.002) {
            !c1.isRunning || c1.process.stdout.data.count >= 46 * count / 3
        }
        try #require(reached && c1.isRunning, "c1 did not print a third of the events\(c1.process.tail)")
        // Mid-batch for certain (as in test 9): once c1 holds a batch (its processing list is not
        // empty), writes are paused, so its ack (MULTI … EXEC, a write) cannot land; the SIGKILL finds
        // the batch still in pixel:processing:c1. Should c1 have acked between the LLEN and the pause
        // (its next take is a write too, so the list is then empty), unpause and try again.
        let pauser = try redis.connect()
        var holdingAtPause = false
        for _ in 0..<20 where !holdingAtPause {
            let holding = Poll.until(timeout: 5, interval: 0.0005) {
                ((try? pauser.command(["LLEN", "pixel:processing:c1"]))?.integer ?? 0) > 0
            }
            try #require(holding, "never saw c1 holding a batch\(c1.process.tail)")
            try #require(try pauser.command(["CLIENT", "PAUSE", "5000", "WRITE"]) == .simpleString("OK"))
            // Reads are not paused: the batch is still c1's after the pause took effect.
            holdingAtPause = (try pauser.command(["LLEN", "pixel:processing:c1"]).integer ?? 0) > 0
            if !holdingAtPause { _ = try pauser.command(["CLIENT", "UNPAUSE"]) }
        }
        try #require(holdingAtPause, "c1 never held a batch when writes were paused")
        Thread.sleep(forTimeInterval: 0.3)
        c1.kill()
        _ = try c1.waitForExit(timeout: 10)
        _ = try pauser.command(["CLIENT", "UNPAUSE"])
        let c1Lines = c1.process.stdout.rawLines
        let orphaned = try redis.llen("pixel:processing:c1")
        try #require(orphaned > 0, "c1 was killed between batches: nothing to recover")
        let heartbeatWasThere = try redis.exists("pixel:consumer:c1")
        // Simulates the expiry of c1's 15 s heartbeat instead of waiting for it.
        _ = try redis.command(["DEL", "pixel:consumer:c1"])

        let c2 = try PixeldProcess.start(arguments("c2"))
        defer { c2.process.stop(timeout: 5) }
        let drained = try Poll.until(timeout: 120, interval: 0.05) {
            try redis.llen("pixel") == 0 && !redis.exists("pixel:processing:c1") && redis.llen("pixel:processing:c2") == 0
        }
        c2.terminate()
        let status = try c2.waitForExit(timeout: 10)
        let c2Lines = c2.process.stdout.rawLines
        let c2Tally = Tally(c2Lines, expected: 1...count)
        let union = Tally(c1Lines + c2Lines, expected: 1...count)
        let c1Seqs = Set(c1Lines.compactMap(PixelMessage.seq(in:)))
        let redelivered = c2Lines.compactMap(PixelMessage.seq(in:)).filter(c1Seqs.contains).count
        reportFault(
            "consumer-orphan-recovery",
            [
                "events": count, "delivered": union.delivered, "lost": union.lost, "duplicated": c2Tally.duplicated,
                "c1_lines": c1Lines.count, "c2_lines": c2Lines.count, "orphaned_in_c1_processing": orphaned,
                "printed_by_c1_and_again_by_c2": redelivered, "heartbeat": "deleted (simulated 15 s expiry)",
            ]
        )
        #expect(heartbeatWasThere, "c1 had no heartbeat key")
        #expect(drained, "not drained\(c2.process.tail)")
        #expect(status == 0)
        #expect(union.lost == 0, "\(union.summary)")
        #expect(c2Tally.duplicated == 0, "c2: \(c2Tally.summary)")
        // stdout is not transactional: what c1 printed of its last, unacked batch is printed again.
        #expect(redelivered <= max(orphaned, 0), "\(redelivered) events printed twice, but c1 held only \(orphaned)")
        #expect(c2.stderrText.contains("recovered events of a dead consumer"), "\(c2.process.tail)")
        withExtendedLifetime((redis, pauser)) {}
    }

    @Test("A second consumer started with an id in use: it stops with one error line and status 1; the first consumes everything once")
    func consumerIdInUse() throws {
        let redis = try RedisServer.start()
        func arguments() -> [String] { ["consume", "pixel", "--redis", redis.url, "--consumer-id", "same"] }
        let first = try PixeldProcess.start(arguments())
        defer { first.process.stop(timeout: 5) }
        try redis.prefill("pixel", (1...100).map { PixelMessage.value(seq: $0) })
        let firstDrained = try Poll.until(timeout: 20, interval: 0.02) { try redis.llen("pixel") == 0 && first.process.stdout.rawLines.count == 100 }
        let second = try PixeldProcess.start(arguments())
        defer { second.process.stop(timeout: 5) }
        // Events while the second one waits for the first one's heartbeat: all for the first.
        try redis.prefill("pixel", (101...200).map { PixelMessage.value(seq: $0) })
        // It sees the heartbeat renewed within a third of its 15 s.
        let secondStatus = try second.waitForExit(timeout: 15)
        let drained = try Poll.until(timeout: 20, interval: 0.02) { try redis.llen("pixel") == 0 && redis.llen("pixel:processing:same") == 0 }
        first.terminate()
        let firstStatus = try first.waitForExit(timeout: 10)
        let tally = Tally(first.process.stdout.rawLines + second.process.stdout.rawLines, expected: 1...200)
        let errorLines = second.stderrText.split(separator: "\n").filter { $0.hasPrefix("Error: ") }
        reportFault(
            "consumer-id-in-use",
            ["events": 200, "delivered": tally.delivered, "lost": tally.lost, "duplicated": tally.duplicated, "second_status": Int(secondStatus)]
        )
        #expect(firstDrained && drained, "\(first.process.tail)")
        #expect(secondStatus == 1, "\(second.process.tail)")
        #expect(second.process.stdout.rawLines.isEmpty, "the second consumer printed events")
        #expect(errorLines == ["Error: another consumer is running with id same (it renews its heartbeat pixel:consumer:same); two consumers must not share an id"], "\(second.stderrText)")
        #expect(firstStatus == 0, "\(first.process.tail)")
        #expect(tally.lost == 0 && tally.duplicated == 0, "\(tally.summary)")
        withExtendedLifetime(redis) {}
    }

    @Test("Redis over its unix socket, SIGKILLed and restarted while pixeld idles: pixeld lives on (its first write to the closed socket raises no SIGPIPE), nothing lost or doubled")
    func redisRestartOverTheUnixSocket() throws {
        let redis = try RedisServer.start(appendOnly: true, extraArgs: ["--appendfsync", "always"])
        let ingest = try IngestUnderTest(redisURL: redis.unixURL)
        let sender = try UDPSyslogSender(port: ingest.udpPort!)
        for seq in 1...100 { #expect(sender.send(PixelMessage.syslog(seq: seq))) }
        #expect(try redis.waitForLength("pixel", atLeast: 100, timeout: 10) == 100)
        // The writer idles on a connection Redis is about to close: the next commit is a write to a
        // unix socket without a peer, EPIPE — and SIGPIPE, unless ignored, ends the process.
        redis.kill()
        try redis.restart()
        for seq in 101...200 {
            #expect(sender.send(PixelMessage.syslog(seq: seq)))
            usleep(1000)
        }
        let outcome = try settle(ingest: ingest, redis: redis, expected: Set(1...200), sent: 200)
        reportFault(
            "redis-restart-unix-socket",
            [
                "transport": "udp", "redis": "unix socket", "sent": 200, "delivered": outcome.tally.delivered, "lost": outcome.lost,
                "duplicated": outcome.tally.duplicated, "kernel_drops": outcome.kernelDrops, "reconnects": outcome.metrics.reconnects,
            ]
        )
        #expect(ingest.process.isRunning, "pixeld died\(ingest.process.process.tail)")
        #expect(outcome.lost == 0, "\(outcome.tally.summary)")
        #expect(outcome.tally.duplicated == 0, "\(outcome.tally.summary)")
        #expect(outcome.metrics.reconnects >= 1)
        withExtendedLifetime((redis, ingest)) {}
    }

    @Test("Consumer printing into a pipe whose reader exits (| head -n 1): it stops with one error line and status 1; the batch it could not print is back in the list")
    func consumerStdoutReaderGone() throws {
        let redis = try RedisServer.start()
        try redis.prefill("pixel", (1...5).map { PixelMessage.value(seq: $0) })
        let script = "\"$0\" consume pixel --redis \"$1\" --consumer-id c1 | head -n 1 > /dev/null; echo \"status=${PIPESTATUS[0]}\" >&2"
        let pipeline = try ChildProcess(
            executable: URL(fileURLWithPath: "/bin/bash"), arguments: ["-c", script, try PixeldProcess.binaryURL().path, redis.url]
        )
        defer { pipeline.stop(timeout: 5) }
        // The first batch goes into the pipe (head reads a line of it and exits); each later one is
        // a write to a pipe without a reader.
        var next = 6
        let ended = try Poll.until(timeout: 30, interval: 0.2) {
            if try redis.llen("pixel") == 0 {
                try redis.prefill("pixel", [PixelMessage.value(seq: next)])
                next += 1
            }
            return !pipeline.isRunning
        }
        try #require(ended, "the consumer did not stop: \(pipeline.stderr.text)")
        let lines = pipeline.stderr.text.split(separator: "\n")
        #expect(lines.contains("status=1"), "\(pipeline.stderr.text)")
        #expect(lines.contains { $0.hasPrefix("Error: write stdout: Broken pipe (the reader is gone)") }, "\(pipeline.stderr.text)")
        // Acked: the first batch; everything after it (given back on stop) waits in the list.
        let left = try redis.arrivalOrder("pixel").compactMap(PixelMessage.seq(in:))
        #expect(!left.isEmpty && left == Array(left.first!..<next), "left in Redis: \(left), pushed up to \(next - 1)")
        #expect(try redis.llen("pixel:processing:c1") == 0)
        withExtendedLifetime(redis) {}
    }

    // MARK: 10

    @Test("Metrics invariant after mixed traffic: received = pushed + queued + spooled + dead-lettered + Σ dropped, per reason exact")
    func metricsInvariantMixedTraffic() throws {
        let redis = try RedisServer.start()
        #expect(try redis.command(["SET", "broken", "x"]) == .simpleString("OK"))
        let ingest = try IngestUnderTest(redisURL: redis.url, extra: ["--max-message-bytes", "2048"])

        var datagrams: [[UInt8]] = []
        var expectedDrops: [String: Int] = [:]
        func add(_ count: Int, _ reason: String?, _ make: (Int) -> [UInt8]) {
            for index in 0..<count { datagrams.append(make(index)) }
            if let reason { expectedDrops[reason, default: 0] += count }
        }
        var seq = 0
        add(1500, nil) { _ in seq += 1; return PixelMessage.syslog(seq: seq) }
        add(300, nil) { _ in
            seq += 1
            return Array("<158>1 2025-11-22T10:00:00.000Z web1 pixel 123 - - \(PixelMessage.value(seq: seq))".utf8)
        }
        let validPixel = seq
        add(200, nil) { _ in seq += 1; return PixelMessage.syslog(seq: seq, program: "broken") }
        let deadLetters = seq - validPixel
        add(300, "filtered") { _ in Array("<14>pixel: user facility".utf8) }
        add(100, "filtered") { _ in Array("<190>pixel: local7".utf8) }
        add(100, "malformed") { _ in Array("no priority at all".utf8) }
        add(100, "malformed") { _ in Array("<999>pixel: x".utf8) }
        add(100, "malformed") { _ in [UInt8](repeating: 0xFF, count: 50) }
        add(50, "malformed") { _ in Array("<158>1 garbage".utf8) }
        add(100, "no_program") { _ in Array("<158>1 - - - - - - x".utf8) }
        add(50, "no_program") { _ in Array("<158>".utf8) }
        add(100, "bad_program") { _ in Array("<158>pix$el: x".utf8) }
        add(50, "bad_program") { _ in Array("<158>\(String(repeating: "p", count: 65)): x".utf8) }
        add(60, "oversize") { _ in Array("<158>pixel: \(String(repeating: "x", count: 3000))".utf8) }
        // Deterministic shuffle so that every kind is interleaved with the others.
        var generator = SplitMix64(seed: 0x5EED)
        datagrams.shuffle(using: &generator)
        let messages = datagrams
        let stream = PacedStream(sender: try UDPSyslogSender(port: ingest.udpPort!), seqs: Array(0..<messages.count), rate: 2000) {
            messages[$0]
        }
        defer { stream.stop() }
        #expect(stream.wait(timeout: 30), "stream: \(stream.error ?? "did not finish")")
        let metrics = try ingest.waitUntilQuiescent(received: messages.count, timeout: 30)
        let pixel = Tally(try redis.arrivalOrder("pixel"), expected: 1...validPixel)
        let dead = Tally(try redis.arrivalOrder("broken:dead"), expected: Set((validPixel + 1)...seq))
        let reasons = ["malformed", "filtered", "no_program", "bad_program", "oversize", "spool_full", "redis_unavailable"]
        let droppedText = reasons.map { "\($0)=\(metrics.dropped($0))" }.joined(separator: ",")
        reportFault(
            "metrics-invariant-mixed",
            [
                "transport": "udp", "sent": messages.count, "received": metrics.received, "pushed": metrics.pushed,
                "queued": metrics.queued, "spooled": metrics.spooled, "dead_lettered": metrics.deadLettered,
                "dropped": "{\(droppedText)}", "kernel_drops": metrics.kernelDrops,
                "lost": pixel.lost + dead.lost, "duplicated": pixel.duplicated + dead.duplicated,
                "invariant": metrics.invariantHolds ? "holds" : "BROKEN",
            ]
        )
        #expect(metrics.kernelDrops == 0, "kernel dropped \(metrics.kernelDrops) datagrams: per-reason figures inexact")
        #expect(metrics.received == messages.count, "received \(metrics.received) of \(messages.count)")
        #expect(metrics.invariantHolds, "\(metrics.invariantText)")
        #expect(metrics.pushed == validPixel, "pushed \(metrics.pushed), expected \(validPixel)")
        #expect(metrics.deadLettered == deadLetters, "dead-lettered \(metrics.deadLettered), expected \(deadLetters)")
        for reason in reasons {
            #expect(metrics.dropped(reason) == expectedDrops[reason, default: 0], "dropped{reason=\(reason)}")
        }
        for reason in reasons {
            #expect(metrics.samples.contains { $0.name == "pixeld_ingest_dropped_total" && $0.labels["reason"] == reason }, "no series for \(reason)")
        }
        #expect(pixel.lost == 0 && pixel.duplicated == 0 && pixel.unexpected == 0, "pixel: \(pixel.summary)")
        #expect(dead.lost == 0 && dead.duplicated == 0, "broken:dead: \(dead.summary)")
        withExtendedLifetime((redis, ingest)) {}
    }

    // MARK: 11

    @Test(
        "A full list at --max-list-length (hold): messages wait, /healthz and one warning say full while a slow consumer makes room, then all arrive once",
        arguments: [false, true]
    )
    func fullListHolds(spooled: Bool) throws {
        let count = 3000, limit = 1000
        let redis = try RedisServer.start()
        let spool = try TempDirectory(prefix: "pixeld-spool")
        let ingest = try IngestUnderTest(
            redisURL: redis.url,
            extra: ["--max-list-length", String(limit)] + (spooled ? ["--spool", spool.appending("spool").path] : [])
        )
        let stream = PacedStream(sender: try UDPSyslogSender(port: ingest.udpPort!), seqs: Array(1...count), rate: Self.rate) {
            PixelMessage.syslog(seq: $0)
        }
        defer { stream.stop() }
        #expect(stream.wait(timeout: 30), "stream: \(stream.error ?? "did not finish")")
        // Everything received, the list at its limit, the rest (~2,000) held in memory or in the spool.
        let held = Poll.until(timeout: 10, interval: 0.05) {
            guard let metrics = try? ingest.scrape() else { return false }
            return metrics.received == count && metrics.queued + metrics.spooled > 0
        }
        #expect(held, "never held: \((try? ingest.scrape())?.invariantText ?? "no /metrics")")
        let lengthWhileFull = try redis.llen("pixel")
        let healthWhileFull = try httpGet(port: ingest.metricsPort, path: "/healthz")
        let refusal = "redis refused the commit (full), holding messages and retrying"
        func occurrences(_ text: String) -> Int { ingest.process.stderrText.components(separatedBy: text).count - 1 }

        // A slow consumer takes the oldest values (RPOP, arrival order): 1,000 over ~0.5 s, in steps of
        // 100. The writer gets batches in as room appears, and the backlog stays above one batch (half the
        // limit) throughout, so this is one hold: one warning, not one per batch let in.
        let connection = try redis.connect()
        var taken: [[UInt8]] = []
        func take(_ n: Int) throws { taken += try connection.command(["RPOP", "pixel", String(n)]).array?.compactMap(\.bytes) ?? [] }
        for _ in 0..<10 {
            try take(100)
            Thread.sleep(forTimeInterval: 0.05)
        }
        let warningsDuringSlowDrain = occurrences(refusal)
        let againDuringSlowDrain = occurrences("redis available again")
        // Then a fast one, until everything has arrived.
        Poll.until(timeout: 30, interval: 0.005) {
            (try? take(1000)) != nil && taken.count >= count
        }
        let metrics = try ingest.waitUntilQuiescent(received: count)
        let tally = Tally(taken + (try redis.arrivalOrder("pixel")), expected: Set(1...count))
        reportFault(
            "full-list-hold",
            [
                "spool": spooled, "transport": "udp", "sent": count, "delivered": tally.delivered, "lost": tally.lost,
                "duplicated": tally.duplicated, "kernel_drops": metrics.kernelDrops, "limit": limit,
                "llen_while_full": lengthWhileFull, "warnings_slow_drain": warningsDuringSlowDrain,
                "warnings": occurrences(refusal), "available_again": occurrences("redis available again"),
            ]
        )
        #expect(metrics.kernelDrops == 0, "the kernel dropped \(metrics.kernelDrops) datagrams")
        #expect((limit - 100)...limit ~= lengthWhileFull, "LLEN while held: \(lengthWhileFull)")
        #expect(
            healthWhileFull.hasPrefix(#"{"status":"degraded","redis":"full","failing_ms":"#),
            "/healthz while the list was full: \(healthWhileFull)"
        )
        #expect(warningsDuringSlowDrain == 1 && againDuringSlowDrain == 0, "\(ingest.process.stderrText)")
        #expect(occurrences("redis unavailable") == 0, "a full list reported as Redis unavailable: \(ingest.process.stderrText)")
        // Every hold ends once its backlog is in.
        #expect(occurrences("redis available again") == occurrences(refusal), "\(ingest.process.stderrText)")
        #expect(tally.lost == 0 && tally.duplicated == 0 && tally.unexpected == 0, "\(tally.summary)")
        #expect(tally.inOrder, "values out of arrival order")
        #expect(metrics.invariantHolds, "\(metrics.invariantText)")
        let healthAfter = try httpGet(port: ingest.metricsPort, path: "/healthz")
        #expect(healthAfter.hasPrefix(#"{"status":"ok","redis":"ok","received":"#), "/healthz after the consumer made room: \(healthAfter)")
        if spooled { #expect(metrics.spooled == 0 && ingest.process.stderrText.contains("spool replayed"), "\(ingest.process.stderrText)") }
        withExtendedLifetime((redis, ingest, spool)) {}
    }

    // MARK: Combined faults

    @Test("Redis outage with a spool, traffic including a WRONGTYPE key: after the replay every message is in pixel or broken:dead")
    func outageWithSpoolAndDeadLetterKey() throws {
        let count = 6000
        let redis = try RedisServer.start(appendOnly: true)  // the string key survives the restart
        #expect(try redis.command(["SET", "broken", "x"]) == .simpleString("OK"))
        let spool = try TempDirectory(prefix: "pixeld-spool")
        redis.stop()
        let ingest = try IngestUnderTest(redisURL: redis.url, extra: ["--spool", spool.appending("spool").path, "--buffer-bytes", "65536"])
        let stream = PacedStream(sender: try UDPSyslogSender(port: ingest.udpPort!), seqs: Array(1...count), rate: Self.rate) {
            PixelMessage.syslog(seq: $0, program: $0 % 2 == 1 ? "broken" : "pixel")
        }
        defer { stream.stop() }
        #expect(stream.wait(timeout: 30), "stream: \(stream.error ?? "did not finish")")
        var spooled = try ingest.scrape()
        Poll.until(timeout: 5, interval: 0.02) {
            spooled = (try? ingest.scrape()) ?? spooled
            return spooled.queued == 0 && spooled.spooled > 0 && spooled.received >= count - spooled.kernelDrops
        }
        try redis.restart()
        let evens = Set(stride(from: 2, through: count, by: 2))
        let odds = Set(stride(from: 1, through: count, by: 2))
        let outcome = try settle(ingest: ingest, redis: redis, expected: evens, sent: count)
        let dead = Tally(try redis.arrivalOrder("broken:dead"), expected: odds)
        reportFault(
            "outage-spool-with-dead-letter-key",
            [
                "transport": "udp", "sent": count, "delivered": outcome.tally.delivered + dead.delivered,
                "lost": outcome.lost + dead.lost, "duplicated": outcome.tally.duplicated + dead.duplicated,
                "kernel_drops": outcome.kernelDrops, "spooled": spooled.spooled, "pixel_lost": outcome.tally.lost,
                "dead_letters_lost": dead.lost, "pushed_total": outcome.metrics.pushed,
                "dead_lettered_total": outcome.metrics.deadLettered,
            ]
        )
        #expect(spooled.spooled > 0, "nothing was spooled: \(spooled.invariantText)")
        #expect(try redis.command(["GET", "broken"]) == .bulkString(Array("x".utf8)), "the string key did not survive")
        // The kernel's drops are counted for the socket, across both keys: what the two keys miss together
        // is what pixeld lost, plus those.
        #expect(
            outcome.tally.lost + dead.lost == outcome.kernelDrops,
            """
            pixel: \(outcome.tally.summary); broken:dead: \(dead.summary); kernel drops \(outcome.kernelDrops). While replaying the spool, LPushWriter.settle \
            commits the dead-letter batch of the first replayed record at once, with a new sequence number of the same \
            writer instance (self.sequence + 1, higher than every record still spooled); the commit marker then makes the \
            script return -1 for every later spooled record of this instance, and settle books them as pushed.
            """
        )
        #expect(outcome.tally.duplicated == 0 && dead.duplicated == 0)
        withExtendedLifetime((redis, ingest, spool)) {}
    }

    /// With 4,096-event batches, every take and ack in flight is large, so kills land mid-transfer.
    @Test(
        "Consumer --output while CLIENT KILL cuts its connection every 150 ms: every event exactly once in the file",
        arguments: [512, 4096]
    )
    func consumerOutputUnderClientKill(batchSize: Int) throws {
        let count = 50_000
        let redis = try RedisServer.start()
        let run = try FileConsumerRun(redis: redis, events: count, url: redis.url, batchSize: batchSize)
        defer { run.stop() }
        let port = redis.port
        let killed = Shared(0)
        let killer = Repeater(interval: 0.15, maxRounds: 40) {
            guard let connection = try? RESPConnection(port: port, timeout: 2),
                let reply = try? connection.command(["CLIENT", "KILL", "TYPE", "normal"])
            else { return }
            if let number = reply.integer { killed.update { $0 += Int(number) } }
        }
        // Kills stop once the list is drained (or after 40 rounds); redis reads tolerate being killed too.
        Poll.until(timeout: 60, interval: 0.05) { ((try? redis.llen("pixel")) ?? 1) == 0 || killer.rounds >= 40 }
        killer.stop()
        let (drained, status, tally) = try run.finish()
        reportFault(
            "consumer-output-client-kill",
            [
                "events": count, "batch_size": batchSize, "delivered": tally.delivered, "lost": tally.lost, "duplicated": tally.duplicated,
                "kill_rounds": killer.rounds, "connections_killed": killed.current,
            ]
        )
        #expect(killed.current > 0, "CLIENT KILL never hit the consumer")
        #expect(drained, "not drained\(run.consumer.process.tail)")
        #expect(status == 0)
        #expect(tally.lost == 0, "\(tally.summary)")
        #expect(
            tally.duplicated == 0,
            """
            \(tally.summary). When the ack (the script: SET offset, LTRIM processing) fails on a killed connection, \
            ReliableListConsumer retries the batch from its processing list and EventPrinter.handle appends it to the \
            file again: the in-process retry never cuts the file back to the acknowledged length (only a restart does), \
            and the in-memory offset already counts the first copy.
            """
        )
        withExtendedLifetime(redis) {}
    }

    // MARK: Lost replies

    /// The consumer's two kinds of reply that a lost one could double or lose events through: its
    /// acks (the ack script's `SET offset`, `LTRIM processing`, applied, the reply lost: the file
    /// must not get the batch again) and its takes and reads of its processing list (the take moved
    /// the events, the reply lost: they must still be handled, from the processing list).
    @Test(
        "Consumer --output with every 3rd ack or take reply lost (Redis applied it): every event exactly once in the file",
        arguments: [ReplyLosingProxy.Replies.acks, .arrays]
    )
    func consumerOutputReplyLost(replies: ReplyLosingProxy.Replies) throws {
        let count = 20_000
        let redis = try RedisServer.start()
        let proxy = try ReplyLosingProxy(upstreamPort: redis.port, dropEvery: 3, replies: replies)
        defer { proxy.close() }
        let run = try FileConsumerRun(redis: redis, events: count, url: proxy.url, batchSize: 512)
        defer { run.stop() }
        let (drained, status, tally) = try run.finish()
        reportFault(
            "consumer-output-reply-lost",
            [
                "replies": replies, "events": count, "delivered": tally.delivered, "lost": tally.lost,
                "duplicated": tally.duplicated, "replies_dropped": proxy.droppedReplies, "connections": proxy.connections,
            ]
        )
        #expect(proxy.droppedReplies >= 5, "the proxy withheld only \(proxy.droppedReplies) replies")
        #expect(drained, "not drained\(run.consumer.process.tail)")
        #expect(status == 0)
        #expect(tally.lost == 0 && tally.duplicated == 0, "\(tally.summary)")
        #expect(tally.inOrder, "the file is out of the list's order")
        withExtendedLifetime((redis, proxy)) {}
    }

    @Test("Commit replies lost on the way back (proxy closes the connection after Redis applied the batch): no duplicates")
    func commitReplyLost() throws {
        try replyLossScenario(withBrokenKey: false)
    }

    @Test("Commit replies lost with a WRONGTYPE key in the batch: the broken key's messages still reach broken:dead")
    func commitReplyLostWithDeadLetterKey() throws {
        try replyLossScenario(withBrokenKey: true)
    }

    private func replyLossScenario(withBrokenKey: Bool) throws {
        let count = 6000
        let redis = try RedisServer.start()
        if withBrokenKey { _ = try redis.command(["SET", "broken", "x"]) }
        // Every 3rd applied-commit reply: with a dead-letter key, replies alternate between mixed batches
        // and their dead-letter pushes, and an even period would only ever hit the latter.
        let proxy = try ReplyLosingProxy(upstreamPort: redis.port, dropEvery: 3)
        defer { proxy.close() }
        let ingest = try IngestUnderTest(redisURL: proxy.url)
        let stream = PacedStream(sender: try UDPSyslogSender(port: ingest.udpPort!), seqs: Array(1...count), rate: 2000) {
            PixelMessage.syslog(seq: $0, program: withBrokenKey && $0 % 2 == 1 ? "broken" : "pixel")
        }
        defer { stream.stop() }
        #expect(stream.wait(timeout: 30), "stream: \(stream.error ?? "did not finish")")
        let pixelSeqs = withBrokenKey ? Set(stride(from: 2, through: count, by: 2)) : Set(1...count)
        let brokenSeqs = withBrokenKey ? Set(stride(from: 1, through: count, by: 2)) : []
        let outcome = try settle(ingest: ingest, redis: redis, expected: pixelSeqs, sent: count)
        let dead = Tally(try redis.arrivalOrder("broken:dead"), expected: brokenSeqs)
        reportFault(
            withBrokenKey ? "commit-reply-lost-with-dead-letter-key" : "commit-reply-lost",
            [
                "transport": "udp", "sent": count, "delivered": outcome.tally.delivered + dead.delivered,
                "lost": outcome.lost + dead.lost, "duplicated": outcome.tally.duplicated + dead.duplicated,
                "kernel_drops": outcome.kernelDrops, "replies_dropped": proxy.droppedReplies,
                "connections": proxy.connections, "dead_letters_missing": dead.lost,
                "pushed_total": outcome.metrics.pushed, "dead_lettered_total": outcome.metrics.deadLettered,
            ]
        )
        #expect(proxy.droppedReplies > 0, "the proxy never withheld a reply")
        // The kernel's drops are counted for the socket, across both keys.
        #expect(
            outcome.tally.lost + dead.lost == outcome.kernelDrops && outcome.tally.duplicated == 0,
            "pixel: \(outcome.tally.summary); broken:dead: \(dead.summary); kernel drops \(outcome.kernelDrops)"
        )
        #expect(outcome.tally.inOrder, "pixel out of arrival order")
        if withBrokenKey {
            #expect(
                dead.lost == 0 || outcome.kernelDrops > 0,
                """
                broken:dead: \(dead.summary). A batch whose commit reply was lost is recognised as already applied \
                on retry (-1) and LPushWriter.settle books all of it as pushed, including the WRONGTYPE key whose \
                pcall had failed inside that earlier run: those values are never dead-lettered.
                """
            )
            #expect(dead.duplicated == 0, "broken:dead: \(dead.summary)")
            #expect(
                outcome.metrics.deadLettered == dead.delivered && outcome.metrics.pushed == outcome.tally.delivered,
                "metrics say pushed \(outcome.metrics.pushed) / dead-lettered \(outcome.metrics.deadLettered); Redis holds \(outcome.tally.delivered) / \(dead.delivered)"
            )
        }
        withExtendedLifetime((redis, ingest, proxy)) {}
    }

    // MARK: - Helpers

    /// Starts the consumer c1 again with `arguments` (writing `file`), waits (up to 2 minutes) for
    /// `pixel` and c1's processing list to be empty, stops it (SIGTERM) and tallies the file's
    /// complete lines against `1...events`.
    private func drainAgain(
        _ arguments: [String], redis: RedisServer, file: String, events: Int
    ) throws -> (consumer: PixeldProcess, drained: Bool, status: Int32, tally: Tally) {
        let consumer = try PixeldProcess.start(arguments)
        defer { consumer.process.stop(timeout: 5) }
        let drained = try Poll.until(timeout: 120, interval: 0.05) {
            try redis.llen("pixel") == 0 && redis.llen("pixel:processing:c1") == 0
        }
        consumer.terminate()
        let status = try consumer.waitForExit(timeout: 10)
        return (consumer, drained, status, Tally(completeLines(ofFile: file), expected: 1...events))
    }

    /// `pixeld consume pixel --output FILE --consumer-id c1` through `url`, over `events` numbered
    /// events prefilled into `redis`'s `pixel`.
    struct FileConsumerRun {
        let redis: RedisServer
        let events: Int
        let consumer: PixeldProcess
        let directory: TempDirectory
        var file: String { directory.appending("events.jsonl").path }

        init(redis: RedisServer, events: Int, url: String, batchSize: Int) throws {
            try redis.prefill("pixel", (1...events).map { PixelMessage.value(seq: $0) })
            self.redis = redis
            self.events = events
            directory = try TempDirectory(prefix: "pixeld-out")
            consumer = try PixeldProcess.start([
                "consume", "pixel", "--redis", url, "--consumer-id", "c1", "--heartbeat-seconds", "3", "--output", directory.appending("events.jsonl").path,
                "--batch-size", "\(batchSize)",
            ])
        }

        /// Stops the consumer if it still runs (SIGTERM, then SIGKILL after 5 s): `defer` it, so
        /// that a test that throws before ``finish()`` leaves no process behind.
        func stop() {
            consumer.process.stop(timeout: 5)
        }

        /// Waits (up to 2 minutes) for `pixel` and c1's processing list to be empty, stops the
        /// consumer (SIGTERM), and tallies the file's complete lines.
        func finish() throws -> (drained: Bool, status: Int32, tally: Tally) {
            defer { stop() }
            let drained = Poll.until(timeout: 120, interval: 0.05) {
                ((try? redis.llen("pixel")) ?? 1) == 0 && ((try? redis.llen("pixel:processing:c1")) ?? 1) == 0
            }
            consumer.terminate()
            let status = try consumer.waitForExit(timeout: 10)
            return (drained, status, Tally(completeLines(ofFile: file), expected: 1...events))
        }
    }

    struct Outcome {
        var tally: Tally
        var metrics: IngestMetrics
        /// Datagrams the kernel dropped before pixeld could read them (UDP only), as the kernel
        /// counts them for pixeld's socket (`/proc/net/udp`).
        var kernelDrops: Int
        /// Lost by pixeld: expected, not kernel-dropped, and not in Redis.
        var lost: Int { tally.lost - kernelDrops }
    }

    /// Waits until ingest has received everything the kernel did not drop and accounted for it, then
    /// counts the list `key`. Call it once the stream has ended: on loopback every datagram is queued
    /// on pixeld's socket or counted dropped by the time `sendto` returns, so the kernel's counter is
    /// final. Records an issue unless pixeld's `received` plus the kernel's drops is exactly `sent`
    /// (over TCP: unless `received` is `sent`); a receiver that stops reading cannot pass as drops.
    private func settle(
        ingest: IngestUnderTest,
        redis: RedisServer,
        key: String = "pixel",
        expected: Set<Int>,
        sent: Int,
        udp: Bool = true,
        timeout: TimeInterval = 30
    ) throws -> Outcome {
        var kernelDrops = 0
        if udp {
            let port = try #require(ingest.udpPort, "settle(udp: true) for an ingest without --udp")
            #if os(Linux)
            kernelDrops = try #require(kernelUDPDrops(port: port), "no socket on 127.0.0.1:\(port) in /proc/net/udp")
            #endif
        }
        let metrics = try ingest.waitUntilQuiescent(received: sent - kernelDrops, timeout: timeout)
        if udp, let port = ingest.udpPort {
            #if os(Linux)
            // Read again: it cannot have moved (nothing was sent since), and a change would say so.
            let again = try #require(kernelUDPDrops(port: port), "no socket on 127.0.0.1:\(port) in /proc/net/udp")
            #expect(again == kernelDrops, "the kernel's drop counter moved after the stream ended: \(kernelDrops) → \(again)")
            kernelDrops = again
            #else
            kernelDrops = metrics.kernelDrops  // SO_RXQ_OVFL, where the platform has it
            #endif
            // pixeld learns the kernel's counter only with a later datagram (SO_RXQ_OVFL): never more.
            #expect(metrics.kernelDrops <= kernelDrops, "pixeld reports \(metrics.kernelDrops) kernel drops, the kernel \(kernelDrops)")
        }
        #expect(
            metrics.received + kernelDrops == sent,
            "sent \(sent), pixeld received \(metrics.received), the kernel dropped \(kernelDrops)"
        )
        let tally = Tally(try redis.arrivalOrder(key), expected: expected)
        return Outcome(tally: tally, metrics: metrics, kernelDrops: kernelDrops)
    }

    /// Milliseconds until `LLEN key` grows past its current length (read right away), or `nil`.
    private func firstGrowth(of key: String, in redis: RedisServer, timeout: TimeInterval) throws -> Int? {
        let start = ContinuousClock.now
        let connection = try redis.connect()
        let baseline = try connection.command(["LLEN", key]).integer ?? 0
        var result: Int?
        Poll.until(timeout: timeout, interval: 0.002) {
            let length = (try? connection.command(["LLEN", key]).integer) ?? baseline
            if length > baseline { result = milliseconds(since: start) }
            return result != nil
        }
        return result
    }
}

/// Total size of the regular files in `path` (0 when it does not exist).
func directorySize(_ path: String) -> Int {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
    return names.reduce(0) { total, name in
        let attributes = try? FileManager.default.attributesOfItem(atPath: path + "/" + name)
        return total + ((attributes?[.size] as? NSNumber)?.intValue ?? 0)
    }
}

/// The newline-terminated lines of a file (a torn last line is left out).
func completeLines(ofFile path: String) -> [[UInt8]] {
    guard let data = FileManager.default.contents(atPath: path) else { return [] }
    let bytes = [UInt8](data)
    guard let last = bytes.lastIndex(of: UInt8(ascii: "\n")) else { return [] }
    return bytes[..<last].split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).map(Array.init)
}

