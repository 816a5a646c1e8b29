import PixeldConcurrency
import Synchronization

/// Running totals of the writer, read by the metrics exporter and by tests. Lock-free.
///
/// With the listeners' totals they keep the invariant
/// `received = pushed + queued + in flight + spooled + dead-lettered + dropped (all reasons) + lost`,
/// where `recovered` (spool of a previous run replayed now) stands outside it.
public final class WriterStatistics: Sendable {
    private let pushedCount = Atomic<Int>(0)
    private let deadLetteredCount = Atomic<Int>(0)
    private let lostCount = Atomic<Int>(0)
    private let spoolFullCount = Atomic<Int>(0)
    private let spoolWriteErrorCount = Atomic<Int>(0)
    private let recoveredCount = Atomic<Int>(0)
    private let spooledGauge = Atomic<Int>(0)
    private let inFlightGauge = Atomic<Int>(0)
    private let trimmedCount = Atomic<Int>(0)
    private let reconnectCount = Atomic<Int>(0)
    private let retryCount = Atomic<Int>(0)
    private let redisState = Mutex<RedisState>(.unknown)
    private let commitStartedAt = Atomic<Int64>(0)

    /// Creates zeroed totals.
    public init() {}

    /// Messages of this run acknowledged by Redis in their own list.
    public var pushed: Int { pushedCount.load(ordering: .relaxed) }
    /// Messages a permanent per-key error sent to the key's dead-letter list.
    public var deadLettered: Int { deadLetteredCount.load(ordering: .relaxed) }
    /// Messages lost: given up at shutdown (no spool, or one that cannot be written), in a spool
    /// segment found unreadable or deleted (this run's share), or whose dead-letter push failed too.
    public var lost: Int { lostCount.load(ordering: .relaxed) }
    /// Messages dropped because the spool was at its size limit.
    public var spoolFull: Int { spoolFullCount.load(ordering: .relaxed) }
    /// Spool writes that failed (disk full or read-only, a permission error); their batches stayed in
    /// memory, nothing was dropped.
    public var spoolWriteErrors: Int { spoolWriteErrorCount.load(ordering: .relaxed) }
    /// Messages a previous run left in the spool, pushed by this run.
    public var recovered: Int { recoveredCount.load(ordering: .relaxed) }
    /// Messages in the spool now.
    public var spooled: Int { spooledGauge.load(ordering: .relaxed) }
    /// Messages the writer holds now (taken from the queue, not yet settled).
    public var inFlight: Int { inFlightGauge.load(ordering: .relaxed) }
    /// Older values trimmed from lists at their maximum length (policy drop-oldest). They were pushed
    /// (and counted in ``pushed``) before the trim.
    public var trimmed: Int { trimmedCount.load(ordering: .relaxed) }
    /// Connections re-established after a failure.
    public var reconnects: Int { reconnectCount.load(ordering: .relaxed) }
    /// Failed attempts (connection errors, timeouts, transient server errors).
    public var retries: Int { retryCount.load(ordering: .relaxed) }

    /// Whether Redis takes the writer's commits.
    public enum RedisState: Sendable, Equatable {
        /// Nothing committed yet, and nothing failed.
        case unknown
        /// The last commit went through.
        case ok
        /// Commits fail since `since` (`MonotonicClock` nanoseconds), the last for `reason`:
        /// `unavailable` (no connection) or the server's error, lowercased (`full`, `oom`, `loading`…).
        case failing(reason: String, since: Int64)
    }

    /// Whether Redis takes the writer's commits now.
    public var redis: RedisState { redisState.withLock { $0 } }

    /// How long the commit under way has waited for Redis so far (nanoseconds), or `nil` between
    /// commits. A stalled Redis shows here at once, before its first timeout makes ``redis`` `failing`.
    public var commitWaitingNanoseconds: Int64? {
        let started = commitStartedAt.load(ordering: .relaxed)
        return started == 0 ? nil : max(0, MonotonicClock.nanoseconds() - started)
    }

    func addPushed(_ n: Int) { pushedCount.add(n, ordering: .relaxed) }
    func addDeadLettered(_ n: Int) { deadLetteredCount.add(n, ordering: .relaxed) }
    func addLost(_ n: Int) { lostCount.add(n, ordering: .relaxed) }
    func addSpoolFull(_ n: Int) { spoolFullCount.add(n, ordering: .relaxed) }
    func addSpoolWriteError() { spoolWriteErrorCount.add(1, ordering: .relaxed) }
    func addRecovered(_ n: Int) { recoveredCount.add(n, ordering: .relaxed) }
    func setSpooled(_ n: Int) { spooledGauge.store(n, ordering: .relaxed) }
    func setInFlight(_ n: Int) { inFlightGauge.store(n, ordering: .relaxed) }
    func addTrimmed(_ n: Int) { trimmedCount.add(n, ordering: .relaxed) }
    func addReconnect() { reconnectCount.add(1, ordering: .relaxed) }
    func addRetry() { retryCount.add(1, ordering: .relaxed) }
    func setRedis(_ state: RedisState) { redisState.withLock { $0 = state } }
    /// A commit started at `nanoseconds` (`MonotonicClock`), or none is under way (0).
    func setCommitStarted(_ nanoseconds: Int64) { commitStartedAt.store(nanoseconds, ordering: .relaxed) }
}
