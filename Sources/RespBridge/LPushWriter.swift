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

    private let queue: PushQueue
    private let connection: RedisConnection
    private let options: Options
    private let spool: Spool?
    /// Totals for metrics and tests.
    public let statistics: WriterStatistics
    private let logger: Logger
    private var thread: DedicatedThread?
    /// `Int64.max` while running; at shutdown, the monotonic time after which Redis is given up on.
    private let giveUpAt = Atomic<Int64>(.max)
    private let onDelivered: (@Sendable (_ batch: borrowing PushBatch, _ entryIndices: [Int]) -> Void)?

    /// This process's writer identity, part of every batch's identity (see `BatchCommitter`).
    public let instanceID: String
    private let marker: [UInt8]
    private var sequence: UInt64 = 0
    /// Messages in the spool that a previous run left, replayed first and counted as `recovered`.
    private var inheritedSpoolMessages = 0

    // Writer-thread state, reused across batches.
    private var committer: BatchCommitter
    private var everConnected = false
    private var outage = OutageLog()
    /// Whether `statistics.redis` says `.ok` (set after a failure, so that a commit takes no lock).
    private var redisReportedOK = false
    /// The outage under way is a list at `--max-list-length` (`hold`), not a failing Redis.
    private var heldByFullList = false
    private var backoff = Backoff()
    private let metrics = RespBridgeMetrics()
    /// When the spool may be replayed again (`MonotonicClock` nanoseconds): after a failed replay, a
    /// backoff delay away; meanwhile the writer moves the queue into the spool instead of sleeping.
    private var nextReplayAt: Int64 = 0
    /// After the shutdown deadline, Redis failed once: no more attempts, so that each remaining batch
    /// does not wait out another connect or command timeout.
    private var gaveUpOnRedis = false
    /// A spool write failed and none has succeeded since: one warning per episode.
    private var spoolWriteFailing = false
    /// The spool was full and dropped a batch, and has taken none since: one error per episode.
    private var spoolFullDropping = false
    /// A batch ``spill(waitedNanoseconds:)`` took from the queue and the spool did not take: the run
    /// loop puts it behind the spool before it takes anything else.
    private var spillHeld: (batch: PushBatch, sequence: UInt64)?
    /// A spill happened since Redis last took a commit: one warning per stall.
    private var spilledInThisStall = false
    /// Batches ``spill(waitedNanoseconds:)`` has put in the spool, all newer than the batch whose
    /// commit was under way (see ``deliver(_:sequence:)``).
    private var spilledBatches = 0
    /// ``joinSpool(_:sequence:)`` holds a batch the spool did not take yet: no spill meanwhile.
    private var waitingToJoinSpool = false
    /// Messages of the batch the loop is committing or spooling (besides ``spillHeld``'s).
    private var inFlight = 0

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
    private var maxBatchMessages: Int {
        options.maxListLength > 0 && !options.dropOldestWhenFull ? max(1, options.maxListLength / 2) : .max
    }

    private var isGivingUp: Bool { MonotonicClock.nanoseconds() >= giveUpAt.load(ordering: .relaxed) }

    // MARK: - The loop

    private func run() {
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

    /// Commits one batch, retrying until it is applied; spools it (or gives up) as described above.
    private func deliver(_ batch: PushBatch, sequence: UInt64) {
        var groups: [KeyGroup] = []
        KeyGroup.group(batch, into: &groups)
        var attempts = 0
        let spilledBefore = spilledBatches
        while true {
            if gaveUpOnRedis {
                abandon(batch, sequence: sequence)
                return
            }
            attempts += 1
            let wasIdle = connection.mayHaveBeenClosedForIdleness
            do {
                try ensureConnected()
                let started = MonotonicClock.nanoseconds()
                let result = try commit(batch, groups: groups, marker: marker, sequence: sequence)
                metrics.recordCommit(nanoseconds: MonotonicClock.nanoseconds() - started, messages: batch.count)
                noteRecovery()
                settle(result, batch: batch, groups: groups, fromPreviousRun: 0)
                return
            } catch {
                if attempts == 1 && error.connectionIsDead && error.code != .timeout && wasIdle && !isGivingUp {
                    // Redis closes a connection left idle past its `timeout`; the first use finds it gone.
                    // Not an outage: a new connection, at once (an outage shows on that one). Not an
                    // attempt either: the batch's first failure is the one on the new connection, so a
                    // stall of one timeout still keeps the order (and shows in /healthz). A timeout is
                    // never a closed connection: it is the stall.
                    attempts -= 1
                    connection.close()
                    logger.debug("redis connection found closed after idling; reconnecting", metadata: ["error": "\(error)"])
                    continue
                }
                noteFailure(error)
                if isGivingUp { gaveUpOnRedis = true }
                // With a spool, a batch that failed twice (a dead connection gets one immediate retry
                // on a new one) goes to disk at once, so an outage or a crash loses nothing held here;
                // so does one that failed once with the queue needing room — unless a spill has put
                // newer batches in the spool meanwhile: behind them it would reach Redis after them, and
                // the spills in the pause below make room anyway (a stall of one timeout keeps the order).
                // A spool that cannot be written leaves it here, retried as without a spool (the spool
                // was empty when this batch was taken; what a spill put there since is newer, and is
                // replayed after this batch is committed).
                let needsRoom = spilledBatches == spilledBefore && queue.needsRoom(atFraction: options.spoolAtQueueFraction)
                if spool != nil, attempts >= 2 || needsRoom, toSpool(batch, sequence: sequence) != .kept
                {
                    retryReplayLater()
                    return
                }
                if error.connectionIsDead && attempts == 1 && !gaveUpOnRedis { continue }  // reconnect and retry at once
                pause(spilling: true)
            }
        }
    }

    /// ``BatchCommitter/commit(_:groups:marker:sequence:on:allowingTransaction:)`` on the writer's
    /// connection, its start published meanwhile (``WriterStatistics/commitWaitingNanoseconds``: `/healthz`
    /// says `slow` once a reply is a second late).
    private func commit(
        _ batch: PushBatch, groups: [KeyGroup], marker: [UInt8], sequence: UInt64, allowingTransaction: Bool = true
    ) throws(RespError) -> BatchCommitter.Result {
        statistics.setCommitStarted(MonotonicClock.nanoseconds())
        defer { statistics.setCommitStarted(0) }
        return try committer.commit(
            batch, groups: groups, marker: marker, sequence: sequence, on: connection, allowingTransaction: allowingTransaction
        )
    }

    /// After the shutdown deadline, with Redis failing: the batch goes to the spool, or is counted lost.
    private func abandon(_ batch: PushBatch, sequence: UInt64) {
        guard toSpool(batch, sequence: sequence) == .kept else { return }
        let unfinished = unfinishedPart(of: batch, sequence: sequence)
        unfinished.book()
        statistics.addLost(unfinished.batch.count)
        logger.error(
            spool == nil ? "gave up at shutdown: redis unreachable and no spool" : "gave up at shutdown: redis unreachable and the spool cannot be written",
            metadata: ["messages": "\(unfinished.batch.count)"]
        )
    }

    /// What of a batch is still to be committed when it leaves memory (spooled, dropped or given up).
    private struct UnfinishedPart {
        /// The messages still to be committed.
        var batch: PushBatch
        /// The writer instance they are committed as.
        var instanceID: String
        /// Books the rest of the batch (committed already) and forgets its follow-up: call once the
        /// unfinished part has left memory.
        var book: () -> Void
    }

    /// All of `batch`, unless a transaction applied it and only the keys that refused their push wait
    /// for the follow-up (``BatchCommitter/pendingFollowUp``). Then only those keys' values remain, as
    /// the follow-up's instance (`<id>:followup`, whose marker is the follow-up marker), so that a replay
    /// (after a restart too) commits exactly them, once; the whole batch under this instance's marker
    /// would be taken for applied (its sequence is the marker's) and those values lost unnoticed.
    private func unfinishedPart(of batch: PushBatch, sequence: UInt64) -> UnfinishedPart {
        guard let pending = committer.pendingFollowUp, pending.marker == marker, pending.sequence == sequence else {
            return UnfinishedPart(batch: batch, instanceID: instanceID, book: {})
        }
        var groups: [KeyGroup] = []
        KeyGroup.group(batch, into: &groups)
        var applied: [(KeyGroup, BatchCommitter.KeyOutcome)] = []
        var unfinishedEntries: [Int] = []
        for (group, outcome) in zip(groups, pending.outcomes) {
            if let outcome { applied.append((group, outcome)) } else { unfinishedEntries += group.entryIndices }
        }
        var rest = PushBatch()
        for index in unfinishedEntries.sorted() {
            let entry = batch.entries[index]
            rest.append(key: Array(batch.key(of: entry)), value: Array(batch.value(of: entry)), acceptedAt: entry.acceptedAt)
        }
        return UnfinishedPart(batch: rest, instanceID: instanceID + BatchCommitter.followUpSuffix) { [self] in
            committer.pendingFollowUp = nil
            settle(.applied(applied.map(\.1)), batch: batch, groups: applied.map(\.0), fromPreviousRun: 0)
        }
    }

    /// Books a commit's outcome per key: pushed, dead-lettered or lost.
    private func settle(_ result: BatchCommitter.Result, batch: PushBatch, groups: [KeyGroup], fromPreviousRun: Int) {
        var inherited = fromPreviousRun
        /// Messages a previous run left in the spool count as recovered, not as this run's.
        func ownShare(_ count: Int) -> Int {
            let fromBefore = min(inherited, count)
            inherited -= fromBefore
            if fromBefore > 0 { statistics.addRecovered(fromBefore) }
            return count - fromBefore
        }
        guard case .applied(let outcomes) = result else {
            // A spooled batch applied long ago, before a crash: its outcome is gone; count it pushed.
            statistics.addPushed(ownShare(batch.count))
            return
        }
        for (group, outcome) in zip(groups, outcomes) {
            let count = group.entryIndices.count
            switch outcome {
            case .pushed(_, let trimmed):
                statistics.addPushed(ownShare(count))
                metrics.recordAcks(batch, group.entryIndices)
                onDelivered?(batch, group.entryIndices)
                if trimmed > 0 { statistics.addTrimmed(Int(trimmed)) }
            case .deadLettered(let error):
                statistics.addDeadLettered(ownShare(count))
                logger.error(
                    "push failed permanently; values sent to the dead-letter list",
                    metadata: ["redis.key": "\(key(of: group, in: batch))", "error": "\(error)", "messages": "\(count)"]
                )
            case .lost(let error):
                statistics.addLost(ownShare(count))
                logger.error(
                    "push and dead-letter push both failed; messages lost",
                    metadata: ["redis.key": "\(key(of: group, in: batch))", "error": "\(error)", "messages": "\(count)"]
                )
            }
        }
    }

    private func key(of group: KeyGroup, in batch: PushBatch) -> String {
        String(decoding: batch.bytes[group.keyStart..<group.keyStart + group.keyLength], as: UTF8.self)
    }

    // MARK: - Spool

    /// What became of a batch handed to the spool.
    private enum SpoolOutcome {
        /// Written.
        case spooled
        /// Dropped, counted as `spool_full`: the spool is at its size limit while Redis fails.
        case dropped
        /// Not taken (no spool, the write failed, or the spool is at its size limit while Redis takes
        /// its replay): the caller still holds the batch.
        case kept
    }

    /// Appends `batch` to the spool. A failed write is counted and warned about once per episode
    /// (`spool writable again` ends it); the batch is then the caller's to keep. At the size limit the
    /// batch is dropped only while Redis fails: while it takes commits, the replay is making room, and
    /// the batch is kept until there is.
    /// - Parameter spilled: a batch never attempted, spooled as ``spillInstanceID`` by
    ///   ``spill(waitedNanoseconds:)`` while a commit may be under way (whose state is not touched).
    private func toSpool(_ batch: PushBatch, sequence: UInt64, spilled: Bool = false) -> SpoolOutcome {
        guard let spool else { return .kept }
        let unfinished = spilled
            ? UnfinishedPart(batch: batch, instanceID: spillInstanceID, book: {}) : unfinishedPart(of: batch, sequence: sequence)
        do {
            guard try spool.append(unfinished.batch, instanceID: unfinished.instanceID, sequence: sequence) else {
                if redisReportedOK { return .kept }
                unfinished.book()
                statistics.addSpoolFull(unfinished.batch.count)
                // One error per episode (every batch is counted in pixeld_ingest_dropped_total).
                if !spoolFullDropping {
                    spoolFullDropping = true
                    logger.error(
                        "spool full; messages dropped while redis fails (counted as spool_full)",
                        metadata: ["messages": "\(unfinished.batch.count)"]
                    )
                }
                return .dropped
            }
            unfinished.book()
            statistics.setSpooled(spool.messageCount)
            if spoolFullDropping {
                spoolFullDropping = false
                logger.info("spool has room again")
            }
            if spoolWriteFailing {
                spoolWriteFailing = false
                logger.info("spool writable again")
            }
            return .spooled
        } catch {
            statistics.addSpoolWriteError()
            if spoolWriteFailing {
                logger.debug("spool write still failing", metadata: ["error": "\(error)"])
            } else {
                spoolWriteFailing = true
                logger.warning("spool write failed; holding messages in memory", metadata: ["error": "\(error)"])
            }
            return .kept
        }
    }

    /// Puts `batch` behind the spool's records. One the spool does not take now (a write error, or its
    /// size limit while Redis takes the replay) waits here — and the queue, and then the receivers,
    /// behind it — so that nothing overtakes a spooled record: between backoff pauses the spool is
    /// replayed when due and the write tried again, and once the replay has emptied the spool the batch
    /// is delivered live. After the shutdown deadline it is given up.
    private func joinSpool(_ batch: PushBatch, sequence: UInt64) {
        // What is queued is newer than `batch`: no spill may put it in the spool first.
        waitingToJoinSpool = true
        defer { waitingToJoinSpool = false }
        while toSpool(batch, sequence: sequence) == .kept {
            if isGivingUp {
                abandon(batch, sequence: sequence)
                return
            }
            pause()
            if MonotonicClock.nanoseconds() >= nextReplayAt { replaySpool(budgetNanoseconds: Self.replaySliceNanoseconds) }
            if spool?.isEmpty ?? true {
                waitingToJoinSpool = false  // delivered live now, as any batch (which a spill may follow)
                deliver(batch, sequence: sequence)
                return
            }
        }
    }

    /// Sets the in-flight gauge: `count` messages of the batch in hand, plus those of ``spillHeld``
    /// (out of the queue, not yet spooled), so that `received = pushed + queued + in flight +
    /// spooled + …` holds meanwhile.
    private func setInFlight(_ count: Int) {
        inFlight = count
        statistics.setInFlight(count + (spillHeld?.batch.count ?? 0))
    }

    /// Puts the batch a spill took and the spool did not (``spillHeld``) behind the spool — or
    /// delivers it, once the spool is empty — before anything newer is taken from the queue; a spill
    /// during that delivery may hold another, settled in turn.
    private func settleSpillHeld() {
        while let held = spillHeld {
            spillHeld = nil
            setInFlight(held.batch.count)
            joinSpool(held.batch, sequence: held.sequence)
            setInFlight(0)
        }
    }

    /// How long a reply must have been awaited before ``spill(waitedNanoseconds:)`` moves the queue to the
    /// spool: Redis answers a commit in about a millisecond, so this is a stall, not a busy moment.
    static let spillAfterNanoseconds: Int64 = 100_000_000

    /// The identity of the batches ``spill(waitedNanoseconds:)`` spools, with a commit marker of its own.
    /// The batch whose commit is under way keeps this writer's identity and its sequence, lower than
    /// theirs; if that commit fails twice (or is given up at the shutdown deadline) it is spooled
    /// behind them, and under a shared marker its replay would then be taken for applied (the marker
    /// already past its sequence) and lost unnoticed.
    var spillInstanceID: String { instanceID + ":spill" }

    /// While the writer waits on Redis — a reply awaited for more than ``spillAfterNanoseconds`` (a
    /// stalled Redis: `DEBUG SLEEP`, a paused client, an overloaded host; a reply may take the whole
    /// command timeout), or the pause between attempts — the receivers go on filling the queue. Once it
    /// holds ``Options/spoolAtQueueFraction`` of its capacity, or a receiver waits for room
    /// (``PushQueue/needsRoom(atFraction:)``), everything waiting there moves to the spool, so that a
    /// stall fills the disk, not the socket buffers (whose overflow the kernel drops). The spool is then
    /// replayed in order once the commit under way is settled; that batch, should its commit fail
    /// twice, joins the spool behind the spilled ones (the one case where a later message reaches Redis
    /// first).
    private func spill(waitedNanoseconds: Int64) {
        guard spool != nil, spillHeld == nil, !waitingToJoinSpool, waitedNanoseconds >= Self.spillAfterNanoseconds,
            queue.needsRoom(atFraction: options.spoolAtQueueFraction)
        else { return }
        // (Between attempts the outage's own warning has said that Redis fails.)
        if !spilledInThisStall && waitedNanoseconds != .max {
            logger.warning(
                "redis is slow to answer; moving the queue to the spool",
                metadata: ["waited.ms": "\(waitedNanoseconds / 1_000_000)"]
            )
        }
        spilledInThisStall = true
        var batch = PushBatch()
        var waiting = queue.pendingBytes
        while waiting > 0 {
            let outcome = queue.take(
                into: &batch, lingerNanoseconds: 0, maxBytes: options.maxBatchBytes, maxMessages: maxBatchMessages, timeoutNanoseconds: 1
            )
            guard outcome == .taken else { return }
            waiting -= batch.byteCount
            sequence += 1
            switch toSpool(batch, sequence: sequence, spilled: true) {
            case .kept:
                spillHeld = (batch, sequence)
                setInFlight(inFlight)
                return
            case .spooled:
                spilledBatches += 1
            case .dropped:
                break
            }
            batch.removeAll()
        }
    }

    /// How long one replay of the spool runs before the writer moves what has arrived since into the
    /// spool: a long replay (a large spool after an outage or a restart) must not block the receivers.
    static let replaySliceNanoseconds: Int64 = 50_000_000

    /// Commits spooled batches, oldest first, while Redis takes them, for up to `budget` nanoseconds and
    /// never past the shutdown deadline. On a failure the next replay is due a backoff delay later
    /// (``nextReplayAt``).
    /// - Parameter yieldingToTheQueue: the run loop's replay, which moves the queue behind the spool
    ///   when it returns: it returns as soon as the queue needs room (``PushQueue/needsRoom(atFraction:)``),
    ///   after one record at least (so that it advances under any load), not at the end of the slice.
    ///   The receivers come first: catching up after an outage the writer spools, reads back and
    ///   commits every message, and a slice that ran to its end while the queue was full had the
    ///   receivers wait for room (up to 176 ms after a 2 s `CLIENT PAUSE` at 50k msg/s, release
    ///   build), while the socket buffer filled and the kernel dropped what did not fit
    ///   (`BENCHMARKS.md`, session 25).
    private func replaySpool(budgetNanoseconds budget: Int64, yieldingToTheQueue: Bool = false) {
        guard let spool, !spool.isEmpty else { return }
        guard !gaveUpOnRedis && !isGivingUp else {
            // Not before the final replay at the end (which stops at once past the deadline): a due
            // replay that does nothing would have the run loop spin until the queue closes.
            nextReplayAt = .max
            return
        }
        let started = MonotonicClock.nanoseconds()
        while MonotonicClock.nanoseconds() - started < budget && !isGivingUp {
            let record: Spool.Record
            do {
                let next = try spool.peek()
                let unreadable = spool.takeUnreadableMessages()
                if unreadable > 0 {
                    // Of a previous run's records first (the oldest segments): those stand outside this
                    // run's totals, as their replay counts as `recovered`, so only this run's share is lost.
                    let inherited = min(inheritedSpoolMessages, unreadable)
                    inheritedSpoolMessages -= inherited
                    statistics.addLost(unreadable - inherited)
                    statistics.setSpooled(spool.messageCount)
                    logger.error(
                        "spool segment unreadable or deleted; its messages are lost",
                        metadata: ["messages": "\(unreadable)", "of_a_previous_run": "\(inherited)"]
                    )
                }
                guard let next else { break }
                record = next
            } catch {
                logger.error("spool read failed", metadata: ["error": "\(error)"])
                retryReplayLater()
                return
            }
            var groups: [KeyGroup] = []
            KeyGroup.group(record.batch, into: &groups)
            do {
                try ensureConnected()
                // Through the script, never a transaction: a key that refused a transaction's push would
                // leave a follow-up that, should it fail and the run end, no replay could tell from an
                // applied record (the marker says applied, and no outcome is saved).
                let result = try commit(
                    record.batch, groups: groups, marker: BatchCommitter.markerKey(instanceID: record.instanceID),
                    sequence: record.sequence, allowingTransaction: false
                )
                let inherited = min(inheritedSpoolMessages, record.batch.count)
                inheritedSpoolMessages -= inherited
                settle(result, batch: record.batch, groups: groups, fromPreviousRun: inherited)
                try spool.removeFirst()
                statistics.setSpooled(spool.messageCount)
                noteRecovery()  // after the record left the spool: the backlog a hold waits for is what is left
                if yieldingToTheQueue && queue.needsRoom(atFraction: options.spoolAtQueueFraction) { break }
            } catch let error as RespError {
                noteFailure(error)
                if isGivingUp { gaveUpOnRedis = true }
                retryReplayLater()
                return
            } catch {
                logger.error("spool update failed", metadata: ["error": "\(error)"])
                retryReplayLater()
                return
            }
        }
        if spool.isEmpty { logger.info("spool replayed; back to live delivery") }
    }

    // MARK: - Connection health

    private func ensureConnected() throws(RespError) {
        guard !connection.isConnected else { return }
        try connection.connect()
        if everConnected {
            statistics.addReconnect()
        } else {
            logger.info("connected to redis", metadata: ["redis.url": "\(connection.configuration)"])
        }
        everConnected = true
    }

    /// Whether Redis answers a `PING`, while an outage lasts and nothing waits to be committed.
    private func probe() {
        do {
            try ensureConnected()
            _ = try connection.command(["PING"]).unwrap("PING")
            noteRecovery()
        } catch {
            noteFailure(error, countsRetry: false)
        }
    }

    /// - Parameter countsRetry: whether a commit failed (`pixeld_redis_retries_total`), not a connect
    ///   at start or a probe.
    private func noteFailure(_ error: RespError, countsRetry: Bool = true) {
        if countsRetry { statistics.addRetry() }
        // A server error part-way through a pipeline leaves replies unread: the connection is out of
        // step (the next command would read a stale reply), so it goes too; and so does one to a server
        // that does not take writes (a replica after a failover), so that the next attempt reconnects.
        if error.connectionIsDead || connection.hasPendingReplies || error.callsForReconnect { connection.close() }
        let reason = error.connectionIsDead ? "unavailable" : (error.serverErrorPrefix.map { $0.lowercased() } ?? "\(error.code)")
        let full = error.serverErrorPrefix == "FULL"
        if heldByFullList && !full {
            outage.forget()  // a failing Redis during a hold: an outage of its own, with its warning
        }
        if error.connectionIsDead {
            outage.failed(error, logger: logger, message: "redis unavailable, holding messages and retrying", repeatMessage: "redis still unavailable")
        } else {
            // Redis answered but refused the commit (`FULL` at a `hold` limit, `OOM`, …): say why.
            outage.failed(error, logger: logger, message: "redis refused the commit (\(reason)), holding messages and retrying",
                          repeatMessage: "redis still refusing the commit (\(reason))")
        }
        statistics.setRedis(.failing(reason: reason, since: outage.startedAt!))
        redisReportedOK = false
        heldByFullList = full
    }

    private func noteRecovery() {
        backoff.reset()
        spilledInThisStall = false
        // A full list that took one batch is still holding the rest until the backlog is in: under a
        // consumer slower than the traffic that is one long hold, not an outage per batch.
        if heldByFullList && queue.pendingCount + (spool?.messageCount ?? 0) >= maxBatchMessages { return }
        heldByFullList = false
        if !redisReportedOK {
            redisReportedOK = true
            statistics.setRedis(.ok)
        }
        outage.recovered(logger: logger)
    }

    /// The next replay of the spool is due a backoff delay from now.
    private func retryReplayLater() {
        nextReplayAt = MonotonicClock.nanoseconds() + Int64(backoff.nextDelayMilliseconds()) * 1_000_000
    }

    /// Sleeps for the next backoff delay, in slices so that a shutdown deadline is noticed promptly.
    /// - Parameter spilling: between a live batch's attempts: the queue is spilled to the spool as it
    ///   fills (``spill(waitedNanoseconds:)``). Not while a batch waits to join the spool: what is
    ///   queued must not overtake it.
    private func pause(spilling: Bool = false) {
        var left = backoff.nextDelayMilliseconds()
        while left > 0 && !isGivingUp {
            let slice = min(left, 10)
            usleep(UInt32(slice * 1000))
            left -= slice
            if spilling { spill(waitedNanoseconds: .max) }
        }
    }
}
