import PixeldConcurrency
import RespBridge
import Testing

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
