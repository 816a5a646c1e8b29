import Foundation
import Logging
import PixeldConcurrency
import PixeldTestSupport
@testable import RespBridge
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
        var slices = 0
        let connection = try connected(through: proxy) { _ in slices += 1 }

        proxy.trickleReplies(everyMilliseconds: 2)
        // Bounds the call without the deadline: the connection closes 4 s in.
        let (failure, elapsedMs) = Self.failure(closing: proxy, after: 4) { () throws(RespError) in
            let reply = try connection.command(["LRANGE", "big", "0", "-1"])
            Issue.record("the whole reply came: \(reply.array?.count ?? -1) values")
        }
        Self.expectTimeout(failure, after: elapsedMs, within: 2000, trickledMoreThan: 10, by: proxy, on: connection, "\(slices) calls of whileWaiting")
        withExtendedLifetime(server) {}
    }

    /// Twenty pipelined `PING`s whose `+PONG`s trickle at a byte per 40 ms (~280 ms a reply, 5.6 s in
    /// all) with a command timeout of 500 ms: the replies owed share one deadline, so the pipeline
    /// fails as a timeout about 500 ms in, and the wait `whileWaiting` is told of runs from its start
    /// (with a deadline per reply, each came within it and the pipeline went on for 5.6 s; a
    /// transaction's `+QUEUED`s, one per key, are such replies).
    @Test func trickledRepliesOfOneExchangeShareTheCommandTimeout() throws {
        let server = try RedisServer.start()
        let proxy = try ReplyLosingProxy(upstreamPort: server.port, dropEvery: .max)
        defer { proxy.close() }
        var longestWaitMs: Int64 = 0
        let connection = try connected(through: proxy) { waited in longestWaitMs = max(longestWaitMs, waited / 1_000_000) }
        longestWaitMs = 0

        proxy.trickleReplies(everyMilliseconds: 40)
        // Bounds the call whatever happens: the connection closes 8 s in.
        let (failure, elapsedMs) = Self.failure(closing: proxy, after: 8) { () throws(RespError) in
            let replies = try connection.pipeline(Array(repeating: [Array("PING".utf8)], count: 20))
            Issue.record("all \(replies.count) replies came")
        }
        Self.expectTimeout(failure, after: elapsedMs, within: 1500, trickledMoreThan: 7, by: proxy, on: connection, "longest wait told \(longestWaitMs) ms")
        #expect(longestWaitMs >= 300, "whileWaiting was told of \(longestWaitMs) ms at most: the wait of one reply, not of the exchange")
        withExtendedLifetime(server) {}
    }

    /// The writer's live commit, `MULTI`/`EXEC` of 20 known lists, through a proxy that trickles its 23
    /// replies at a byte per 20 ms (`+QUEUED` ~180 ms each) with a command timeout of 500 ms: the
    /// commit fails as a timeout about 500 ms in (with a deadline per reply, only the `EXEC` array,
    /// the one reply longer than the timeout, ended it, ~4.5 s in).
    @Test func aTransactionWhoseRepliesTrickleEndsAtTheCommandTimeout() throws {
        let server = try RedisServer.start()
        let proxy = try ReplyLosingProxy(upstreamPort: server.port, dropEvery: .max)
        defer { proxy.close() }
        let connection = try connected(through: proxy) { _ in }
        let marker = BatchCommitter.markerKey(instanceID: "trickled")
        var committer = BatchCommitter(ownMarker: marker)
        var batch = PushBatch()
        for index in 0..<20 { batch.append(key: Array("list-\(index)".utf8), value: Array("v".utf8), acceptedAt: 0) }
        var groups: [KeyGroup] = []
        KeyGroup.group(batch, into: &groups)
        // The first batch meets unknown keys and takes the script; the second goes as a transaction.
        _ = try committer.commit(batch, groups: groups, marker: marker, sequence: 1, on: connection)
        try #require(committer.canUseTransaction(batch, groups: groups, marker: marker, sequence: 2), "the second batch would not go as a transaction")

        proxy.trickleReplies(everyMilliseconds: 20)
        let (failure, elapsedMs) = Self.failure(closing: proxy, after: 10) { () throws(RespError) in
            let result = try committer.commit(batch, groups: groups, marker: marker, sequence: 2, on: connection)
            Issue.record("the commit ended: \(result)")
        }
        Self.expectTimeout(failure, after: elapsedMs, within: 1500, trickledMoreThan: 5, by: proxy, on: connection, "a transaction of \(groups.count) keys")
        withExtendedLifetime(server) {}
    }

    /// A connection through `proxy` with a command timeout of 500 ms and the poll-based read of the
    /// writer with `--spool` (`whileWaiting` calls `onWait` and waits on), checked with a `PING`.
    private func connected(through proxy: ReplyLosingProxy, onWait: @escaping (_ waitedNanoseconds: Int64) -> Void) throws -> RedisConnection {
        var configuration = try RedisConfiguration(url: proxy.url)
        configuration.commandTimeoutMilliseconds = 500
        let connection = RedisConnection(configuration: configuration, logger: logger)
        connection.whileWaiting = { waited in
            onWait(waited)
            return true
        }
        try #require(try connection.command(["PING"]) == .status("PONG"), "not connected through the proxy")
        return connection
    }

    /// Expects `failure` to be a timeout that came within `limitMs` (of a 500 ms command timeout) while
    /// `proxy` trickled more than `bytes` bytes, and `connection` closed after it; prints the figures.
    private static func expectTimeout(
        _ failure: RespError?, after elapsedMs: Int64, within limitMs: Int64, trickledMoreThan bytes: Int,
        by proxy: ReplyLosingProxy, on connection: RedisConnection, _ note: String
    ) {
        let trickled = proxy.trickledBytes
        print("trickled: \(failure.map { "\($0)" } ?? "no error") after \(elapsedMs) ms, \(trickled) bytes trickled, \(note)")
        #expect(failure?.code == .timeout, "failed with \(failure.map { "\($0)" } ?? "nothing") after \(elapsedMs) ms")
        #expect(elapsedMs < limitMs, "the call lasted \(elapsedMs) ms with a 500 ms command timeout")
        #expect(trickled > bytes, "only \(trickled) bytes trickled: the replies were not being sent")
        #expect(!connection.isConnected, "the connection was kept after the timeout")
    }

    /// Runs `call`, with `proxy` closed `seconds` after it began (from another thread, so that a call
    /// that never ends by itself does); returns how it failed and how long it took (ms).
    private static func failure(
        closing proxy: ReplyLosingProxy, after seconds: TimeInterval, _ call: () throws(RespError) -> Void
    ) -> (RespError?, Int64) {
        let closer = Thread { [proxy] in
            Thread.sleep(forTimeInterval: seconds)
            proxy.close()
        }
        closer.start()
        let started = MonotonicClock.nanoseconds()
        var failure: RespError?
        do {
            try call()
        } catch {
            failure = error
        }
        return (failure, (MonotonicClock.nanoseconds() - started) / 1_000_000)
    }
}
