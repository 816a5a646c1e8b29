public import Logging
import PixeldConcurrency
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The Redis writer: one dedicated thread, one connection, one atomic commit per batch.
///
/// Each flush takes the oldest messages waiting in the ``PushQueue`` (up to ``Options/maxBatchBytes``),
/// groups them by key and commits them atomically with one variadic `LPUSH key v1 … vN` per key — as a
/// `MULTI`/`EXEC` transaction when the keys are known lists, else with one `EVALSHA` (see
/// `BatchCommitter`). Values keep
/// their arrival order: the oldest ends up at the list's tail, where `BRPOP`/`RPOP` take it first.
///
/// Failures, and what happens to the messages:
/// - Connection lost, timeout, or a transient server error (`LOADING`, `BUSY`, `OOM`, `READONLY`,
///   `MASTERDOWN`…): the batch is committed again with the same identity, after a jittered backoff
///   (50 ms doubling to 500 ms), so recovery starts within a second of Redis returning and a batch whose
///   reply was lost is not pushed twice. After `READONLY`, `MASTERDOWN` or `LOADING` the next attempt
///   is on a new connection, so a failover behind the same address (a proxy, DNS, a socket symlink)
///   reaches the new master instead of asking the demoted one forever.
/// - Meanwhile new messages wait in the queue; the receivers wait when it is full. With a spool, a
///   stalled Redis (a reply awaited 100 ms) moves the queue to the spool once it is half full or a
///   receiver waits for room (see ``spill(waitedNanoseconds:)``), and a batch
///   that failed on a fresh connection too goes to disk at once, and so does everything after it, as
///   it arrives (between replay attempts the writer does not sleep but moves the queue to disk); the
///   spool is replayed — in order, before any newer batch — when Redis is back, in slices of 50 ms
///   between which new arrivals join the spool (a slice ends early, after one record at least, once
///   the queue needs room), so a long replay never blocks the receivers.
/// - A spool that cannot be written (disk full or read-only, a permission error) drops nothing: the
///   batch stays in memory as without a spool — retried against Redis if the spool is empty, else
///   held until the spool takes it or has been replayed — and the queue and then the receivers wait
///   behind it. One warning per episode, each failed write counted (``WriterStatistics/spoolWriteErrors``),
///   and `spool writable again` when a write succeeds.
/// - A permanent error for one key (`WRONGTYPE`, `NOPERM`) sends that key's values to `<key>:dead`
///   and counts them; every other key flows on.
/// - At shutdown, after the deadline: to the spool if there is one, else counted as lost; once a
///   commit has failed after the deadline, Redis is not tried again for the batches left. The spool's
///   replay stops at the deadline too; the rest is replayed at the next start.
/// - `--max-list-length` with `hold`: a batch carries at most half the limit and waits until its
///   list has room for all of it (an empty list takes any batch, e.g. a record spooled under a larger
///   limit).
///
/// The code is in four places: this file (options, state, start and shutdown, the run loop),
/// `LPushWriter+Delivery.swift` (committing a batch, booking the outcome), `LPushWriter+Spool.swift`
/// (to the spool, spills, replay) and `LPushWriter+ConnectionHealth.swift` (connecting, failures,
/// recoveries, backoff). The writer-thread state they share is internal for that, not for the module.
///
/// `@unchecked Sendable`: the connection, spool and buffers are used only on the writer thread; what
/// other threads read is atomic.
public final class LPushWriter: @unchecked Sendable {
    /// Tuning knobs.
    public struct Options: Sendable {
        /// How long the first message of a batch may wait for company, in nanoseconds (low at low rates).
        public var lingerNanoseconds: Int64 = 1_000_000
        /// Flush without lingering once this many bytes wait; also the most one commit carries (the rest
        /// waits for the next one). 256 KiB (~1,000 nginx lines) already amortises Redis's per-command
        /// cost; larger commits only add memory (hiredis holds two copies) and hold Redis longer.
        public var maxBatchBytes: Int = 1 << 18
        /// Suffix of the dead-letter list for a key whose pushes fail permanently.
        public var deadLetterSuffix: String = ":dead"
        /// During an outage or a stall, spool once the queue holds this fraction of its capacity (or a
        /// receiver waits for room: ``PushQueue/needsRoom(atFraction:)``).
        public var spoolAtQueueFraction: Double = 0.5
        /// The most values a list may hold; 0 for no limit.
        public var maxListLength: Int = 0
        /// At the limit, trim the oldest values (counted) instead of holding new ones until there is room.
        public var dropOldestWhenFull = false
        /// Creates default options.
        public init() {}
    }

    let queue: PushQueue
    let connection: RedisConnection
    let options: Options
    let spool: Spool?
    /// Totals for metrics and tests.
    public let statistics: WriterStatistics
    let logger: Logger
    private var thread: DedicatedThread?
    /// `Int64.max` while running; at shutdown, the monotonic time after which Redis is given up on.
    private let giveUpAt = Atomic<Int64>(.max)
    let onDelivered: (@Sendable (_ batch: borrowing PushBatch, _ entryIndices: [Int]) -> Void)?

    /// This process's writer identity, part of every batch's identity (see `BatchCommitter`).
    public let instanceID: String
    let marker: [UInt8]
    var sequence: UInt64 = 0
    /// Messages in the spool that a previous run left, replayed first and counted as `recovered`.
    var inheritedSpoolMessages = 0

    // Writer-thread state, reused across batches.
    var committer: BatchCommitter
    var everConnected = false
    var outage = OutageLog()
    /// Whether `statistics.redis` says `.ok` (set after a failure, so that a commit takes no lock).
    var redisReportedOK = false
    /// The outage under way is a list at `--max-list-length` (`hold`), not a failing Redis.
    var heldByFullList = false
    var backoff = Backoff()
    let metrics = RespBridgeMetrics()
    /// When the spool may be replayed again (`MonotonicClock` nanoseconds): after a failed replay, a
    /// backoff delay away; meanwhile the writer moves the queue into the spool instead of sleeping.
    var nextReplayAt: Int64 = 0
    /// After the shutdown deadline, Redis failed once: no more attempts, so that each remaining batch
    /// does not wait out another connect or command timeout.
    var gaveUpOnRedis = false
    /// A spool write failed and none has succeeded since: one warning per episode.
    var spoolWriteFailing = false
    /// The spool was full and dropped a batch, and has taken none since: one error per episode.
    var spoolFullDropping = false
    /// A batch ``spill(waitedNanoseconds:)`` took from the queue and the spool did not take: the run
    /// loop puts it behind the spool before it takes anything else.
    var spillHeld: (batch: PushBatch, sequence: UInt64)?
    /// A spill happened since Redis last took a commit: one warning per stall.
    var spilledInThisStall = false
    /// Batches ``spill(waitedNanoseconds:)`` has put in the spool, all newer than the batch whose
    /// commit was under way (see ``deliver(_:sequence:)``).
    var spilledBatches = 0
    /// ``joinSpool(_:sequence:)`` holds a batch the spool did not take yet: no spill meanwhile.
    var waitingToJoinSpool = false
    /// Messages of the batch the loop is committing or spooling (besides ``spillHeld``'s).
    var inFlight = 0

    /// Creates a writer; call ``start()`` to run it.
    /// - Parameters:
    ///   - queue: where the receivers put accepted messages.
    ///   - redis: where to push.
    ///   - spool: where batches go while Redis is unreachable; `nil` holds them in memory only.
    ///   - onDelivered: called on the writer thread with the entries Redis acknowledged (latency figures).
    public init(
        queue: PushQueue,
        redis: RedisConfiguration,
        options: Options = Options(),
        spool: Spool? = nil,
        statistics: WriterStatistics = WriterStatistics(),
        logger: Logger,
        onDelivered: (@Sendable (_ batch: borrowing PushBatch, _ entryIndices: [Int]) -> Void)? = nil
    ) {
        self.queue = queue
        self.connection = RedisConnection(configuration: redis, logger: logger, recordsClientID: true)
        self.options = options
        var generator = SystemRandomNumberGenerator()
        let instanceID = String(UInt64.random(in: 1...UInt64.max, using: &generator), radix: 16)
        self.instanceID = instanceID
        self.marker = BatchCommitter.markerKey(instanceID: instanceID)
        self.committer = BatchCommitter(
            maxListLength: options.maxListLength,
            fullPolicy: options.dropOldestWhenFull ? .dropOldest : .hold,
            deadLetterSuffix: options.deadLetterSuffix,
            ownMarker: BatchCommitter.markerKey(instanceID: instanceID)
        )
        self.spool = spool
        self.statistics = statistics
        self.logger = logger
        self.onDelivered = onDelivered
        inheritedSpoolMessages = spool?.messageCount ?? 0
        statistics.setSpooled(spool?.messageCount ?? 0)
    }

    /// Starts the writer thread. It connects at once; while Redis cannot be reached, messages wait
    /// (in memory or the spool) and Redis is tried again with backoff, with traffic or without.
    public func start() {
        precondition(thread == nil, "LPushWriter.start() called twice")
        if inheritedSpoolMessages > 0 {
            logger.info("replaying the spool left by a previous run", metadata: ["messages": "\(inheritedSpoolMessages)"])
        }
        thread = DedicatedThread(name: "pixeld-writer") { [self] in run() }
    }

    /// Drains: stops accepting new messages, commits everything already queued and returns when done or
    /// when `timeoutNanoseconds` have passed — then what is left goes to the spool, or is counted lost.
    /// Stop the receivers first, so that they hand over what their sockets still hold.
    public func shutdown(timeoutNanoseconds: Int64) async {
        beginShutdown(timeoutNanoseconds: timeoutNanoseconds)
        queue.close()
        await thread?.finished()
    }

    /// Starts the shutdown clock without closing the queue: until the deadline the writer works as
    /// usual; after it, batches that cannot be committed go to the spool (or are counted lost) at once,
    /// which frees the queue for receivers still draining their sockets. Call before stopping the
    /// receivers, so that a full queue during an outage cannot hold the shutdown up; a later
    /// ``shutdown(timeoutNanoseconds:)`` keeps the earlier deadline.
    public func beginShutdown(timeoutNanoseconds: Int64) {
        let deadline = MonotonicClock.nanoseconds() + timeoutNanoseconds
        var current = giveUpAt.load(ordering: .relaxed)
        while deadline < current {
            let (exchanged, original) = giveUpAt.compareExchange(expected: current, desired: deadline, ordering: .relaxed)
            if exchanged { break }
            current = original
        }
    }

    /// The most messages one commit carries. Under `hold`, a batch waits until its list has room for
    /// all of it, so a batch must fit in the list: half the limit, so that a consumer making room lets
    /// it in before the list is empty. (After a hold the queue has piled up, and a batch of
    /// ``Options/maxBatchBytes`` would hold ~1,300 nginx lines: more than a small limit ever admits.)
    var maxBatchMessages: Int {
        options.maxListLength > 0 && !options.dropOldestWhenFull ? max(1, options.maxListLength / 2) : .max
    }

    var isGivingUp: Bool { MonotonicClock.nanoseconds() >= giveUpAt.load(ordering: .relaxed) }

    // MARK: - The loop

    func run() {
        if spool != nil {
            connection.whileWaiting = { [weak self] waited in
                guard let self else { return false }
                self.spill(waitedNanoseconds: waited)
                return !self.isGivingUp  // past the shutdown deadline: no longer wait (the batch is spooled)
            }
        }
        // Connected at once: a Redis that cannot be reached (a wrong --redis, say) shows now, in the
        // log and in /healthz, not with the first message, which would wait (or be lost at a shutdown).
        do {
            try ensureConnected()
        } catch {
            noteFailure(error, countsRetry: false)
            retryReplayLater()  // a spool left by a previous run: not a second connect at once
        }
        var batch = PushBatch()
        run: while true {
            if MonotonicClock.nanoseconds() >= nextReplayAt {
                replaySpool(budgetNanoseconds: Self.replaySliceNanoseconds, yieldingToTheQueue: true)
            }
            // (Before every take from the queue: a batch a spill took is older than what is queued.)
            settleSpillHeld()
            guard let spool, !spool.isEmpty else {
                // Live: the oldest message lingers for company, then the batch is committed.
                // In an outage with nothing to commit (Redis unreachable at start), Redis is probed
                // after each backoff delay, so that /healthz and the log follow it without traffic.
                let outcome = queue.take(
                    into: &batch, lingerNanoseconds: options.lingerNanoseconds, maxBytes: options.maxBatchBytes,
                    maxMessages: maxBatchMessages,
                    timeoutNanoseconds: outage.startedAt == nil ? nil : Int64(backoff.nextDelayMilliseconds()) * 1_000_000
                )
                if outcome == .closed { break }
                if outcome == .timedOut {
                    probe()
                    continue
                }
                sequence += 1
                setInFlight(batch.count)
                deliver(batch, sequence: sequence)
                setInFlight(0)
                batch.removeAll()
                continue
            }
            // The spool holds something, and nothing may overtake it: everything queued now goes behind
            // it at once (no linger) before the next replay slice, and the wait for more ends when that
            // replay is due. So the receivers never wait on a replay or on a backoff.
            var waiting = queue.pendingBytes
            repeat {
                settleSpillHeld()
                let untilReplay = max(1, min(50_000_000, nextReplayAt - MonotonicClock.nanoseconds()))
                let outcome = queue.take(
                    into: &batch, lingerNanoseconds: 0, maxBytes: options.maxBatchBytes, maxMessages: maxBatchMessages,
                    timeoutNanoseconds: waiting > 0 ? 1 : untilReplay
                )
                switch outcome {
                case .closed:
                    break run
                case .timedOut:
                    waiting = 0
                case .taken:
                    waiting -= batch.byteCount
                    sequence += 1
                    setInFlight(batch.count)
                    joinSpool(batch, sequence: sequence)
                    setInFlight(0)
                    batch.removeAll()
                }
            } while waiting > 0
        }
        settleSpillHeld()  // (the queue closed with one held: to the spool, or given up and counted)
        if let spool {
            // Until the shutdown deadline at most: what is left stays in the spool for the next start
            // (replay is idempotent).
            replaySpool(budgetNanoseconds: .max)
            do {
                try spool.flush()
                // A replay stopped at the deadline part-way into a segment: the next start resumes there
                // rather than sending (and counting) those records again.
                try spool.saveReadPosition()
            } catch {
                logger.error("spool flush failed", metadata: ["error": "\(error)"])
            }
            if !spool.isEmpty {
                logger.info("spool kept for the next start", metadata: ["messages": "\(spool.messageCount)"])
            }
        }
        connection.close()
    }
}
