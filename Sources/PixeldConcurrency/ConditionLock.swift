#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A mutex paired with a condition variable, for the hand-off between the blocking threads of pixeld
/// (socket receivers, the Redis writer) where `Synchronization.Mutex` alone cannot wait.
///
/// `@unchecked Sendable`: the pthread objects live at a stable heap address owned by this instance,
/// and every access to them goes through `pthread_mutex_*`/`pthread_cond_*`, which are thread-safe.
public final class ConditionLock: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let condition: UnsafeMutablePointer<pthread_cond_t>

    /// Creates an unlocked lock whose condition waits against `CLOCK_MONOTONIC`.
    public init() {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        precondition(pthread_mutex_init(mutex, nil) == 0, "pthread_mutex_init")
        condition = .allocate(capacity: 1)
        condition.initialize(to: pthread_cond_t())
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        #if canImport(Glibc)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        #endif
        precondition(pthread_cond_init(condition, &attributes) == 0, "pthread_cond_init")
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(condition)
        condition.deinitialize(count: 1)
        condition.deallocate()
        pthread_mutex_destroy(mutex)
        mutex.deinitialize(count: 1)
        mutex.deallocate()
    }

    /// Runs `body` with the lock held.
    @inline(__always)
    public func withLock<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }

    /// Waits for a signal; call with the lock held (from inside `withLock`).
    /// - Parameter nanoseconds: the longest wait; `nil` waits until signalled.
    /// - Returns: `false` when the wait timed out.
    @discardableResult
    public func wait(timeoutNanoseconds nanoseconds: Int64?) -> Bool {
        guard let nanoseconds else {
            pthread_cond_wait(condition, mutex)
            return true
        }
        var deadline = MonotonicClock.deadline(after: nanoseconds)
        return pthread_cond_timedwait(condition, mutex, &deadline) != ETIMEDOUT
    }

    /// Wakes one waiter.
    public func signal() { pthread_cond_signal(condition) }

    /// Wakes every waiter.
    public func broadcast() { pthread_cond_broadcast(condition) }
}

/// Monotonic time in nanoseconds, for deadlines and latency figures that must not jump with the wall clock.
public enum MonotonicClock {
    /// Nanoseconds since an arbitrary fixed point.
    @inline(__always)
    public static func nanoseconds() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
    }

    static func deadline(after nanoseconds: Int64) -> timespec {
        let target = Self.nanoseconds() + max(0, nanoseconds)
        return Glibc.timespec(tv_sec: Int(target / 1_000_000_000), tv_nsec: Int(target % 1_000_000_000))
    }
}
