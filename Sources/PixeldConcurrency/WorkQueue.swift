/// A first-in-first-out queue of jobs served by a few ``DedicatedThread``s: async callers
/// ``submit(_:)`` work that blocks (hiredis calls, file reads), each thread loops on ``next()``.
/// This keeps blocking calls off the Swift cooperative pool, which has only as many threads as cores.
///
/// `@unchecked Sendable`: every mutable field is only touched under `lock`.
public final class WorkQueue<Job: Sendable>: @unchecked Sendable {
    /// Why ``submit(_:)`` refused a job.
    public enum Refusal: Sendable, Equatable {
        /// ``stop()`` was called.
        case stopped
        /// ``maxQueued`` jobs are already waiting.
        case full
    }

    /// The most jobs that may wait for a thread.
    public let maxQueued: Int
    private let lock = ConditionLock()
    private var jobs: [Job] = []
    private var head = 0
    private var stopping = false

    /// Creates an empty queue.
    /// - Parameter maxQueued: The most waiting jobs; unbounded by default.
    public init(maxQueued: Int = .max) {
        self.maxQueued = maxQueued
    }

    /// Queues `job` and wakes one waiting thread.
    /// - Parameter beyondLimit: queue it even with ``maxQueued`` jobs waiting (a health check that
    ///   must not read "full" as "down").
    /// - Returns: `nil` when queued, else why not (the caller must then complete the job itself).
    public func submit(_ job: Job, beyondLimit: Bool = false) -> Refusal? {
        lock.withLock {
            guard !stopping else { return .stopped }
            guard beyondLimit || jobs.count - head < maxQueued else { return .full }
            jobs.append(job)
            lock.signal()
            return nil
        }
    }

    /// The next job, waiting for one; `nil` once the queue is stopped and every queued job was taken
    /// (the thread should then exit).
    public func next() -> Job? {
        lock.withLock {
            while head == jobs.count && !stopping { _ = lock.wait(timeoutNanoseconds: nil) }
            guard head < jobs.count else { return nil }
            let job = jobs[head]
            head += 1
            if head > 64 && head * 2 > jobs.count {
                jobs.removeFirst(head)
                head = 0
            }
            return job
        }
    }

    /// Takes every job waiting for a thread, in order, for the caller to complete: e.g. to fail them
    /// at once when the resource they wait for stopped answering, rather than let each wait its turn.
    public func takeWaiting() -> [Job] {
        lock.withLock {
            let waiting = Array(jobs[head...])
            jobs.removeAll(keepingCapacity: true)
            head = 0
            return waiting
        }
    }

    /// Refuses new jobs and lets the threads finish the queued ones, then exit.
    public func stop() {
        lock.withLock {
            stopping = true
            lock.broadcast()
        }
    }
}
