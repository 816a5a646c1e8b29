import PixeldConcurrency
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

    @Test func aFullQueueMakesTheProducerWaitUntilTheWriterTakes() async throws {
        let queue = PushQueue(capacityBytes: 64)
        let big = batch([String(repeating: "x", count: 40)])
        #expect(queue.enqueue(big))
        let second = Task.detached { queue.enqueue(big) }  // 2 × 41 bytes > 64: must wait
        try await Task.sleep(for: .milliseconds(150))
        #expect(queue.pendingCount == 1)
        var taken = PushBatch()
        #expect(queue.take(into: &taken, lingerNanoseconds: 0, maxBytes: 1 << 20) == .taken)
        #expect(await second.value)
        #expect(queue.pendingCount == 1)
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

    /// ``PushQueue/nextTakeDeadline()``: the oldest waiting message's acceptance plus the writer's
    /// linger, and `nil` whenever the writer would take at once.
    @Test func nextTakeDeadlineFollowsTheOldestMessageAndTheWritersLinger() {
        let queue = PushQueue(capacityBytes: 1 << 20)
        var taken = PushBatch()
        queue.enqueue(batch(["early"]))
        #expect(queue.nextTakeDeadline() == nil, "no take yet: the linger is not known")
        #expect(queue.take(into: &taken, lingerNanoseconds: 0, maxBytes: 1 << 20) == .taken)
        queue.enqueue(batch(["x"]))
        #expect(queue.nextTakeDeadline() == nil, "a writer without linger takes at once")
        taken.removeAll()
        #expect(queue.take(into: &taken, lingerNanoseconds: 1, maxBytes: 100) == .taken)  // 1 ns: returns at once
        #expect(queue.nextTakeDeadline() == nil, "nothing waits")
        var first = PushBatch()
        first.append(key: Array("k".utf8), value: Array("a".utf8), acceptedAt: 5_000)
        first.append(key: Array("k".utf8), value: Array("b".utf8), acceptedAt: 9_000)
        queue.enqueue(first)
        #expect(queue.nextTakeDeadline() == 5_001)
        // Set the writer's linger to 2 ms (its take returns at once: the message is long overdue).
        taken.removeAll()
        #expect(queue.take(into: &taken, lingerNanoseconds: 2_000_000, maxBytes: 100) == .taken)
        var second = PushBatch()
        second.append(key: Array("k".utf8), value: Array("c".utf8), acceptedAt: 7_000)
        queue.enqueue(second)
        #expect(queue.nextTakeDeadline() == 2_007_000)
        queue.enqueue(batch([String(repeating: "y", count: 120)]))
        #expect(queue.nextTakeDeadline() == nil, "the batch limit is reached: the writer takes at once")
        taken.removeAll()
        _ = queue.take(into: &taken, lingerNanoseconds: 2_000_000, maxBytes: 100)
        _ = queue.take(into: &taken, lingerNanoseconds: 2_000_000, maxBytes: 1000)
        queue.enqueue(second)
        queue.close()
        #expect(queue.nextTakeDeadline() == nil, "a closed queue drains at once")
    }

    /// A writer that reaches its linger deadline while a receiver gathers waits for that receiver's
    /// datagrams (``PushQueue/beginGathering()``), so they join the same take; it waits at most
    /// its grace period for a receiver that never ends.
    /// (Threads, not tasks: a writer blocked in `take` must not hold up the test's own continuation.)
    @Test func aLingeringWriterWaitsForAGatheringReceiver() throws {
        let queue = PushQueue(capacityBytes: 1 << 20, gatherGraceNanoseconds: 400_000_000)
        queue.enqueue(batch(["first"]))
        queue.beginGathering()
        let result = Mutex<(count: Int, tookAt: Int64)>((0, 0))
        let writer = DedicatedThread(name: "test-writer") {
            var taken = PushBatch()
            _ = queue.take(into: &taken, lingerNanoseconds: 5_000_000, maxBytes: 1 << 20)
            let tookAt = MonotonicClock.nanoseconds()
            result.withLock { $0 = (taken.count, tookAt) }
        }
        usleep(50_000)  // past the writer's deadline, within its grace
        let handedAt = MonotonicClock.nanoseconds()
        queue.enqueue(batch(["gathered 1", "gathered 2"]))
        queue.endGathering()
        #expect(writer.join(timeoutNanoseconds: 5_000_000_000))
        let (count, tookAt) = result.withLock { $0 }
        #expect(count == 3, "the gathered datagrams join the take")
        #expect(tookAt >= handedAt)

        // A receiver that never hands over holds the writer for the grace period only.
        queue.enqueue(batch(["alone"]))
        queue.beginGathering()
        var taken = PushBatch()
        let started = MonotonicClock.nanoseconds()
        #expect(queue.take(into: &taken, lingerNanoseconds: 1_000_000, maxBytes: 1 << 20) == .taken)
        let waited = MonotonicClock.nanoseconds() - started
        #expect(taken.count == 1)
        #expect(waited >= 1_000_000 + queue.gatherGraceNanoseconds && waited < 5_000_000_000)
        queue.endGathering()
    }
}
