import PixeldConcurrency
import PixeldTestSupport
import RespBridge
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite struct PushQueueTests {
    private func batch(_ values: [String], key: String = "k") -> PushBatch {
        var batch = PushBatch()
        for value in values { batch.append(key: Array(key.utf8), value: Array(value.utf8), acceptedAt: MonotonicClock.nanoseconds()) }
        return batch
    }

    @Test func keepsArrivalOrderAcrossBatches() {
        let queue = PushQueue(capacityBytes: 1 << 20)
        queue.enqueue(batch(["a", "b"]))
        queue.enqueue(batch(["c"], key: "other"))
        var taken = PushBatch()
        #expect(queue.take(into: &taken, lingerNanoseconds: 0, maxBytes: 1 << 20) == .taken)
        #expect(taken.entries.map { String(decoding: taken.value(of: $0), as: UTF8.self) } == ["a", "b", "c"])
        #expect(taken.entries.map { String(decoding: taken.key(of: $0), as: UTF8.self) } == ["k", "k", "other"])
        #expect(queue.pendingCount == 0)
    }

    /// What a producer thread did, read once `join` has returned (or, for `started`, while it runs).
    private final class Producer: @unchecked Sendable {
        let started = Atomic<Bool>(false)
        var accepted = false
    }

    /// Producers are real threads, as pixeld's receivers are: a blocked enqueue would otherwise hold
    /// one of the few cooperative threads that the other tests (and the test itself) need.
    @Test func aFullQueueMakesTheProducerWaitUntilTheWriterTakes() {
        let queue = PushQueue(capacityBytes: 64)
        let big = batch([String(repeating: "x", count: 40)])
        #expect(queue.enqueue(big))
        let producer = Producer()
        let thread = DedicatedThread(name: "test-producer") {
            producer.started.store(true, ordering: .releasing)
            producer.accepted = queue.enqueue(big)  // 2 × 41 bytes > 64: must wait
        }
        #expect(Poll.until(timeout: 5, interval: 0.005) { producer.started.load(ordering: .acquiring) })
        #expect(!thread.join(timeoutNanoseconds: 200_000_000), "the producer did not wait for room")
        #expect(queue.pendingCount == 1)
        var taken = PushBatch()
        #expect(queue.take(into: &taken, lingerNanoseconds: 0, maxBytes: 1 << 20) == .taken)
        #expect(thread.join(timeoutNanoseconds: 10_000_000_000), "the producer still waits after a take")
        #expect(producer.accepted)
        #expect(queue.pendingCount == 1)
    }

    /// The writer spills the queue to the spool in a stall once it "needs room": at the fraction, or
    /// when a receiver waits for room — with large messages one receiver's batch does not fit long
    /// before the queue is half full, and waiting for half then waited for the stall's end.
    @Test func aWaitingProducerMeansTheQueueNeedsRoom() {
        let queue = PushQueue(capacityBytes: 1000)
        #expect(!queue.needsRoom(atFraction: 0.5))
        #expect(queue.enqueue(batch([String(repeating: "a", count: 300)])))
        #expect(!queue.needsRoom(atFraction: 0.5), "\(queue.pendingFootprintBytes) of 1000 bytes")
        let producer = Producer()
        let thread = DedicatedThread(name: "test-producer") {
            producer.started.store(true, ordering: .releasing)
            producer.accepted = queue.enqueue(self.batch([String(repeating: "b", count: 800)]))  // does not fit
        }
        #expect(Poll.until(timeout: 5, interval: 0.005) { queue.needsRoom(atFraction: 0.5) }, "a producer waits, yet no room is needed")
        #expect(queue.pendingFootprintBytes < 500, "the queue is below the fraction: \(queue.pendingFootprintBytes)")
        var taken = PushBatch()
        #expect(queue.take(into: &taken, lingerNanoseconds: 0, maxBytes: 1 << 20) == .taken)
        #expect(thread.join(timeoutNanoseconds: 10_000_000_000), "the producer still waits after a take")
        #expect(producer.accepted)
        #expect(queue.needsRoom(atFraction: 0.5), "800 of 1000 bytes are past the fraction")
        #expect(!queue.needsRoom(atFraction: 0.9))
    }

    /// The bound counts each message's bookkeeping too: a flood of empty messages with a one-byte key
    /// (`<158>a:`) fills a 64 KiB queue with ~1,600 of them, not 65,536 (whose entries alone took 2.5 MiB).
    @Test func tinyMessagesCountTheirBookkeepingAgainstTheBound() {
        let queue = PushQueue(capacityBytes: 64 << 10)
        let tiny = batch(Array(repeating: "", count: 64), key: "a")
        let thread = DedicatedThread(name: "test-producer") {
            var batches = 0
            while queue.enqueue(tiny), batches < 2_000 { batches += 1 }
        }
        let perMessage = 1 + PushBatch.bookkeepingBytesPerMessage
        let expected = (64 << 10) / perMessage
        #expect(Poll.until(timeout: 5) { queue.pendingCount >= expected - 64 }, "\(queue.pendingCount) messages held")
        #expect(!thread.join(timeoutNanoseconds: 200_000_000), "the producer did not wait for room")
        #expect(queue.pendingCount <= expected + 64, "\(queue.pendingCount) messages held")
        queue.close()
        #expect(thread.join(timeoutNanoseconds: 10_000_000_000), "close did not end the producer's wait")
    }

    @Test func oneTakeMovesAtMostMaxBytesAndLeavesTheRestInOrder() {
        let queue = PushQueue(capacityBytes: 1 << 20)
        queue.enqueue(batch(["a1", "b2", "c3"]))  // 3 bytes each with the key
        queue.enqueue(batch(["d4", "e5"], key: "o"))
        var taken = PushBatch()
        #expect(queue.take(into: &taken, lingerNanoseconds: 0, maxBytes: 7) == .taken)
        #expect(taken.entries.map { String(decoding: taken.value(of: $0), as: UTF8.self) } == ["a1", "b2"])
        #expect(queue.pendingCount == 3 && queue.pendingBytes == 9)
        taken.removeAll()
        #expect(queue.take(into: &taken, lingerNanoseconds: 0, maxBytes: 1) == .taken)  // at least one
        #expect(taken.entries.map { String(decoding: taken.value(of: $0), as: UTF8.self) } == ["c3"])
        taken.removeAll()
        #expect(queue.take(into: &taken, lingerNanoseconds: 0, maxBytes: 1 << 20) == .taken)
        #expect(taken.entries.map { String(decoding: taken.value(of: $0), as: UTF8.self) } == ["d4", "e5"])
        #expect(taken.entries.map { String(decoding: taken.key(of: $0), as: UTF8.self) } == ["o", "o"])
        #expect(queue.pendingCount == 0)
    }

    @Test func oneTakeMovesAtMostMaxMessages() {
        let queue = PushQueue(capacityBytes: 1 << 20)
        queue.enqueue(batch(["a", "b", "c"]))
        queue.enqueue(batch(["d", "e"], key: "o"))
        var taken = PushBatch()
        // A linger that would wait 5 s ends at once: `maxMessages` are already waiting.
        let started = MonotonicClock.nanoseconds()
        #expect(queue.take(into: &taken, lingerNanoseconds: 5_000_000_000, maxBytes: 1 << 20, maxMessages: 2) == .taken)
        #expect(MonotonicClock.nanoseconds() - started < 1_000_000_000)
        #expect(taken.entries.map { String(decoding: taken.value(of: $0), as: UTF8.self) } == ["a", "b"])
        taken.removeAll()
        #expect(queue.take(into: &taken, lingerNanoseconds: 0, maxBytes: 1 << 20, maxMessages: 2) == .taken)
        #expect(taken.entries.map { String(decoding: taken.value(of: $0), as: UTF8.self) } == ["c", "d"])
        #expect(taken.entries.map { String(decoding: taken.key(of: $0), as: UTF8.self) } == ["k", "o"])
        taken.removeAll()
        #expect(queue.take(into: &taken, lingerNanoseconds: 0, maxBytes: 1 << 20, maxMessages: 2) == .taken)
        #expect(taken.entries.map { String(decoding: taken.value(of: $0), as: UTF8.self) } == ["e"])
        #expect(queue.pendingCount == 0)
    }

    @Test func manySmallTakesFromALargeQueueKeepEveryMessageInOrder() {
        // Takes much smaller than the queue, interleaved with new arrivals: the head advances and the
        // taken front is dropped now and then; every message comes out once, in order, intact.
        let queue = PushQueue(capacityBytes: 64 << 20)
        var random = SplitMix64(seed: 7)
        var sent: [String] = [], taken: [String] = []
        var next = 0
        var batch = PushBatch()
        for round in 0..<400 {
            var arriving = PushBatch()
            for _ in 0..<Int(random.next() % 40) {
                let key = next % 3 == 0 ? "other" : "pixel"
                let value = "\(next)," + String(repeating: "v", count: Int(random.next() % 300))
                arriving.append(key: Array(key.utf8), value: Array(value.utf8), acceptedAt: 0)
                sent.append(key + "=" + value)
                next += 1
            }
            queue.enqueue(arriving)
            if round % 2 == 0 || queue.pendingCount > 500 {
                let maxBytes = 1 + Int(random.next() % 4000), maxMessages = 1 + Int(random.next() % 30)
                guard queue.pendingCount > 0 else { continue }
                #expect(queue.take(into: &batch, lingerNanoseconds: 0, maxBytes: maxBytes, maxMessages: maxMessages) == .taken)
                #expect(batch.count <= maxMessages && (batch.count == 1 || batch.byteCount <= maxBytes))
                taken += batch.entries.map { String(decoding: batch.key(of: $0), as: UTF8.self) + "=" + String(decoding: batch.value(of: $0), as: UTF8.self) }
            }
        }
        while queue.pendingCount > 0 {
            #expect(queue.take(into: &batch, lingerNanoseconds: 0, maxBytes: 1000, maxMessages: 7) == .taken)
            taken += batch.entries.map { String(decoding: batch.key(of: $0), as: UTF8.self) + "=" + String(decoding: batch.value(of: $0), as: UTF8.self) }
        }
        #expect(queue.pendingBytes == 0)
        #expect(taken == sent)
    }

    @Test func aLingeringWriterTakesWhenTheBatchLimitIsReached() {
        final class Result: @unchecked Sendable {  // written by the writer thread before `join` returns
            var count = 0
            var waited: Int64 = 0
        }
        let queue = PushQueue(capacityBytes: 1 << 20)
        queue.enqueue(batch(["first"]))
        let result = Result()
        // A real thread, as in pixeld: the take blocks, and a blocked task would hold one of the
        // cooperative threads the other tests running in parallel need (this test waited 4.8 s so).
        let writer = DedicatedThread(name: "test-writer") {
            var taken = PushBatch()
            let started = MonotonicClock.nanoseconds()
            _ = queue.take(into: &taken, lingerNanoseconds: 5_000_000_000, maxBytes: 64)
            result.count = taken.count
            result.waited = MonotonicClock.nanoseconds() - started
        }
        usleep(50_000)
        queue.enqueue(batch([String(repeating: "x", count: 70)]))
        #expect(writer.join(timeoutNanoseconds: 10_000_000_000))
        #expect(result.count == 1 || result.count == 2)
        #expect(result.waited < 2_000_000_000)
    }

    @Test func closeLetsTheWriterDrainThenEnds() {
        let queue = PushQueue(capacityBytes: 1 << 10)
        queue.enqueue(batch(["last"]))
        queue.close()
        #expect(queue.enqueue(batch(["late"])) == false)
        var taken = PushBatch()
        #expect(queue.take(into: &taken, lingerNanoseconds: 1_000_000_000, maxBytes: 1 << 20) == .taken)
        #expect(taken.count == 1)
        taken.removeAll()
        #expect(queue.take(into: &taken, lingerNanoseconds: 0, maxBytes: 1 << 20) == .closed)
    }
}
