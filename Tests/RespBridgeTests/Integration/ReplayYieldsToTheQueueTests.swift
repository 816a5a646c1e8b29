import Foundation
import Logging
import PixeldConcurrency
import PixeldTestSupport
import RespBridge
import Testing

/// While the writer replays its spool, what arrives waits in the queue until the replay's slice ends
/// and the queue goes behind the spool. The slice (50 ms) ran to its end whatever the queue held, so
/// at high rates the queue filled and the receivers waited for room, leaving the kernel to drop what
/// their socket buffers could not hold (after a 2 s `CLIENT PAUSE` and a connection reset at 50k
/// msg/s, release build: waits of up to 176 ms and 1,959–3,657 drops in 2 of 4 runs, all after Redis
/// was back; none in 4 runs with the change). Now the replay gives way, after one record, as soon as
/// the queue needs room.
@Suite(.serialized, .enabled(if: TestEnvironment.canRun("redis-server")))
struct ReplayYieldsToTheQueueTests {
    private let logger = Logger(label: "replay-yields")

    /// Twenty records a previous run left in the spool, and a queue more than half full when the
    /// writer starts: one record is replayed while the queue needs room, then the queue goes behind
    /// the spool (without the change, every record replayed within the 50 ms slice was: 20 of 20).
    /// Everything arrives once, the records first.
    @Test func aReplayGivesWayToAQueueThatNeedsRoom() async throws {
        let server = try RedisServer.start()
        let directory = try TempDirectory(prefix: "pixeld-replay-yields")
        let records = 20, perRecord = 10
        do {
            let previous = try Spool(directory: directory.path, maxBytes: 64 << 20, sync: .never)
            for record in 0..<records {
                var batch = PushBatch()
                for index in 0..<perRecord {
                    batch.append(key: Array("pixel".utf8), value: Array("spooled-\(record * perRecord + index)".utf8), acceptedAt: 0)
                }
                #expect(try previous.append(batch, instanceID: "previous-run", sequence: UInt64(record + 1)))
            }
        }
        let spool = try Spool(directory: directory.path, maxBytes: 64 << 20, sync: .never)
        let queue = PushQueue(capacityBytes: 64 << 10)
        var queued = PushBatch()
        let value = [UInt8](repeating: UInt8(ascii: "q"), count: 1000)
        for index in 0..<40 { queued.append(key: Array("pixel".utf8), value: Array("queued-\(index)-".utf8) + value, acceptedAt: 0) }
        queue.enqueue(queued)
        try #require(queue.needsRoom(atFraction: 0.5), "the queue holds \(queue.pendingFootprintBytes) bytes: not half full")

        // Per delivery (one key per batch: one call each), whether the queue needed room then.
        let tally = DeliveryTally()
        let writer = LPushWriter(queue: queue, redis: try RedisConfiguration(url: server.url), spool: spool, logger: logger) { _, _ in
            tally.add(queueNeededRoom: queue.needsRoom(atFraction: 0.5))
        }
        writer.start()
        let total = records * perRecord + 40
        let done = Poll.until(timeout: 20, interval: 0.02) { writer.statistics.recovered + writer.statistics.pushed == total && writer.statistics.spooled == 0 }
        await writer.shutdown(timeoutNanoseconds: 5_000_000_000)
        try #require(done, "recovered \(writer.statistics.recovered), pushed \(writer.statistics.pushed), spooled \(writer.statistics.spooled)")

        let (deliveries, replayedWhileFull) = tally.counts
        print("records replayed while the queue needed room: \(replayedWhileFull) of \(records); deliveries \(deliveries)")
        #expect(replayedWhileFull == 1, "\(replayedWhileFull) records were replayed while the queue needed room")
        let values = try server.lrange("pixel").reversed().map { $0.split(separator: "-").prefix(2).joined(separator: "-") }
        let expected = (0..<records * perRecord).map { "spooled-\($0)" } + (0..<40).map { "queued-\($0)" }
        #expect(values == expected, "not every value once, records first: \(values.prefix(5))…")
        withExtendedLifetime((server, directory)) {}
    }
}

/// Deliveries counted on the writer thread, read by the test. `@unchecked Sendable`: guarded by `lock`.
private final class DeliveryTally: @unchecked Sendable {
    private let lock = NSLock()
    private var deliveries = 0
    private var whileTheQueueNeededRoom = 0

    func add(queueNeededRoom: Bool) {
        lock.withLock {
            deliveries += 1
            if queueNeededRoom { whileTheQueueNeededRoom += 1 }
        }
    }

    /// All deliveries, and those made while the queue needed room.
    var counts: (all: Int, whileTheQueueNeededRoom: Int) { lock.withLock { (deliveries, whileTheQueueNeededRoom) } }
}
