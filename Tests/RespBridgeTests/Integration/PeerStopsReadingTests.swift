import Foundation
import Logging
import PixeldConcurrency
import PixeldTestSupport
import RespBridge
import Testing

/// A Redis that stops reading from the writer's connection (a remote one in a network partition, a
/// stalled proxy) while a large commit is on its way: the commit fills the socket's send buffer, and
/// the write — hiredis's `redisBufferWrite`, on a blocking socket — waited for room up to the send
/// timeout (the command timeout), so the spill to the spool could not start meanwhile and the
/// receivers, behind a full queue, left the kernel to drop what came. (Without the non-blocking
/// send: no spill within 2.8 s; with it, 103 ms in — the spill's 100 ms threshold.)
@Suite(.serialized, .enabled(if: TestEnvironment.canRun("redis-server")))
struct PeerStopsReadingTests {
    private let logger = Logger(label: "peer-stops-reading")

    /// `count` values of `bytes` bytes each, numbered from `first`, as one batch.
    private func batch(_ first: Int, count: Int, bytes: Int) -> PushBatch {
        var batch = PushBatch()
        for index in first..<first + count {
            let number = Array(String(index).utf8)
            let value = number + [UInt8](repeating: UInt8(ascii: "."), count: max(0, bytes - number.count - 1)) + [UInt8(ascii: ";")]
            batch.append(key: Array("pixel".utf8), value: value, acceptedAt: MonotonicClock.nanoseconds())
        }
        return batch
    }

    /// A commit of ~240 KiB meets a proxy that stops reading after its first bytes, with small socket
    /// buffers (as on a real network); more than half the queue then waits. The spill to the spool
    /// starts within a second, long before the 3 s command timeout, and once the proxy reads again
    /// every value arrives, once and in order.
    @Test func aCommitThePeerStopsReadingDoesNotHoldTheSpillUp() async throws {
        let server = try RedisServer.start()
        let proxy = try ReplyLosingProxy(upstreamPort: server.port, dropEvery: .max, segmentBytes: 536, receiveBufferBytes: 4096)
        defer { proxy.close() }
        let directory = try TempDirectory(prefix: "pixeld-peer-stops-reading")
        let spool = try Spool(directory: directory.path, maxBytes: 64 << 20, sync: .never)
        var configuration = try RedisConfiguration(url: proxy.url)
        configuration.commandTimeoutMilliseconds = 3000
        let queue = PushQueue(capacityBytes: 1 << 20)
        let writer = LPushWriter(queue: queue, redis: configuration, spool: spool, logger: logger)
        writer.start()
        defer { queue.close() }
        queue.enqueue(batch(0, count: 1, bytes: 100))
        try #require(Poll.until(timeout: 5, interval: 0.01) { writer.statistics.pushed == 1 }, "not connected through the proxy")

        proxy.stopReading(afterReadHolding: "pixel")
        let large = 60, valueBytes = 4096
        queue.enqueue(batch(1, count: large, bytes: valueBytes))  // one commit of ~240 KiB
        try #require(Poll.until(timeout: 5, interval: 0.005) { proxy.readingIsStopped }, "the commit never reached the proxy")
        let stoppedAt = MonotonicClock.nanoseconds()
        let more = 150  // ~600 KiB: over half the queue, so it spills once a reply has been awaited 100 ms
        for first in stride(from: 1 + large, to: 1 + large + more, by: 10) { queue.enqueue(batch(first, count: 10, bytes: valueBytes)) }
        var spilledAfter: Int64?
        Poll.until(timeout: 2.8, interval: 0.005) {
            if writer.statistics.spooled > 0 { spilledAfter = (MonotonicClock.nanoseconds() - stoppedAt) / 1_000_000 }
            return spilledAfter != nil
        }
        #expect(spilledAfter.map { $0 < 1000 } ?? false, "spilled \(spilledAfter.map { "\($0) ms" } ?? "not within 2.8 s") after the proxy stopped reading")

        proxy.resumeReading()
        let total = 1 + large + more
        #expect(Poll.until(timeout: 20, interval: 0.05) { writer.statistics.pushed == total && writer.statistics.spooled == 0 }, "pushed \(writer.statistics.pushed) of \(total)")
        await writer.shutdown(timeoutNanoseconds: 5_000_000_000)
        let values = try server.lrangeRaw("pixel").reversed().map { Int(String(decoding: $0.prefix { $0 != UInt8(ascii: ".") && $0 != UInt8(ascii: ";") }, as: UTF8.self)) ?? -1 }
        #expect(values == Array(0..<total), "\(values.count) values, not all once in order: \(values.prefix(20))…")
        withExtendedLifetime((directory, server)) {}
    }
}
