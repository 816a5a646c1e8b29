import CPixeldSystem

#if canImport(Glibc)
import Glibc
#endif

/// An OS thread that runs one blocking loop — a socket receive loop, the hiredis writer, a `BLMOVE` —
/// so that blocking C calls never occupy the Swift cooperative pool (two threads on a 2-core machine).
///
/// `@unchecked Sendable`: the mutable state, `hasFinished` and `waiters`, is read and written under `done`.
public final class DedicatedThread: @unchecked Sendable {
    private let done = ConditionLock()
    private var hasFinished = false
    /// Tasks suspended in ``finished()``.
    private var waiters: [CheckedContinuation<Void, Never>] = []
    private let name: String

    private final class Box {
        var body: (() -> Void)?
        let thread: DedicatedThread
        init(body: @escaping () -> Void, thread: DedicatedThread) {
            self.body = body
            self.thread = thread
        }
    }

    /// Starts `body` on a new detached thread.
    /// - Parameters:
    ///   - name: the thread's name as `top -H` and `/proc/PID/task/*/comm` show it (first 15 bytes).
    ///   - body: the loop; it must return by itself when its owner asks it to stop.
    public init(name: String, _ body: @escaping @Sendable () -> Void) {
        self.name = name
        let box = Unmanaged.passRetained(Box(body: body, thread: self)).toOpaque()
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
        var handle = pthread_t()
        let rc = pthread_create(&handle, &attributes, { raw in
            let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
            cpixeld_set_thread_name(box.thread.name)
            box.body?()
            // What the body holds (a writer and its spool's lock, say) is released before anyone
            // waiting learns that it has finished.
            box.body = nil
            box.thread.markFinished()
            return nil
        }, box)
        pthread_attr_destroy(&attributes)
        precondition(rc == 0, "pthread_create failed: \(rc)")
    }

    private func markFinished() {
        let suspended = done.withLock {
            hasFinished = true
            done.broadcast()
            defer { waiters = [] }
            return waiters
        }
        for waiter in suspended { waiter.resume() }
    }

    /// Blocks the calling thread until the body has returned or the timeout passed.
    /// - Returns: `true` when the body has returned.
    @discardableResult
    public func join(timeoutNanoseconds: Int64? = nil) -> Bool {
        let deadline = timeoutNanoseconds.map { MonotonicClock.nanoseconds() + $0 }
        return done.withLock {
            while !hasFinished {
                if let deadline {
                    let left = deadline - MonotonicClock.nanoseconds()
                    if left <= 0 { return false }
                    done.wait(timeoutNanoseconds: left)
                } else {
                    done.wait(timeoutNanoseconds: nil)
                }
            }
            return true
        }
    }

    /// Suspends the calling task (not a thread) until the body has returned, cancelled or not.
    public func finished() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = done.withLock {
                if hasFinished { return true }
                waiters.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }
}
