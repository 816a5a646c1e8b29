import PixeldConcurrency

/// The hand-off between the receiving threads and the Redis writer: a queue bounded in bytes.
///
/// Receivers add whole receive batches with ``enqueue(_:)``, which waits while the queue is full — so a
/// full queue slows the receivers down (the kernel's socket buffer absorbs the burst, and counts its
/// own drops) instead of pixeld accepting a message it cannot keep. The writer takes the oldest waiting
/// messages, up to a byte limit, with ``take(into:lingerNanoseconds:maxBytes:timeoutNanoseconds:)``,
/// after lingering briefly so batches stay large at high rates.
///
/// Wake-ups: a receiver wakes the writer only when the writer is idle (the queue was empty), when the
/// waiting bytes reach the writer's batch limit, or when the receiver itself has to wait for room. A
/// lingering writer is otherwise left to sleep until its deadline — waking it for every receive batch
/// cost a futex wake and two context switches per batch for nothing.
///
/// `@unchecked Sendable`: all mutable state is guarded by `lock`.
public final class PushQueue: @unchecked Sendable {
    /// The most bytes (keys + values) that may wait.
    public let capacityBytes: Int
    private let lock = ConditionLock()
    private var pending = PushBatch()
    private var closed = false
    /// What the writer is doing, as far as a receiver needs to know to decide whether to wake it.
    private enum WriterState {
        /// Committing, or not in ``take(into:lingerNanoseconds:maxBytes:timeoutNanoseconds:)``.
        case busy
        /// Waiting for a first message.
        case idle
        /// Waiting for company until a deadline, or until this many bytes wait.
        case lingering(untilBytes: Int, deadline: Int64)
    }
    private var writer = WriterState.busy
    /// Receivers waiting for room.
    private var producersWaiting = 0
    /// The linger and byte limit of the writer's last ``take(into:lingerNanoseconds:maxBytes:timeoutNanoseconds:)``,
    /// for ``nextTakeDeadline()``.
    private var takeLinger: Int64 = 0
    private var takeMaxBytes = 0
    /// Receivers gathering datagrams for the next take (``beginGathering()``).
    private var gatherers = 0
    /// How long past its deadline a lingering writer waits for gathering receivers.
    public let gatherGraceNanoseconds: Int64

    /// Creates a queue that holds at most `capacityBytes` bytes of keys and values.
    /// - Parameter gatherGraceNanoseconds: how long past its linger deadline the writer waits for a
    ///   receiver that gathers datagrams for its take (``beginGathering()``).
    public init(capacityBytes: Int, gatherGraceNanoseconds: Int64 = 2_000_000) {
        precondition(capacityBytes > 0)
        self.capacityBytes = capacityBytes
        self.gatherGraceNanoseconds = gatherGraceNanoseconds
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
            while !closed && !pending.isEmpty && pending.byteCount + batch.byteCount > capacityBytes {
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
            case .lingering(let untilBytes, _) where pending.byteCount >= untilBytes:
                lock.broadcast()
            case .lingering, .busy:
                break
            }
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
    ///   - timeout: how long to wait for a first message; `nil` waits until one comes or the queue closes.
    public func take(
        into batch: inout PushBatch,
        lingerNanoseconds linger: Int64,
        maxBytes: Int,
        timeoutNanoseconds timeout: Int64? = nil
    ) -> TakeOutcome {
        lock.withLock {
            takeLinger = closed ? 0 : linger
            takeMaxBytes = maxBytes
            let deadline = timeout.map { MonotonicClock.nanoseconds() + $0 }
            while pending.isEmpty {
                if closed { return .closed }
                if let deadline, MonotonicClock.nanoseconds() >= deadline { return .timedOut }
                writer = .idle
                lock.wait(timeoutNanoseconds: deadline.map { max(1, $0 - MonotonicClock.nanoseconds()) } ?? 200_000_000)
                writer = .busy
            }
            if linger > 0, !closed {
                let deadline = pending.entries[0].acceptedAt + linger
                while pending.byteCount < maxBytes && producersWaiting == 0 && !closed {
                    let now = MonotonicClock.nanoseconds()
                    var left = deadline - now
                    if left <= 0 {
                        // A receiver gathering for this take hands its datagrams over at about the
                        // deadline; one that wakes late is waited for, briefly, so they join this take.
                        guard gatherers > 0 else { break }
                        left = deadline + gatherGraceNanoseconds - now
                        if left <= 0 { break }
                    }
                    writer = .lingering(untilBytes: maxBytes, deadline: deadline)
                    lock.wait(timeoutNanoseconds: left)
                    writer = .busy
                }
            }
            pending.moveOldest(upToBytes: maxBytes, into: &batch)
            lock.broadcast()
            return .taken
        }
    }

    /// When the writer will take the messages waiting now, if it will linger for them: the oldest
    /// one's acceptance plus the linger of the writer's last `take`. `nil` when nothing waits, the
    /// writer does not linger, or it will take them as soon as it can (its batch limit is reached, a
    /// receiver waits for room, the queue is closed).
    ///
    /// Until then, a message that arrives joins the same commit whether it is enqueued at once or
    /// just before the deadline; a UDP receiver uses this to gather datagrams in its socket buffer
    /// instead of waking for each (`DatagramListener`).
    public func nextTakeDeadline() -> Int64? {
        lock.withLock {
            guard takeLinger > 0, !closed, producersWaiting == 0, let oldest = pending.entries.first,
                pending.byteCount < takeMaxBytes
            else { return nil }
            return oldest.acceptedAt + takeLinger
        }
    }

    /// Announces a receiver that lets datagrams gather in its socket until about ``nextTakeDeadline()``
    /// and will then enqueue them and call ``endGathering()``. A writer that reaches its deadline
    /// meanwhile waits for it (at most ``gatherGraceNanoseconds``), so a receiver that wakes a little
    /// late does not split the batch into two commits.
    public func beginGathering() {
        lock.withLock { gatherers += 1 }
    }

    /// Ends ``beginGathering()``, after the gathered datagrams were enqueued (or none came).
    public func endGathering() {
        lock.withLock {
            gatherers -= 1
            // Wake a writer that waits past its deadline for us; one still before it sleeps on.
            if gatherers == 0, case .lingering(_, let deadline) = writer, MonotonicClock.nanoseconds() >= deadline {
                lock.broadcast()
            }
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
