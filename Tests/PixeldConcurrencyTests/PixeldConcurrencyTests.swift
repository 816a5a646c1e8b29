import Foundation
import PixeldConcurrency
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The blocking building blocks the receivers, the writer and the dashboard's Redis reader run on.
/// Waits are bounded: a broken primitive fails a check instead of holding the run.
@Suite struct PixeldConcurrencyTests {
    @Test func aWorkQueueServesJobsInOrderRefusesBeyondItsLimitAndDrainsOnStop() {
        let queue = WorkQueue<Int>(maxQueued: 3)
        #expect(queue.submit(1) == nil && queue.submit(2) == nil && queue.submit(3) == nil)
        #expect(queue.submit(4) == .full)
        #expect(queue.submit(4, beyondLimit: true) == nil, "a health check's job is queued past the limit")
        queue.stop()
        #expect(queue.submit(5) == .stopped)
        var taken: [Int] = []
        while let job = queue.next() { taken.append(job) }
        #expect(taken == [1, 2, 3, 4], "queued jobs are still served after stop, in order, then nil")
    }

    @Test func aWorkQueueWakesAWaitingThreadAndStopEndsIt() {
        final class Taken: @unchecked Sendable {  // written by the thread before `join` returns
            var jobs: [Int] = []
        }
        let queue = WorkQueue<Int>()
        let taken = Taken()
        let worker = DedicatedThread(name: "test-worker") {
            while let job = queue.next() { taken.jobs.append(job) }
        }
        for job in 0..<100 { #expect(queue.submit(job) == nil) }
        #expect(!worker.join(timeoutNanoseconds: 50_000_000), "the thread ended before stop()")
        queue.stop()
        #expect(worker.join(timeoutNanoseconds: 10_000_000_000), "stop() did not end the waiting thread")
        #expect(taken.jobs == Array(0..<100))
    }

    @Test func aConditionWaitWithATimeoutReturnsWithoutASignal() {
        let lock = ConditionLock()
        let started = MonotonicClock.nanoseconds()
        let signalled = lock.withLock { lock.wait(timeoutNanoseconds: 20_000_000) }
        #expect(!signalled)
        #expect(MonotonicClock.nanoseconds() - started >= 19_000_000, "returned before its timeout")
    }

    @Test func aDedicatedThreadIsJoinedWithATimeoutAndAwaited() async {
        let release = Atomic<Bool>(false)
        let thread = DedicatedThread(name: "test-blocked") {
            while !release.load(ordering: .acquiring) { usleep(1_000) }
        }
        #expect(!thread.join(timeoutNanoseconds: 50_000_000), "join returned while the body still ran")
        release.store(true, ordering: .releasing)
        await thread.finished()
        #expect(thread.join(timeoutNanoseconds: 0), "finished() returned before the body did")
    }

    @Test func aLockFileIsHeldUntilItsDescriptorIsClosed() throws {
        let directory = NSTemporaryDirectory() + "pixeld-lockfile-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/lock"
        let first = try LockFile.acquire(path, mode: 0o600)
        // flock belongs to the open file: a second open of the same file conflicts, in this process too.
        #expect {
            try LockFile.acquire(path, mode: 0o600)
        } throws: { error in
            (error as? LockFile.Failure)?.isHeldElsewhere == true
        }
        close(first)
        let second = try LockFile.acquire(path, mode: 0o600)
        close(second)
        #expect {
            try LockFile.acquire(directory + "/missing/lock", mode: 0o600)
        } throws: { error in
            guard let failure = error as? LockFile.Failure else { return false }
            return failure.operation == "open" && failure.code == ENOENT && !failure.isHeldElsewhere
        }
    }
}
