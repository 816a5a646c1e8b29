import PixeldConcurrency

/// The hand-off between the receiving threads and the Redis writer: a queue bounded in bytes.
///
/// Receivers add whole receive batches with ``enqueue(moving:)``, which waits while the queue is full — so a
/// full queue slows the receivers down (the kernel's socket buffer absorbs the burst, and counts its
/// own drops) instead of pixeld accepting a message it cannot keep. The writer takes the oldest waiting
/// messages, up to a byte limit, with ``take(into:lingerNanoseconds:maxBytes:maxMessages:timeoutNanoseconds:)``,
/// after lingering briefly so batches stay large at high rates.
///
/// Wake-ups: a receiver wakes the writer only when the writer is idle (the queue was empty), when the
/// waiting bytes reach the writer's batch limit, or when the receiver itself has to wait for room. A
/// lingering writer is otherwise left to sleep until its deadline — waking it for every receive batch
/// cost a futex wake and two context switches per batch for nothing.
///
/// `@unchecked Sendable`: all mutable state is guarded by `lock`.
public final class PushQueue: @unchecked Sendable {
    /// The most bytes that may wait: keys, values and each message's bookkeeping
    /// (``PushBatch/footprintBytes``).
    public let capacityBytes: Int
    private let lock = ConditionLock()
    private var pending = PendingMessages()
    private var closed = false
    /// What the writer is doing, as far as a receiver needs to know to decide whether to wake it.
    private enum WriterState {
        /// Committing, or not in ``take(into:lingerNanoseconds:maxBytes:maxMessages:timeoutNanoseconds:)``.
        case busy
        /// Waiting for a first message.
        case idle
        /// Waiting for company until a deadline, or until this many bytes wait.
        case lingering(untilBytes: Int)
    }
    private var writer = WriterState.busy
    /// Receivers waiting for room.
    private var producersWaiting = 0

    /// Creates a queue that holds at most `capacityBytes` bytes of messages (keys, values and bookkeeping).
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

    /// Adds `batch` like ``enqueue(_:)`` and leaves it empty (with reusable capacity). The bytes are
    /// copied, never the buffers swapped: a receiver's batch is small (one `recvmmsg`), and swapping
    /// handed the queue's large buffer to the receiver, so a third queue-sized buffer stayed resident.
    /// - Returns: `false` when the queue was closed; `batch` is left as it was then.
    @discardableResult
    public func enqueue(moving batch: inout PushBatch) -> Bool {
        guard !batch.isEmpty else { return true }
        return lock.withLock {
            while !closed && !pending.isEmpty && pending.footprintBytes + batch.footprintBytes > capacityBytes {
                // A full queue is reason enough for a lingering writer to commit now.
                if case .lingering = writer { lock.broadcast() }
                producersWaiting += 1
                lock.wait(timeoutNanoseconds: 100_000_000)
                producersWaiting -= 1
            }
            if closed { return false }
            pending.append(contentsOf: batch)
            batch.removeAll()
            switch writer {
            case .idle:
                lock.broadcast()
            case .lingering(let untilBytes) where pending.byteCount >= untilBytes:
                lock.broadcast()
            case .lingering, .busy:
                break
            }
            return true
        }
    }

    /// What ``take(into:lingerNanoseconds:maxBytes:maxMessages:timeoutNanoseconds:)`` did.
    public enum TakeOutcome: Sendable, Equatable {
        /// Messages were moved into the batch.
        case taken
        /// Nothing arrived within the timeout.
        case timedOut
        /// The queue is closed and empty: the writer is done.
        case closed
    }

    /// Moves the oldest waiting messages into `batch` (which should be empty), waiting until there is
    /// something. Once something is there it waits up to `linger` nanoseconds, measured from the oldest
    /// message's acceptance, for more to arrive, unless `maxBytes` are already waiting, a receiver is
    /// waiting for room, or the queue closes.
    ///
    /// At most `maxBytes` bytes are moved (but always at least one message); the rest stay queued, in
    /// order, for the next call. So one commit never carries the whole queue: its size, the copies of
    /// it that exist while it is sent, and the time Redis spends on it stay bounded.
    /// - Parameters:
    ///   - linger: how long the oldest message may wait for company, in nanoseconds.
    ///   - maxBytes: flush without lingering once this many bytes wait, and move no more than this.
    ///   - maxMessages: likewise in messages.
    ///   - timeout: how long to wait for a first message; `nil` waits until one comes or the queue closes.
    public func take(
        into batch: inout PushBatch,
        lingerNanoseconds linger: Int64,
        maxBytes: Int,
        maxMessages: Int = .max,
        timeoutNanoseconds timeout: Int64? = nil
    ) -> TakeOutcome {
        lock.withLock {
            let deadline = timeout.map { MonotonicClock.nanoseconds() + $0 }
            while pending.isEmpty {
                if closed { return .closed }
                if let deadline, MonotonicClock.nanoseconds() >= deadline { return .timedOut }
                writer = .idle
                lock.wait(timeoutNanoseconds: deadline.map { max(1, $0 - MonotonicClock.nanoseconds()) } ?? 200_000_000)
                writer = .busy
            }
            if linger > 0, !closed {
                let deadline = pending.oldestAcceptedAt + linger
                while pending.byteCount < maxBytes && pending.count < maxMessages && producersWaiting == 0 && !closed {
                    let left = deadline - MonotonicClock.nanoseconds()
                    if left <= 0 { break }
                    writer = .lingering(untilBytes: maxBytes)
                    lock.wait(timeoutNanoseconds: left)
                    writer = .busy
                }
            }
            pending.moveOldest(upToBytes: maxBytes, maxMessages: maxMessages, into: &batch)
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

    /// Whether the writer should make room (move what waits to the spool): the queue holds at least
    /// `fraction` of its capacity, or a receiver waits for room — its batch does not fit, which with
    /// large messages (one `recvmmsg` of 64 datagrams of 3 KB is most of a 256 KiB queue) comes long
    /// before `fraction`.
    public func needsRoom(atFraction fraction: Double) -> Bool {
        lock.withLock { producersWaiting > 0 || Double(pending.footprintBytes) >= Double(capacityBytes) * fraction }
    }

    /// Bytes of keys and values waiting now.
    public var pendingBytes: Int { lock.withLock { pending.byteCount } }
    /// Bytes waiting now as the bound counts them (``PushBatch/footprintBytes``), to compare with
    /// ``capacityBytes`` (a gauge for metrics).
    public var pendingFootprintBytes: Int { lock.withLock { pending.footprintBytes } }
    /// Messages waiting now.
    public var pendingCount: Int { lock.withLock { pending.count } }
}
