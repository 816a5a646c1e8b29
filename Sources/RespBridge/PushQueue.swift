import PixeldConcurrency

/// The hand-off between the receiving threads and the Redis writer: a queue bounded in bytes.
///
/// Receivers add whole receive batches with ``enqueue(_:)``, which waits while the queue is full — so a
/// full queue slows the receivers down (the kernel's socket buffer absorbs the burst, and counts its
/// own drops) instead of pixeld accepting a message it cannot keep. The writer takes everything that is
/// waiting with ``take(into:linger:)``, after lingering briefly so batches stay large at high rates.
///
/// `@unchecked Sendable`: all mutable state is guarded by `lock`.
public final class PushQueue: @unchecked Sendable {
    /// The most bytes (keys + values) that may wait.
    public let capacityBytes: Int
    private let lock = ConditionLock()
    private var pending = PushBatch()
    private var closed = false
    private var writerWaiting = false

    /// Creates a queue that holds at most `capacityBytes` bytes of keys and values.
    public init(capacityBytes: Int) {
        precondition(capacityBytes > 0)
        self.capacityBytes = capacityBytes
    }

    /// Adds `batch`, waiting while there is no room for it. A batch larger than the whole capacity is
    /// admitted once the queue is empty.
    /// - Returns: `false` when the queue was closed; nothing was added then.
    @discardableResult
    public func enqueue(_ batch: PushBatch) -> Bool {
        var batch = batch
        return enqueue(moving: &batch)
    }

    /// Adds `batch` like ``enqueue(_:)`` and leaves it empty (with reusable capacity). When the queue is
    /// empty the two buffers are swapped instead of copied, which is the common case at low and
    /// moderate rates.
    /// - Returns: `false` when the queue was closed; `batch` is left as it was then.
    @discardableResult
    public func enqueue(moving batch: inout PushBatch) -> Bool {
        guard !batch.isEmpty else { return true }
        return lock.withLock {
            while !closed && !pending.isEmpty && pending.byteCount + batch.byteCount > capacityBytes {
                lock.wait(timeoutNanoseconds: 100_000_000)
            }
            if closed { return false }
            if pending.isEmpty {
                swap(&pending, &batch)
            } else {
                pending.append(contentsOf: batch)
            }
            batch.removeAll()
            if writerWaiting { lock.broadcast() }
            return true
        }
    }

    /// What ``take(into:lingerNanoseconds:maxBytes:timeoutNanoseconds:)`` did.
    public enum TakeOutcome: Sendable, Equatable {
        /// Messages were moved into the batch.
        case taken
        /// Nothing arrived within the timeout.
        case timedOut
        /// The queue is closed and empty: the writer is done.
        case closed
    }

    /// Moves everything waiting into `batch` (which should be empty), waiting until there is something.
    /// Once something is there it waits up to `linger` nanoseconds, measured from the oldest message's
    /// acceptance, for more to arrive, unless `maxBytes` are already waiting.
    /// - Parameter timeout: how long to wait for a first message; `nil` waits until one comes or the
    ///   queue closes.
    public func take(
        into batch: inout PushBatch,
        lingerNanoseconds linger: Int64,
        maxBytes: Int,
        timeoutNanoseconds timeout: Int64? = nil
    ) -> TakeOutcome {
        lock.withLock {
            let deadline = timeout.map { MonotonicClock.nanoseconds() + $0 }
            while pending.isEmpty {
                if closed { return .closed }
                if let deadline, MonotonicClock.nanoseconds() >= deadline { return .timedOut }
                writerWaiting = true
                lock.wait(timeoutNanoseconds: deadline.map { max(1, $0 - MonotonicClock.nanoseconds()) } ?? 200_000_000)
                writerWaiting = false
            }
            if linger > 0, !closed {
                let deadline = pending.entries[0].acceptedAt + linger
                while pending.byteCount < maxBytes && !closed {
                    let left = deadline - MonotonicClock.nanoseconds()
                    if left <= 0 { break }
                    writerWaiting = true
                    lock.wait(timeoutNanoseconds: left)
                    writerWaiting = false
                }
            }
            swap(&batch, &pending)
            lock.broadcast()
            return .taken
        }
    }

    /// Stops accepting: pending ``enqueue(_:)`` calls return `false`; the writer drains what is left.
    public func close() {
        lock.withLock {
            closed = true
            lock.broadcast()
        }
    }

    /// Bytes waiting now (a gauge for metrics).
    public var pendingBytes: Int { lock.withLock { pending.byteCount } }
    /// Messages waiting now.
    public var pendingCount: Int { lock.withLock { pending.count } }
}
