public import Logging
import PixeldConcurrency
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A reliable worker on a Redis list: events move atomically from the list into this consumer's own
/// processing list, are handed to a handler, and are removed only after the handler has written its
/// output (the ack). A consumer killed at any moment leaves its events in its processing list, where
/// the next consumer to start — on any machine — finds and returns them to the list.
///
/// Keys, for a list `L` and consumer id `C` (named in ``ConsumerKeys``, ``keys``):
/// - `L:processing:C` — events taken but not yet acked (oldest at the tail, like `L`).
/// - `L:consumer:C` — heartbeat, refreshed while the consumer runs, expiring 15 s after it stops
///   (``Options/heartbeatSeconds``; a clean stop deletes it). It holds a random token, new for each
///   run and again after each lost connection or lapse: nothing moves in or out of `L:processing:C`,
///   and no ack applies, unless the heartbeat holds the current token (see "Fencing" below).
/// - `L:dead` — values the handler could not decode, with nothing else lost.
///
/// Fencing: another consumer returns a processing list to `L` only once its heartbeat has expired,
/// checked in the same script that moves the events. A consumer that stalled longer than that (its
/// output blocked, the machine suspended) may still hold a batch whose events were returned and
/// handled by someone else: its ack checks the heartbeat first in the script that applies it, and
/// its takes check it in their script, so nothing of it applies once the heartbeat no longer holds its token; it
/// then handles whatever its processing list still holds, or stops (``failure``) when a new run of
/// its id took the id over. So a stall never counts events twice. A consumer that starts while
/// another run's heartbeat holds its id waits for that heartbeat to expire, and stops (``failure``)
/// if it is renewed: two live consumers never share a processing list. A clean stop deletes the
/// heartbeat.
///
/// Redis over `maxmemory` (with `noeviction`) refuses writes that may grow it, but not the
/// consumer's: its takes, acks, heartbeats and recoveries are scripts flagged `allow-oom`, so
/// consumers go on draining a full Redis — what frees it — while writers are refused.
///
/// Runs on its own thread: `BLMOVE` blocks (1 s at a time, so that stopping is bounded; a stalled
/// Redis holds a stop up to ``Options/shutdownTimeoutSeconds`` at most, see ``stop()``) and must never
/// occupy the cooperative pool. Pipelined: the next batch is taken (on a second connection),
/// processed and resolved while Redis applies the previous ack; see ``start(prepare:process:request:resolve:finish:)``.
///
/// `@unchecked Sendable`: the connection is used only on the consumer thread; the stop flag is atomic.
public final class ReliableListConsumer: @unchecked Sendable {
    /// The source list.
    public let list: String
    /// This consumer's id (unique among the consumers of `list`).
    public let consumerID: String
    private let connection: RedisConnection
    /// Takes the next batch while the current one is handled (see ``start(prepare:process:request:resolve:finish:)``).
    private let takeConnection: RedisConnection
    /// Redis as given to ``init(list:consumerID:redis:options:logger:onReady:)``, for ``makeHandlerConnection()``.
    private let redis: RedisConfiguration
    /// The connections ``makeHandlerConnection()`` handed out, which ``stop()`` abandons with the
    /// consumer's own.
    private let handlerConnections = Mutex<[RedisConnection]>([])
    private var prefetching = false
    /// The events in this consumer's processing list as far as this run can tell without asking
    /// Redis: the list's length when ``pending()`` last read it, plus every take's events since, less
    /// the events of every ack seen applied. The line of a stop cut short by its deadline gives it
    /// (``logLeftAtDeadline(inHand:takeInFlight:)``: Redis may be stalled then). Only the consumer
    /// thread touches it.
    private var heldInProcessingList = 0
    private let options: Options
    private let ackScript: AckScript
    private let logger: Logger
    private let stopRequested = Atomic<Bool>(false)
    /// Set when ``stop()`` gave up waiting for Redis (its connections are abandoned then).
    private let abandoned = Atomic<Bool>(false)
    private let consumedCount = Atomic<Int>(0)
    private let deadCount = Atomic<Int>(0)
    private let recoveredCount = Atomic<Int>(0)
    private let ackCommandErrorCount = Atomic<Int>(0)
    private let conflictCount = Atomic<Int>(0)
    private let handlerFailureCount = Atomic<Int>(0)
    /// The handler failed (preparing, processing or finishing a batch), and no ack has applied since
    /// (nor, after a failure of `prepare`, has a `prepare` succeeded).
    private let handlerFailing = Atomic<Bool>(false)
    /// The handler's failures as the log tells them: one error per episode (``logHandlerFailure(_:_:)``).
    /// Only the consumer thread touches it.
    private var handlerFailureEpisode = FailureEpisode()
    /// The handler's last failure was its `prepare`'s: the next `prepare` that succeeds ends the
    /// failure (there may be no batch to ack for a while). Only the consumer thread touches it.
    private var preparationFailing = false
    private let metrics = ConsumerMetrics()
    private var thread: DedicatedThread?
    /// When the heartbeat was last written or checked (0: check at the next chance).
    private var lastHeartbeat: Int64 = 0
    /// Whether this run has written its heartbeat (so a missing one means it lapsed).
    private var heartbeatWritten = false
    /// The heartbeat's value while this run holds it; a new one after a lost connection or a lapse
    /// (``heartbeat()``), so that commands still in flight with the old one are fenced off. Only the
    /// consumer thread touches it.
    private var token: String
    /// Whether the next heartbeat must replace the token (a connection was lost with commands on it).
    private var rotateToken = false
    /// The token the last heartbeat write offered, until its reply is read: a write whose reply was
    /// lost (the connection killed) did happen, and the next heartbeat takes it for ours.
    private var offeredToken: String?
    private let failureText = Mutex<String?>(nil)
    private let onReady: (@Sendable () -> Void)?
    private var announcedReady = false
    private let answering = Atomic<Bool>(false)
    /// The error reply behind the last retry (see ``redisErrorReply``); `nil` while Redis answers,
    /// and after a failure that was no reply at all.
    private let errorReply = Mutex<String?>(nil)

    /// The keys this consumer keeps beside its list.
    public let keys: ConsumerKeys
    /// The processing list of this consumer.
    public var processingList: String { keys.processingList }
    private var heartbeatKey: String { keys.heartbeat }
    /// The set of the ids of the list's consumers (`pixeld:consumers:<list>`): each adds its id with
    /// every heartbeat, and the recovery of a dead one's events removes it. Recovery looks there
    /// instead of scanning the whole keyspace (rollups and visit states included) every period.
    public var consumersKey: String { keys.consumers }
    /// When the whole keyspace was last scanned for processing lists whose consumer is not in
    /// ``consumersKey`` (a consumer of an earlier version, or the set deleted by hand): at start,
    /// then once per ``fullScanNanoseconds``.
    private var lastFullScan: Int64?
    static let fullScanNanoseconds: Int64 = 3600 * 1_000_000_000
    /// The dead-letter list.
    public var deadList: String { keys.deadList }

    /// Creates a consumer; ``start(prepare:handler:)`` runs it. `onReady` is called once, on the
    /// consumer thread, when Redis first answers it (its heartbeat is written): the consumer is then
    /// taking events, while before it may be retrying to connect.
    public init(
        list: String, consumerID: String, redis: RedisConfiguration, options: Options = Options(), logger: Logger,
        onReady: (@Sendable () -> Void)? = nil
    ) {
        self.list = list
        self.consumerID = consumerID
        self.keys = ConsumerKeys(list: list, consumerID: consumerID)
        self.redis = redis
        var redis = redis
        // A read timeout kills a hiredis context: keep it well above the blocking time.
        redis.commandTimeoutMilliseconds = max(redis.commandTimeoutMilliseconds, (options.blockSeconds + 5) * 1000)
        self.connection = RedisConnection(configuration: redis, logger: logger)
        self.takeConnection = RedisConnection(configuration: redis, logger: logger)
        self.options = options
        self.ackScript = AckScript(functions: options.ackFunctions)
        self.logger = logger
        self.onReady = onReady
        self.token = Self.newToken()
    }

    private static func newToken() -> String {
        var random = SystemRandomNumberGenerator()
        return (0..<2).map { _ in String(random.next() as UInt64, radix: 16) }.joined(separator: "-")
    }

    /// Events acked so far (including dead-lettered ones).
    public var consumed: Int { consumedCount.load(ordering: .relaxed) }
    /// Events sent to the dead-letter list.
    public var deadLettered: Int { deadCount.load(ordering: .relaxed) }
    /// Events returned to the list from dead consumers' processing lists.
    public var recovered: Int { recoveredCount.load(ordering: .relaxed) }
    /// Commands of acks that Redis ran and that failed inside them (logged, not retried).
    public var ackCommandErrors: Int { ackCommandErrorCount.load(ordering: .relaxed) }
    /// Acks that Redis refused because their ``Outcome/condition`` did not hold (or could not be
    /// checked), or the heartbeat no longer held this run's token; each such batch was
    /// handled again (after a wait from the second refusal in a row on), or the consumer stopped.
    public var ackConflicts: Int { conflictCount.load(ordering: .relaxed) }

    /// Times the handler failed — preparing, processing or finishing a batch (a full disk, say) —
    /// and the batch was kept for a retry. A step that failed because of Redis (its connection lost,
    /// an error reply of Redis's own such as `NOPERM` or `OOM`: see ``redisErrorReply``) is retried
    /// as an outage instead, not counted here; a `WRONGTYPE` is the handler's.
    public var handlerFailures: Int { handlerFailureCount.load(ordering: .relaxed) }

    /// Whether Redis answered the consumer's last request (`false` before the first answer and while
    /// it retries after an error).
    public var isAnswering: Bool { answering.load(ordering: .relaxed) }

    /// While ``isAnswering`` is `false` because Redis did answer, with an error — a replica after a
    /// failover (`READONLY …`), a server that became one while the consumer waited in `BLMOVE`
    /// (`UNBLOCKED …`), a replica cut off from its master (`MASTERDOWN …`), a server loading
    /// its data (`LOADING …`), a missing ACL permission (`NOPERM …`) —: that error reply's text,
    /// its prefix first. `nil` while Redis answers, and while it does not answer at all (refused
    /// connections, timeouts, a closed connection), so that a health check can tell the two apart.
    public var redisErrorReply: String? {
        guard !isAnswering else { return nil }
        return errorReply.withLock { $0 }
    }

    /// Whether the handler's last attempt failed and no ack has applied since: the consumer is
    /// retrying a batch it cannot handle, or its `prepare` (and then `true` until one succeeds), and
    /// the list is not being drained.
    public var isHandlerFailing: Bool { handlerFailing.load(ordering: .relaxed) }

    /// Why the consumer stopped by itself, if it did: another process took over its consumer id, its
    /// output's reader went away, the list's key holds another type, Redis refused the ack script, or
    /// its heartbeat key has no expiry. `nil` while it runs and after a requested ``stop()``.
    public var failure: String? { failureText.withLock { $0 } }

    /// Starts the consumer thread with a handler in one step.
    /// - Parameters:
    ///   - prepare: called on the consumer thread before the first batch and again after any failure
    ///     (a Redis error, whose ack may or may not have been applied, or a handler error), with the
    ///     connection, so that the handler can re-read what Redis acknowledged — e.g. cut an output
    ///     file back to the acknowledged length — before the unacked events are handled again.
    ///   - handler: called on the consumer thread with each batch, oldest first, and the connection
    ///     the ack will use; it writes its output before returning. See
    ///     ``start(prepare:process:request:resolve:finish:)`` for what it may do on the connection.
    public func start(
        prepare: (@Sendable (RedisConnection) throws -> Void)? = nil,
        handler: @escaping @Sendable ([[UInt8]], RedisConnection) throws -> Outcome
    ) {
        start(prepare: prepare, process: { $0 }, finish: handler)
    }

    /// Starts the consumer thread with a handler in two steps: `process`, which needs nothing from
    /// Redis, and `finish`, which writes the output and returns the ack's commands. The same as
    /// ``start(prepare:process:request:resolve:finish:)`` without a request.
    public func start<Work>(
        prepare: (@Sendable (RedisConnection) throws -> Void)? = nil,
        process: @escaping @Sendable ([[UInt8]]) throws -> Work,
        finish: @escaping @Sendable (Work, RedisConnection) throws -> Outcome
    ) {
        start(prepare: prepare, process: process, request: { _ in [] }, resolve: { work, _, _ in work }, finish: finish)
    }

    /// Starts the consumer thread with a handler in four steps, so that neither the read of what a
    /// batch needs from Redis nor the CPU work that depends on it waits for the previous ack.
    ///
    /// Per batch N:
    /// 1. `process(N)` runs while Redis applies the ack of batch N-2. It must not use the consumer's
    ///    connection, nor write output that a failed ack would have to take back.
    /// 2. The commands `request(N)` returns (reads only, e.g. of the state the batch continues) are
    ///    sent in the same write as the ack of batch N-1, right *before* it: Redis answers them at
    ///    once, so their replies do not include what that ack writes.
    /// 3. `resolve(N, replies, aheadOfAck)` gets the request's replies (error replies included, in
    ///    order) while Redis applies the ack of N-1, and does the work that needs them. `aheadOfAck`
    ///    says whether the request was sent before an ack that was not yet applied (the ack of N-1;
    ///    `false` when the consumer had nothing in flight): then the handler must add what that ack
    ///    writes to what it read, and make its own ack conditional (``Outcome/condition``) on the state
    ///    it expects after that ack. It must not use the connection nor write output.
    /// 4. Once the ack of N-1 is applied, `finish(N)` writes the output and returns the ack's
    ///    commands. It may use the connection, which is idle then.
    ///
    /// So `process(N+1)` and `resolve(N)` run while Redis applies the ack of N-1, and Redis answers the
    /// request of N+1 before it applies the ack of N. The next batch is taken on a second connection
    /// as soon as the current one is in hand. (Acks remove their own events from the tail of the
    /// processing list, so the order in which Redis runs takes and acks does not matter.) On stop,
    /// events taken but not acked are given back to the list (unless Redis stalls past the stop's
    /// deadline: see ``stop()``). When a step throws, or an ack is refused
    /// (its condition failed, or the heartbeat was no longer this run's), nothing of it is applied: the
    /// events stay unacked, and they and the batches taken after them are handled again from the
    /// processing list after `prepare` — at once after the first refusal, then after a growing wait
    /// (50 ms doubling to 500 ms, jittered) for each further refusal in a row, until an ack is applied.
    /// After an ack that Redis applied but where a command failed
    /// (see ``ackCommandErrors``), the batch resolved ahead of it is handled again the same way, as
    /// what it took that ack to write may not be there.
    ///
    /// To make an ack depend on state that other consumers change, `finish` returns a
    /// ``Outcome/condition`` (a `WATCH` would not do: the ack is a script, which `WATCH` does not
    /// stop). The consumer refreshes its heartbeat and returns dead consumers' events to the list
    /// only before `finish`, never between `finish` and its ack.
    public func start<Work, Resolved>(
        prepare: (@Sendable (RedisConnection) throws -> Void)? = nil,
        process: @escaping @Sendable ([[UInt8]]) throws -> Work,
        request: @escaping @Sendable (Work) -> [[[UInt8]]],
        resolve: @escaping @Sendable (Work, [RESPValue], _ aheadOfAck: Bool) throws -> Resolved,
        finish: @escaping @Sendable (Resolved, RedisConnection) throws -> Outcome
    ) {
        precondition(thread == nil)
        let steps = Steps(prepare: prepare, process: process, request: request, resolve: resolve, finish: finish)
        thread = DedicatedThread(name: "pixeld-consume") { [self] in run(steps) }
    }

    /// Asks the consumer to stop after the batch in hand and waits for it: at most about one `BLMOVE`
    /// timeout while Redis answers.
    ///
    /// A stalled Redis (`CLIENT PAUSE`, `DEBUG SLEEP`, a swapping host) would hold the stop up for a
    /// command timeout per call it makes — the reply in flight, the take in advance, the give-back, a
    /// call of the handler's on its own connection —
    /// so past ``Options/shutdownTimeoutSeconds``, or at once when the calling task is cancelled, the
    /// consumer's Redis calls, and the handler's on the connections ``makeHandlerConnection()`` made,
    /// are abandoned (``RedisConnection/abandon()``) and it ends as a crash
    /// would leave things: what it took and did not see acked stays in its processing list, for the
    /// next start with its id or, once its heartbeat expires, another consumer; an ack sent and
    /// abandoned is applied whole or not at all, as after any lost reply. See ``finishAtStop(_:_:)``.
    public func stop() async {
        stopRequested.store(true, ordering: .relaxed)
        guard let thread else { return }
        guard let seconds = options.shutdownTimeoutSeconds else { return await thread.finished() }
        await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await thread.finished()
                return true
            }
            group.addTask {
                try? await Task.sleep(for: .seconds(seconds))
                return false
            }
            if await group.next() == false { abandonRedis() }
            group.cancelAll()
        }
    }

    /// Makes the consumer thread's blocked Redis call return, and every later one fail at once: on the
    /// consumer's connections and the handler's (``makeHandlerConnection()``).
    private func abandonRedis() {
        abandoned.store(true, ordering: .sequentiallyConsistent)
        connection.abandon()
        takeConnection.abandon()
        handlerConnections.withLock { connections in
            for connection in connections { connection.abandon() }
        }
    }

    /// A connection of the handler's own, to Redis as given to
    /// ``init(list:consumerID:redis:options:logger:onReady:)`` (its command timeout), for the calls
    /// the handler makes on the consumer thread outside the consumer's connection — in `process`,
    /// which must not use that one (a new day's visitor keys, say). ``stop()`` abandons it at the
    /// shutdown deadline with the consumer's own, so that a call on it held by a stalled Redis does
    /// not hold the stop up a command timeout longer; the handler's step then fails, and the
    /// consumer, stopping, neither logs nor counts that as a handler failure. Thread-safe; a
    /// connection made after the deadline is abandoned from the start.
    public func makeHandlerConnection() -> RedisConnection {
        let made = RedisConnection(configuration: redis, logger: logger)
        handlerConnections.withLock { connections in
            connections.append(made)
            // (Under the lock that ``abandonRedis()`` takes after setting the flag: one or the other.)
            if isAbandoned { made.abandon() }
        }
        return made
    }

    private var isAbandoned: Bool { abandoned.load(ordering: .sequentiallyConsistent) }

    /// Suspends the calling task until the consumer thread has ended: after ``stop()``, or by itself
    /// (see ``failure``).
    public func finished() async {
        await thread?.finished()
    }

    private var stopping: Bool { stopRequested.load(ordering: .relaxed) }

    /// An ack sent whose reply has not been read yet.
    private struct SentAck {
        var count: Int
        var deadLetters: Int
    }

    /// A batch processed, whose request is sent and whose replies are not read yet.
    private struct InHand<Work> {
        var batch: [[UInt8]]
        var work: Work
        /// How many replies the request will get.
        var requested: Int
        /// Whether the request went out right before an ack not yet applied.
        var aheadOfAck: Bool
    }

    /// The handler's steps (see ``start(prepare:process:request:resolve:finish:)``).
    private struct Steps<Work, Resolved> {
        var prepare: (@Sendable (RedisConnection) throws -> Void)?
        var process: @Sendable ([[UInt8]]) throws -> Work
        var request: @Sendable (Work) -> [[[UInt8]]]
        var resolve: @Sendable (Work, [RESPValue], Bool) throws -> Resolved
        var finish: @Sendable (Resolved, RedisConnection) throws -> Outcome
    }

    /// What the loop of ``run(_:)`` carries from one round to the next.
    private struct RunState<Work> {
        /// The wait after a handler failure or a Redis error.
        var backoff = Backoff()
        /// When dead consumers' events were last looked for (see ``housekeeping(_:)``).
        var lastRecovery: Int64?
        /// Whether `prepare` ran since the last start-over.
        var prepared = false
        /// Processed, request sent, replies not read: its events are in the processing list.
        var current: InHand<Work>?
        /// The previous batch's ack, sent right behind `current`'s request, replies not read.
        var sent: SentAck?
        /// Refused acks in a row. The first is handled again at once (another consumer's write raced
        /// this one); each further one waits longer, up to half a second, so that a condition that
        /// cannot be checked (refused until someone fixes its key) does not spin on Redis and flood
        /// the log, and consumers that keep racing fall out of step.
        var refusalsInARow = 0
        var refusalBackoff = Backoff()
        /// Redis errors in a row (a retry every 0.5 s while Redis is down): one warning, until Redis answers.
        var outage = OutageLog()
    }

    /// The consumer thread: a batch is begun (taken, processed, its request sent) when nothing is in
    /// hand, then advanced (replies read, the previous ack settled, finished, acked behind the next
    /// batch's request) until the stop, when what is unacked goes back to the list.
    private func run<Work, Resolved>(_ steps: Steps<Work, Resolved>) {
        var state = RunState<Work>()
        while !stopping {
            do {
                if state.current == nil {
                    guard try beginBatch(&state, steps) else { continue }
                }
                try advance(&state, steps)
            } catch {
                // Past the stop's deadline the error is the abandonment: what is in hand stays as is.
                if isAbandoned { break }
                recover(after: error, &state)
            }
        }
        finishAtStop(state, steps)
    }

    /// With nothing in flight on the connection: the heartbeat (ours before anything else: another
    /// run with this id may still write the same files), `prepare`, then our own processing list first
    /// (a previous run with this id may have died mid-batch), else a take, blocking for a while; then
    /// the batch is processed and its request sent.
    /// - Returns: `false` when there is no batch in hand for this round.
    private func beginBatch<Work, Resolved>(_ state: inout RunState<Work>, _ steps: Steps<Work, Resolved>) throws -> Bool {
        guard try housekeeping(&state.lastRecovery) else {
            startOver(&state)
            return false
        }
        if !state.prepared, let prepare = steps.prepare {
            do {
                try prepare(connection)
            } catch where Self.isRedisOutage(error) {
                throw error  // (see ``recover(after:_:)`` and ``redisErrorReply``)
            } catch {
                // Redis answered — the heartbeat was just written, if nothing had answered before —
                // and the handler cannot make its output agree with it (an archive directory gone,
                // a key of the wrong type: `WRONGTYPE`): a failure of the handler, not of Redis.
                noteContact(&state, announcingReady: false)
                preparationFailing = true
                try handlerFailed(error, &state.backoff, "consumer preparation failed; retrying")
                return false
            }
            if preparationFailing {
                preparationFailing = false
                handlerSucceeded("consumer preparation recovered")  // (there may be no batch to ack for a while)
            }
        }
        state.prepared = true
        var batch = try pending()
        noteContact(&state)  // (after a read: housekeeping may send nothing)
        let handlingAgain = !batch.isEmpty
        if !handlingAgain { batch = try take() }
        if batch.isEmpty { return false }
        // (No take is in flight here: every path to an idle connection has dropped it.)
        // Only behind a new take: while the processing list is handled again (after a failure, a
        // refusal or a restart), a failure that repeats — a full disk, say — would otherwise move
        // another batch into it at every attempt, and the whole backlog would end up there, out of
        // other consumers' reach.
        if !handlingAgain && !stopping && !prefetching { try prefetch() }
        let work: Work
        do {
            work = try steps.process(batch)
        } catch {
            try handlerFailed(error, &state.backoff)
            startOver(&state)
            return false
        }
        state.current = try sendRequest(batch, work, steps.request, aheadOfAck: false)
        try connection.flush()
        return true
    }

    /// With a batch in hand: its replies are read and resolved, the next batch is processed, the
    /// previous ack settled; then the batch is finished and its ack sent right behind the next
    /// batch's request, in one write, not waited for.
    private func advance<Work, Resolved>(_ state: inout RunState<Work>, _ steps: Steps<Work, Resolved>) throws {
        let inHand = state.current!
        // The request went out before the previous ack: its replies come first, and the work that
        // needs them, and the next batch's, runs while Redis applies that ack.
        let replies = try readReplies(inHand.requested)
        let resolved = Result { try steps.resolve(inHand.work, replies, inHand.aheadOfAck) }
        var next: (batch: [[UInt8]], work: Result<Work, any Error>)?
        let nextBatch = try prefetched()
        if !nextBatch.isEmpty {
            if !stopping { try prefetch() }
            next = (nextBatch, Result { try steps.process(nextBatch) })
        }
        if let ack = state.sent {
            state.sent = nil
            // Refused: handle it again. Applied with errors: this batch, resolved ahead of it on what
            // it was to write, is handled again from what Redis holds.
            switch try settleInTurn(ack, &state) {
            case .applied: break
            case .appliedWithErrors:
                startOver(&state)
                return
            case .refused:
                handleRefusal(&state)
                return
            }
        }
        // Nothing in flight on the connection now; replies were read on it just now.
        guard try housekeeping(&state.lastRecovery) else {
            // What is in hand may have been returned to the list and handled elsewhere.
            startOver(&state)
            return
        }
        noteContact(&state)
        let outcome: Outcome
        do {
            outcome = try steps.finish(try resolved.get(), connection)
        } catch {
            try handlerFailed(error, &state.backoff)
            startOver(&state)
            return
        }
        // The next batch's request, then this batch's ack, in one write, not waited for.
        state.current = nil
        var failure: (any Error)?
        switch next?.work {
        case .success(let work)?: state.current = try sendRequest(next!.batch, work, steps.request, aheadOfAck: true)
        case .failure(let error)?: failure = error
        case nil: break
        }
        let ack = try appendAck(inHand.batch.count, outcome)
        try connection.flush()
        if state.current == nil {
            if try settleInTurn(ack, &state) == .refused {
                handleRefusal(&state)
            } else if let failure {
                try handlerFailed(failure, &state.backoff)
                startOver(&state)
            }
        } else {
            state.sent = ack
        }
        if failure == nil { state.backoff.reset() }
    }

    /// After a failure or a conflict, everything unacked is handled again from the processing list.
    private func startOver<Work>(_ state: inout RunState<Work>) {
        dropPrefetch()
        state.current = nil
        state.prepared = false
    }

    /// Redis answered: ready, the first time (unless `announcingReady` is `false`: the handler cannot
    /// take events yet); back, after errors.
    private func noteContact<Work>(_ state: inout RunState<Work>, announcingReady: Bool = true) {
        answering.store(true, ordering: .relaxed)
        errorReply.withLock { $0 = nil }
        if !announcedReady && announcingReady {
            announcedReady = true
            onReady?()
        }
        state.outage.recovered(logger: logger)
    }

    /// An ack refused: start over, after a wait from the second refusal in a row on.
    private func handleRefusal<Work>(_ state: inout RunState<Work>) {
        startOver(&state)
        state.refusalsInARow += 1
        if state.refusalsInARow > 1 { sleep(milliseconds: state.refusalBackoff.nextDelayMilliseconds()) }
    }

    /// ``settle(_:)``, ending a run of refusals unless it is one.
    private func settleInTurn<Work>(_ ack: SentAck, _ state: inout RunState<Work>) throws(RespError) -> Settled {
        let settled = try settle(ack)
        if settled != .refused {
            state.refusalsInARow = 0
            state.refusalBackoff.reset()
        }
        return settled
    }

    /// A Redis error (or a fenced take): start over on new connections.
    private func recover<Work>(after error: any Error, _ state: inout RunState<Work>) {
        // A fenced take moved nothing: the heartbeat check that follows at once says why. Nor did a
        // take from a key that is not a list, which stopped the consumer.
        let code = (error as? RespError)?.code
        let fenced = code == .fenced || code == .notAList
        if !fenced {
            // What ``redisErrorReply`` says: Redis's error reply, or nothing when there was no reply.
            let reply = (error as? RespError).flatMap { $0.code == .server ? $0.message : nil }
            errorReply.withLock { $0 = reply }
            answering.store(false, ordering: .relaxed)
            state.outage.failed(error, logger: logger, message: "redis error in consumer, retrying", repeatMessage: "redis error in consumer, still retrying")
        }
        state.sent = nil
        startOver(&state)
        // Check at once (a Redis that restarted may have lost it), under a new token: commands still
        // in flight on the closed connections must not apply later with the old one.
        lastHeartbeat = 0
        rotateToken = true
        // Both connections (replies still unread on them are dropped): an idle take connection from
        // before an outage would fail once more after Redis is back (a second warning for the same
        // outage).
        connection.close()
        takeConnection.close()
        if !fenced { sleep(milliseconds: state.backoff.nextDelayMilliseconds()) }
    }

    /// At the stop: the replies still owed are read, the output cut back if an ack did not apply,
    /// and what is unacked given back to the list — unless ``stop()`` abandoned Redis meanwhile: each
    /// call then fails at once, and one line says what is left (``logLeftAtDeadline(inHand:takeInFlight:)``).
    private func finishAtStop<Work, Resolved>(_ state: RunState<Work>, _ steps: Steps<Work, Resolved>) {
        let takeInFlight = prefetching
        // Replies in the order they were sent: the request, then the ack behind it.
        if let current = state.current { _ = try? readReplies(current.requested) }
        // Files may hold a batch whose ack did not apply: refused or failed just before the stop
        // (``startOver(_:)`` leaves the cut-back to the next round), or the last ack here.
        var writtenButNotAcked = !state.prepared
        if let ack = state.sent {
            switch try? settle(ack) {
            case .applied?, .appliedWithErrors?: break
            case .refused?, nil: writtenButNotAcked = true
            }
        }
        dropPrefetch()
        // Cut back before the events go back, or whoever handles them next writes them a second
        // time (`--archive`, `--output`). Fenced as after a failure in the loop: under a new token, so
        // that an ack whose fate is unknown (still on its way on a closed connection) can no longer
        // apply after the lengths are read; and not when the heartbeat is another run's (a takeover
        // of the id: the lengths in Redis are then that run's).
        if writtenButNotAcked, !isAbandoned, answering.load(ordering: .relaxed), failureText.withLock({ $0 }) == nil, let prepare = steps.prepare {
            rotateToken = true
            do {
                if try beat() >= 0 {
                    try prepare(connection)
                } else {
                    logger.warning("output not cut back at stop: another run holds this consumer id", metadata: ["consumer": "\(consumerID)"])
                }
            } catch {
                if !isAbandoned {
                    logger.warning("could not cut the output back to the last acknowledged batch at stop", metadata: ["error": "\(error)"])
                }
            }
        }
        let givenBack = giveBack()  // (fenced: after a takeover the processing list is the other process's)
        connection.close()
        takeConnection.close()
        if !givenBack && isAbandoned { logLeftAtDeadline(inHand: heldInProcessingList, takeInFlight: takeInFlight) }
    }

    /// The one line of a stop cut short by its deadline: what a restart, or another consumer, finds.
    /// - Parameters:
    ///   - inHand: the events this run took into its processing list (or found there) and did not
    ///     see acked (``heldInProcessingList``): what the list holds once Redis answers again —
    ///     batches in hand, taken in advance, handled again after a failure alike —, unless Redis
    ///     applied a call whose reply the stall held back.
    ///   - takeInFlight: whether a take in advance was sent and not answered (up to a batch more, if
    ///     Redis applied it before the stall; one sent during the stall dies with its connection).
    private func logLeftAtDeadline(inHand: Int, takeInFlight: Bool) {
        logger.warning(
            "stopped at the shutdown deadline without Redis's answer: events taken and not acked stay in the processing list, for the next start with this consumer id (which first cuts the output back to the last ack) or, once the heartbeat expires, another consumer",
            metadata: [
                "redis.key": "\(processingList)", "shutdown_timeout_seconds": "\(options.shutdownTimeoutSeconds ?? 0)",
                "events_in_hand": "\(inHand)", "take_in_flight": "\(takeInFlight)",
            ]
        )
    }

    /// Appends the request of a processed batch to the connection's output (not flushed).
    private func sendRequest<Work>(
        _ batch: [[UInt8]], _ work: Work, _ request: @Sendable (Work) -> [[[UInt8]]], aheadOfAck: Bool
    ) throws(RespError) -> InHand<Work> {
        let commands = request(work)
        for command in commands { try connection.append(command) }
        return InHand(batch: batch, work: work, requested: commands.count, aheadOfAck: aheadOfAck)
    }

    private func readReplies(_ count: Int) throws(RespError) -> [RESPValue] {
        var replies: [RESPValue] = []
        replies.reserveCapacity(count)
        for _ in 0..<count { replies.append(try connection.readReply()) }
        return replies
    }

    /// Sends the take of the next batch on the take connection, not waiting for the reply. A take
    /// connection that Redis may have closed for idleness (``RedisConnection/closeIfIdle()``: at low
    /// traffic, since the last busy spell) is replaced first: the take would then fail as an outage,
    /// and the batch in hand be handled again.
    private func prefetch() throws(RespError) {
        takeConnection.closeIfIdle()
        try takeConnection.append(takeCommand(options.batchSize))
        try takeConnection.flush()
        prefetching = true
    }

    /// The batch taken by ``prefetch()``, if one was asked for.
    private func prefetched() throws(RespError) -> [[UInt8]] {
        guard prefetching else { return [] }
        prefetching = false
        return try takeReply(try takeConnection.readReply())
    }

    /// Waits for a prefetch to be done with, so that its events are in the processing list before
    /// it is read again. When that fails (no reply within the read timeout, or the connection died),
    /// the take may still reach Redis later, with this run's token: the take connection is closed,
    /// and the next heartbeat — at once, before the processing list is read again — writes a new
    /// token, as after any lost connection. Else a late take could move events into the processing
    /// list after that read found it empty, under the batch taken next, and that batch's ack, which
    /// trims by count from the tail, would remove them unhandled and leave the batch to be handled twice.
    private func dropPrefetch() {
        guard prefetching else { return }
        prefetching = false
        switch try? takeConnection.readReply() {
        case .array(let taken)?:
            heldInProcessingList += taken.count  // (moved all the same: handled from the processing list)
        case nil:
            takeConnection.close()
            lastHeartbeat = 0
            rotateToken = true
        default:
            break
        }
    }

    /// On stop: events still in the processing list (taken, not handled, or their ack refused) go
    /// back to the tail of the list, oldest last, as if never taken.
    /// - Returns: whether Redis answered.
    private func giveBack() -> Bool {
        guard let moved = try? connection.command(["EVAL", Self.giveBackScript, "4", processingList, list, heartbeatKey, consumersKey, token, consumerID])
        else {
            return false
        }
        if let count = moved.int, count > 0 {
            logger.info("gave back events taken but not handled", metadata: ["redis.key": "\(list)", "events": "\(count)"])
        }
        return true
    }

    /// A failed attempt of the handler — of `prepare`, `process`, `resolve` or `finish` — counted
    /// (``handlerFailures``, `pixeld_consume_handler_failures_total`, ``isHandlerFailing``) and logged
    /// as `message` (``logHandlerFailure(_:_:)``), then the backoff's wait; or the stop, for a
    /// ``HandlerCannotContinue``.
    /// - Throws: `error` when it is Redis's, not the handler's (``isRedisOutage(_:)``): an outage,
    ///   for ``recover(after:_:)``.
    private func handlerFailed(
        _ error: any Error, _ backoff: inout Backoff, _ message: Logger.Message = "handler failed; batch kept for retry"
    ) throws(RespError) {
        if Self.isRedisOutage(error), let error = error as? RespError { throw error }
        if let error = error as? HandlerCannotContinue {
            stop(failing: error.description)
            return
        }
        // Past the stop's deadline the error is the abandonment (of a handler's connection, say), not
        // the handler's: the stop's one line says what is left.
        if isAbandoned { return }
        handlerFailureCount.add(1, ordering: .relaxed)
        handlerFailing.store(true, ordering: .relaxed)
        metrics.recordHandlerFailure()
        logHandlerFailure(error, message)
        sleep(milliseconds: backoff.nextDelayMilliseconds())
    }

    /// Whether a step of the handler failed because of Redis rather than the handler: a lost
    /// connection (Redis down, a timeout), or an error reply of Redis's own — not the master
    /// (`READONLY`, `MASTERDOWN`), `LOADING`, `OOM`, `BUSY`, a permission (`NOPERM`)… — which
    /// Redis's state, not the handler, must mend: an outage (``redisErrorReply``), not a handler
    /// failure. `WRONGTYPE` is the handler's (a key it uses holds another type), as is every error
    /// that is not a ``RespError`` (an archive directory removed) or that has no reply behind it (a
    /// reply of an unexpected shape).
    static func isRedisOutage(_ error: any Error) -> Bool {
        guard let error = error as? RespError else { return false }
        return error.connectionIsDead || (error.serverErrorPrefix ?? "WRONGTYPE") != "WRONGTYPE"
    }

    /// The handler succeeded — a batch acked, or a `prepare` after failing —: it is no longer failing,
    /// and the end of a failure episode is logged once, as `message`.
    private func handlerSucceeded(_ message: Logger.Message) {
        handlerFailing.store(false, ordering: .relaxed)
        if let ended = handlerFailureEpisode.succeeded(now: MonotonicClock.nanoseconds()) {
            logger.info(message, metadata: ["attempts.failed": "\(ended.attempts)", "failing.ms": "\(ended.milliseconds)"])
        }
    }

    /// A failed attempt of the handler (or of its `prepare`), retried every half second while it
    /// lasts (a full disk): `message` at error when it begins an episode, then debug, with a reminder
    /// at error a minute giving the attempts so far; ``settle(_:)`` says when an ack ends it.
    private func logHandlerFailure(_ error: any Error, _ message: Logger.Message) {
        switch handlerFailureEpisode.failed(now: MonotonicClock.nanoseconds()) {
        case .began:
            logger.error(message, metadata: ["error": "\(error)"])
        case .reminder(let attempts, let milliseconds):
            logger.error(
                "handler still failing; batch kept for retry",
                metadata: ["error": "\(error)", "attempts": "\(attempts)", "failing.ms": "\(milliseconds)"]
            )
        case .repeated(let attempts):
            logger.debug("handler still failing; batch kept for retry", metadata: ["error": "\(error)", "attempts": "\(attempts)"])
        }
    }

    /// Looks for dead consumers' events at start and then once per heartbeat period, and keeps our
    /// heartbeat fresh. Needs an idle connection.
    /// - Returns: `false` when the batches in hand may no longer be this consumer's — its heartbeat
    ///   had lapsed, so another consumer may have returned them to the list, or another process took
    ///   over its id (the consumer then stops) — and must not be acked.
    private func housekeeping(_ lastRecovery: inout Int64?) throws(RespError) -> Bool {
        let now = MonotonicClock.nanoseconds()
        if lastRecovery.map({ now - $0 > Int64(options.heartbeatSeconds) * 1_000_000_000 }) ?? true {
            try recoverOrphans()
            lastRecovery = now
        }
        return try heartbeat()
    }

    /// The oldest events left in our own processing list, a batch at most, oldest first (the ack
    /// removes them from its tail; the rest are read next); and the list's length, in the same round
    /// trip (``heldInProcessingList``: no take is in flight here).
    private func pending() throws(RespError) -> [[UInt8]] {
        let replies = try connection.pipeline(
            [["LRANGE", processingList, String(-options.batchSize), "-1"], ["LLEN", processingList]].map { $0.map { Array($0.utf8) } }
        )
        let reply = try replies[0].unwrap("LRANGE")
        heldInProcessingList = Int(try replies[1].unwrap("LLEN").int ?? 0)
        return (reply.array ?? []).compactMap(\.bytes).reversed()
    }

    /// Moves up to a batch from the list into the processing list: at once if events wait, else once
    /// one arrives, after blocking up to `blockSeconds` for it. The wait is a `BLMOVE` of the list onto
    /// itself (tail to tail: the list is unchanged), so that only the fenced take script moves events.
    /// Redis over `maxmemory` refuses `BLMOVE` (`OOM`): the consumer then looks again every 100 ms.
    private func take() throws(RespError) -> [[UInt8]] {
        var taken = try takeAvailable(options.batchSize)
        if taken.isEmpty {
            let first = try connection.command(["BLMOVE", list, list, "RIGHT", "RIGHT", String(options.blockSeconds)])
            if case .error(let text) = first, text.hasPrefix("OOM") {
                sleep(milliseconds: 100)
                return try takeAvailable(options.batchSize)
            }
            guard try first.unwrap("BLMOVE").bytes != nil else { return [] }
            taken = try takeAvailable(options.batchSize)
        }
        return taken
    }

    private func takeAvailable(_ count: Int) throws(RespError) -> [[UInt8]] {
        guard count > 0 else { return [] }
        return try takeReply(try connection.command(takeCommand(count)))
    }

    private func takeCommand(_ count: Int) -> [[UInt8]] {
        [
            Self.eval, Self.takeScriptBytes, [UInt8(ascii: "3")], Array(list.utf8), Array(processingList.utf8), Array(heartbeatKey.utf8),
            Array(String(count).utf8), Array(token.utf8),
        ]
    }

    /// The taken events, oldest first.
    /// - Throws: ``RespError`` `.fenced` when the take was fenced off (nothing moved); `.notAList`
    ///   when the list's key holds another type (the consumer stops, see ``stop(failing:)``).
    private func takeReply(_ reply: RESPValue) throws(RespError) -> [[UInt8]] {
        if case .error(let text) = reply, text.hasPrefix("FENCED") {
            throw RespError(code: .fenced, operation: "EVAL take", message: text)
        }
        if case .error(let text) = reply, text.hasPrefix("NOTALIST") {
            // Not an outage that retrying would end: the key holds something else than events.
            stop(failing: "\(list) is a \(text.split(separator: " ").last ?? "?"), not a list: there is nothing to consume (a list of that name is what ingest fills)")
            throw RespError(code: .notAList, operation: "EVAL take", message: text)
        }
        let taken = (try reply.unwrap("EVAL take").array ?? []).compactMap(\.bytes)
        heldInProcessingList += taken.count
        return taken.reversed()
    }

    /// Appends the ack of a batch of `count` events — the outcome's commands, its dead letters and
    /// the removal of the events from the tail of the processing list, in one script fenced by the
    /// heartbeat and the ``Outcome/condition`` (``AckScript``) — to the connection's output, to be
    /// flushed by the caller; ``settle(_:)`` reads the reply. `LTRIM` rather than `DEL`: the next batch
    /// may already sit at the head of the processing list.
    private func appendAck(_ count: Int, _ outcome: Outcome) throws(RespError) -> SentAck {
        for command in outcome.commands where command.name.hasPrefix("@") {
            precondition(options.ackFunctions[String(command.name.dropFirst())] != nil, "no ack function \(command.name)")
        }
        let command = ackScript.command(
            heartbeat: heartbeatKey, processingList: processingList, deadList: deadList, token: token,
            heartbeatSeconds: options.heartbeatSeconds, count: count, condition: outcome.condition,
            deadLetters: outcome.deadLetters, commands: outcome.commands
        )
        try connection.append(encoded: command)
        return SentAck(count: count, deadLetters: outcome.deadLetters.count)
    }

    /// How Redis took an ack.
    private enum Settled {
        /// Applied, every command without error.
        case applied
        /// Applied, but a command failed inside it: what the handler expected the ack to write may
        /// not be there.
        case appliedWithErrors
        /// Refused: nothing applied.
        case refused
    }

    /// Reads a sent ack's reply.
    ///
    /// A command that failed inside the ack (e.g. `WRONGTYPE` on a rollup key) does not undo the
    /// others — as inside `EXEC` — so the batch stays acked; the failure is logged with Redis's error
    /// text and counted (``ackCommandErrors``, `pixeld_consume_ack_command_errors_total`), and not
    /// retried: retrying would apply the commands that did succeed a second time.
    ///
    /// `.refused`, with nothing applied, when the ack's condition did not hold or could not be
    /// checked, or the heartbeat no longer held this run's token (counted in ``ackConflicts``): the
    /// events are still in the processing list.
    private func settle(_ ack: SentAck) throws(RespError) -> Settled {
        let reply = try connection.readReply()
        if case .error(let text) = reply, text.contains("pixeld ack:") || text.contains("Error compiling script") {
            // The script or its arguments are wrong, which no retry mends: not a Redis outage.
            stop(failing: "Redis refused the ack script, a bug in pixeld: \(text)")
            return .refused
        }
        let verdict = try AckScript.verdict(of: reply)
        guard case .applied(let failures) = verdict else {
            conflictCount.add(1, ordering: .relaxed)
            metrics.recordAckConflict()
            lastHeartbeat = 0  // (``heartbeat()`` says whether the heartbeat is what changed)
            switch verdict {
            case .heartbeatNotOurs:
                logger.warning(
                    "ack refused: this consumer's heartbeat had expired or was taken over, so its events may have been handled by another consumer; handling what its processing list still holds",
                    metadata: ["redis.key": "\(list)", "consumer": "\(consumerID)"]
                )
            case .conditionUnchecked(let text):
                // E.g. the condition's key holds another type: refused again and again until fixed.
                logger.error(
                    "ack refused: its condition could not be checked; handling the events again",
                    metadata: ["redis.key": "\(list)", "error": "\(text)"]
                )
            default:
                logger.debug("ack refused (its condition did not hold); handling the events again", metadata: ["redis.key": "\(list)"])
            }
            return .refused
        }
        consumedCount.add(ack.count, ordering: .relaxed)
        deadCount.add(ack.deadLetters, ordering: .relaxed)
        heldInProcessingList = max(0, heldInProcessingList - ack.count)
        handlerSucceeded("handler recovered; batch acked")
        metrics.recordAck(events: ack.count, deadLetters: ack.deadLetters)
        for failure in failures {
            ackCommandErrorCount.add(1, ordering: .relaxed)
            metrics.recordAckCommandError()
            logger.error(
                "a command of the ack failed; the batch stays acked, not retried",
                metadata: ["redis.key": "\(list)", "command": "\(failure.command)", "error": "\(failure.error)"]
            )
        }
        return failures.isEmpty ? .applied : .appliedWithErrors
    }

    /// Renews the heartbeat every third of its TTL (at once after ``lastHeartbeat`` was reset). At the
    /// first write, a heartbeat holding another run's token is waited for (``waitForPreviousRun()``).
    /// - Returns: `false` when it had lapsed, or another process holds it (the consumer then stops
    ///   with ``failure``), or the consumer is stopping while it waits (see ``housekeeping(_:)``).
    private func heartbeat() throws(RespError) -> Bool {
        let now = MonotonicClock.nanoseconds()
        guard lastHeartbeat == 0 || now - lastHeartbeat > Int64(options.heartbeatSeconds) * 1_000_000_000 / 3 else { return true }
        var found = try beat()
        if found == -1 && !heartbeatWritten {
            guard let afterWaiting = try waitForPreviousRun() else { return false }
            found = afterWaiting
        }
        lastHeartbeat = MonotonicClock.nanoseconds()
        let wasWritten = heartbeatWritten
        if found >= 0 { heartbeatWritten = true }
        switch found {
        case 1:
            return true
        case 0:
            guard wasWritten else { return true }
            logger.warning(
                "this consumer's heartbeat had expired (the consumer stalled, or Redis lost it); handling again what its processing list still holds",
                metadata: ["redis.key": "\(heartbeatKey)", "heartbeat_seconds": "\(options.heartbeatSeconds)"]
            )
            return false
        default:
            let text =
                wasWritten
                ? "consumer id \(consumerID) was taken over by another process after this one's heartbeat \(heartbeatKey) lapsed; two consumers must not share an id"
                : "another consumer is running with id \(consumerID) (it renews its heartbeat \(heartbeatKey)); two consumers must not share an id"
            stop(failing: text)
            return false
        }
    }

    /// Stops the consumer by itself, with ``failure`` set to `text` (logged).
    private func stop(failing text: String) {
        logger.error("\(text); this one stops", metadata: ["redis.key": "\(list)"])
        failureText.withLock { $0 = text }
        stopRequested.store(true, ordering: .relaxed)
    }

    /// One run of ``heartbeatScript``: 1 renewed, 0 written, -1 another run's. Whenever it writes the
    /// heartbeat (missing, or ``rotateToken``), it writes a new token, which becomes ``token``.
    private func beat() throws(RespError) -> Int {
        let fresh = offeredToken ?? Self.newToken()
        offeredToken = fresh
        let reply = try connection.command([
            "EVAL", Self.heartbeatScript, "2", heartbeatKey, consumersKey, token, String(options.heartbeatSeconds), fresh,
            rotateToken ? "1" : "0", consumerID,
        ]).unwrap("EVAL heartbeat")
        let found = Int(reply.int ?? -1)
        if found == 0 || found == 2 {
            token = fresh
            offeredToken = nil
            rotateToken = false
        }
        return found == 2 ? 1 : found
    }

    /// At start, the heartbeat holds another run's token: a previous run with this id that died less
    /// than a TTL ago (a clean stop deletes it), or a consumer with this id still running. Waits for it
    /// to expire and takes it then (0), up to a TTL and 2 s; a renewal (its TTL going up) means it runs
    /// (-1). `nil` when the consumer is asked to stop meanwhile.
    private func waitForPreviousRun() throws(RespError) -> Int? {
        logger.warning(
            "another run's heartbeat holds this consumer id: waiting for it to expire (a consumer still running with this id renews it, and this one stops then)",
            metadata: ["redis.key": "\(heartbeatKey)", "heartbeat_seconds": "\(options.heartbeatSeconds)"]
        )
        let deadline = MonotonicClock.nanoseconds() + Int64(options.heartbeatSeconds + 2) * 1_000_000_000
        var last: (ttl: Int, at: Int64)?
        while MonotonicClock.nanoseconds() < deadline {
            if stopping { return nil }
            let ttl = Int(try connection.command(["PTTL", heartbeatKey]).unwrap("PTTL").int ?? -2)
            let now = MonotonicClock.nanoseconds()
            if ttl == -1 {
                stop(failing: "the heartbeat \(heartbeatKey) of consumer id \(consumerID) has no expiry (written by hand?): delete it, or use another id")
                return nil
            }
            // Renewed: more time left than the last reading minus the time since (250 ms of slack).
            if let last, ttl > last.ttl - Int((now - last.at) / 1_000_000) + 250 { return -1 }
            if ttl >= 0 { last = (ttl, now) }
            let found = try beat()
            if found != -1 { return found }
            sleep(milliseconds: 200)
        }
        return -1
    }

    /// Returns the events of consumers whose heartbeat has expired to the list, oldest to the tail:
    /// those of the ids in ``consumersKey``, and, at start and then hourly, of every processing list
    /// the keyspace holds (`SCAN`).
    private func recoverOrphans() throws(RespError) {
        var owners = Set(try connection.command(["SMEMBERS", consumersKey]).unwrap("SMEMBERS").array?.compactMap(\.string) ?? [])
        let now = MonotonicClock.nanoseconds()
        if lastFullScan.map({ now - $0 >= Self.fullScanNanoseconds }) ?? true {
            owners.formUnion(try processingListOwners())
            lastFullScan = now
        }
        for owner in owners.sorted() where owner != consumerID {
            let key = keys.processingList(of: owner)
            let moved = try connection.command(["EVAL", Self.recoverScript, "4", key, list, keys.heartbeat(of: owner), consumersKey, owner])
                .unwrap("EVAL return")
            let count = Int(moved.int ?? 0)
            guard count > 0 else { continue }
            recoveredCount.add(count, ordering: .relaxed)
            metrics.recordRecovered(count)
            logger.info("recovered events of a dead consumer", metadata: ["redis.key": "\(key)", "events": "\(count)"])
        }
    }

    /// The consumer ids of every `<list>:processing:<id>` in the keyspace.
    private func processingListOwners() throws(RespError) -> Set<String> {
        let prefix = keys.processingPrefix
        return Set(try connection.scanKeys(matching: prefix + "*").map { String(decoding: $0.dropFirst(prefix.utf8.count), as: UTF8.self) })
    }

    private func sleep(milliseconds: Int) {
        var left = milliseconds
        while left > 0 && !stopping {
            let slice = min(left, 10)
            usleep(UInt32(slice * 1000))
            left -= slice
        }
    }
}
