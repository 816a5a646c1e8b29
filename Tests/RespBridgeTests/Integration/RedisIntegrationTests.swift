import Foundation
import InMemoryLogging
import Logging
import PixeldConcurrency
import PixeldTestSupport
import RespBridge
import Testing

/// Runs against a real `redis-server` that each test starts on a free loopback port. Under `CI` a missing
/// redis-server is a failure, never a skip.
@Suite(.serialized, .enabled(if: TestEnvironment.canRun("redis-server")))
struct RedisIntegrationTests {
    private let logger: Logger = {
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        return logger
    }()

    private func configuration(_ server: RedisServer) throws -> RedisConfiguration {
        try RedisConfiguration(url: server.url)
    }

    /// `count` values `v0`, `v1`, … pushed to `pixel` (`v0` the oldest), and a consumer of it taking
    /// batches of `batchSize`.
    private func consumer(
        _ id: String, of server: RedisServer, values count: Int, batchSize: Int
    ) throws -> (ReliableListConsumer, values: [String]) {
        let values = (0..<count).map { "v\($0)" }
        _ = try server.command(["LPUSH", "pixel"] + values)
        var options = ReliableListConsumer.Options()
        options.batchSize = batchSize
        let consumer = ReliableListConsumer(list: "pixel", consumerID: id, redis: try configuration(server), options: options, logger: logger)
        return (consumer, values)
    }

    private func waitUntil(seconds: Double, _ condition: () throws -> Bool) rethrows -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if try condition() { return true }
            usleep(10_000)
        }
        return try condition()
    }

    @Test func pipelinedCommandsRoundTripInOrder() throws {
        let server = try RedisServer.start()
        let connection = RedisConnection(configuration: try configuration(server), logger: logger)
        let binary: [UInt8] = [0, 1, 2, 255, 10, 13, 0x22]
        var commands: [[[UInt8]]] = [[Array("DEL".utf8), Array("list".utf8)]]
        for index in 0..<200 { commands.append([Array("RPUSH".utf8), Array("list".utf8), Array("v\(index)".utf8)]) }
        commands.append([Array("SET".utf8), Array("bin".utf8), binary])
        commands.append([Array("GET".utf8), Array("bin".utf8)])
        let replies = try connection.pipeline(commands)
        #expect(replies.count == commands.count)
        #expect(replies[1...200].map(\.int) == (1...200).map { Int64($0) })
        #expect(replies[201] == .status("OK"))
        #expect(replies[202] == .bulk(binary))
        #expect(try server.lrange("list") == (0..<200).map { "v\($0)" })
    }

    @Test func errorRepliesSurfaceAsErrorsAndTheConnectionStaysUsable() throws {
        let server = try RedisServer.start()
        let connection = RedisConnection(configuration: try configuration(server), logger: logger)
        _ = try connection.command(["SET", "s", "x"])
        let reply = try connection.command(["LPUSH", "s", "y"])
        guard case .error(let text) = reply else {
            Issue.record("expected an error reply, got \(reply)")
            return
        }
        #expect(text.hasPrefix("WRONGTYPE"))
        #expect(throws: RespError.self) { try reply.unwrap("LPUSH") }
        #expect(try connection.command(["PING"]) == .status("PONG"))
    }

    @Test func repliesLeftUnreadMarkTheConnectionOutOfStep() throws {
        let server = try RedisServer.start()
        let connection = RedisConnection(configuration: try configuration(server), logger: logger)
        try connection.append([Array("SET".utf8), Array("s".utf8), Array("x".utf8)])
        try connection.append([Array("LPUSH".utf8), Array("s".utf8), Array("y".utf8)])
        #expect(connection.hasPendingReplies)
        _ = try connection.readReply()
        #expect(connection.hasPendingReplies, "the LPUSH's reply is still owed")
        #expect(try connection.readReply().string == nil)
        #expect(!connection.hasPendingReplies)
        try connection.append([Array("PING".utf8)])
        connection.close()
        #expect(!connection.hasPendingReplies, "a new connection owes nothing")
    }

    /// A child process (the archive's gzip) must not inherit a Redis connection: it would keep it open
    /// on Redis's side after pixeld closed it. hiredis opens its sockets without close-on-exec. And TCP
    /// keep-alive is on, with hiredis's settings (set by pixeld, so that a failure cannot leave the
    /// context in error).
    @Test func redisSocketsAreCloseOnExecWithKeepAlive() throws {
        let server = try RedisServer.start()
        /// This process's descriptors connected to the test's Redis.
        func connected() -> Set<Int32> {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
            return Set(names.compactMap { Int32($0) }.filter { fd in
                var address = sockaddr_in()
                var length = socklen_t(MemoryLayout<sockaddr_in>.size)
                let named = withUnsafeMutablePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &length) }
                }
                return named == 0 && address.sin_family == sa_family_t(AF_INET) && Int(UInt16(bigEndian: address.sin_port)) == server.port
            })
        }
        let before = connected()  // the test support's own connection, if it keeps one
        let connection = RedisConnection(configuration: try configuration(server), logger: logger)
        #expect(try connection.command(["PING"]) == .status("PONG"))
        let ours = connected().subtracting(before)
        try #require(ours.count == 1, "\(ours)")
        #expect(fcntl(ours.first!, F_GETFD) & FD_CLOEXEC != 0)
        func option(_ level: Int32, _ name: Int32) -> Int32 {
            var value: Int32 = -1
            var length = socklen_t(MemoryLayout<Int32>.size)
            return getsockopt(ours.first!, level, name, &value, &length) == 0 ? value : -1
        }
        #expect(option(SOL_SOCKET, SO_KEEPALIVE) == 1)
        let tcp = Int32(IPPROTO_TCP)
        #expect([option(tcp, TCP_KEEPIDLE), option(tcp, TCP_KEEPINTVL), option(tcp, TCP_KEEPCNT)] == [15, 5, 3])
        connection.close()
    }

    @Test func connectsOverTheUnixSocketWithAuthAndSelect() throws {
        let server = try RedisServer.start()
        _ = try server.command(["ACL", "SETUSER", "pixeld", "on", ">pw", "~*", "+@all"])
        var configuration = try RedisConfiguration(url: "unix://\(server.unixSocketPath)?db=5")
        configuration.username = "pixeld"
        configuration.password = "pw"
        let connection = RedisConnection(configuration: configuration, logger: logger)
        _ = try connection.command(["SET", "where", "db5"])
        #expect(try connection.command(["ACL", "WHOAMI"]).string == "pixeld")
        #expect(try server.command(["SELECT", "5"]) == .simpleString("OK"))
        let check = try server.connect()
        _ = try check.command(["SELECT", "5"])
        #expect(try check.command(["GET", "where"]).string == "db5")
        configuration.password = "wrong"
        #expect(throws: RespError.self) { try RedisConnection(configuration: configuration, logger: logger).connect() }
    }

    @Test func aKilledConnectionReconnectsOnTheNextCommand() throws {
        let server = try RedisServer.start()
        let connection = RedisConnection(configuration: try configuration(server), logger: logger)
        _ = try connection.command(["CLIENT", "SETNAME", "victim"])
        _ = try server.command(["CLIENT", "KILL", "SKIPME", "yes", "TYPE", "normal"])
        var sawFailure = false
        do { _ = try connection.command(["PING"]) } catch { sawFailure = true }
        #expect(sawFailure)
        #expect(!connection.isConnected)
        #expect(try connection.command(["PING"]) == .status("PONG"))
    }

    @Test func writerPushesBatchesInArrivalOrderPerKey() async throws {
        let server = try RedisServer.start()
        let queue = PushQueue(capacityBytes: 1 << 20)
        let writer = LPushWriter(queue: queue, redis: try configuration(server), logger: logger)
        writer.start()
        let total = 20_000
        var batch = PushBatch()
        for index in 0..<total {
            let key = index % 3 == 0 ? "other" : "pixel"
            batch.append(key: Array(key.utf8), value: Array("\(index),e=pageview&x=\u{00e9}".utf8), acceptedAt: MonotonicClock.nanoseconds())
            if batch.count == 64 {
                queue.enqueue(batch)
                batch.removeAll()
            }
        }
        queue.enqueue(batch)
        await writer.shutdown(timeoutNanoseconds: 10_000_000_000)
        #expect(writer.statistics.pushed == total)
        #expect(writer.statistics.lost == 0)
        let pixel = try server.lrange("pixel").reversed().map { Int($0.split(separator: ",")[0])! }
        let other = try server.lrange("other").reversed().map { Int($0.split(separator: ",")[0])! }
        #expect(pixel == (0..<total).filter { $0 % 3 != 0 })
        #expect(other == (0..<total).filter { $0 % 3 == 0 })
        #expect(try server.lrange("pixel").last == "1,e=pageview&x=\u{00e9}")
    }

    @Test func aPermanentErrorOnOneKeyDeadLettersItAndOtherKeysFlow() async throws {
        let server = try RedisServer.start()
        _ = try server.command(["SET", "broken", "not a list"])
        let queue = PushQueue(capacityBytes: 1 << 20)
        let writer = LPushWriter(queue: queue, redis: try configuration(server), logger: logger)
        writer.start()
        var batch = PushBatch()
        for index in 0..<100 {
            batch.append(key: Array((index.isMultiple(of: 2) ? "broken" : "pixel").utf8), value: Array("m\(index)".utf8), acceptedAt: 0)
        }
        queue.enqueue(batch)
        await writer.shutdown(timeoutNanoseconds: 5_000_000_000)
        #expect(writer.statistics.pushed == 50)
        #expect(writer.statistics.deadLettered == 50)
        #expect(try server.llen("pixel") == 50)
        #expect(try server.lrange("broken:dead").reversed() == stride(from: 0, to: 100, by: 2).map { "m\($0)" })
        #expect(try server.command(["GET", "broken"]).string == "not a list")
    }

    @Test func writerRidesOutKilledConnectionsWithoutLossOrDuplicates() async throws {
        let server = try RedisServer.start()
        let queue = PushQueue(capacityBytes: 1 << 20)
        let writer = LPushWriter(queue: queue, redis: try configuration(server), logger: logger)
        writer.start()
        let total = 5_000
        for index in 0..<total {
            var batch = PushBatch()
            batch.append(key: Array("pixel".utf8), value: Array("seq=\(index)".utf8), acceptedAt: MonotonicClock.nanoseconds())
            queue.enqueue(batch)
            if index % 1000 == 500 {
                _ = try server.command(["CLIENT", "KILL", "SKIPME", "yes", "TYPE", "normal"])
            }
            if index % 50 == 0 { usleep(1000) }
        }
        await writer.shutdown(timeoutNanoseconds: 10_000_000_000)
        let values = try server.lrange("pixel")
        #expect(Set(values) == Set((0..<total).map { "seq=\($0)" }), "every message arrives")
        #expect(values.count == total, "and none twice: a re-sent batch is recognised by its commit marker")
        #expect(values.reversed() == (0..<total).map { "seq=\($0)" }, "in arrival order")
        #expect(writer.statistics.lost == 0)
        #expect(writer.statistics.reconnects >= 1)
    }

    /// A stopped Redis (`restart()` brings it back on its port) and a started writer pointed at it.
    private func startedWriterWithRedisStopped() throws -> (RedisServer, PushQueue, LPushWriter) {
        let server = try RedisServer.start()
        server.stop()
        let queue = PushQueue(capacityBytes: 1 << 20)
        let writer = LPushWriter(queue: queue, redis: try configuration(server), logger: logger)
        writer.start()
        return (server, queue, writer)
    }

    /// A writer started while Redis is down says so at once (health failing, before any message), and
    /// follows Redis back without traffic: its probes make health ok again, counting no retry.
    @Test func aWriterStartedWithoutRedisFollowsItBackWithoutTraffic() async throws {
        let (server, queue, writer) = try startedWriterWithRedisStopped()
        let failing = waitUntil(seconds: 5) {
            if case .failing("unavailable", _) = writer.statistics.redis { return true }
            return false
        }
        #expect(failing, "\(writer.statistics.redis)")
        try server.restart()
        #expect(waitUntil(seconds: 10) { writer.statistics.redis == .ok }, "still \(writer.statistics.redis) with Redis back")
        #expect(writer.statistics.retries == 0 && writer.statistics.pushed == 0)
        var batch = PushBatch()
        batch.append(key: Array("pixel".utf8), value: Array("first".utf8), acceptedAt: MonotonicClock.nanoseconds())
        queue.enqueue(batch)
        #expect(try waitUntil(seconds: 5) { try server.llen("pixel") == 1 })
        await writer.shutdown(timeoutNanoseconds: 5_000_000_000)
    }

    /// Redis's `timeout` closes a connection left idle; the writer's next batch finds it gone and goes
    /// over a new one at once: no retry, no outage, health still ok.
    @Test func aConnectionClosedForIdlenessIsReplacedWithoutAnOutage() async throws {
        let server = try RedisServer.start(extraArgs: ["--timeout", "1"])
        let queue = PushQueue(capacityBytes: 1 << 20)
        let writer = LPushWriter(queue: queue, redis: try configuration(server), logger: logger)
        writer.start()
        func push(_ value: String) {
            var batch = PushBatch()
            batch.append(key: Array("pixel".utf8), value: Array(value.utf8), acceptedAt: MonotonicClock.nanoseconds())
            queue.enqueue(batch)
        }
        push("before")
        #expect(try waitUntil(seconds: 5) { try server.llen("pixel") == 1 })
        // Closed by Redis: only the connection asking is left.
        let closed = try waitUntil(seconds: 10) {
            (try server.command(["INFO", "clients"]).string ?? "").contains("connected_clients:1\r\n")
        }
        try #require(closed, "Redis did not close the idle connection")
        push("after")
        #expect(try waitUntil(seconds: 5) { try server.llen("pixel") == 2 })
        #expect(writer.statistics.retries == 0, "the closed connection was counted as a failure")
        #expect(writer.statistics.reconnects == 1)
        #expect(writer.statistics.redis == .ok)
        await writer.shutdown(timeoutNanoseconds: 5_000_000_000)
        #expect(try server.lrange("pixel").reversed() == ["before", "after"])
    }

    @Test func writerHoldsMessagesWhileRedisIsDownAndDeliversWhenItReturns() async throws {
        let (server, queue, writer) = try startedWriterWithRedisStopped()
        var batch = PushBatch()
        for index in 0..<300 { batch.append(key: Array("pixel".utf8), value: Array("\(index)".utf8), acceptedAt: 0) }
        queue.enqueue(batch)
        try await Task.sleep(for: .milliseconds(700))
        #expect(writer.statistics.pushed == 0)
        try server.restart()
        let restartedAt = Date()
        let delivered = try waitUntil(seconds: 5) { try server.llen("pixel") == 300 }
        #expect(delivered)
        #expect(Date().timeIntervalSince(restartedAt) < 1.5, "recovery starts within a second of Redis returning")
        await writer.shutdown(timeoutNanoseconds: 1_000_000_000)
        #expect(try server.lrange("pixel").reversed() == (0..<300).map(String.init))
    }

    @Test func reliableConsumerAcksAfterTheHandlerAndRecoversOrphans() async throws {
        let server = try RedisServer.start()
        // An orphan: a processing list whose consumer has no heartbeat.
        _ = try server.command(["RPUSH", "pixel:processing:dead-1", "o2", "o1"])
        _ = try server.command(["LPUSH", "pixel", "e1", "e2", "e3"])
        let consumer = ReliableListConsumer(list: "pixel", consumerID: "t1", redis: try configuration(server), logger: logger)
        let seen = ConditionLockedArray()
        consumer.start { batch, _ in
            seen.append(batch.map { String(decoding: $0, as: UTF8.self) })
            return .init(deadLetters: batch.filter { $0 == Array("e2".utf8) })
        }
        let done = waitUntil(seconds: 5) { seen.values.count == 5 }
        #expect(done)
        await consumer.stop()
        // The orphaned events went back to the tail of the list, oldest first, and were consumed first.
        #expect(seen.values == ["o1", "o2", "e1", "e2", "e3"])
        #expect(try server.llen("pixel") == 0)
        #expect(try server.llen("pixel:processing:t1") == 0)
        #expect(try server.llen("pixel:processing:dead-1") == 0)
        #expect(try server.lrange("pixel:dead") == ["e2"])
        #expect(consumer.recovered == 2)
    }

    /// A stalled Redis (`CLIENT PAUSE … ALL`) holds every call of a stop — here the idle consumer's
    /// `BLMOVE`, then the give-back — up to the 6 s command timeout: ``ReliableListConsumer/stop()``
    /// abandons them at ``ReliableListConsumer/Options/shutdownTimeoutSeconds``, and the abandoned
    /// connections do not connect again.
    @Test func aStopThatAPausedRedisHoldsUpEndsAtTheShutdownTimeout() async throws {
        let server = try RedisServer.start()
        var options = ReliableListConsumer.Options()
        options.shutdownTimeoutSeconds = 1
        let ready = ConditionLockedArray()
        let consumer = ReliableListConsumer(list: "pixel", consumerID: "t1", redis: try configuration(server), options: options, logger: logger) {
            ready.append(["ready"])
        }
        consumer.start { _, _ in .init() }
        #expect(waitUntil(seconds: 5) { !ready.values.isEmpty })
        #expect(try server.command(["CLIENT", "PAUSE", "8000", "ALL"]) == .simpleString("OK"))
        try await Task.sleep(for: .milliseconds(300))
        let stopping = ContinuousClock.now
        await consumer.stop()
        let took = ContinuousClock.now - stopping
        #expect(took >= .milliseconds(900) && took < .milliseconds(1_800), "stop took \(took)")
        // Paused still: an abandoned connection fails at once rather than connect and wait.
        let connection = RedisConnection(configuration: try configuration(server), logger: logger)
        connection.abandon()
        let failing = ContinuousClock.now
        #expect(throws: RespError.self) { try connection.command(["PING"]) }
        #expect(ContinuousClock.now - failing < .milliseconds(100))
    }

    /// Consumers find each other through `pixeld:consumers:<list>`: a registered consumer that died
    /// has its events recovered by a running one at its next period without a `SCAN` (which walks
    /// every key, rollups and visit states included), and leaves the set then; a clean stop leaves it too.
    @Test func deadConsumersAreFoundThroughTheSetOfConsumersNotAScan() async throws {
        let server = try RedisServer.start()
        var options = ReliableListConsumer.Options()
        options.heartbeatSeconds = 3  // renewed every second, a recovery every 3 s
        let consumer = ReliableListConsumer(list: "pixel", consumerID: "live", redis: try configuration(server), options: options, logger: logger)
        let seen = ConditionLockedArray()
        consumer.start { batch, _ in
            seen.append(batch.map { String(decoding: $0, as: UTF8.self) })
            return .init()
        }
        #expect(waitUntil(seconds: 5) { (try? server.command(["SISMEMBER", "pixeld:consumers:pixel", "live"]).integer) == 1 })
        #expect(waitUntil(seconds: 5) { (try? server.calls(of: "scan")) ?? 0 >= 1 }, "the scan at start")
        let scansAtStart = try server.calls(of: "scan")
        // A consumer that registered, took two events and died (its heartbeat is gone).
        _ = try server.command(["SADD", "pixeld:consumers:pixel", "dead-2"])
        _ = try server.command(["RPUSH", "pixel:processing:dead-2", "o2", "o1"])
        #expect(waitUntil(seconds: 10) { seen.values.count == 2 }, "\(seen.values)")
        #expect(seen.values == ["o1", "o2"])
        #expect(try server.calls(of: "scan") == scansAtStart, "recovered by a scan, not through the set")
        #expect(try server.command(["SMEMBERS", "pixeld:consumers:pixel"]).array?.compactMap(\.string) == ["live"])
        await consumer.stop()
        let left = try server.command(["SMEMBERS", "pixeld:consumers:pixel"])
        let beat = try server.command(["EXISTS", "pixel:consumer:live"])
        #expect(left == .array([]), "a clean stop leaves the set: \(left), heartbeat \(beat)")
        #expect(consumer.recovered == 2)
    }

    /// The consumer's take connection, idle between batches at low traffic, closed by Redis's
    /// `timeout`: replaced before the next take, so the next batch is handled once and no outage is
    /// logged (before: "redis error in consumer", both connections closed, the batch handled again).
    @Test func aConsumersIdleTakeConnectionClosedByRedisIsReplacedWithoutAnOutage() async throws {
        let server = try RedisServer.start(extraArgs: ["--timeout", "1"])
        let handler = InMemoryLogHandler()
        let consumer = ReliableListConsumer(
            list: "pixel", consumerID: "idle", redis: try configuration(server), logger: Logger(label: "test") { _ in handler }
        )
        let seen = ConditionLockedArray()
        consumer.start { batch, _ in
            seen.append(batch.map { String(decoding: $0, as: UTF8.self) })
            return .init()
        }
        _ = try server.command(["LPUSH", "pixel", "e1"])
        #expect(waitUntil(seconds: 5) { seen.values == ["e1"] })
        // The take connection closed by Redis; left: the consumer's, blocked in BLMOVE, and the one asking.
        let closed = waitUntil(seconds: 10) {
            (try? server.command(["INFO", "clients"]).string ?? "")?.contains("connected_clients:2\r\n") == true
        }
        try #require(closed, "Redis did not close the idle take connection")
        _ = try server.command(["LPUSH", "pixel", "e2"])
        #expect(waitUntil(seconds: 5) { seen.values.count >= 2 })
        await consumer.stop()
        #expect(seen.values == ["e1", "e2"])
        let warnings = handler.entries.filter { $0.level >= .warning }.map(\.message.description)
        #expect(warnings.isEmpty, "\(warnings)")
    }

    @Test func theConsumerIsReadyOnlyOnceRedisAnswers() async throws {
        let server = try RedisServer.start()
        server.stop()
        let ready = ConditionLockedArray()
        let consumer = ReliableListConsumer(list: "pixel", consumerID: "t0", redis: try configuration(server), logger: logger) {
            ready.append(["ready"])
        }
        consumer.start { _, _ in .init() }
        // Retrying to connect for a while: not ready.
        #expect(!waitUntil(seconds: 1) { !ready.values.isEmpty })
        try server.restart()
        #expect(waitUntil(seconds: 10) { !ready.values.isEmpty }, "not ready after Redis started")
        #expect(try server.command(["EXISTS", "pixel:consumer:t0"]).integer == 1, "ready before the heartbeat was written")
        await consumer.stop()
        #expect(ready.values.count == 1)
    }

    @Test func aFailingHandlerLeavesTheBatchUnackedForRetry() async throws {
        let server = try RedisServer.start()
        _ = try server.command(["LPUSH", "pixel", "a"])
        let consumer = ReliableListConsumer(list: "pixel", consumerID: "t2", redis: try configuration(server), logger: logger)
        let attempts = ConditionLockedArray()
        consumer.start { batch, _ in
            attempts.append(["try"])
            if attempts.values.count == 1 { throw CancellationError() }
            return .init()
        }
        #expect(waitUntil(seconds: 5) { attempts.values.count >= 2 })
        #expect(waitUntil(seconds: 5) { consumer.consumed == 1 })
        await consumer.stop()
        #expect(try server.llen("pixel:processing:t2") == 0)
        #expect(consumer.consumed == 1)
        // One failure, then an applied ack: no longer failing.
        #expect(consumer.handlerFailures == 1 && !consumer.isHandlerFailing)
    }

    @Test func aBatchMovesLikeOneLMovePerEventAndKeepsOrder() async throws {
        let server = try RedisServer.start()
        let values = (0..<2500).map { "v\($0)" }
        for chunk in stride(from: 0, to: values.count, by: 500) {
            _ = try server.command(["LPUSH", "pixel"] + values[chunk..<min(chunk + 500, values.count)])
        }
        var options = ReliableListConsumer.Options()
        options.batchSize = 2200  // more than the script's 1,000-value LPUSH chunks
        let consumer = ReliableListConsumer(list: "pixel", consumerID: "t3", redis: try configuration(server), options: options, logger: logger)
        let seen = ConditionLockedArray()
        let processing = ConditionLockedArray()
        consumer.start { batch, _ in
            let strings = batch.map { String(decoding: $0, as: UTF8.self) }
            // While a batch is in hand, the processing list holds it newest first, as LMOVE RIGHT LEFT leaves it.
            if processing.values.isEmpty { processing.append((try? server.lrange("pixel:processing:t3")) ?? ["unreadable"]) }
            seen.append(strings)
            return .init()
        }
        #expect(waitUntil(seconds: 10) { seen.values.count == values.count })
        await consumer.stop()
        #expect(seen.values == values)
        // The first batch at the tail; the next one may already have been taken in advance.
        #expect([2200, 2500].contains(processing.values.count))
        #expect(processing.values == Array(values[0..<processing.values.count].reversed()))
        #expect(try server.llen("pixel") == 0)
        #expect(try server.llen("pixel:processing:t3") == 0)
        #expect(consumer.consumed == values.count)
    }

    @Test func aFailedCommandInsideTheAckIsCountedAndTheBatchStaysAcked() async throws {
        let server = try RedisServer.start()
        _ = try server.command(["LPUSH", "rollup", "not-a-counter"])
        _ = try server.command(["LPUSH", "pixel", "a", "b"])
        let consumer = ReliableListConsumer(list: "pixel", consumerID: "t4", redis: try configuration(server), logger: logger)
        let attempts = ConditionLockedArray()
        consumer.start { batch, _ in
            attempts.append(batch.map { String(decoding: $0, as: UTF8.self) })
            return .init(commands: [[Array("INCR".utf8), Array("rollup".utf8)], [Array("INCR".utf8), Array("ok".utf8)]])
        }
        #expect(waitUntil(seconds: 5) { consumer.consumed == 2 })
        try await Task.sleep(for: .milliseconds(200))
        await consumer.stop()
        #expect(attempts.values == ["a", "b"])  // not retried
        #expect(consumer.ackCommandErrors == 1)
        #expect(try server.command(["INCR", "ok"]).integer == 2)  // the other command of the ack ran once
        #expect(try server.llen("pixel:processing:t4") == 0)
    }

    @Test func aConditionThatNoLongerHoldsRefusesTheAckAndTheBatchIsHandledAgain() async throws {
        let server = try RedisServer.start()
        _ = try server.command(["SET", "state", "0"])
        _ = try server.command(["LPUSH", "pixel", "a", "b"])
        let consumer = ReliableListConsumer(list: "pixel", consumerID: "t5", redis: try configuration(server), logger: logger)
        let attempts = ConditionLockedArray()
        let prepared = ConditionLockedArray()
        consumer.start(prepare: { _ in prepared.append(["prepare"]) }) { batch, connection in
            // Read-modify-write of shared state, the ack conditional on what was read.
            let read = try connection.command(["GET", "state"]).string ?? ""
            let state = Int(read) ?? -1
            attempts.append(["\(state)"])
            // Another consumer changes the state between our read and our ack, once.
            if attempts.values.count == 1 { _ = try server.command(["SET", "state", "10"]) }
            return .init(
                commands: [[Array("SET".utf8), Array("state".utf8), Array("\(state + batch.count)".utf8)]],
                condition: .init(key: "state", value: read)
            )
        }
        #expect(waitUntil(seconds: 5) { consumer.consumed == 2 })
        await consumer.stop()
        #expect(attempts.values == ["0", "10"])  // handled again, from the changed state
        #expect(consumer.ackConflicts == 1)
        #expect(prepared.values.count == 2)  // output prepared again before the retry
        #expect(try server.command(["GET", "state"]).string == "12")
        #expect(try server.llen("pixel:processing:t5") == 0)
    }

    /// A handler that fails at every attempt (a full disk, say) keeps retrying the batch it holds
    /// without taking more: the backlog stays in the list, where another consumer can reach it, and
    /// goes back whole at stop. (Each retry used to take one more batch in advance, which stayed in
    /// the processing list when the handler failed, so that the whole backlog ended up there.)
    @Test func aHandlerThatKeepsFailingTakesNothingMore() async throws {
        let server = try RedisServer.start()
        let (consumer, values) = try consumer("t15", of: server, values: 2000, batchSize: 100)
        let attempts = ConditionLockedArray()
        consumer.start { batch, _ in
            attempts.append(["\(batch.count)"])
            throw CancellationError()
        }
        // At most what the pipeline holds (the batch, the next one and a take in flight: 300), and
        // no more after further failures.
        #expect(waitUntil(seconds: 20) { attempts.values.count >= 4 })
        let held = try server.llen("pixel:processing:t15")
        #expect(held <= 300, "processing list after \(attempts.values.count) failed attempts: \(held)")
        #expect(waitUntil(seconds: 20) { attempts.values.count >= 10 })
        #expect(try server.llen("pixel:processing:t15") == held, "after \(attempts.values.count) failed attempts")
        // Counted and visible: each failure, and that the consumer is stuck on them.
        #expect(consumer.handlerFailures >= 10 && consumer.isHandlerFailing && consumer.consumed == 0)
        #expect(Set(attempts.values).allSatisfy { (Int($0) ?? 0) <= 100 }, "\(attempts.values)")
        await consumer.stop()
        #expect(try server.llen("pixel:processing:t15") == 0)
        #expect(try server.lrange("pixel").reversed() == values)
    }

    /// A consumer stopped right after an ack was refused cuts its output back (`prepare`) before it
    /// gives the events back: whoever takes them next writes them again, and the refused batch's
    /// lines must not stay in this consumer's files.
    @Test func aStopAfterARefusedAckCutsTheOutputBack() async throws {
        let server = try RedisServer.start()
        _ = try server.command(["SET", "version", "0"])
        let (consumer, values) = try consumer("t16", of: server, values: 50, batchSize: 50)
        let calls = ConditionLockedArray()
        consumer.start(prepare: { _ in calls.append(["prepare"]) }) { batch, _ in
            calls.append(["write"])
            // Refused at every attempt: the condition never holds.
            return .init(condition: .init(key: "version", value: "1"))
        }
        #expect(waitUntil(seconds: 10) { consumer.ackConflicts >= 2 })
        await consumer.stop()
        #expect(consumer.consumed == 0)
        #expect(calls.values.last == "prepare", "the last calls: \(calls.values.suffix(4))")
        #expect(try server.lrange("pixel").reversed() == values)
    }

    /// A stopped consumer gives back what it had taken in advance: nothing is left in its processing
    /// list, nothing is lost or handled twice, and the rest stays in order.
    @Test func stoppingGivesBackEventsTakenInAdvance() async throws {
        let server = try RedisServer.start()
        let (consumer, values) = try consumer("t7", of: server, values: 1000, batchSize: 100)
        let acked = ConditionLockedArray()
        consumer.start(process: { $0 }) { batch, _ in
            usleep(20_000)
            acked.append(batch.map { String(decoding: $0, as: UTF8.self) })
            return .init()
        }
        #expect(waitUntil(seconds: 10) { acked.values.count >= 300 })
        await consumer.stop()
        #expect(try server.llen("pixel:processing:t7") == 0)
        let left = try server.lrange("pixel").reversed()
        #expect(acked.values.count == consumer.consumed && acked.values.count < values.count)
        #expect(acked.values + left == values)
    }

    /// Two-step handlers: the next batch is taken before the previous ack is applied; an ack aborted
    /// then leaves both batches in the processing list, handled again a batch at a time, oldest first,
    /// each event acked once.
    @Test func aConflictWhileTheNextBatchIsTakenHandlesBothAgainInOrder() async throws {
        let server = try RedisServer.start()
        _ = try server.command(["SET", "state", "0"])
        let (consumer, values) = try consumer("t6", of: server, values: 300, batchSize: 100)
        let processed = ConditionLockedArray()
        let acked = ConditionLockedArray()
        let sizes = ConditionLockedArray()
        consumer.start(
            process: { batch in
                processed.append(["\(batch.count)"])
                return batch.map { String(decoding: $0, as: UTF8.self) }
            },
            finish: { strings, connection in
                let state = try connection.command(["GET", "state"]).string ?? ""
                sizes.append(["\(strings.count)"])
                if sizes.values.count == 1 { _ = try server.command(["SET", "state", "1"]) }  // another consumer
                acked.append(strings)
                return .init(commands: [[Array("INCR".utf8), Array("acks".utf8)]], condition: .init(key: "state", value: state))
            }
        )
        #expect(waitUntil(seconds: 10) { consumer.consumed == values.count })
        await consumer.stop()
        // Batch 2 (and maybe 3) had been taken in advance when ack 1 was refused: all three are handled
        // again from the processing list, at most a batch at a time (`pending()` reads the oldest 100).
        let tries = sizes.values.compactMap { Int($0) }
        #expect(tries.count >= 4 && tries.allSatisfy { $0 == 100 }, "\(tries)")
        #expect(Array(acked.values.dropFirst(100)) == values)  // after the refused first try: each once, in order
        #expect(consumer.ackConflicts == 1)
        #expect(try server.command(["GET", "acks"]).string == "\(tries.count - 1)")
        #expect(try server.llen("pixel") == 0)
        #expect(try server.llen("pixel:processing:t6") == 0)
    }

    /// Four-step handlers: each batch's request is answered before the previous batch's ack is
    /// applied (it does not see that ack's writes; the handler adds them), its replies reach `resolve`,
    /// and an ack whose condition fails — someone else changed the state between the read and the ack
    /// — is refused and its batch handled again.
    @Test func aRequestAnsweredBeforeThePreviousAckAndAConditionThatGuardsTheAck() async throws {
        let server = try RedisServer.start()
        _ = try server.command(["SET", "state", "0"])
        let (consumer, values) = try consumer("t8", of: server, values: 1000, batchSize: 50)
        let handler = CountingHandler()
        handler.onResolve = { resolves in
            // Another consumer adds 1000 between a batch's read and its ack, once.
            if resolves == 5 { try? CountingHandler.foreignAck(server, adding: 1000) }
        }
        handler.start(consumer)
        #expect(waitUntil(seconds: 20) { consumer.consumed == values.count })
        await consumer.stop()
        #expect(consumer.ackConflicts == 1)
        // Every ack applied continued from the state the previous one left: the total is exact.
        #expect(try server.command(["GET", "state"]).string == "\(1000 + values.count)")
        // Reads answered ahead of an ack missed its write (so they really were ahead of it).
        let ahead = handler.reads.filter(\.aheadOfAck)
        #expect(ahead.count >= 10, "\(handler.reads)")
        #expect(ahead.allSatisfy { $0.value != $0.previousWrite }, "\(handler.reads)")
        // The refused batch (the fourth or the fifth: its ack was in flight when the state changed)
        // and the batches after it were handled again; every other event once, in order.
        let acked = handler.acked.values
        let repeated = (4...5).filter { k in acked == Array(values.prefix(50 * k)) + Array(values.dropFirst(50 * (k - 1))) }
        #expect(repeated.count == 1, "\(acked.count) acked")
        #expect(try server.llen("pixel") == 0)
        #expect(try server.llen("pixel:processing:t8") == 0)
    }

    /// A ``CountingHandler``, set up by `configure`, over `count` values in batches of 50 from
    /// `state` 0, run until every value is acked (expected within 20 s), then stopped.
    private func countToTheEnd(
        _ id: String, values count: Int, configure: (CountingHandler) -> Void
    ) async throws -> (RedisServer, ReliableListConsumer, CountingHandler, values: [String]) {
        let server = try RedisServer.start()
        _ = try server.command(["SET", "state", "0"])
        let (consumer, values) = try consumer(id, of: server, values: count, batchSize: 50)
        let handler = CountingHandler()
        configure(handler)
        handler.start(consumer)
        #expect(waitUntil(seconds: 20) { consumer.consumed == values.count })
        await consumer.stop()
        return (server, consumer, handler, values)
    }

    /// The next batch's `process` fails while this batch's ack is in flight: the replies stay in
    /// step, the failed batch and those after it are handled again, and every event is counted once.
    @Test func aProcessFailureWithAnAckInFlightLosesAndDoublesNothing() async throws {
        let (server, _, handler, values) = try await countToTheEnd("t9", values: 1000) { $0.failProcess = 4 }
        #expect(handler.acked.values == values)
        #expect(try server.command(["GET", "state"]).string == "\(values.count)")
        #expect(try server.llen("pixel:processing:t9") == 0)
    }

    /// An ack that Redis applies with a failed command (here its `state` write) may not have written
    /// what the next batch, resolved ahead of it, took from it: that batch is handled again from what
    /// Redis holds, so the failed write is lost once (counted, not retried) and nothing builds on it.
    @Test func aBatchResolvedAheadOfAnAckWithAFailedCommandIsHandledAgain() async throws {
        let (server, consumer, handler, values) = try await countToTheEnd("t11", values: 500) { $0.failWrite = 3 }
        #expect(consumer.ackCommandErrors == 1)
        #expect(try server.command(["GET", "state"]).string == "\(values.count - 50)")
        #expect(handler.acked.values == values)
        #expect(try server.llen("pixel:processing:t11") == 0)
    }

    /// A condition that cannot be checked (its key holds a hash) refuses the ack, loudly, until the
    /// key is fixed, and the consumer backs off between refusals instead of spinning on Redis; then
    /// everything is handled once.
    @Test func aConditionOnAKeyOfAnotherTypeRefusesTheAck() async throws {
        let server = try RedisServer.start()
        _ = try server.command(["SET", "state", "0"])
        _ = try server.command(["HSET", "version", "f", "1"])
        let (consumer, values) = try consumer("t12", of: server, values: 200, batchSize: 50)
        let handler = CountingHandler()
        handler.start(consumer)
        #expect(waitUntil(seconds: 5) { consumer.ackConflicts >= 2 })
        // Waits of 50, 100, 200, 400, 500… ms (less up to 20 % jitter): at most ~6 more refusals in
        // 1.5 s. Without the backoff, a refusal costs a round trip or two: thousands.
        let refusedBefore = consumer.ackConflicts
        try await Task.sleep(for: .milliseconds(1500))
        #expect(consumer.ackConflicts - refusedBefore <= 8)
        #expect(consumer.consumed == 0)
        _ = try server.command(["DEL", "version"])
        #expect(waitUntil(seconds: 20) { consumer.consumed == values.count })
        await consumer.stop()
        #expect(try server.command(["GET", "state"]).string == "\(values.count)")
        #expect(try server.llen("pixel:processing:t12") == 0)
    }

    /// Redis over `maxmemory` refuses the writes of everyone else (ingest's `LPUSH` here), but the
    /// consumers go on draining it: takes, acks with the handler's commands and an ack function, dead
    /// letters, the recovery of a dead consumer's processing list, and the wait on an empty list
    /// (which does not count as Redis failing). Before, every ack was a `MULTI`, all of whose commands
    /// Redis 7 refuses then: nothing drained until someone raised `maxmemory`.
    @Test func overMaxmemoryTheConsumersGoOnDraining() async throws {
        let server = try RedisServer.start()
        let values = (0..<3000).map { "v\($0)" }
        for chunk in stride(from: 0, to: values.count, by: 500) {
            _ = try server.command(["LPUSH", "pixel"] + values[chunk..<chunk + 500])
        }
        let orphans = (0..<100).map { "o\($0)" }
        _ = try server.command(["LPUSH", "pixel:processing:gone"] + orphans)  // a consumer that died, no heartbeat
        let bad = (0..<1200).map { "bad-\($0)" }  // one batch's: two LPUSHes in its ack
        _ = try server.command(["LPUSH", "pixel"] + bad)
        let info = try server.command(["INFO", "memory"]).string ?? ""
        let used = try #require(info.split(whereSeparator: \.isNewline).first { $0.hasPrefix("used_memory:") }.flatMap { Int($0.dropFirst(12)) })
        _ = try server.command(["CONFIG", "SET", "maxmemory", "\(used - 200_000)"])
        let refused = try server.command(["LPUSH", "probe", "x"])
        #expect(refused.isError && refused.description.contains("OOM"), "\(refused)")

        var options = ReliableListConsumer.Options()
        options.batchSize = 1500
        options.ackFunctions = ["tally": "redis.call('INCRBY', A[o + 1], A[o + 2])"]
        let consumer = ReliableListConsumer(list: "pixel", consumerID: "full", redis: try configuration(server), options: options, logger: logger)
        consumer.start { batch, _ in
            let good = batch.filter { !$0.starts(with: Array("bad".utf8)) }
            return .init(
                deadLetters: batch.filter { $0.starts(with: Array("bad".utf8)) },
                ackCommands: [
                    .init(arguments: [Array("RPUSH".utf8), Array("handled".utf8)] + good),
                    .init(function: "tally", count: 2, encodedArguments: Self.bulkStrings(["total", "\(good.count)"])),
                ]
            )
        }
        #expect(waitUntil(seconds: 20) { consumer.consumed == values.count + orphans.count + bad.count })
        #expect(try server.llen("pixel") == 0)
        #expect(try server.lrange("pixel:dead").sorted() == bad.sorted())
        #expect(try server.command(["GET", "total"]).string == "\(values.count + orphans.count)")
        try expectEachHandledOnce(server, values + orphans)
        #expect(consumer.ackCommandErrors == 0)
        // Still over maxmemory (the handled values stay), with the list empty: the consumer waits
        // without taking the refused BLMOVE for a Redis that fails.
        #expect(try server.command(["LPUSH", "probe", "x"]).isError)
        try await Task.sleep(for: .milliseconds(1500))
        #expect(consumer.isAnswering)
        _ = try server.command(["CONFIG", "SET", "maxmemory", "0"])
        _ = try server.command(["LPUSH", "pixel", "late"])
        #expect(waitUntil(seconds: 5) { consumer.consumed == values.count + orphans.count + bad.count + 1 })
        await consumer.stop()
    }

    /// An ack function runs inside the ack; one that returns an error reply, or raises one, is a
    /// failed command of the ack (counted, the batch stays acked), and the other commands apply.
    @Test func ackFunctionsRunInsideTheAckAndTheirErrorsAreCounted() async throws {
        let server = try RedisServer.start()
        _ = try server.command(["LPUSH", "alist", "x"])
        _ = try server.command(["LPUSH", "pixel", "a", "b"])
        var options = ReliableListConsumer.Options()
        options.ackFunctions = [
            "add": "if n ~= 2 then return redis.error_reply('n is ' .. n) end return redis.call('INCRBY', A[o + 1], A[o + 2])",
            "refuse": "return redis.error_reply('not today')",
            "raise": "redis.call('INCR', A[o + 1])",
        ]
        let consumer = ReliableListConsumer(list: "pixel", consumerID: "fn", redis: try configuration(server), options: options, logger: logger)
        consumer.start { batch, _ in
            .init(ackCommands: [
                .init(function: "add", count: 2, encodedArguments: Self.bulkStrings(["total", "\(batch.count)"])),
                .init(function: "refuse", count: 0, encodedArguments: []),
                .init(function: "raise", count: 1, encodedArguments: Self.bulkStrings(["alist"])),
                .init(arguments: [Array("INCR".utf8), Array("ok".utf8)]),
            ])
        }
        #expect(waitUntil(seconds: 5) { consumer.consumed == 2 })
        try await Task.sleep(for: .milliseconds(200))
        await consumer.stop()
        #expect(consumer.ackCommandErrors == 2)
        #expect(try server.command(["GET", "total"]).string == "2")
        #expect(try server.command(["GET", "ok"]).string == "1")
        #expect(try server.llen("pixel:processing:fn") == 0)
    }

    /// `values` as RESP bulk strings one after the other (an ack function's encoded arguments).
    private static func bulkStrings(_ values: [String]) -> [UInt8] {
        values.flatMap { Array("$\($0.utf8.count)\r\n\($0)\r\n".utf8) }
    }

    /// Counts each batch into `total` and appends its values to the list `handled` in the ack (what
    /// was acked, once per ack), after `delay` µs per batch; `stall` (if given) holds the first batch
    /// until it is released (or 20 s).
    private func countingHandler(stall: Stall? = nil, delay: UInt32 = 0) -> @Sendable ([[UInt8]], RedisConnection) throws -> ReliableListConsumer.Outcome {
        { batch, _ in
            if let stall, stall.holding.values.isEmpty {
                stall.holding.append(["first batch"])
                let deadline = Date().addingTimeInterval(20)
                while stall.release.values.isEmpty && Date() < deadline { usleep(10_000) }
            }
            if delay > 0 { usleep(delay) }
            return .init(commands: [
                [Array("INCRBY".utf8), Array("total".utf8), Array(String(batch.count).utf8)],
                [Array("RPUSH".utf8), Array("handled".utf8)] + batch,
            ])
        }
    }

    /// Every value of `expected` was acked once (``countingHandler(stall:delay:)``'s `handled`): a
    /// total alone would miss an event lost where another was counted twice.
    private func expectEachHandledOnce(_ server: RedisServer, _ expected: [String], sourceLocation: SourceLocation = #_sourceLocation) throws {
        let handled = try server.lrange("handled")
        let lost = Set(expected).subtracting(handled).sorted()
        let twice = Dictionary(grouping: handled, by: { $0 }).filter { $0.value.count > 1 }.keys.sorted()
        let unknown = Set(handled).subtracting(expected).sorted()
        #expect(lost.isEmpty && twice.isEmpty && unknown.isEmpty, "lost: \(lost), twice: \(twice), not sent: \(unknown)", sourceLocation: sourceLocation)
    }

    /// A consumer `id` started on `server`, holding its first batch until its heartbeat has lapsed.
    private func stalledPastItsHeartbeat(
        _ id: String, on server: RedisServer, options: ReliableListConsumer.Options
    ) throws -> (ReliableListConsumer, Stall) {
        let consumer = ReliableListConsumer(list: "pixel", consumerID: id, redis: try configuration(server), options: options, logger: logger)
        let stall = Stall()
        consumer.start(handler: countingHandler(stall: stall))
        #expect(waitUntil(seconds: 5) { !stall.holding.values.isEmpty })
        // It lapses while the batch is held (renewed only between batches).
        #expect(try waitUntil(seconds: 10) { try server.command(["EXISTS", "pixel:consumer:\(id)"]).integer == 0 })
        return (consumer, stall)
    }

    /// A handler's first batch, held (``countingHandler(stall:)``).
    final class Stall: Sendable {
        let holding = ConditionLockedArray(), release = ConditionLockedArray()
    }

    /// A consumer that stalls longer than its heartbeat (its output blocked, say) while it holds a
    /// batch: another consumer returns that batch to the list and handles it. When the first one wakes
    /// up, its ack is refused (the heartbeat no longer holds its token), so the batch counts once, and
    /// it goes on consuming.
    @Test func aConsumerThatStalledPastItsHeartbeatDoesNotAckWhatAnotherConsumerHandled() async throws {
        let server = try RedisServer.start()
        var options = ReliableListConsumer.Options()
        options.heartbeatSeconds = 2
        let values = (0..<10).map { "v\($0)" }
        _ = try server.command(["LPUSH", "pixel"] + values)
        let (slow, stall) = try stalledPastItsHeartbeat("slow", on: server, options: options)
        let fast = ReliableListConsumer(list: "pixel", consumerID: "fast", redis: try configuration(server), options: options, logger: logger)
        fast.start(handler: countingHandler())
        #expect(waitUntil(seconds: 10) { fast.consumed == values.count }, "the other consumer did not recover and handle the batch")
        #expect(fast.recovered == values.count)
        stall.release.append(["go"])
        #expect(waitUntil(seconds: 10) { slow.ackConflicts >= 1 }, "the stalled consumer's ack was not refused")
        // Both go on consuming, each event once.
        _ = try server.command(["LPUSH", "pixel", "w0", "w1", "w2"])
        #expect(waitUntil(seconds: 10) { slow.consumed + fast.consumed == values.count + 3 })
        await slow.stop()
        await fast.stop()
        #expect(try server.command(["GET", "total"]).string == "\(values.count + 3)", "a batch was counted twice")
        try expectEachHandledOnce(server, values + ["w0", "w1", "w2"])
        #expect(slow.failure == nil && fast.failure == nil)
        #expect(try server.llen("pixel") == 0)
        #expect(try server.llen("pixel:processing:slow") == 0)
        #expect(try server.llen("pixel:processing:fast") == 0)
    }

    /// A list name whose key holds a hash (or a string that replaced the list while consuming) is no
    /// outage: the consumer stops with ``ReliableListConsumer/failure`` saying what the key is,
    /// instead of retrying forever with "redis error in consumer" and "redis available again".
    @Test func aConsumerWhoseKeyIsNotAListStopsSayingSo() async throws {
        let server = try RedisServer.start()
        _ = try server.command(["HSET", "pixel", "a", "1"])
        let hash = ReliableListConsumer(list: "pixel", consumerID: "c1", redis: try configuration(server), logger: logger)
        hash.start(handler: countingHandler())
        #expect(waitUntil(seconds: 10) { hash.failure != nil }, "the consumer did not stop")
        await hash.finished()
        #expect(hash.failure == "pixel is a hash, not a list: there is nothing to consume (a list of that name is what ingest fills)")
        #expect(try server.command(["HGET", "pixel", "a"]).string == "1", "the hash is left alone")
        // A list replaced by a string while a consumer runs.
        _ = try server.command(["DEL", "pixel"])
        _ = try server.command(["LPUSH", "pixel", "a", "b"])
        let replaced = ReliableListConsumer(list: "pixel", consumerID: "c2", redis: try configuration(server), logger: logger)
        replaced.start(handler: countingHandler())
        #expect(waitUntil(seconds: 5) { replaced.consumed == 2 })
        _ = try server.command(["SET", "pixel", "x"])
        #expect(waitUntil(seconds: 10) { replaced.failure != nil }, "the consumer did not stop")
        await replaced.finished()
        #expect(replaced.failure?.hasPrefix("pixel is a string, not a list") == true, "\(replaced.failure ?? "-")")
        try expectEachHandledOnce(server, ["a", "b"])
    }

    /// A second consumer started with the same id while the first runs: it waits for the first
    /// one's heartbeat, sees it renewed, and stops with ``ReliableListConsumer/failure`` without
    /// touching the processing list; the first one goes on and handles everything, once.
    @Test func aSecondConsumerWithTheSameIdStopsWhileTheFirstRuns() async throws {
        let server = try RedisServer.start()
        var options = ReliableListConsumer.Options()
        options.heartbeatSeconds = 3  // renewed every second
        let first = ReliableListConsumer(list: "pixel", consumerID: "same", redis: try configuration(server), options: options, logger: logger)
        first.start(handler: countingHandler())
        _ = try server.command(["LPUSH", "pixel", "a", "b"])
        #expect(waitUntil(seconds: 5) { first.consumed == 2 })
        let second = ReliableListConsumer(list: "pixel", consumerID: "same", redis: try configuration(server), options: options, logger: logger)
        second.start(handler: countingHandler())
        // Events keep coming while the second one waits: all for the first.
        let values = (0..<50).map { "v\($0)" }
        for value in values {
            _ = try server.command(["LPUSH", "pixel", value])
            usleep(20_000)
        }
        #expect(waitUntil(seconds: 10) { second.failure != nil }, "the second consumer did not stop")
        await second.finished()
        #expect(second.failure?.contains("another consumer is running with id same") == true, "\(second.failure ?? "-")")
        #expect(waitUntil(seconds: 10) { first.consumed == 2 + values.count })
        await first.stop()
        #expect(second.consumed == 0 && first.failure == nil)
        #expect(try server.command(["GET", "total"]).string == "\(2 + values.count)")
        try expectEachHandledOnce(server, ["a", "b"] + values)
        #expect(try server.llen("pixel") == 0)
        #expect(try server.llen("pixel:processing:same") == 0)
        // A clean stop deletes the heartbeat: a restart with this id does not wait.
        #expect(try server.command(["EXISTS", "pixel:consumer:same"]).integer == 0)
    }

    /// A consumer stalls past its heartbeat while it holds a batch, and another process starts with
    /// the same id (a restart that took the stalled one for dead): the new one takes the id over and
    /// handles the batch. When the stalled one wakes up, its ack and its next take are fenced off,
    /// and it stops with ``ReliableListConsumer/failure``. Every event counts once.
    @Test func aTakeoverAfterALapseFencesOffTheStalledRun() async throws {
        let server = try RedisServer.start()
        var options = ReliableListConsumer.Options()
        options.heartbeatSeconds = 2
        options.batchSize = 10
        _ = try server.command(["LPUSH", "pixel"] + (0..<30).map { "v\($0)" })
        let (stalled, stall) = try stalledPastItsHeartbeat("same", on: server, options: options)
        let restarted = ReliableListConsumer(list: "pixel", consumerID: "same", redis: try configuration(server), options: options, logger: logger)
        // Slow enough that events still wait when the stalled run wakes up.
        restarted.start(handler: countingHandler(delay: 5_000))
        #expect(waitUntil(seconds: 10) { restarted.consumed == 30 }, "the new run did not handle everything")
        // Events to take when the stalled run wakes up (its next take would move some into the
        // processing list the new run owns, and the new run's acks would then trim the wrong ones).
        _ = try server.command(["LPUSH", "pixel"] + (0..<500).map { "x\($0)" })
        stall.release.append(["go"])
        #expect(waitUntil(seconds: 10) { stalled.failure != nil }, "the stalled run did not stop")
        await stalled.finished()
        #expect(stalled.failure?.contains("was taken over by another process") == true, "\(stalled.failure ?? "-")")
        _ = try server.command(["LPUSH", "pixel", "w0", "w1", "w2"])
        #expect(waitUntil(seconds: 10) { restarted.consumed == 533 })
        await restarted.stop()
        #expect(stalled.consumed == 0 && restarted.failure == nil)
        #expect(try server.command(["GET", "total"]).string == "533", "an event was counted twice or lost")
        try expectEachHandledOnce(server, (0..<30).map { "v\($0)" } + (0..<500).map { "x\($0)" } + ["w0", "w1", "w2"])
        #expect(try server.llen("pixel") == 0)
        #expect(try server.llen("pixel:processing:same") == 0)
    }

    /// A previous run with this id died less than a heartbeat ago: its heartbeat is waited for (not
    /// renewed, it expires), then the processing list it left is handled.
    @Test func aRestartWaitsForTheHeartbeatOfARunThatDied() async throws {
        let server = try RedisServer.start()
        _ = try server.command(["SET", "pixel:consumer:same", "a-run-that-died", "PX", "1500"])
        _ = try server.command(["RPUSH", "pixel:processing:same", "left-2", "left-1"])
        _ = try server.command(["LPUSH", "pixel", "new"])
        let consumer = ReliableListConsumer(list: "pixel", consumerID: "same", redis: try configuration(server), logger: logger)
        let seen = ConditionLockedArray()
        let started = ContinuousClock.now
        consumer.start { batch, _ in
            seen.append(batch.map { String(decoding: $0, as: UTF8.self) })
            return .init()
        }
        #expect(waitUntil(seconds: 10) { seen.values.count == 3 })
        let waited = ContinuousClock.now - started
        await consumer.stop()
        #expect(seen.values == ["left-1", "left-2", "new"])
        #expect(waited > .milliseconds(1000), "did not wait for the heartbeat: \(waited)")
        #expect(consumer.failure == nil)
    }

    /// After a lost connection the consumer writes a new token into its heartbeat (`2` from the
    /// heartbeat script). When that write's reply is lost too, the write happened but the consumer
    /// never learned it: the next heartbeat must recognise the token it offered as its own, not stop
    /// the consumer as "taken over". A proxy withholds every second `:2` reply; Redis kills the
    /// consumer's connections twice, so the second rotation's reply is the one lost.
    @Test func aTokenWriteWhoseReplyWasLostIsRecognisedAsOurs() async throws {
        let server = try RedisServer.start()
        let proxy = try ReplyLosingProxy(upstreamPort: server.port, dropEvery: 2, replies: .integer(2))
        defer { proxy.close() }
        var options = ReliableListConsumer.Options()
        options.heartbeatSeconds = 3
        let consumer = ReliableListConsumer(
            list: "pixel", consumerID: "c1", redis: try RedisConfiguration(url: proxy.url), options: options, logger: logger
        )
        consumer.start(handler: countingHandler())
        _ = try server.command(["LPUSH", "pixel", "a", "b"])
        #expect(waitUntil(seconds: 5) { consumer.consumed == 2 })
        for rotation in 1...2 {
            _ = try server.command(["CLIENT", "KILL", "SKIPME", "yes", "TYPE", "normal"])
            #expect(waitUntil(seconds: 10) { proxy.matchingReplies >= rotation }, "no token rotation \(rotation) after the kill")
        }
        // (The withheld reply ends in the connection's read timeout, 6 s, before the consumer reconnects.)
        #expect(waitUntil(seconds: 20) { proxy.droppedReplies == 1 && proxy.matchingReplies >= 3 }, "the lost write was not renewed")
        let values = (0..<20).map { "v\($0)" }
        _ = try server.command(["LPUSH", "pixel"] + values)
        #expect(waitUntil(seconds: 10) { consumer.consumed == 2 + values.count })
        // Past a heartbeat renewal (every second) with the token it had offered.
        try await Task.sleep(for: .milliseconds(1500))
        #expect(consumer.failure == nil, "\(consumer.failure ?? "-")")
        await consumer.stop()
        #expect(try server.command(["GET", "total"]).string == "\(2 + values.count)")
        #expect(try server.llen("pixel:processing:c1") == 0)
    }

    /// A take sent in advance whose reply does not come within the read timeout: the consumer gives up
    /// on it and closes the take connection, but the take may still reach Redis later, with the token
    /// it was sent with. It must be fenced off then. Here `process` fails on the first batch while the
    /// next one's take is held back by a proxy (the consumer waits 6 s for it), and the proxy passes it
    /// on right before the consumer's next take, once the first batch was handled again and acked:
    /// with the old token still valid, it moved `v2`, `v3` into the empty processing list under the
    /// batch taken next (`v4`, `v5`), whose ack, trimming two from the tail, removed `v2`, `v3`
    /// unhandled, and `v4`, `v5` were handled twice.
    @Test func aTakeThatReachesRedisAfterTheConsumerGaveUpOnItIsFencedOff() async throws {
        let server = try RedisServer.start()
        // The consumer's main connection is opened first, its take connection second; the marker is
        // in the take script only.
        let late = ReplyLosingProxy.LateRead(marker: "FENCED heartbeat not ours", connection: 2)
        let proxy = try ReplyLosingProxy(upstreamPort: server.port, dropEvery: .max, holdingLate: late)
        defer { proxy.close() }
        let values = (0..<6).map { "v\($0)" }
        _ = try server.command(["LPUSH", "pixel"] + values)
        var options = ReliableListConsumer.Options()
        options.batchSize = 2
        options.heartbeatSeconds = 60  // not renewed by itself during the 6 s the consumer waits for the take
        let consumer = ReliableListConsumer(
            list: "pixel", consumerID: "late", redis: try RedisConfiguration(url: proxy.url), options: options, logger: logger
        )
        let processed = ConditionLockedArray()
        consumer.start(
            process: { batch in
                processed.append(["batch"])
                if processed.values.count == 1 { throw TestSupportError("process fails once") }
                return batch
            },
            finish: countingHandler()
        )
        #expect(waitUntil(seconds: 20) { proxy.lateReadAnswered }, "the held take was not passed on and answered")
        #expect(try waitUntil(seconds: 10) { try server.llen("pixel") == 0 && server.llen("pixel:processing:late") == 0 && consumer.consumed >= values.count })
        await consumer.stop()
        try expectEachHandledOnce(server, values)
        #expect(consumer.consumed == values.count)
    }

    /// Stopping with a request and an ack in flight: their replies are read before the events go back,
    /// nothing is left in the processing list, and what was acked was counted exactly once.
    @Test func stoppingWithARequestInFlightGivesBackTheRest() async throws {
        let server = try RedisServer.start()
        _ = try server.command(["SET", "state", "0"])
        let (consumer, values) = try consumer("t10", of: server, values: 1000, batchSize: 100)
        let handler = CountingHandler()
        handler.finishDelayMicroseconds = 20_000
        handler.start(consumer)
        #expect(waitUntil(seconds: 10) { handler.acked.values.count >= 300 })
        await consumer.stop()
        #expect(try server.llen("pixel:processing:t10") == 0)
        let left = try server.lrange("pixel").reversed()
        let acked = handler.acked.values
        #expect(acked.count == consumer.consumed && acked.count < values.count)
        #expect(acked + left == values)
        #expect(try server.command(["GET", "state"]).string == "\(acked.count)")
    }
}

/// A four-step handler that adds each batch's size to the key `state`, as the analytics handler
/// continues visits: read `version` and `state` in the request; when the read was answered ahead of
/// the previous ack, continue from what that ack writes instead; write `state` and `INCR version` in
/// the ack, conditional on the version expected before it. Used on the consumer thread only (and read
/// by the test after `stop`).
final class CountingHandler: @unchecked Sendable {
    struct Read: CustomStringConvertible {
        var value: Int
        var aheadOfAck: Bool
        var previousWrite: Int?
        var description: String { "\(value)\(aheadOfAck ? "^" : "")/\(previousWrite.map(String.init) ?? "-")" }
    }
    let acked = ConditionLockedArray()
    private(set) var reads: [Read] = []
    var onResolve: (Int) -> Void = { _ in }
    var failProcess: Int?
    /// The batch (counted from 1 by `finish`) whose `state` write fails inside its ack (WRONGTYPE).
    var failWrite: Int?
    var finishDelayMicroseconds: UInt32 = 0
    private var processed = 0
    private var finished = 0
    /// What the last finished ack writes; forgotten in `prepare`, as it may not have been applied.
    private var previousWrite: Int?

    /// Another consumer's ack: adds `amount` and moves the version on, atomically.
    static func foreignAck(_ server: RedisServer, adding amount: Int) throws {
        _ = try server.command(["EVAL", "redis.call('INCRBY', 'state', ARGV[1]) return redis.call('INCR', 'version')", "0", "\(amount)"])
    }

    func start(_ consumer: ReliableListConsumer) {
        consumer.start(
            prepare: { _ in self.previousWrite = nil },
            process: { batch in
                self.processed += 1
                if self.processed == self.failProcess { throw TestSupportError("process fails once") }
                return batch.map { String(decoding: $0, as: UTF8.self) }
            },
            request: { _ in [[Array("MGET".utf8), Array("version".utf8), Array("state".utf8)]] },
            resolve: { strings, replies, aheadOfAck in
                let values = replies.first?.array ?? []
                #expect(replies.count == 1 && values.count == 2)
                let version = Int(values.first?.string ?? "0") ?? -1
                let value = Int(values.last?.string ?? "") ?? -1
                self.reads.append(Read(value: value, aheadOfAck: aheadOfAck, previousWrite: self.previousWrite))
                self.onResolve(self.reads.count)
                let pending = aheadOfAck ? self.previousWrite : nil
                return (strings, pending ?? value, version + (pending == nil ? 0 : 1))
            },
            finish: { resolved, _ in
                let (strings, before, version) = resolved
                usleep(self.finishDelayMicroseconds)
                self.finished += 1
                self.acked.append(strings)
                self.previousWrite = before + strings.count
                let write: [[UInt8]] =
                    self.finished == self.failWrite
                    ? [Array("HSET".utf8), Array("state".utf8), Array("f".utf8), Array("1".utf8)]
                    : [Array("SET".utf8), Array("state".utf8), Array("\(before + strings.count)".utf8)]
                return .init(
                    commands: [write, [Array("INCR".utf8), Array("version".utf8)]],
                    condition: .init(key: "version", value: "\(version)")
                )
            }
        )
    }
}

/// The writer's Lua-free commit (`BatchCommitter+Transaction.swift`): taken for known lists, left for
/// the script when a key refuses its push, and trimming like the script under `drop-oldest`. Lost
/// replies of transactions are covered by `PixeldFaultTests` (the proxy drops them too).
extension RedisIntegrationTests {
    /// One batch of `pixel` values.
    private func push(_ range: Range<Int>, into queue: PushQueue) {
        var batch = PushBatch()
        for index in range { batch.append(key: Array("pixel".utf8), value: Array("\(index)".utf8), acceptedAt: 0) }
        queue.enqueue(batch)
    }

    /// One batch of `pixel` values `p<i>` and `other` values `o<i>`.
    private func pushBoth(_ range: Range<Int>, into queue: PushQueue) {
        var batch = PushBatch()
        for index in range {
            batch.append(key: Array("pixel".utf8), value: Array("p\(index)".utf8), acceptedAt: 0)
            batch.append(key: Array("other".utf8), value: Array("o\(index)".utf8), acceptedAt: 0)
        }
        queue.enqueue(batch)
    }

    private func waitForLength(_ length: Int, of key: String, in server: RedisServer) throws -> Bool {
        try waitUntil(seconds: 5) { try server.llen(key) == length }
    }

    @Test func batchesOfAKnownListGoAsTransactionsWithoutLua() async throws {
        let server = try RedisServer.start()
        let queue = PushQueue(capacityBytes: 1 << 20)
        let writer = LPushWriter(queue: queue, redis: try configuration(server), logger: logger)
        writer.start()
        for round in 0..<5 {
            push(round * 10..<round * 10 + 10, into: queue)
            #expect(try waitForLength(round * 10 + 10, of: "pixel", in: server))
        }
        await writer.shutdown(timeoutNanoseconds: 5_000_000_000)
        #expect(try server.lrange("pixel").reversed() == (0..<50).map(String.init))
        #expect(writer.statistics.pushed == 50)
        // The first batch meets an unknown key and takes the script; the other four skip Lua.
        #expect(try server.calls(of: "evalsha") == 1)
        #expect(try server.calls(of: "exec") == 4)
        #expect(try server.command(["GET", "pixeld:writer:\(writer.instanceID)"]).string == "5")
        #expect(try server.command(["EXISTS", "pixeld:writer:\(writer.instanceID):last"]).integer == 0)
    }

    @Test func aKnownListThatTurnsIntoAStringDeadLettersOnceAndThenTakesTheScript() async throws {
        let server = try RedisServer.start()
        let queue = PushQueue(capacityBytes: 1 << 20)
        let writer = LPushWriter(queue: queue, redis: try configuration(server), logger: logger)
        writer.start()
        push(0..<10, into: queue)
        #expect(try waitForLength(10, of: "pixel", in: server))
        _ = try server.command(["DEL", "pixel"])
        _ = try server.command(["SET", "pixel", "not a list"])
        push(10..<20, into: queue)  // a transaction: its LPUSH fails, the follow-up dead-letters
        #expect(try waitForLength(10, of: "pixel:dead", in: server))
        _ = try server.command(["DEL", "pixel"])
        push(20..<30, into: queue)  // the key is no longer known: the script
        #expect(try waitForLength(10, of: "pixel", in: server))
        await writer.shutdown(timeoutNanoseconds: 5_000_000_000)
        #expect(try server.lrange("pixel:dead").reversed() == (10..<20).map(String.init))
        #expect(try server.lrange("pixel").reversed() == (20..<30).map(String.init))
        #expect(writer.statistics.pushed == 20)
        #expect(writer.statistics.deadLettered == 10)
        #expect(try server.calls(of: "exec") == 1)
        #expect(try server.calls(of: "evalsha") == 3)  // first batch, the follow-up, the last batch
    }

    /// A transaction applied but one key refused its push, and the follow-up that dead-letters that
    /// key's values fails until the batch is spooled and the writer stops (here: scripts refused by an
    /// ACL). The next writer replays only that key's values, as the follow-up: they reach `other:dead`.
    /// Spooled whole under the first writer's marker, the batch read as applied on replay (its
    /// sequence is the marker's) and those values were in neither `other` nor `other:dead`.
    @Test func aFollowUpThatCouldNotBeCommittedIsSpooledAndReplayedAfterARestart() async throws {
        let server = try RedisServer.start()
        let directory = NSTemporaryDirectory() + "pixeld-followup-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        do {
            let queue = PushQueue(capacityBytes: 1 << 20)
            let writer = LPushWriter(
                queue: queue, redis: try configuration(server), spool: try Spool(directory: directory, maxBytes: 1 << 20, sync: .always),
                logger: logger
            )
            writer.start()
            pushBoth(0..<5, into: queue)  // the script: both keys become known lists
            #expect(try waitForLength(5, of: "other", in: server))
            _ = try server.command(["DEL", "other"])
            _ = try server.command(["SET", "other", "not a list"])
            _ = try server.command(["ACL", "SETUSER", "default", "-evalsha", "-eval", "-script"])
            pushBoth(5..<10, into: queue)  // a transaction: other's LPUSH fails, and so does the follow-up
            #expect(try waitForLength(10, of: "pixel", in: server))
            let spooled = waitUntil(seconds: 10) { writer.statistics.spooled == 5 }
            #expect(spooled, "spooled \(writer.statistics.spooled)")
            await writer.shutdown(timeoutNanoseconds: 500_000_000)
            #expect(writer.statistics.pushed == 15, "the pixel values of the spooled batch are booked as pushed")
            #expect(writer.statistics.lost == 0)
        }
        _ = try server.command(["ACL", "SETUSER", "default", "+@all"])
        let queue = PushQueue(capacityBytes: 1 << 20)
        let next = LPushWriter(
            queue: queue, redis: try configuration(server), spool: try Spool(directory: directory, maxBytes: 1 << 20, sync: .always),
            logger: logger
        )
        next.start()
        #expect(try waitForLength(5, of: "other:dead", in: server))
        await next.shutdown(timeoutNanoseconds: 5_000_000_000)
        #expect(try server.lrange("other:dead").reversed() == (5..<10).map { "o\($0)" })
        #expect(try server.lrange("pixel").reversed() == (0..<10).map { "p\($0)" })
        #expect(next.statistics.spooled == 0)
    }

    @Test func oneOfTwoKnownListsTurnsIntoAStringAndOnlyItsValuesAreDeadLettered() async throws {
        let server = try RedisServer.start()
        let queue = PushQueue(capacityBytes: 1 << 20)
        let writer = LPushWriter(queue: queue, redis: try configuration(server), logger: logger)
        writer.start()
        pushBoth(0..<5, into: queue)  // both keys become known lists
        #expect(try waitForLength(5, of: "other", in: server))
        _ = try server.command(["SET", "other", "not a list"])  // SET replaces the list
        pushBoth(5..<10, into: queue)  // a transaction: pixel's LPUSH works, other's fails; the follow-up has other's values only
        #expect(try waitForLength(5, of: "other:dead", in: server))
        await writer.shutdown(timeoutNanoseconds: 5_000_000_000)
        #expect(try server.lrange("pixel").reversed() == (0..<10).map { "p\($0)" })
        #expect(try server.lrange("other:dead").reversed() == (5..<10).map { "o\($0)" })
        #expect(writer.statistics.pushed == 15)
        #expect(writer.statistics.deadLettered == 5)
        #expect(try server.calls(of: "exec") == 1)
    }

    /// The reply of a transaction is lost, and the `TYPE`s that find out which keys took its pushes are
    /// refused (an ACL without `TYPE`): the error reply for the first key must not leave the second's
    /// unread, or every later command on that connection reads the reply of the one before — here a
    /// `GET` reply taken for a `TYPE` sends a key that took its values through the follow-up again.
    @Test func aRefusedTypeWhileResolvingALostTransactionKeepsTheConnectionInStep() async throws {
        let server = try RedisServer.start()
        _ = try server.command(["ACL", "SETUSER", "pixeld", "on", ">pw", "~*", "+@all", "-type"])
        // Commit replies: the first batch's script, then the second batch's transaction, lost.
        let proxy = try ReplyLosingProxy(upstreamPort: server.port, dropEvery: 2, replies: .commits)
        defer { proxy.close() }
        var configuration = try RedisConfiguration(url: proxy.url)
        configuration.username = "pixeld"
        configuration.password = "pw"
        let queue = PushQueue(capacityBytes: 1 << 20)
        let writer = LPushWriter(queue: queue, redis: configuration, logger: logger)
        writer.start()
        pushBoth(0..<5, into: queue)  // the script: both keys become known lists
        #expect(try waitForLength(5, of: "other", in: server))
        pushBoth(5..<10, into: queue)  // a transaction; its reply is lost, and resolving it meets -NOPERM on TYPE
        #expect(waitUntil(seconds: 10) { proxy.droppedReplies == 1 && writer.statistics.retries >= 4 })
        _ = try server.command(["ACL", "SETUSER", "pixeld", "+type"])
        #expect(waitUntil(seconds: 10) { writer.statistics.pushed == 20 })
        usleep(200_000)  // time for a duplicate to show
        await writer.shutdown(timeoutNanoseconds: 5_000_000_000)
        #expect(try server.lrange("pixel").reversed() == (0..<10).map { "p\($0)" })
        #expect(try server.lrange("other").reversed() == (0..<10).map { "o\($0)" })
        #expect(try server.keys("*:dead").isEmpty)
        #expect(writer.statistics.pushed == 20)
        #expect(writer.statistics.lost == 0)
    }

    /// A transaction held up on its way to Redis (TCP retransmission to a remote Redis) for longer than
    /// the command timeout: the writer gives the connection up and resolves the batch on a new one, where
    /// the marker says it has not run, and commits it through the script; the held bytes, arriving after
    /// that on the first connection, must not push the batch a second time.
    @Test func aTransactionHeldUpPastTheCommandTimeoutIsNotAppliedTwice() async throws {
        let server = try RedisServer.start()
        let (writer, queue, proxy) = try writerBehindAHoldingProxy(server, holdingFor: 1)
        defer { proxy.close() }
        push(10..<20, into: queue)  // a transaction, held up past the timeout; resolved on a new connection
        #expect(try waitForLength(20, of: "pixel", in: server))
        #expect(waitUntil(seconds: 5) { proxy.forwardedHeldTransactions == 1 }, "the held transaction was not passed on")
        usleep(200_000)  // time for it to run, if Redis still takes it
        push(20..<30, into: queue)
        #expect(waitUntil(seconds: 5) { writer.statistics.pushed == 30 })
        await writer.shutdown(timeoutNanoseconds: 5_000_000_000)
        let values = try server.lrange("pixel")
        let once = values.reversed() == (0..<30).map(String.init)
        #expect(once, "not each value once, in order: \(values.reversed())")
        #expect(proxy.heldTransactions == 1)
        #expect(writer.statistics.reconnects >= 1)
    }

    /// A started writer through a proxy that holds the first transaction for `seconds` (the command
    /// timeout is `timeoutMilliseconds`), after 10 values (`0`…`9`) went in by the script, so that
    /// `pixel` is a known list and the next batch goes as a transaction. With `spool`, and a queue of
    /// `queueBytes`.
    private func writerBehindAHoldingProxy(
        _ server: RedisServer, holdingFor seconds: Double, timeoutMilliseconds: Int = 300, spool: Spool? = nil, queueBytes: Int = 1 << 20
    ) throws -> (LPushWriter, PushQueue, ReplyLosingProxy) {
        let proxy = try ReplyLosingProxy(upstreamPort: server.port, dropEvery: .max, holdingFirstTransactionFor: seconds)
        var configuration = try RedisConfiguration(url: proxy.url)
        configuration.commandTimeoutMilliseconds = timeoutMilliseconds
        let queue = PushQueue(capacityBytes: queueBytes)
        let writer = LPushWriter(queue: queue, redis: configuration, spool: spool, logger: logger)
        writer.start()
        push(0..<10, into: queue)
        #expect(try waitForLength(10, of: "pixel", in: server))
        return (writer, queue, proxy)
    }

    /// A transaction held up past the command timeout (by the proxy, as by retransmission to a remote
    /// Redis) while the writer, with a spool, moves its queue there (under `<instance>:spill`, a marker
    /// of its own); the retry's connection is refused, so the batch is spooled behind the spilled ones
    /// with its transaction still on its way. The replay commits the spilled batches first, then the
    /// batch, whose replay must still fence off the connection its transaction went out on
    /// (`CLIENT KILL`) before it reads the marker: the held bytes, passed on after that replay, must not
    /// push it a second time. Before, the spilled batches' commits (another marker) dropped the lost
    /// transaction's record, the batch was committed by the script, and the late `EXEC` ran: 130
    /// values, `10`…`19` twice.
    @Test func aLostTransactionSpooledBehindSpilledBatchesIsFencedOffAtItsReplay() async throws {
        let server = try RedisServer.start()
        let directory = try TempDirectory(prefix: "pixeld-spill-fence")
        let spool = try Spool(directory: directory.path, maxBytes: 64 << 20, sync: .never)
        // 100 values take ~4.8 KB of an 8 KiB queue: over half, so they spill (within the 1 s timeout).
        let (writer, queue, proxy) = try writerBehindAHoldingProxy(
            server, holdingFor: 60, timeoutMilliseconds: 1000, spool: spool, queueBytes: 8192
        )
        defer { proxy.close() }
        proxy.refusesNewConnections = true
        push(10..<20, into: queue)  // a transaction, held by the proxy
        #expect(waitUntil(seconds: 5) { proxy.heldTransactions == 1 })
        push(20..<120, into: queue)  // spilled once the reply has been awaited 100 ms
        // The reply times out and the retry's connection is refused: the batch is spooled behind them.
        #expect(
            waitUntil(seconds: 5) { writer.statistics.spooled == 110 && proxy.refusedConnections >= 1 },
            "the spilled values and then the timed-out batch were not spooled: \(writer.statistics.spooled)"
        )
        proxy.refusesNewConnections = false
        #expect(try waitForLength(120, of: "pixel", in: server), "the spool was not replayed")
        proxy.releaseHeldTransaction()
        #expect(waitUntil(seconds: 5) { proxy.forwardedHeldTransactions == 1 }, "the held transaction was not passed on")
        usleep(200_000)  // time for it to run, if Redis still takes it
        await writer.shutdown(timeoutNanoseconds: 5_000_000_000)
        // The spilled values ahead of the batch whose commit timed out: the one case where later ones go first.
        let values = try server.lrange("pixel").reversed().map { $0 }
        let once = values == (Array(0..<10) + Array(20..<120) + Array(10..<20)).map(String.init)
        #expect(once, "not each value once (\(values.count) values): \(values)")
        #expect(writer.statistics.pushed == 120 && writer.statistics.lost == 0 && writer.statistics.spooled == 0)
    }

    /// A Redis that restarted numbers its clients from 1 again: the id of the connection a lost
    /// transaction went out on is then another client's, which the resolution must not kill (the
    /// transaction died with the old process). Here a bystander holds that id on the new process.
    @Test func aLostTransactionsIdIsNotKilledOnARestartedRedis() async throws {
        let server = try RedisServer.start()
        let (writer, queue, proxy) = try writerBehindAHoldingProxy(server, holdingFor: 3)
        defer { proxy.close() }
        // The writer's connection as Redis numbers it: the one client here that is not this listing.
        let listing = try server.command(["CLIENT", "LIST"]).string ?? ""
        let others = listing.split(whereSeparator: \.isNewline).filter { !$0.contains("cmd=client|list") }
        let oldID = others.compactMap { line in line.split(separator: " ").first { $0.hasPrefix("id=") }.flatMap { Int64($0.dropFirst(3)) } }
        #expect(oldID.count == 1, "\(listing)")
        push(10..<20, into: queue)  // a transaction, held by the proxy
        #expect(waitUntil(seconds: 5) { proxy.heldTransactions == 1 })
        try server.restart()
        var bystanders: [RESPConnection] = []
        var bystander: RESPConnection?
        for _ in 0..<200 where bystander == nil {
            let connection = try server.connect()
            bystanders.append(connection)
            if case .integer(let id) = try connection.command(["CLIENT", "ID"]), id == oldID.first { bystander = connection }
        }
        #expect(bystander != nil, "no client got id \(oldID) on the restarted Redis")
        // The writer resolves the lost transaction on the new process (no AOF: the marker is gone, so
        // the batch is committed again) and goes on.
        #expect(try waitForLength(10, of: "pixel", in: server))
        push(20..<30, into: queue)
        #expect(try waitForLength(20, of: "pixel", in: server))
        await writer.shutdown(timeoutNanoseconds: 5_000_000_000)
        if let bystander {
            #expect((try? bystander.command(["PING"])) == .simpleString("PONG"), "the bystander holding the old id was killed")
        }
    }

    /// Redis at `maxmemory` refuses a transaction's `LPUSH` while queueing it, and `EXEC` then answers
    /// `-EXECABORT`: the warning and the health state name the refusal (`oom`), not `execabort`.
    @Test func aTransactionRefusedForMemoryIsReportedAsOOM() async throws {
        let server = try RedisServer.start()
        let handler = SpoolIntegrationTests.CountingLogHandler()
        let queue = PushQueue(capacityBytes: 1 << 20)
        let writer = LPushWriter(queue: queue, redis: try configuration(server), logger: Logger(label: "test") { _ in handler })
        writer.start()
        push(0..<10, into: queue)  // the script: pixel becomes a known list
        #expect(try waitForLength(10, of: "pixel", in: server))
        _ = try server.command(["CONFIG", "SET", "maxmemory", "1"])
        push(10..<20, into: queue)  // a transaction: LPUSH refused with -OOM while queued, EXEC aborts
        var firstReason: String?
        #expect(waitUntil(seconds: 5) {
            if case .failing(let reason, _) = writer.statistics.redis { firstReason = reason }
            return firstReason != nil
        })
        _ = try server.command(["CONFIG", "SET", "maxmemory", "0"])
        #expect(try waitForLength(20, of: "pixel", in: server))
        await writer.shutdown(timeoutNanoseconds: 5_000_000_000)
        #expect(firstReason == "oom")
        #expect(handler.count("redis refused the commit (oom), holding messages and retrying") == 1)
        #expect(handler.count("redis refused the commit (execabort), holding messages and retrying") == 0)
        #expect(try server.lrange("pixel").reversed() == (0..<20).map(String.init))
    }

    /// A failover behind an address that stays the same (here a unix-socket symlink; a DNS name moved by
    /// Sentinel or an HAProxy backend behave alike): the server the writer is connected to becomes a
    /// replica and refuses every commit with `READONLY` (a transaction as `EXECABORT`, a retry through
    /// the script directly), and the address now leads to the new master. The writer must connect
    /// again rather than retry on the old connection forever, and deliver each message once, in order.
    @Test func aServerTurnedReplicaIsLeftForTheMasterTheAddressLeadsToNow() async throws {
        let old = try RedisServer.start()
        let new = try RedisServer.start()
        let directory = try TempDirectory(prefix: "pixeld-failover")
        let link = directory.appending("redis.sock").path
        /// Points `link` at `server`'s socket, replacing it atomically.
        func point(at server: RedisServer) throws {
            let next = directory.appending("next.sock").path
            try FileManager.default.createSymbolicLink(atPath: next, withDestinationPath: server.unixSocketPath)
            try #require(rename(next, link) == 0)
        }
        try point(at: old)
        let queue = PushQueue(capacityBytes: 1 << 20)
        let writer = LPushWriter(queue: queue, redis: try RedisConfiguration(url: "unix://\(link)"), logger: logger)
        writer.start()
        push(0..<10, into: queue)  // the script: pixel becomes a known list
        #expect(try waitForLength(10, of: "pixel", in: old))
        _ = try old.command(["REPLICAOF", "127.0.0.1", String(new.port)])  // demoted: read-only at once
        push(10..<20, into: queue)  // a transaction, refused with EXECABORT (READONLY); retries take the script
        #expect(waitUntil(seconds: 5) {
            if case .failing("readonly", _) = writer.statistics.redis { return writer.statistics.retries >= 2 }
            return false
        })
        push(20..<30, into: queue)
        try point(at: new)
        #expect(try waitForLength(20, of: "pixel", in: new))
        await writer.shutdown(timeoutNanoseconds: 5_000_000_000)
        #expect(try new.lrange("pixel").reversed() == (10..<30).map(String.init))
        #expect(writer.statistics.pushed == 30)
        #expect(writer.statistics.reconnects >= 1)
    }

    @Test func dropOldestTrimsInTheTransactionToo() async throws {
        let server = try RedisServer.start()
        var options = LPushWriter.Options()
        options.maxListLength = 25
        options.dropOldestWhenFull = true
        let queue = PushQueue(capacityBytes: 1 << 20)
        let writer = LPushWriter(queue: queue, redis: try configuration(server), options: options, logger: logger)
        writer.start()
        push(0..<20, into: queue)
        #expect(try waitForLength(20, of: "pixel", in: server))
        push(20..<40, into: queue)
        #expect(waitUntil(seconds: 5) { writer.statistics.pushed == 40 })
        await writer.shutdown(timeoutNanoseconds: 5_000_000_000)
        #expect(try server.lrange("pixel").reversed() == (15..<40).map(String.init))
        #expect(writer.statistics.trimmed == 15)
        #expect(try server.calls(of: "exec") == 1)
    }
}

/// A thread-safe list of strings for handler callbacks.
final class ConditionLockedArray: @unchecked Sendable {
    private let lock = ConditionLock()
    private var storage: [String] = []
    func append(_ values: [String]) { lock.withLock { storage += values } }
    var values: [String] { lock.withLock { storage } }
}

/// The spool under a real outage: messages go to disk, survive a restart of the writer, and reach Redis
/// exactly once, in order.
@Suite(.serialized, .enabled(if: TestEnvironment.canRun("redis-server")))
struct SpoolIntegrationTests {
    private let logger: Logger = {
        var logger = Logger(label: "test")
        logger.logLevel = .error
        return logger
    }()

    /// `pixel` values `seq=<i>` for `range`, one batch each, into `queue` (waiting for room).
    private static func send(_ range: Range<Int>, to queue: PushQueue) {
        for index in range {
            var batch = PushBatch()
            batch.append(key: Array("pixel".utf8), value: Array("seq=\(index)".utf8), acceptedAt: MonotonicClock.nanoseconds())
            #expect(queue.enqueue(batch))
        }
    }

    /// Records this run spooled (during an outage) are replayed through the script, never as a
    /// transaction: a follow-up left by a transaction's refused key could not be told from an applied
    /// record if the run ended before it went through.
    @Test func recordsThisRunSpooledAreReplayedThroughTheScript() async throws {
        let server = try RedisServer.start()
        let directory = NSTemporaryDirectory() + "pixeld-spool-it-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let queue = PushQueue(capacityBytes: 4096)
        let writer = LPushWriter(
            queue: queue, redis: try RedisConfiguration(url: server.url),
            spool: try Spool(directory: directory, maxBytes: 64 << 20, sync: .never), logger: logger
        )
        writer.start()
        let send = { (range: Range<Int>) in Self.send(range, to: queue) }
        send(0..<100)
        #expect(try Poll.until(timeout: 5) { try server.llen("pixel") == 100 })
        #expect(try server.calls(of: "exec") >= 1, "the key known, live batches go as transactions")
        server.stop()
        send(100..<2000)  // far more than the 4 KiB queue: spooled
        #expect(Poll.until(timeout: 10) { writer.statistics.spooled > 0 })
        try server.restart()  // no persistence, and its command counts start again
        #expect(try Poll.until(timeout: 10) { try server.llen("pixel") == 1900 })
        await writer.shutdown(timeoutNanoseconds: 5_000_000_000)
        #expect(try server.calls(of: "exec") == 0, "a spool record was replayed as a transaction")
        #expect(try server.lrange("pixel").reversed() == (100..<2000).map { "seq=\($0)" })
    }

    @Test func anOutageSpillsToTheSpoolWhichReplaysInOrderAfterARestart() async throws {
        let server = try RedisServer.start()
        let directory = NSTemporaryDirectory() + "pixeld-spool-it-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let redis = try RedisConfiguration(url: server.url)
        // Run 1: a few messages delivered, then Redis goes away; the rest spill to the spool; shutdown.
        do {
            let spool = try Spool(directory: directory, maxBytes: 64 << 20, sync: .always)
            let queue = PushQueue(capacityBytes: 4096)
            let writer = LPushWriter(queue: queue, redis: redis, spool: spool, logger: logger)
            writer.start()
            let send = { (range: Range<Int>) in Self.send(range, to: queue) }
            send(0..<100)
            var delivered = false
            for _ in 0..<200 where !delivered {
                delivered = try server.llen("pixel") == 100
                if !delivered { try await Task.sleep(for: .milliseconds(10)) }
            }
            #expect(delivered)
            server.stop()
            send(100..<2000)  // 1900 × ~8 bytes: far more than the 4 KiB queue, so it must spill
            await writer.shutdown(timeoutNanoseconds: 500_000_000)
            #expect(writer.statistics.pushed == 100)
            #expect(writer.statistics.lost == 0)
            #expect(writer.statistics.spooled == 1900)
        }
        // Run 2: Redis is back; a new writer replays the spool before anything new.
        try server.restart()
        let spool = try Spool(directory: directory, maxBytes: 64 << 20, sync: .always)
        #expect(spool.messageCount == 1900)
        let queue = PushQueue(capacityBytes: 1 << 20)
        let writer = LPushWriter(queue: queue, redis: redis, spool: spool, logger: logger)
        writer.start()
        var batch = PushBatch()
        batch.append(key: Array("pixel".utf8), value: Array("seq=2000".utf8), acceptedAt: MonotonicClock.nanoseconds())
        queue.enqueue(batch)
        await writer.shutdown(timeoutNanoseconds: 5_000_000_000)
        #expect(writer.statistics.recovered == 1900)
        #expect(writer.statistics.pushed == 1)
        #expect(spool.isEmpty)
        // The restarted server has no persistence, so only run 2's pushes are there: all of them, once, in order.
        let values = try server.lrange("pixel").reversed().map { $0 }
        #expect(values == (100...2000).map { "seq=\($0)" })
    }

    private func temporarySpool(_ name: String) -> String {
        NSTemporaryDirectory() + "pixeld-\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    }

    /// `count` messages of `key`, `value(i)` each, appended to the queue in batches of 100 (waiting for room).
    private func enqueue(_ range: Range<Int>, into queue: PushQueue, key: String = "pixel", value: (Int) -> String) {
        for start in stride(from: range.lowerBound, to: range.upperBound, by: 100) {
            var batch = PushBatch()
            for index in start..<min(start + 100, range.upperBound) {
                batch.append(key: Array(key.utf8), value: Array(value(index).utf8), acceptedAt: MonotonicClock.nanoseconds())
            }
            queue.enqueue(batch)
        }
    }

    /// A Redis server that is down (connections refused from the start) and an empty spool of 64 MiB in
    /// a temporary directory named after `name`, which the caller removes.
    private func outageWithSpool(_ name: String, sync: Spool.SyncPolicy) throws -> (RedisServer, directory: String, Spool) {
        let server = try RedisServer.start()
        server.stop()
        let directory = temporarySpool(name)
        return (server, directory, try Spool(directory: directory, maxBytes: 64 << 20, sync: sync))
    }

    @Test func duringAnOutageTheQueueGoesToTheSpoolWithoutWaitingForTheNextRetry() async throws {
        let (server, directory, spool) = try outageWithSpool("spool-intake", sync: .never)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let queue = PushQueue(capacityBytes: 1 << 20)
        let writer = LPushWriter(queue: queue, redis: try RedisConfiguration(url: server.url), spool: spool, logger: logger)
        writer.start()
        // 8 MiB of 400-byte lines into a 1 MiB queue. Retries back off to 500 ms; one 256 KiB batch
        // spooled per retry would take ~15 s, and the receivers (here the producer) would wait on it.
        let padding = String(repeating: "x", count: 380)
        // On a thread of its own: a task could wait for a pool thread, and that wait would be timed too.
        let started = ContinuousClock.now
        let producer = DedicatedThread(name: "test-producer") { enqueue(0..<20_000, into: queue) { "seq=\($0)," + padding } }
        await producer.finished()
        let elapsed = ContinuousClock.now - started
        await writer.shutdown(timeoutNanoseconds: 500_000_000)
        #expect(elapsed < .seconds(3), "the producer waited \(elapsed) for room in the queue")
        #expect(writer.statistics.spooled == 20_000 && writer.statistics.lost == 0)
        #expect(spool.messageCount == 20_000)
    }

    /// A spool that cannot be written during an outage (a full or read-only disk; here the process's
    /// file size limit at 0, so every write fails with `EFBIG`): the batches stay in memory, as without a
    /// spool, rather than being dropped as `spool_full`; spooling resumes once writes succeed again, and
    /// when Redis is back every message arrives once, in order.
    @Test func aSpoolThatCannotBeWrittenKeepsTheMessagesInMemory() async throws {
        let (server, directory, spool) = try outageWithSpool("spool-unwritable", sync: .always)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let handler = CountingLogHandler()
        let queue = PushQueue(capacityBytes: 1 << 20)
        let writer = LPushWriter(
            queue: queue, redis: try RedisConfiguration(url: server.url), spool: spool, logger: Logger(label: "test") { _ in handler }
        )
        let limit = LoweredFileSizeLimit(bytes: 0)
        writer.start()
        enqueue(0..<500, into: queue) { "m\($0)" }
        let failed = Poll.until(timeout: 5, interval: 0.005) { writer.statistics.spoolWriteErrors >= 3 }
        limit.restore()
        #expect(failed, "no spool write failed")
        #expect(writer.statistics.spoolFull == 0 && writer.statistics.lost == 0)
        enqueue(500..<1000, into: queue) { "m\($0)" }
        #expect(Poll.until(timeout: 5, interval: 0.01) { writer.statistics.spooled == 1000 }, "spooling did not resume")
        // Again, now behind spooled records: the batch waits in memory for the spool, not for Redis.
        let errorsBefore = writer.statistics.spoolWriteErrors
        let again = LoweredFileSizeLimit(bytes: 0)
        enqueue(1000..<1500, into: queue) { "m\($0)" }
        let failedAgain = Poll.until(timeout: 5, interval: 0.005) { writer.statistics.spoolWriteErrors >= errorsBefore + 3 }
        again.restore()
        #expect(failedAgain, "no spool write failed behind the spooled records")
        #expect(Poll.until(timeout: 5, interval: 0.01) { writer.statistics.spooled == 1500 }, "spooling did not resume")
        try server.restart()
        #expect(Poll.until(timeout: 10, interval: 0.01) { (try? server.llen("pixel")) == 1500 })
        await writer.shutdown(timeoutNanoseconds: 5_000_000_000)
        let values = try server.lrange("pixel")
        let inOrder = values.reversed() == (0..<1500).map { "m\($0)" }
        #expect(inOrder, "not every message once, in order (\(values.count) of 1500)")
        #expect(writer.statistics.pushed == 1500 && writer.statistics.spoolFull == 0 && writer.statistics.lost == 0)
        #expect(handler.count("spool write failed; holding messages in memory") == 2)
        #expect(handler.count("spool writable again") == 2)
    }

    @Test func aLongReplayLetsNewMessagesInBehindIt() async throws {
        let server = try RedisServer.start()
        let directory = temporarySpool("spool-slices")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let spool = try Spool(directory: directory, maxBytes: 256 << 20, sync: .never)
        // A previous run's spool: 100 records of 2,000 messages.
        for record in 0..<100 {
            var batch = PushBatch()
            for index in record * 2000..<(record + 1) * 2000 {
                batch.append(key: Array("pixel".utf8), value: Array("s\(index)".utf8), acceptedAt: 0)
            }
            #expect(try spool.append(batch, instanceID: "earlier", sequence: UInt64(record + 1)))
        }
        let (_, spooledWhenTheProducerWasDone) = try await replayWithNewArrivals(spool, holding: 200_000, into: server)
        #expect(spooledWhenTheProducerWasDone > 0, "the producer waited for the whole replay")
    }

    /// Runs a writer on `spool`, which holds a previous run's `s0`…`s<count-1>`, while 2,000 new
    /// messages (200 KB) arrive in a 64 KiB queue: they fit only if the writer keeps taking them (behind
    /// the spool) while it replays; the producer fills the queue before the writer starts. Expects
    /// Redis to hold the spool's messages, then the new ones, each once, in order.
    /// - Returns: the stopped writer, and the spool's messages when the producer was done.
    private func replayWithNewArrivals(
        _ spool: Spool, holding count: Int, into server: RedisServer, sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> (LPushWriter, spooledWhenTheProducerWasDone: Int) {
        let queue = PushQueue(capacityBytes: 64 << 10)
        let writer = LPushWriter(queue: queue, redis: try RedisConfiguration(url: server.url), spool: spool, logger: logger)
        let producer = DedicatedThread(name: "test-producer") {
            enqueue(0..<2000, into: queue) { "l\($0)" + String(repeating: "y", count: 90) }
        }
        // (The queue's bound counts each message's entry too.)
        let filled = { queue.pendingFootprintBytes > 40 << 10 }
        #expect(Poll.until(timeout: 10, interval: 0.005) { filled() }, "the producer did not fill the queue", sourceLocation: sourceLocation)
        writer.start()
        await producer.finished()
        let spooledWhenTheProducerWasDone = writer.statistics.spooled  // (the spool itself is the writer thread's)
        await writer.shutdown(timeoutNanoseconds: 60_000_000_000)
        #expect(writer.statistics.recovered == count && writer.statistics.pushed == 2000, sourceLocation: sourceLocation)
        let values = try server.lrange("pixel").reversed().map { $0 }
        let expected = (0..<count).map { "s\($0)" } + (0..<2000).map { "l\($0)" + String(repeating: "y", count: 90) }
        let inOrder = values == expected
        #expect(inOrder, "not the spool, then the new messages, each once, in order (\(values.count) of \(expected.count))", sourceLocation: sourceLocation)
        return (writer, spooledWhenTheProducerWasDone)
    }

    /// A spool filled to its limit by an outage, replayed once Redis is back: messages arriving during
    /// the replay must not be dropped as `spool_full` while Redis takes every commit. (The replayed part
    /// of a 16 MiB segment stays on disk until the segment is done; it must not count as full.)
    @Test func aFullSpoolTakesNewMessagesWhileItIsReplayed() async throws {
        let server = try RedisServer.start()
        let directory = temporarySpool("spool-full-replay")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let spool = try Spool(directory: directory, maxBytes: 4 << 20, sync: .never)
        // A previous run's outage filled it: records of 2,000 messages until the limit refuses one.
        var filled = 0
        while true {
            var batch = PushBatch()
            for index in filled..<filled + 2000 {
                batch.append(key: Array("pixel".utf8), value: Array("s\(index)".utf8), acceptedAt: 0)
            }
            guard try spool.append(batch, instanceID: "earlier", sequence: UInt64(filled / 2000 + 1)) else { break }
            filled += 2000
        }
        let (writer, _) = try await replayWithNewArrivals(spool, holding: filled, into: server)
        #expect(writer.statistics.spoolFull == 0)
    }

    @Test func theReplayAtShutdownStopsAtTheDeadlineAndTheNextStartReplaysTheRest() async throws {
        let server = try RedisServer.start()
        let directory = temporarySpool("spool-deadline")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let records = 200
        do {  // A previous run's spool: 200 records of 2,000 messages, far more than 100 ms of replay.
            let spool = try Spool(directory: directory, maxBytes: 256 << 20, sync: .never)
            for record in 0..<records {
                var batch = PushBatch()
                for index in record * 2000..<(record + 1) * 2000 {
                    batch.append(key: Array("pixel".utf8), value: Array("s\(index)".utf8), acceptedAt: 0)
                }
                #expect(try spool.append(batch, instanceID: "earlier", sequence: UInt64(record + 1)))
            }
        }
        let redis = try RedisConfiguration(url: server.url)
        var left = 0
        do {
            let writer = LPushWriter(
                queue: PushQueue(capacityBytes: 1 << 20), redis: redis,
                spool: try Spool(directory: directory, maxBytes: 256 << 20, sync: .never), logger: logger
            )
            writer.start()
            let started = ContinuousClock.now
            await writer.shutdown(timeoutNanoseconds: 100_000_000)
            let elapsed = ContinuousClock.now - started
            left = writer.statistics.spooled
            // The commit in flight at the deadline and the saved position's fsyncs come on top.
            #expect(elapsed < .seconds(3), "shutdown took \(elapsed) with a 100 ms timeout")
            #expect(left > 0, "the whole spool was replayed after the deadline")
            #expect(writer.statistics.recovered + left == records * 2000)
        }
        // The next start resumes where the replay stopped, even with the commit markers gone (they
        // live 7 days): nothing is sent again, so nothing is pushed twice.
        for key in try server.command(["KEYS", "*"]).array?.compactMap(\.string) ?? [] where key != "pixel" {
            _ = try server.command(["DEL", key])
        }
        let writer = LPushWriter(
            queue: PushQueue(capacityBytes: 1 << 20), redis: redis,
            spool: try Spool(directory: directory, maxBytes: 256 << 20, sync: .never), logger: logger
        )
        #expect(writer.statistics.spooled == left)
        writer.start()
        await writer.shutdown(timeoutNanoseconds: 60_000_000_000)
        #expect(writer.statistics.recovered == left)
        #expect(writer.statistics.spooled == 0)
        let values = try server.lrange("pixel").reversed().map { $0 }
        #expect(values == (0..<records * 2000).map { "s\($0)" }, "not each spooled message once, in order")
    }

    /// Counts the log lines that contain a text (swift-log handler for one test).
    final class CountingLogHandler: LogHandler, @unchecked Sendable {
        private let lock = ConditionLock()
        private var counts: [String: Int] = [:]
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            lock.withLock { counts["\(event.message)", default: 0] += 1 }
        }
        func count(_ message: String) -> Int { lock.withLock { counts[message, default: 0] } }
    }

    /// A spool in `directory` holding one record of a previous run: `pixel` values `<values>0`…`<values>4`.
    private func spoolHoldingOneRecord(in directory: String, values: String) throws -> Spool {
        let spool = try Spool(directory: directory, maxBytes: 64 << 20, sync: .never)
        var batch = PushBatch()
        for index in 0..<5 { batch.append(key: Array("pixel".utf8), value: Array("\(values)\(index)".utf8), acceptedAt: 0) }
        #expect(try spool.append(batch, instanceID: "earlier", sequence: 1))
        return spool
    }

    /// A started writer on `spool` logging to `handler`, with one live message `live` queued.
    private func writerWithALiveMessage(_ server: RedisServer, spool: Spool, handler: CountingLogHandler) throws -> LPushWriter {
        let queue = PushQueue(capacityBytes: 1 << 20)
        let writer = LPushWriter(
            queue: queue, redis: try RedisConfiguration(url: server.url), spool: spool, logger: Logger(label: "test") { _ in handler }
        )
        writer.start()
        var live = PushBatch()
        live.append(key: Array("pixel".utf8), value: Array("live".utf8), acceptedAt: MonotonicClock.nanoseconds())
        queue.enqueue(live)
        return writer
    }

    /// A writer replaying a previous run's record (`s0`…`s4`) on a Redis paused for writes, with
    /// `count` values `m0`… queued (more than half of a 16 KiB queue; `maxBatchBytes` to a batch) and
    /// every spool write failing (the file size limit at 0): once the replay's reply has been awaited
    /// 100 ms the writer spills, the spool refuses the first batch, and the writer holds it
    /// (`spillHeld`), the rest still queued. Checks the in-flight gauge counts the held batch, so that
    /// queued + in flight still add up to every value (before, it read 0: the batch was counted
    /// nowhere). Returns with the limit back and Redis still paused (`CLIENT UNPAUSE` is the caller's).
    private func stalledReplayWithASpillHeld(
        _ server: RedisServer, spoolDirectory: String, count: Int, maxBatchBytes: Int, sourceLocation: SourceLocation = #_sourceLocation
    ) throws -> (LPushWriter, PushQueue) {
        var options = LPushWriter.Options()
        options.maxBatchBytes = maxBatchBytes
        let queue = PushQueue(capacityBytes: 16 << 10)
        let writer = LPushWriter(
            queue: queue, redis: try RedisConfiguration(url: server.url), options: options,
            spool: try spoolHoldingOneRecord(in: spoolDirectory, values: "s"), logger: logger
        )
        enqueue(0..<count, into: queue) { "m\($0)" }
        try #require(queue.pendingFootprintBytes > queue.capacityBytes / 2, sourceLocation: sourceLocation)
        _ = try server.command(["CLIENT", "PAUSE", "30000", "WRITE"])
        let limit = LoweredFileSizeLimit(bytes: 0)
        writer.start()
        let refused = Poll.until(timeout: 5, interval: 0.002) { writer.statistics.spoolWriteErrors >= 1 }
        limit.restore()
        try #require(refused, "the spill did not try the spool", sourceLocation: sourceLocation)
        let counted = Poll.until(timeout: 1, interval: 0.005) {
            queue.pendingCount < count && queue.pendingCount + writer.statistics.inFlight == count
        }
        #expect(
            counted, "queued \(queue.pendingCount) + in flight \(writer.statistics.inFlight) != \(count)", sourceLocation: sourceLocation
        )
        #expect(writer.statistics.pushed == 0 && writer.statistics.spooled == 5, sourceLocation: sourceLocation)
        return (writer, queue)
    }

    /// A batch that a spill took and the spool refused (a write error here; a spool at its size limit
    /// while Redis takes the replay is refused the same way) is older than what is still queued: it
    /// joins the spool, or Redis, before any of that. Before, once the replay was done the writer took
    /// the queued values first (delivered live, the spool being empty) and the held batch joined the
    /// spool after them, under the writer's marker with a sequence below the marker's: its replay was
    /// taken for already applied, its values counted pushed and never in Redis (33 of 200 here).
    @Test func aBatchASpillHeldGoesToRedisBeforeNewerOnes() async throws {
        let server = try RedisServer.start()
        let directory = temporarySpool("spill-held")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let (writer, _) = try stalledReplayWithASpillHeld(server, spoolDirectory: directory, count: 200, maxBatchBytes: 256)
        _ = try server.command(["CLIENT", "UNPAUSE"])
        #expect(Poll.until(timeout: 10, interval: 0.01) { writer.statistics.pushed == 200 && writer.statistics.spooled == 0 })
        await writer.shutdown(timeoutNanoseconds: 5_000_000_000)
        let values = try server.lrange("pixel").reversed().map { $0 }
        let inOrder = values == (0..<5).map { "s\($0)" } + (0..<200).map { "m\($0)" }
        #expect(inOrder, "not every value once, in order (\(values.count) of 205): \(values)")
        #expect(writer.statistics.recovered == 5 && writer.statistics.lost == 0)
    }

    /// The queue closes (as at shutdown) while a spill holds a batch the spool refused, and nothing
    /// else is queued: the batch still reaches Redis. Before, the writer's loop ended at the closed
    /// queue with the batch in hand: its 200 values dropped, and counted nowhere (pushed 0, lost 0).
    @Test func aBatchASpillHeldWhenTheQueueClosesIsDelivered() async throws {
        let server = try RedisServer.start()
        let directory = temporarySpool("spill-held-close")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // One batch can take all of them: the spill holds them all.
        let (writer, queue) = try stalledReplayWithASpillHeld(server, spoolDirectory: directory, count: 200, maxBatchBytes: 1 << 18)
        queue.close()
        _ = try server.command(["CLIENT", "UNPAUSE"])
        await writer.shutdown(timeoutNanoseconds: 5_000_000_000)
        let values = try server.lrange("pixel").reversed().map { $0 }
        let inOrder = values == (0..<5).map { "s\($0)" } + (0..<200).map { "m\($0)" }
        #expect(inOrder, "not every value once, in order (\(values.count) of 205)")
        #expect(writer.statistics.pushed == 200)
        #expect(writer.statistics.lost == 0 && writer.statistics.spooled == 0)
    }

    @Test func aSpoolSegmentDeletedFromOutsideIsCountedLostAndDeliveryGoesOn() async throws {
        let server = try RedisServer.start()
        let directory = temporarySpool("spool-deleted")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let spool = try spoolHoldingOneRecord(in: directory, values: "gone-")
        // The segment goes away behind the spool's back (a tmp cleaner, an operator).
        for name in try FileManager.default.contentsOfDirectory(atPath: directory) { try FileManager.default.removeItem(atPath: directory + "/" + name) }
        let handler = CountingLogHandler()
        let writer = try writerWithALiveMessage(server, spool: spool, handler: handler)
        #expect(Poll.until(timeout: 5, interval: 0.01) { (try? server.llen("pixel")) == 1 })
        await writer.shutdown(timeoutNanoseconds: 1_000_000_000)
        #expect(try server.lrange("pixel") == ["live"])
        // A previous run's messages stand outside this run's totals (their replay counts as recovered):
        // logged, not counted as this run's lost.
        #expect(writer.statistics.lost == 0 && writer.statistics.recovered == 0, "\(writer.statistics.lost)")
        #expect(writer.statistics.spooled == 0 && spool.isEmpty)
        #expect(handler.count("spool segment unreadable or deleted; its messages are lost") == 1)
        #expect(handler.count("spool read failed") == 0)
    }

    /// A segment that cannot be opened for a while (not gone: a symbolic-link loop stands in for any
    /// error but ENOENT) is retried after a growing back-off, not in a loop; once it can be read
    /// again its records are delivered, none lost, and live messages wait behind them.
    @Test func aSpoolReadErrorIsRetriedWithABackOff() async throws {
        let server = try RedisServer.start()
        let directory = temporarySpool("spool-read-error")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let spool = try spoolHoldingOneRecord(in: directory, values: "spooled-")
        let segment = try #require(try FileManager.default.contentsOfDirectory(atPath: directory).first { $0.hasPrefix("segment-") })
        let path = directory + "/" + segment
        #expect(rename(path, path + ".away") == 0 && symlink(path, path) == 0)  // open: ELOOP
        let handler = CountingLogHandler()
        let writer = try writerWithALiveMessage(server, spool: spool, handler: handler)
        try await Task.sleep(for: .milliseconds(1500))
        let failures = handler.count("spool read failed")
        #expect(failures >= 1 && failures <= 12, "\(failures) failed reads in 1.5 s")
        #expect(try server.llen("pixel") == 0, "a live message overtook the spool")
        #expect(unlink(path) == 0 && rename(path + ".away", path) == 0)
        #expect(Poll.until(timeout: 10, interval: 0.01) { (try? server.llen("pixel")) == 6 })
        await writer.shutdown(timeoutNanoseconds: 1_000_000_000)
        #expect(try server.lrange("pixel").reversed() == (0..<5).map { "spooled-\($0)" } + ["live"])
        #expect(writer.statistics.lost == 0 && spool.isEmpty)
    }

    @Test func aSpoolRecordLargerThanTheHoldLimitStillGoesIntoAnEmptyList() async throws {
        let server = try RedisServer.start()
        let directory = temporarySpool("spool-cap")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let spool = try Spool(directory: directory, maxBytes: 64 << 20, sync: .never)
        var batch = PushBatch()  // written by a run without a limit
        for index in 0..<600 { batch.append(key: Array("pixel".utf8), value: Array("\(index)".utf8), acceptedAt: 0) }
        #expect(try spool.append(batch, instanceID: "earlier", sequence: 1))
        var options = LPushWriter.Options()
        options.maxListLength = 100
        let writer = LPushWriter(
            queue: PushQueue(capacityBytes: 1 << 20), redis: try RedisConfiguration(url: server.url), options: options,
            spool: spool, logger: logger
        )
        writer.start()
        #expect(Poll.until(timeout: 5, interval: 0.01) { (try? server.llen("pixel")) == 600 })
        await writer.shutdown(timeoutNanoseconds: 2_000_000_000)
        #expect(spool.isEmpty)
        #expect(writer.statistics.recovered == 600 && writer.statistics.trimmed == 0)
        #expect(try server.lrange("pixel").reversed() == (0..<600).map(String.init))
    }

    @Test func afterTheShutdownDeadlineAHungRedisIsNotWaitedOnForEveryBatch() async throws {
        // A "Redis" that accepts connections (the kernel's backlog) and never answers.
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(listener) }
        let port = try #require(bindToLoopback(listener))
        #expect(listen(listener, 64) == 0)
        var redis = try RedisConfiguration(url: "redis://127.0.0.1:\(port)/0")
        redis.connectTimeoutMilliseconds = 500
        redis.commandTimeoutMilliseconds = 500
        var options = LPushWriter.Options()
        options.maxBatchBytes = 4096
        let queue = PushQueue(capacityBytes: 1 << 20)
        let writer = LPushWriter(queue: queue, redis: redis, options: options, logger: logger)
        writer.start()
        enqueue(0..<4000, into: queue) { "seq=\($0)," + String(repeating: "z", count: 40) }  // ~50 batches
        let started = ContinuousClock.now
        await writer.shutdown(timeoutNanoseconds: 300_000_000)
        let elapsed = ContinuousClock.now - started
        // One timed-out attempt after the deadline gives Redis up; not two per remaining batch (~50 s).
        #expect(elapsed < .seconds(3), "shutdown took \(elapsed)")
        #expect(writer.statistics.lost == 4000 && writer.statistics.pushed == 0)
    }
}

/// `--max-list-length` with both policies, against a real server.
@Suite(.serialized, .enabled(if: TestEnvironment.canRun("redis-server")))
struct CapacityTests {
    private let logger: Logger = {
        var logger = Logger(label: "test")
        logger.logLevel = .error
        return logger
    }()

    private func push(_ range: Range<Int>, into queue: PushQueue) {
        var batch = PushBatch()
        for index in range { batch.append(key: Array("pixel".utf8), value: Array("\(index)".utf8), acceptedAt: 0) }
        queue.enqueue(batch)
    }

    /// A running writer to `server` with `--max-list-length` and its policy, and its queue.
    private func startWriter(_ server: RedisServer, maxListLength: Int, dropOldest: Bool = false) throws -> (LPushWriter, PushQueue) {
        var options = LPushWriter.Options()
        options.maxListLength = maxListLength
        options.dropOldestWhenFull = dropOldest
        let queue = PushQueue(capacityBytes: 1 << 20)
        let writer = LPushWriter(queue: queue, redis: try RedisConfiguration(url: server.url), options: options, logger: logger)
        writer.start()
        return (writer, queue)
    }

    @Test func dropOldestKeepsTheNewestAndCountsTheTrimmed() async throws {
        let server = try RedisServer.start()
        let (writer, queue) = try startWriter(server, maxListLength: 100, dropOldest: true)
        push(0..<250, into: queue)
        await writer.shutdown(timeoutNanoseconds: 5_000_000_000)
        #expect(try server.llen("pixel") == 100)
        #expect(try server.lrange("pixel").reversed() == (150..<250).map(String.init))
        #expect(writer.statistics.trimmed == 150)
        #expect(writer.statistics.pushed == 250)
    }

    @Test func aRedisThatFailsDuringAHoldIsAnOutageOfItsOwn() async throws {
        let server = try RedisServer.start()
        let (writer, queue) = try startWriter(server, maxListLength: 10)
        push(0..<10, into: queue)
        push(10..<20, into: queue)  // held: the list is full
        /// When the writer's failure `reason` began, once it reports it (within 3 s).
        func failing(_ reason: String) async throws -> Int64? {
            for _ in 0..<300 {
                if case .failing(reason, let since) = writer.statistics.redis { return since }
                try await Task.sleep(for: .milliseconds(10))
            }
            return nil
        }
        let started = try #require(try await failing("full"), "never held: \(writer.statistics.redis)")
        try await Task.sleep(for: .milliseconds(300))
        server.stop()
        let outage = try #require(try await failing("unavailable"), "Redis stopped, yet the writer's state is \(writer.statistics.redis)")
        // Counted from when Redis went away, not from the start of the hold.
        #expect(outage - started >= 250_000_000, "outage since \(outage), hold since \(started)")
        await writer.shutdown(timeoutNanoseconds: 500_000_000)
    }

    @Test func holdWaitsForTheConsumerToMakeRoom() async throws {
        let server = try RedisServer.start()
        let (writer, queue) = try startWriter(server, maxListLength: 100)
        #expect(writer.statistics.redis == .unknown)
        // Under hold a commit carries at most half the limit (50): the 80 go in as 50 + 30.
        push(0..<80, into: queue)
        let first = try Poll.until(timeout: 10) {
            try server.llen("pixel") == 80 && writer.statistics.pushed == 80 && writer.statistics.redis == .ok
        }
        try #require(first, "LLEN \((try? server.llen("pixel")) ?? -1), pushed \(writer.statistics.pushed), Redis \(writer.statistics.redis)")
        push(80..<150, into: queue)  // the next 50 would make 130 > 100: held
        // Held because the list is full, not because Redis is unreachable, and still held after the
        // writer has tried again (each attempt is a counted retry, 50 ms, 100 ms, … apart).
        func heldByAFullList() -> Bool {
            guard case .failing("full", _) = writer.statistics.redis else { return false }
            return true
        }
        let held = Poll.until(timeout: 10) { heldByAFullList() && writer.statistics.retries >= 3 }
        try #require(held, "never held by the full list: Redis \(writer.statistics.redis), retries \(writer.statistics.retries)")
        #expect(try server.llen("pixel") == 80)
        #expect(writer.statistics.pushed == 80)
        #expect(heldByAFullList(), "\(writer.statistics.redis)")
        // A consumer takes 60: now the held batch fits (20 + 50), then the last 20 (90).
        for _ in 0..<60 { _ = try server.command(["RPOP", "pixel"]) }
        let fitted = try Poll.until(timeout: 10) { try server.llen("pixel") == 90 && writer.statistics.pushed == 150 }
        #expect(fitted, "LLEN \((try? server.llen("pixel")) ?? -1), pushed \(writer.statistics.pushed)")
        #expect(writer.statistics.redis == .ok)
        await writer.shutdown(timeoutNanoseconds: 2_000_000_000)
        #expect(try server.lrange("pixel").reversed() == (60..<150).map(String.init))
        #expect(writer.statistics.trimmed == 0)
    }
}
