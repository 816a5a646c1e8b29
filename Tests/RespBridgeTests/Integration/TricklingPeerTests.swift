import Foundation
import Logging
import PixeldConcurrency
import PixeldTestSupport
import RespBridge
import Testing

/// A peer that sends a reply a byte at a time (a congested link, a stalled proxy) leaves no poll
/// slice idle. The command timeout of the poll-based read (the writer's, with `--spool`) was checked
/// only in an idle slice, so such a reply kept the call — a commit — alive past the timeout for as
/// long as the bytes came, ended only by the spill or the shutdown deadline. It is a deadline for the
/// whole reply now.
@Suite(.serialized, .enabled(if: TestEnvironment.canRun("redis-server")))
struct TricklingPeerTests {
    private let logger = Logger(label: "trickling-peer")

    /// A reply of ~14 KB trickled at a byte per 2 ms (half a minute) through a proxy, with a command
    /// timeout of 500 ms: the call fails as a timeout about 500 ms in, while the bytes still come
    /// (without the deadline it read on until the proxy closed, 4 s in, and failed as a closed
    /// connection).
    @Test func aTrickledReplyEndsAtTheCommandTimeout() throws {
        let server = try RedisServer.start()
        let values = (0..<500).map { String(format: "value-%014d", $0) }
        let filled = try server.command(["RPUSH", "big"] + values)
        try #require(filled == .integer(500), "RPUSH replied \(filled)")
        let proxy = try ReplyLosingProxy(upstreamPort: server.port, dropEvery: .max)
        defer { proxy.close() }
        var configuration = try RedisConfiguration(url: proxy.url)
        configuration.commandTimeoutMilliseconds = 500
        let connection = RedisConnection(configuration: configuration, logger: logger)
        var slices = 0
        connection.whileWaiting = { _ in
            slices += 1
            return true
        }
        try #require(try connection.command(["PING"]) == .status("PONG"), "not connected through the proxy")

        proxy.trickleReplies(everyMilliseconds: 2)
        // Bounds the call without the deadline: the connection closes 4 s in.
        let closer = Thread { [proxy] in
            Thread.sleep(forTimeInterval: 4)
            proxy.close()
        }
        closer.start()
        let started = MonotonicClock.nanoseconds()
        var failure: RespError?
        do {
            let reply = try connection.command(["LRANGE", "big", "0", "-1"])
            Issue.record("the whole reply came: \(reply.array?.count ?? -1) values")
        } catch {
            failure = error
        }
        let elapsedMs = (MonotonicClock.nanoseconds() - started) / 1_000_000
        let trickled = proxy.trickledBytes
        print("trickled reply: \(failure.map { "\($0)" } ?? "no error") after \(elapsedMs) ms, \(trickled) bytes trickled, \(slices) calls of whileWaiting")
        #expect(failure?.code == .timeout, "failed with \(failure.map { "\($0)" } ?? "nothing") after \(elapsedMs) ms")
        #expect(elapsedMs < 2000, "the call lasted \(elapsedMs) ms with a 500 ms command timeout")
        #expect(trickled > 10, "only \(trickled) bytes trickled: the reply was not being sent")
        #expect(!connection.isConnected, "the connection was kept after the timeout")
        withExtendedLifetime(server) {}
    }
}
