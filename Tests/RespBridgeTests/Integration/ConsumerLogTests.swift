import Foundation
import InMemoryLogging
import Logging
import PixeldConcurrency
import PixeldTestSupport
import RespBridge
import Testing

/// What the consumer and the connection tell the log when something keeps failing: a line per
/// episode, not per attempt. Against a real `redis-server` on a free loopback port.
@Suite(.serialized, .enabled(if: TestEnvironment.canRun("redis-server")))
struct ConsumerLogTests {
    /// A handler that fails its batch eight times in a row (a full disk, say), then writes it: one
    /// error when the failures begin, the seven retries at debug, and one info line when the batch
    /// is acked, with the failed attempts — before, eight errors and nothing when it went through.
    @Test func aHandlerFailingAgainAndAgainLogsOneErrorAndOneRecovery() async throws {
        let server = try RedisServer.start()
        _ = try server.command(["LPUSH", "pixel", "e1", "e2", "e3"])
        let handler = InMemoryLogHandler()
        var logger = Logger(label: "test") { _ in handler }
        logger.logLevel = .debug
        let consumer = ReliableListConsumer(
            list: "pixel", consumerID: "full", redis: try RedisConfiguration(url: server.url), logger: logger
        )
        let attempts = ConditionLockedArray()
        struct DiskFull: Error, CustomStringConvertible { var description: String { "write archive: No space left on device" } }
        consumer.start { batch, _ in
            attempts.append(batch.map { String(decoding: $0, as: UTF8.self) })
            if attempts.values.count <= 8 * 3 { throw DiskFull() }
            return .init()
        }
        let acked = Poll.until(timeout: 20, interval: 0.02) { consumer.consumed == 3 }
        await consumer.stop()
        #expect(acked, "consumed \(consumer.consumed) after \(attempts.values.count / 3) attempts")
        #expect(consumer.handlerFailures == 8)
        let entries = handler.entries
        func lines(_ message: String) -> [InMemoryLogHandler.Entry] { entries.filter { $0.message.description == message } }
        let errors = entries.filter { $0.level >= .warning }
        #expect(errors.count == 1, "\(errors.count) warnings or errors: \(errors.map(\.message))")
        let began = lines("handler failed; batch kept for retry")
        #expect(began.count == 1 && began.first?.level == .error, "\(began)")
        #expect(began.first?.metadata["error"]?.description == "write archive: No space left on device")
        let repeated = lines("handler still failing; batch kept for retry")
        #expect(repeated.count == 7 && repeated.allSatisfy { $0.level == .debug }, "\(repeated.count) repeats: \(repeated.map(\.level))")
        let recovered = lines("handler recovered; batch acked")
        #expect(recovered.count == 1 && recovered.first?.level == .info, "\(recovered)")
        #expect(recovered.first?.metadata["attempts.failed"]?.description == "8", "\(recovered)")
    }

    /// A read that times out (here Redis paused with `CLIENT PAUSE`) says so in the error: `no reply
    /// within 300 ms`, the configured command timeout — before, hiredis's `Resource temporarily
    /// unavailable`, the errno of a socket receive timeout, with `(timeout 1)`.
    @Test func aReadTimeoutSaysNoReplyWithinTheCommandTimeout() throws {
        let server = try RedisServer.start()
        var configuration = try RedisConfiguration(url: server.url)
        configuration.commandTimeoutMilliseconds = 300
        let connection = RedisConnection(configuration: configuration, logger: Logger(label: "test"))
        #expect(try connection.command(["PING"]) == .status("PONG"))
        _ = try server.command(["CLIENT", "PAUSE", "2000", "ALL"])
        defer { _ = try? server.command(["CLIENT", "UNPAUSE"]) }
        do {
            let reply = try connection.command(["PING"])
            Issue.record("answered while paused: \(reply)")
        } catch {
            #expect(error.code == .timeout, "\(error)")
            #expect("\(error)" == "redisGetReply: no reply within 300 ms (timeout)")
        }
    }
}
