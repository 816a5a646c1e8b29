import Foundation
import PixeldTestSupport
import Testing

/// `pixeld consume --metrics`: what the consumer did, in Prometheus text, and a health check that
/// follows Redis.
@Suite(.serialized, .enabled(if: TestEnvironment.canRun("redis-server")))
struct ConsumeMetricsTests {
    @Test func consumeServesItsCountersAndAHealthCheckThatFollowsRedis() throws {
        let redis = try RedisServer.start()
        let (consume, port) = try consumeUntilDrained(redis, (1...50).map { PixelMessage.value(seq: $0) } + ["not an event"], dead: 1)
        defer { consume.process.stop(timeout: 5) }
        #expect(try httpGet(port: port, path: "/healthz") == "ok\n")
        redis.stop()
        let unhealthy = Poll.until(timeout: 10, interval: 0.1) { (try? httpGet(port: port, path: "/healthz")) == "redis not answering\n" }
        #expect(unhealthy, "/healthz still ok with Redis stopped")
        try redis.restart()
        #expect(Poll.until(timeout: 10, interval: 0.1) { (try? httpGet(port: port, path: "/healthz")) == "ok\n" }, "/healthz not ok again")
        consume.terminate()
        #expect(try consume.waitForExit(timeout: 10) == 0, "\(consume.process.tail)")
    }

    /// A consumer's Redis made a replica (a failover; `REPLICAOF` here) answers its writes with
    /// `READONLY`: /healthz names that (it said `redis not answering`, which sent operators looking
    /// for a Redis that was up), says `ok` again once Redis is a master again (`REPLICAOF NO ONE`),
    /// and `redis not answering` for a stopped Redis.
    @Test func healthzNamesTheErrorRedisAnswersWith() throws {
        let (redis, master, healthz, consume) = try consumerOfAFutureReplica()
        defer { consume.process.stop(timeout: 5) }
        #expect(healthz.answers("ok\n", within: 20), "/healthz: \(healthz.last)\(consume.process.tail)")
        #expect(try redis.command(["REPLICAOF", "127.0.0.1", String(master.port)]) == .simpleString("OK"))
        try expectMasterAgainAndDrained(redis, healthz, consume)
        redis.stop()
        #expect(healthz.answers("redis not answering\n", within: 10), "/healthz: \(healthz.last)")
        consume.terminate()
        #expect(try consume.waitForExit(timeout: 10) == 0, "\(consume.process.tail)")
        withExtendedLifetime(master) {}
    }

    /// A consumer of `pixel` with `--metrics` on a Redis that a test makes a replica of the second one.
    private func consumerOfAFutureReplica() throws -> (RedisServer, master: RedisServer, Healthz, PixeldProcess) {
        let redis = try RedisServer.start(), master = try RedisServer.start()
        let port = try PortAllocator.freeTCPPort()
        let consume = try PixeldProcess.start(["consume", "pixel", "--redis", redis.url, "--metrics", "127.0.0.1:\(port)"])
        return (redis, master, Healthz(port: port), consume)
    }

    /// After `REPLICAOF` made the consumer's Redis a replica: /healthz names `READONLY`, then says
    /// `ok` once Redis is a master again (`REPLICAOF NO ONE`), and the consumer takes what comes.
    private func expectMasterAgainAndDrained(_ redis: RedisServer, _ healthz: Healthz, _ consume: PixeldProcess) throws {
        #expect(
            healthz.answers("redis answers READONLY (a replica? point --redis at the master)\n", within: 20),
            "/healthz: \(healthz.last)\(consume.process.tail)"
        )
        #expect(try redis.command(["REPLICAOF", "NO", "ONE"]) == .simpleString("OK"))
        #expect(healthz.answers("ok\n", within: 20), "/healthz: \(healthz.last)\(consume.process.tail)")
        try redis.prefill("pixel", (1...5).map { PixelMessage.value(seq: $0) })
        #expect(Poll.until(timeout: 20, interval: 0.05) { (try? redis.llen("pixel")) == 0 }, "not consumed after REPLICAOF NO ONE")
    }

    /// `REPLICAOF` while the consumer waits in `BLMOVE`: Redis answers it `UNBLOCKED force unblock
    /// from blocking operation, instance state changed (master -> replica?)` before the next call
    /// meets `READONLY`. /healthz showed that raw text; it names it now, with what to do, and the
    /// consumer retries it as an outage (no handler failure) and drains once Redis is a master again.
    /// To hold the moment, `CLIENT PAUSE … WRITE` goes in the same write as `REPLICAOF`: the
    /// consumer's next call (its heartbeat, a script) waits out the pause. (`REPLICAOF` unblocks only
    /// a consumer in `BLMOVE`, where it spends nearly all its idle time: tried up to 3 times.)
    @Test func healthzNamesUnblockedAfterReplicaof() throws {
        let (redis, master, healthz, consume) = try consumerOfAFutureReplica()
        defer { consume.process.stop(timeout: 5) }
        let admin = try redis.connect()
        var seen: [String] = []
        for _ in 1...3 {
            #expect(healthz.answers("ok\n", within: 20), "/healthz: \(healthz.last)\(consume.process.tail)")
            _ = Poll.until(timeout: 5, interval: 0.01) {
                ((try? admin.command(["CLIENT", "LIST"]).string) ?? "").split(separator: "\n").contains {
                    $0.contains(" flags=b ") && $0.contains(" cmd=blmove ")
                }
            }
            let replies = try admin.pipeline([["REPLICAOF", "127.0.0.1", String(master.port)], ["CLIENT", "PAUSE", "3000", "WRITE"]])
            #expect(replies == [.simpleString("OK"), .simpleString("OK")], "\(replies)")
            let unblocked = healthz.answers("redis answers UNBLOCKED", within: 2.5, interval: 0.02, prefixOnly: true) {
                if seen.last != $0 { seen.append($0) }
            }
            if unblocked { break }
            _ = try admin.pipeline([["CLIENT", "UNPAUSE"], ["REPLICAOF", "NO", "ONE"]])
        }
        #expect(healthz.last == "redis answers UNBLOCKED (it changed role, made a replica? point --redis at the master)\n", "/healthz answers seen: \(seen)")
        try expectMasterAgainAndDrained(redis, healthz, consume)
        let metrics = ((try? httpGet(port: healthz.port, path: "/metrics")) ?? "").split(separator: "\n")
        #expect(metrics.contains("pixeld_consume_handler_failures_total 0"), "\(metrics.filter { $0.contains("handler_failures") })")
        consume.terminate()
        #expect(try consume.waitForExit(timeout: 10) == 0, "\(consume.process.tail)")
        withExtendedLifetime(master) {}
    }

    /// 2,000 values that are not events, in batches of 512: one warning (the first batch's 512, where
    /// they went, the first one's reason and a sample), the other batches at debug — before, a
    /// warning per value, 2,000 lines. The counts stay exact: 2,000 in pixel:dead and in the metric.
    @Test func aFloodOfUndecodableValuesLogsOneWarningWithTheCount() throws {
        let redis = try RedisServer.start()
        let junk = (1...2_000).map { "junk \($0) " + String(repeating: "x", count: 100) }
        let (consume, _) = try consumeUntilDrained(redis, junk + [PixelMessage.value(seq: 1)], dead: 2_000)
        defer { consume.process.stop(timeout: 5) }
        consume.terminate()
        #expect(try consume.waitForExit(timeout: 10) == 0, "\(consume.process.tail)")
        let lines = consume.stderrText.split(separator: "\n").filter { $0.contains("dead-letter") }
        #expect(lines.count == 1, "\(lines.count) lines about dead letters, the first: \(lines.first ?? "")")
        let line = String(lines.first ?? "")
        #expect(line.contains(" warning "), "\(line)")
        for field in ["events=512", "redis.key=pixel:dead", "reason=unknown_shape", "sample=junk 1 xxxxxxxxxx"] {
            #expect(line.contains(field), "no \(field) in: \(line)")
        }
        #expect(!line.contains(String(repeating: "x", count: 100)), "the sample is not cut: \(line)")
    }

    /// How a test breaks the handler's preparation (`prepare`: its output cut back to the lengths
    /// Redis acknowledged, at start and after any failure), and mends it.
    enum BrokenPreparation: String, CaseIterable, CustomTestStringConvertible {
        /// `--output`, its acknowledged length's key `pixel:output:c1` a list (`GET`: `WRONGTYPE`),
        /// from the start.
        case outputLengthOfTheWrongType
        /// `--site --archive`, its acknowledged lengths' key `pixel:archive:c1` a string (`HGETALL`:
        /// `WRONGTYPE`), from the start.
        case archiveLengthsOfTheWrongType
        /// `--site --archive`, its directory removed under the running consumer: the batch fails
        /// (the day's file cannot be made), then every preparation (the directory cannot be read).
        case archiveDirectoryRemoved

        var testDescription: String { rawValue }
    }

    /// A preparation that fails is a failure of the handler, retried as one: counted in
    /// pixeld_consume_handler_failures_total, /healthz says batches are failing, and the log says it
    /// once, with the cause; once the cause is gone, the log says the preparation recovered, /healthz
    /// is ok and every event is handled. Before, a Redis error reply there (`WRONGTYPE`) was taken
    /// for an outage (a warning `redis error in consumer, retrying`, /healthz `redis not answering`,
    /// nothing counted), and any other failure was logged but not counted (the counter stayed at the
    /// one failed batch).
    /// A preparation Redis refuses (here the ACL denies `HGETALL`, which reads the archive lengths;
    /// out of memory, `BUSY` alike) is Redis's problem, not the handler's: `/healthz` names the
    /// error and nothing is counted as a handler failure (it was counted, and `/healthz` said
    /// `batches failing`). Once Redis allows it, the list drains.
    @Test func aPreparationRedisRefusesIsAnOutageNotAHandlerFailure() throws {
        let redis = try RedisServer.start()
        let archive = try TempDirectory(prefix: "pixeld-prepare-acl")
        let port = try PortAllocator.freeTCPPort()
        _ = try redis.command(["ACL", "SETUSER", "default", "-hgetall"])
        try redis.prefill("pixel", (1...20).map { PixelMessage.value(seq: $0) })
        let consume = try PixeldProcess.start([
            "consume", "pixel", "--redis", redis.url, "--metrics", "127.0.0.1:\(port)", "--consumer-id", "c1",
            "--site", "example.com", "--archive", archive.path,
        ])
        defer { consume.process.stop(timeout: 5) }
        try expectAnOutageUntilAllowed(named: "NOPERM", redis, Healthz(port: port), consume) {
            _ = try redis.command(["ACL", "SETUSER", "default", "+hgetall"])
        }
    }

    /// The load of a day's visitor key (`--site`) refused by Redis itself (here its ACL denies the
    /// daily keys, `pixeld:key:*`, and nothing else; out of memory, `BUSY` alike) is an outage, as the
    /// same refusal of the handler's preparation is: `/healthz` names Redis's error, and nothing is
    /// counted as a failure of the handler. It was counted (`handler failed; batch kept for retry`,
    /// `pixeld_consume_handler_failures_total`, `/healthz` "batches failing"). Once Redis allows it,
    /// the list drains.
    @Test func aKeyLoadRedisRefusesIsAnOutageNotAHandlerFailure() throws {
        let redis = try RedisServer.start()
        let port = try PortAllocator.freeTCPPort()
        _ = try redis.command(["ACL", "SETUSER", "default", "resetkeys", "~pixel", "~pixel:*", "~pixeld:[^k]*"])
        // Hits of now: the day's key is loaded (a value of `PixelMessage` is from 2025, too old).
        let now = Int(Date().timeIntervalSince1970 * 1000)
        try redis.prefill("pixel", (1...20).map { "\(now / 1000).\(PixelMessage.zeroPadded(now % 1000, 3)),e=pageview&u=https%3A%2F%2Fexample.com%2Fp\($0)" })
        let consume = try PixeldProcess.start([
            "consume", "pixel", "--redis", redis.url, "--metrics", "127.0.0.1:\(port)", "--consumer-id", "c1", "--site", "example.com",
        ])
        defer { consume.process.stop(timeout: 5) }
        try expectAnOutageUntilAllowed(named: "NOPERM", redis, Healthz(port: port), consume) {
            _ = try redis.command(["ACL", "SETUSER", "default", "allkeys"])
        }
    }

    /// Redis refuses a step of the consumer `c1`'s handler until `allow` runs: `/healthz` names its
    /// error (`redis answers <prefix>…`), nothing is counted as a failure of the handler; once
    /// allowed, `pixel` drains and `/healthz` says `ok`; the consumer stops with status 0.
    private func expectAnOutageUntilAllowed(
        named prefix: String, _ redis: RedisServer, _ healthz: Healthz, _ consume: PixeldProcess, allow: () throws -> Void
    ) throws {
        let named = healthz.answers("redis answers \(prefix)", within: 20, prefixOnly: true)
        #expect(named, "/healthz: \(healthz.last)\(consume.process.tail)")
        Thread.sleep(forTimeInterval: 1)  // a few retries
        let metrics = (try? httpGet(port: healthz.port, path: "/metrics")) ?? ""
        #expect(metrics.contains("pixeld_consume_handler_failures_total 0"), "\(metrics.split(separator: "\n").filter { $0.contains("handler_failures") })")
        #expect(!consume.stderrText.contains("handler failed"), "\(consume.stderrText)")
        try allow()
        let drained = Poll.until(timeout: 20, interval: 0.05) {
            (try? redis.llen("pixel") == 0 && redis.llen("pixel:processing:c1") == 0) ?? false
        }
        #expect(drained, "not drained once allowed\(consume.process.tail)")
        #expect(healthz.answers("ok\n", within: 10), "\(consume.process.tail)")
        consume.terminate()
        #expect(try consume.waitForExit(timeout: 10) == 0, "\(consume.process.tail)")
    }

    @Test(arguments: BrokenPreparation.allCases)
    func aFailingPreparationIsCountedAndRecovers(_ broken: BrokenPreparation) throws {
        let redis = try RedisServer.start()
        let directory = try TempDirectory(prefix: "pixeld-prepare")
        let archive = directory.appending("archive").path
        try FileManager.default.createDirectory(atPath: archive, withIntermediateDirectories: true)
        let port = try PortAllocator.freeTCPPort()
        var arguments = ["consume", "pixel", "--redis", redis.url, "--metrics", "127.0.0.1:\(port)", "--consumer-id", "c1"]
        let events = (1...20).map { PixelMessage.value(seq: $0) }
        switch broken {
        case .outputLengthOfTheWrongType:
            arguments += ["--output", directory.appending("events.jsonl").path]
            _ = try redis.command(["RPUSH", "pixel:output:c1", "x"])
            try redis.prefill("pixel", events)
        case .archiveLengthsOfTheWrongType:
            arguments += ["--site", "example.com", "--archive", archive]
            _ = try redis.command(["SET", "pixel:archive:c1", "x"])
            try redis.prefill("pixel", events)
        case .archiveDirectoryRemoved:
            arguments += ["--site", "example.com", "--archive", archive]
        }
        let consume = try PixeldProcess.start(arguments)
        defer { consume.process.stop(timeout: 5) }
        if broken == .archiveDirectoryRemoved {
            try consume.waitForStderr(containing: "consume ready")
            try FileManager.default.removeItem(atPath: archive)
            try redis.prefill("pixel", events)
        }
        var health = ""
        let unhealthy = Poll.until(timeout: 20, interval: 0.05) {
            health = (try? httpGet(port: port, path: "/healthz")) ?? ""
            return health == "batches failing (see the log), none acked since\n"
        }
        #expect(unhealthy, "/healthz: \(health)\(consume.process.tail)")
        var failures = 0
        let counted = Poll.until(timeout: 20, interval: 0.05) {
            let metrics = (try? httpGet(port: port, path: "/metrics")) ?? ""
            let line = metrics.split(separator: "\n").first { $0.hasPrefix("pixeld_consume_handler_failures_total ") }
            failures = line.flatMap { Int($0.split(separator: " ").last ?? "") } ?? 0
            return failures >= 3
        }
        #expect(counted, "pixeld_consume_handler_failures_total \(failures)\(consume.process.tail)")
        let errors = consume.stderrText.split(separator: "\n").filter { $0.contains(" error ") }
        let (message, cause) =
            broken == .archiveDirectoryRemoved
            ? ("handler failed; batch kept for retry", "No such file or directory") : ("consumer preparation failed; retrying", "WRONGTYPE")
        #expect(errors.count == 1, "\(errors.count) error lines\(consume.process.tail)")
        #expect(errors.first.map { $0.contains(message) && $0.contains(cause) } == true, "\(errors)")

        switch broken {
        case .outputLengthOfTheWrongType: _ = try redis.command(["DEL", "pixel:output:c1"])
        case .archiveLengthsOfTheWrongType: _ = try redis.command(["DEL", "pixel:archive:c1"])
        case .archiveDirectoryRemoved: try FileManager.default.createDirectory(atPath: archive, withIntermediateDirectories: true)
        }
        let drained = Poll.until(timeout: 20, interval: 0.05) {
            (try? redis.llen("pixel") == 0 && redis.llen("pixel:processing:c1") == 0) ?? false
        }
        #expect(drained, "not drained once mended\(consume.process.tail)")
        #expect(Poll.until(timeout: 10, interval: 0.05) { (try? httpGet(port: port, path: "/healthz")) == "ok\n" }, "\(consume.process.tail)")
        #expect(consume.stderrText.contains("consumer preparation recovered"), "\(consume.process.tail)")
        consume.terminate()
        #expect(try consume.waitForExit(timeout: 10) == 0, "\(consume.process.tail)")
    }

    /// `pixeld consume pixel --metrics` over `values` (prefilled, the first oldest), until the list is
    /// drained, `dead` of them are in pixel:dead and the metrics count them all, `dead` as dead letters.
    private func consumeUntilDrained(_ redis: RedisServer, _ values: [String], dead: Int) throws -> (PixeldProcess, port: Int) {
        try redis.prefill("pixel", values)
        let port = try PortAllocator.freeTCPPort()
        let consume = try PixeldProcess.start(["consume", "pixel", "--redis", redis.url, "--metrics", "127.0.0.1:\(port)"])
        let drained = Poll.until(timeout: 20, interval: 0.02) { (try? redis.llen("pixel") == 0 && redis.llen("pixel:dead") == dead) ?? false }
        #expect(drained, "\(consume.process.tail)")
        var metrics = ""
        let counted = Poll.until(timeout: 5, interval: 0.05) {
            metrics = (try? httpGet(port: port, path: "/metrics")) ?? ""
            return metrics.contains("pixeld_consume_events_total \(values.count)")
        }
        #expect(counted, "\(metrics)")
        #expect(metrics.contains("pixeld_consume_dead_lettered_total \(dead)"), "\(metrics)")
        return (consume, port)
    }

    /// A client that sends its request a byte every 0.5 s (never long enough for one read to time out)
    /// neither holds `/healthz` up nor keeps its connection: the server closes it 2 s after the
    /// connect, however it trickles (here it would go on for 10 s).
    @Test func aClientThatTricklesItsRequestDoesNotHoldTheMetricsUp() throws {
        let redis = try RedisServer.start()
        let port = try PortAllocator.freeTCPPort()
        let consume = try PixeldProcess.start(["consume", "pixel", "--redis", redis.url, "--metrics", "127.0.0.1:\(port)"])
        defer { consume.process.stop(timeout: 5) }
        #expect(Poll.until(timeout: 20, interval: 0.05) { (try? httpGet(port: port, path: "/healthz")) == "ok\n" }, "\(consume.process.tail)")
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, "127.0.0.1", &address.sin_addr)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        #expect(connected == 0)
        let connectedAt = Date()
        let cutOffAfter = Shared<Double?>(nil)
        let trickler = Thread {
            for _ in 0..<20 {  // 10 s at most
                guard send(fd, "G", 1, Int32(MSG_NOSIGNAL)) == 1 else {
                    cutOffAfter.update { $0 = Date().timeIntervalSince(connectedAt) }
                    return
                }
                usleep(500_000)
            }
        }
        trickler.start()
        usleep(300_000)  // the server is reading the trickle now
        let started = Date()
        let health = try? httpGet(port: port, path: "/healthz", timeout: 15)
        let waited = Date().timeIntervalSince(started)
        #expect(health == "ok\n")
        #expect(waited < 4, "/healthz waited \(waited) s behind a trickling client")
        // Closed at 2 s; a send fails at the next byte but one (the first is answered with a reset).
        #expect(Poll.until(timeout: 8, interval: 0.05) { cutOffAfter.current != nil }, "the trickling client was never cut off")
        #expect((cutOffAfter.current ?? 99) < 4, "the trickling client was cut off after \(cutOffAfter.current ?? -1) s")
        consume.terminate()
        #expect(try consume.waitForExit(timeout: 10) == 0, "\(consume.process.tail)")
    }

    /// A consumer that cannot write its output (here /dev/full: every write fails with ENOSPC) keeps
    /// retrying its batch: counted in pixeld_consume_handler_failures_total, /healthz says so instead
    /// of "ok" while Redis answers, and the log says it once.
    @Test func aConsumerThatCannotHandleItsBatchIsUnhealthy() throws {
        let redis = try RedisServer.start()
        try redis.prefill("pixel", (1...20).map { PixelMessage.value(seq: $0) })
        let port = try PortAllocator.freeTCPPort()
        let consume = try PixeldProcess.start([
            "consume", "pixel", "--redis", redis.url, "--metrics", "127.0.0.1:\(port)", "--output", "/dev/full", "--consumer-id", "full",
        ])
        defer { consume.process.stop(timeout: 5) }
        var health = ""
        let unhealthy = Poll.until(timeout: 20, interval: 0.05) {
            health = (try? httpGet(port: port, path: "/healthz")) ?? ""
            return health == "batches failing (see the log), none acked since\n"
        }
        #expect(unhealthy, "/healthz: \(health)\n\(consume.process.tail)")
        var metrics = ""
        let counted = Poll.until(timeout: 10, interval: 0.05) {
            metrics = (try? httpGet(port: port, path: "/metrics")) ?? ""
            let line = metrics.split(separator: "\n").first { $0.hasPrefix("pixeld_consume_handler_failures_total ") }
            return (line.flatMap { Int($0.split(separator: " ").last ?? "") } ?? 0) >= 5
        }
        #expect(counted, "\(metrics)")
        #expect(try redis.llen("pixel") + redis.llen("pixel:processing:full") == 20)
        // One error for the episode, not one per attempt (before: an error every half second); the
        // retries are at debug.
        let errors = consume.stderrText.split(separator: "\n").filter { $0.contains(" error ") }
        #expect(errors.count == 1, "\(errors.count) error lines: \(errors.prefix(3))")
        #expect(errors.first?.contains("handler failed; batch kept for retry") == true, "\(errors)")
        #expect(errors.first?.contains("No space left on device") == true, "\(errors)")
    }
}

/// A consumer's `/healthz`, polled; the last answer is kept for messages.
final class Healthz {
    let port: Int
    /// The last answer read ("" when none could be read).
    private(set) var last = ""

    init(port: Int) { self.port = port }

    /// Whether `/healthz` answers `expected` (or an answer that begins with it, when `prefixOnly`)
    /// within `seconds`, read every `interval` seconds; `read` sees each answer.
    func answers(
        _ expected: String, within seconds: Double, interval: Double = 0.05, prefixOnly: Bool = false, read: (String) -> Void = { _ in }
    ) -> Bool {
        Poll.until(timeout: seconds, interval: interval) {
            last = (try? httpGet(port: port, path: "/healthz")) ?? ""
            read(last)
            return prefixOnly ? last.hasPrefix(expected) : last == expected
        }
    }
}
