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
/// Keys, for a list `L` and consumer id `C`:
/// - `L:processing:C` — events taken but not yet acked (oldest at the tail, like `L`).
/// - `L:consumer:C` — heartbeat, refreshed while the consumer runs, expiring 15 s after it stops.
/// - `L:dead` — values the handler could not decode, with nothing else lost.
///
/// Runs on its own thread: `BLMOVE` blocks (1 s at a time, so that stopping is bounded) and must never
/// occupy the cooperative pool. Pipelined: the next batch is taken (on a second connection) and
/// processed while Redis applies the previous ack; see ``start(prepare:process:request:finish:)``.
///
/// `@unchecked Sendable`: the connection is used only on the consumer thread; the stop flag is atomic.
public final class ReliableListConsumer: @unchecked Sendable {
    /// What the handler decided for a batch.
    public struct Outcome: Sendable {
        /// Values to move to the dead-letter list `L:dead` in the ack.
        public var deadLetters: [[UInt8]]
        /// Extra commands to apply atomically with the ack (e.g. rollups), in a `MULTI`/`EXEC`, in order.
        public var commands: [Command]
        /// Creates an outcome whose commands are given as arguments.
        public init(deadLetters: [[UInt8]] = [], commands: [[[UInt8]]] = []) {
            self.deadLetters = deadLetters
            self.commands = commands.map(Command.init(arguments:))
        }
        /// Creates an outcome.
        public init(deadLetters: [[UInt8]] = [], ackCommands: [Command]) {
            self.deadLetters = deadLetters
            self.commands = ackCommands
        }
    }

    /// One command of an ack: its arguments, or the same already encoded as RESP (a large command
    /// written straight into one buffer, with no array per argument).
    public struct Command: Sendable {
        fileprivate enum Form {
            case arguments([[UInt8]])
            case encoded([UInt8])
        }
        fileprivate let form: Form
        /// The command's name, for logs.
        public let name: String

        /// A command given as its arguments, the name first.
        public init(arguments: [[UInt8]]) {
            form = .arguments(arguments)
            name = String(decoding: arguments.first ?? [], as: UTF8.self)
        }

        /// A command already encoded as one RESP array of bulk strings; `name` is for logs.
        public init(encoded: [UInt8], name: String) {
            form = .encoded(encoded)
            self.name = name
        }

        fileprivate func append(to connection: RedisConnection) throws(RespError) {
            switch form {
            case .arguments(let arguments): try connection.append(arguments)
            case .encoded(let bytes): try connection.append(encoded: bytes)
            }
        }
    }

    /// Options.
    public struct Options: Sendable {
        /// Events taken per batch at most.
        public var batchSize = 512
        /// How long one `BLMOVE` waits, in seconds; bounds how long a stop request may take.
        public var blockSeconds = 1
        /// Heartbeat TTL in seconds; a processing list whose heartbeat expired is recovered.
        public var heartbeatSeconds = 15
        /// Creates default options.
        public init() {}
    }

    /// The source list.
    public let list: String
    /// This consumer's id (unique among the consumers of `list`).
    public let consumerID: String
    private let connection: RedisConnection
    /// Takes the next batch while the current one is handled (see ``start(prepare:process:request:finish:)``).
    private let takeConnection: RedisConnection
    private var prefetching = false
    private let options: Options
    private let logger: Logger
    private let stopRequested = Atomic<Bool>(false)
    private let consumedCount = Atomic<Int>(0)
    private let deadCount = Atomic<Int>(0)
    private let recoveredCount = Atomic<Int>(0)
    private let ackCommandErrorCount = Atomic<Int>(0)
    private let conflictCount = Atomic<Int>(0)
    private let metrics = ConsumerMetrics()
    private var thread: DedicatedThread?
    private var lastHeartbeat: Int64 = 0

    /// The processing list of this consumer.
    public var processingList: String { "\(list):processing:\(consumerID)" }
    private var heartbeatKey: String { "\(list):consumer:\(consumerID)" }
    /// The dead-letter list.
    public var deadList: String { "\(list):dead" }

    /// Creates a consumer; ``start(prepare:handler:)`` runs it.
    public init(list: String, consumerID: String, redis: RedisConfiguration, options: Options = Options(), logger: Logger) {
        self.list = list
        self.consumerID = consumerID
        var redis = redis
        // A read timeout kills a hiredis context: keep it well above the blocking time.
        redis.commandTimeoutMilliseconds = max(redis.commandTimeoutMilliseconds, (options.blockSeconds + 5) * 1000)
        self.connection = RedisConnection(configuration: redis, logger: logger)
        self.takeConnection = RedisConnection(configuration: redis, logger: logger)
        self.options = options
        self.logger = logger
    }

    /// Events acked so far (including dead-lettered ones).
    public var consumed: Int { consumedCount.load(ordering: .relaxed) }
    /// Events sent to the dead-letter list.
    public var deadLettered: Int { deadCount.load(ordering: .relaxed) }
    /// Events returned to the list from dead consumers' processing lists.
    public var recovered: Int { recoveredCount.load(ordering: .relaxed) }
    /// Commands of acks that Redis ran and that failed inside their `MULTI`/`EXEC` (logged, not retried).
    public var ackCommandErrors: Int { ackCommandErrorCount.load(ordering: .relaxed) }
    /// Acks that Redis refused because a key the handler had `WATCH`ed changed; each such batch was
    /// handled again.
    public var ackConflicts: Int { conflictCount.load(ordering: .relaxed) }

    /// Starts the consumer thread with a handler in one step.
    /// - Parameters:
    ///   - prepare: called on the consumer thread before the first batch and again after any failure
    ///     (a Redis error, whose ack may or may not have been applied, or a handler error), with the
    ///     connection, so that the handler can re-read what Redis acknowledged — e.g. cut an output
    ///     file back to the acknowledged length — before the unacked events are handled again.
    ///   - handler: called on the consumer thread with each batch, oldest first, and the connection
    ///     the ack will use; it writes its output before returning. See
    ///     ``start(prepare:process:request:finish:)`` for what it may do on the connection.
    public func start(
        prepare: (@Sendable (RedisConnection) throws -> Void)? = nil,
        handler: @escaping @Sendable ([[UInt8]], RedisConnection) throws -> Outcome
    ) {
        start(prepare: prepare, process: { $0 }, finish: handler)
    }

    /// Starts the consumer thread with a handler in two steps: `process`, which needs nothing from
    /// Redis, and `finish`, which writes the output and returns the ack's commands. The same as
    /// ``start(prepare:process:request:finish:)`` without a request.
    public func start<Work>(
        prepare: (@Sendable (RedisConnection) throws -> Void)? = nil,
        process: @escaping @Sendable ([[UInt8]]) throws -> Work,
        finish: @escaping @Sendable (Work, RedisConnection) throws -> Outcome
    ) {
        start(prepare: prepare, process: process, request: { _ in [] }, finish: { work, _, connection in try finish(work, connection) })
    }

    /// Starts the consumer thread with a handler in three steps, so that a batch's read of what it
    /// needs from Redis costs no round trip of its own.
    ///
    /// Per batch N:
    /// 1. `process(N)` runs while Redis applies the ack of batch N-2 and answers the request of batch
    ///    N-1 (both sent before). It must not use the consumer's connection, nor write output that a
    ///    failed ack would have to take back.
    /// 2. The commands `request(N)` returns (e.g. `WATCH` and a read of the state the batch continues)
    ///    are sent in the same write as the ack of batch N-1, right behind it, so that Redis answers
    ///    them as soon as it has applied that ack, while `process(N+1)` runs.
    /// 3. Once the ack of N-1 and the request of N are answered, `finish(N)` gets the request's replies
    ///    (error replies included, in order), writes the output and returns the ack's commands. It may
    ///    use the connection, which is idle then (so Redis has nothing of this consumer's to do while
    ///    `finish` runs but the next take).
    ///
    /// So `process` of batch N+1 runs before `finish` of batch N, and the request of batch N+1 runs
    /// in Redis after the ack of batch N. The next batch is taken on a second connection as soon as
    /// the current one is in hand. (Acks remove their own events from the tail of the processing list,
    /// so the order in which Redis runs takes and acks does not matter.) On stop, events taken but not
    /// acked are given back to the list. When a step throws, the events stay unacked and are handled
    /// again after `prepare` (possibly together with the batches taken after them, which are already
    /// in the processing list).
    ///
    /// Keys `WATCH`ed in the request (or by `finish`, before reading them) make the ack conditional: if
    /// one changed before the ack's `EXEC`, Redis applies nothing, and the events are prepared for and
    /// handled again (optimistic locking, e.g. for state that several consumers share). Between the
    /// request and `finish` the consumer may refresh its heartbeat and return dead consumers' events
    /// to the list, so do not watch those keys.
    public func start<Work>(
        prepare: (@Sendable (RedisConnection) throws -> Void)? = nil,
        process: @escaping @Sendable ([[UInt8]]) throws -> Work,
        request: @escaping @Sendable (Work) -> [[[UInt8]]],
        finish: @escaping @Sendable (Work, [RESPValue], RedisConnection) throws -> Outcome
    ) {
        precondition(thread == nil)
        thread = DedicatedThread(name: "pixeld-consume") { [self] in run(prepare, process, request, finish) }
    }

    /// Asks the consumer to stop after the batch in hand and waits for it (at most about one
    /// `BLMOVE` timeout).
    public func stop() async {
        stopRequested.store(true, ordering: .relaxed)
        await thread?.finished()
    }

    private var stopping: Bool { stopRequested.load(ordering: .relaxed) }

    /// An ack sent whose replies have not been read yet.
    private struct SentAck {
        var count: Int
        var deadLetters: Int
        var commands: [Command]
    }

    /// A batch processed, whose request is sent and whose replies are not read yet.
    private struct InHand<Work> {
        var batch: [[UInt8]]
        var work: Work
        /// How many replies the request will get.
        var requested: Int
    }

    private func run<Work>(
        _ prepare: (@Sendable (RedisConnection) throws -> Void)?,
        _ process: @Sendable ([[UInt8]]) throws -> Work,
        _ request: @Sendable (Work) -> [[[UInt8]]],
        _ finish: @Sendable (Work, [RESPValue], RedisConnection) throws -> Outcome
    ) {
        var backoff = Backoff()
        var lastRecovery: Int64?
        var prepared = false
        // Processed, request sent (behind `sent`), not finished: its events are in the processing list.
        var current: InHand<Work>?
        // The previous batch's ack, sent, replies not read; Redis runs it before `current`'s request.
        var sent: SentAck?
        // After a failure or a conflict, everything unacked is handled again from the processing list.
        func startOver() {
            dropPrefetch()
            current = nil
            prepared = false
        }
        while !stopping {
            do {
                if current == nil {
                    // The connection is idle: prepare, then our own processing list first (a previous
                    // run with this id may have died mid-batch), else take, blocking for a while.
                    if !prepared, let prepare {
                        do {
                            try prepare(connection)
                        } catch let error as RespError {
                            throw error
                        } catch {
                            logger.error("consumer preparation failed; retrying", metadata: ["error": "\(error)"])
                            sleep(milliseconds: backoff.nextDelayMilliseconds())
                            continue
                        }
                    }
                    prepared = true
                    try housekeeping(&lastRecovery)
                    var batch = try pending()
                    if batch.isEmpty { batch = try take() }
                    if batch.isEmpty { continue }
                    // (No take is in flight here: every path to an idle connection has dropped it.)
                    if !stopping && !prefetching { try prefetch() }
                    let work: Work
                    do {
                        work = try process(batch)
                    } catch {
                        handlerFailed(error, &backoff)
                        startOver()
                        continue
                    }
                    current = try sendRequest(batch, work, request)
                    try connection.flush()
                }
                let inHand = current!
                // The next batch is taken and processed while Redis applies the previous ack and
                // answers this batch's request.
                var next: (batch: [[UInt8]], work: Result<Work, any Error>)?
                let nextBatch = try prefetched()
                if !nextBatch.isEmpty {
                    if !stopping { try prefetch() }
                    next = (nextBatch, Result { try process(nextBatch) })
                }
                if let ack = sent {
                    sent = nil
                    guard try settle(ack) else {
                        try discardRequest(inHand)
                        startOver()
                        continue
                    }
                }
                let replies = try readReplies(inHand.requested)
                try housekeeping(&lastRecovery)
                let outcome: Outcome
                do {
                    outcome = try finish(inHand.work, replies, connection)
                } catch {
                    handlerFailed(error, &backoff)
                    startOver()
                    continue
                }
                // The ack is sent, not waited for, and the next batch's request right behind it: Redis
                // applies the one and answers the other while `process` works on the batch after.
                let ack = try appendAck(inHand.batch.count, outcome)
                current = nil
                var failure: (any Error)?
                switch next?.work {
                case .success(let work)?: current = try sendRequest(next!.batch, work, request)
                case .failure(let error)?: failure = error
                case nil: break
                }
                try connection.flush()
                if current == nil {
                    if !(try settle(ack)) {
                        startOver()
                    } else if let failure {
                        handlerFailed(failure, &backoff)
                        startOver()
                    }
                } else {
                    sent = ack
                }
                if failure == nil { backoff.reset() }
            } catch {
                logger.warning("redis error in consumer, retrying", metadata: ["error": "\(error)"])
                sent = nil
                startOver()
                connection.close()
                sleep(milliseconds: backoff.nextDelayMilliseconds())
            }
        }
        if let ack = sent { _ = try? settle(ack) }
        if let current { try? discardRequest(current) }
        dropPrefetch()
        giveBack()
        connection.close()
        takeConnection.close()
    }

    /// Appends the request of a processed batch to the connection's output (not flushed).
    private func sendRequest<Work>(
        _ batch: [[UInt8]], _ work: Work, _ request: @Sendable (Work) -> [[[UInt8]]]
    ) throws(RespError) -> InHand<Work> {
        let commands = request(work)
        for command in commands { try connection.append(command) }
        return InHand(batch: batch, work: work, requested: commands.count)
    }

    /// Reads the replies of a request that will not be finished, and forgets what it watched.
    private func discardRequest<Work>(_ inHand: InHand<Work>) throws(RespError) {
        guard inHand.requested > 0 else { return }
        _ = try readReplies(inHand.requested)
        try connection.command(["UNWATCH"]).unwrap("UNWATCH")
    }

    private func readReplies(_ count: Int) throws(RespError) -> [RESPValue] {
        var replies: [RESPValue] = []
        replies.reserveCapacity(count)
        for _ in 0..<count { replies.append(try connection.readReply()) }
        return replies
    }

    /// Sends the take of the next batch on the take connection, not waiting for the reply.
    private func prefetch() throws(RespError) {
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
    /// it is read again; closes the take connection if that fails.
    private func dropPrefetch() {
        guard prefetching else { return }
        prefetching = false
        if (try? takeConnection.readReply()) == nil { takeConnection.close() }
    }

    /// On stop: events still in the processing list (taken, not handled, or their ack refused) go
    /// back to the tail of the list, oldest last, as if never taken.
    private func giveBack() {
        guard let moved = try? connection.command(["EVAL", Self.returnScript, "2", processingList, list]), let count = moved.int, count > 0 else {
            return
        }
        logger.info("gave back events taken but not handled", metadata: ["redis.key": "\(list)", "events": "\(count)"])
    }

    private func handlerFailed(_ error: any Error, _ backoff: inout Backoff) {
        logger.error("handler failed; batch kept for retry", metadata: ["error": "\(error)"])
        _ = try? connection.command(["UNWATCH"])
        sleep(milliseconds: backoff.nextDelayMilliseconds())
    }

    /// Looks for dead consumers' events at start and then once per heartbeat period, and keeps our
    /// heartbeat fresh. Needs an idle connection.
    private func housekeeping(_ lastRecovery: inout Int64?) throws(RespError) {
        let now = MonotonicClock.nanoseconds()
        if lastRecovery.map({ now - $0 > Int64(options.heartbeatSeconds) * 1_000_000_000 }) ?? true {
            try recoverOrphans()
            lastRecovery = now
        }
        try heartbeat()
    }

    /// Moves up to ARGV[1] events from the tail of KEYS[1] (the oldest) to the head of KEYS[2], exactly
    /// as that many `LMOVE KEYS[1] KEYS[2] RIGHT LEFT` would — same order in both lists, atomically —
    /// but with one `LRANGE`, one `LTRIM` and one `LPUSH` per 1,000 events instead of a command per
    /// event. Returns the moved events newest first (as `LRANGE` gives them).
    private static let takeScript = """
        local vals = redis.call('LRANGE', KEYS[1], -tonumber(ARGV[1]), -1)
        local m = #vals
        if m == 0 then return vals end
        redis.call('LTRIM', KEYS[1], 0, -m - 1)
        local chunk = {}
        for i = m, 1, -1 do
          chunk[#chunk + 1] = vals[i]
          if #chunk == 1000 or i == 1 then
            redis.call('LPUSH', KEYS[2], unpack(chunk))
            chunk = {}
          end
        end
        return vals
        """

    private static let returnScript = """
        local n = 0
        while redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'RIGHT') do n = n + 1 end
        return n
        """

    /// Events left in our own processing list, oldest first.
    private func pending() throws(RespError) -> [[UInt8]] {
        let reply = try connection.command(["LRANGE", processingList, "0", "-1"]).unwrap("LRANGE")
        return (reply.array ?? []).compactMap(\.bytes).reversed()
    }

    /// Moves up to a batch from the list into the processing list: at once if events wait, else after
    /// blocking up to `blockSeconds` for the first one.
    private func take() throws(RespError) -> [[UInt8]] {
        var taken = try takeAvailable(options.batchSize)
        if taken.isEmpty {
            let first = try connection.command([
                "BLMOVE", list, processingList, "RIGHT", "LEFT", String(options.blockSeconds),
            ]).unwrap("BLMOVE")
            guard let bytes = first.bytes else { return [] }
            taken = [bytes] + (try takeAvailable(options.batchSize - 1))
        }
        return taken
    }

    private func takeAvailable(_ count: Int) throws(RespError) -> [[UInt8]] {
        guard count > 0 else { return [] }
        return try takeReply(try connection.command(takeCommand(count)))
    }

    private func takeCommand(_ count: Int) -> [[UInt8]] {
        [Self.eval, Self.takeScriptBytes, [UInt8(ascii: "2")], Array(list.utf8), Array(processingList.utf8), Array(String(count).utf8)]
    }

    private static let eval = Array("EVAL".utf8)
    private static let takeScriptBytes = Array(takeScript.utf8)

    /// The taken events, oldest first.
    private func takeReply(_ reply: RESPValue) throws(RespError) -> [[UInt8]] {
        (try reply.unwrap("EVAL take").array ?? []).compactMap(\.bytes).reversed()
    }

    /// Appends the outcome's commands, dead letters and the removal of the batch's `count` events from
    /// the tail of the processing list in one `MULTI`/`EXEC` (so output counted is output acked) to the
    /// connection's output, to be flushed by the caller; ``settle(_:)`` reads the replies. `LTRIM` rather than `DEL`: the next batch
    /// may already sit at the head of the processing list.
    private func appendAck(_ count: Int, _ outcome: Outcome) throws(RespError) -> SentAck {
        var commands = [Command(arguments: [Array("MULTI".utf8)])]
        commands += outcome.commands
        if !outcome.deadLetters.isEmpty {
            commands.append(Command(arguments: [Array("LPUSH".utf8), Array(deadList.utf8)] + outcome.deadLetters))
        }
        commands.append(
            Command(arguments: [Array("LTRIM".utf8), Array(processingList.utf8), [UInt8(ascii: "0")], Array(String(-count - 1).utf8)])
        )
        commands.append(Command(arguments: [Array("EXEC".utf8)]))
        for command in commands { try command.append(to: connection) }
        return SentAck(count: count, deadLetters: outcome.deadLetters.count, commands: commands)
    }

    /// Reads a sent ack's replies.
    ///
    /// A command that Redis ran but that failed inside the transaction (e.g. `WRONGTYPE` on a rollup
    /// key) does not undo the others — that is how `EXEC` works — so the batch stays acked; the failure
    /// is logged with Redis's error text and counted (``ackCommandErrors``,
    /// `pixeld_consume_ack_command_errors_total`), and not retried: retrying would apply the
    /// commands that did succeed a second time.
    ///
    /// Returns `false`, with nothing applied, when `EXEC` was aborted by a key the handler watched
    /// (counted in ``ackConflicts``): the events are still in the processing list.
    private func settle(_ ack: SentAck) throws(RespError) -> Bool {
        var replies: [RESPValue] = []
        replies.reserveCapacity(ack.commands.count)
        for _ in ack.commands { replies.append(try connection.readReply()) }
        for reply in replies.dropLast() { try reply.unwrap("MULTI") }
        let results = try replies.last!.unwrap("EXEC")
        if results == .null {
            conflictCount.add(1, ordering: .relaxed)
            metrics.recordAckConflict()
            logger.debug("ack aborted by a watched key; handling the events again", metadata: ["redis.key": "\(list)"])
            return false
        }
        consumedCount.add(ack.count, ordering: .relaxed)
        deadCount.add(ack.deadLetters, ordering: .relaxed)
        // The EXEC array holds one reply per queued command, in order: commands[1...].
        for (index, result) in (results.array ?? []).enumerated() {
            guard case .error(let text) = result else { continue }
            let name = ack.commands.indices.contains(index + 1) ? ack.commands[index + 1].name : "?"
            ackCommandErrorCount.add(1, ordering: .relaxed)
            metrics.recordAckCommandError()
            logger.error(
                "a command of the ack failed inside its transaction; the batch stays acked, not retried",
                metadata: ["redis.key": "\(list)", "command": "\(name)", "command.index": "\(index)", "error": "\(text)"]
            )
        }
        return true
    }

    private func heartbeat() throws(RespError) {
        let now = MonotonicClock.nanoseconds()
        guard now - lastHeartbeat > Int64(options.heartbeatSeconds) * 1_000_000_000 / 3 else { return }
        try connection.command(["SET", heartbeatKey, "1", "EX", String(options.heartbeatSeconds)]).unwrap("SET")
        lastHeartbeat = now
    }

    /// Returns the events of consumers whose heartbeat has expired to the list, oldest to the tail.
    private func recoverOrphans() throws(RespError) {
        var cursor = "0"
        repeat {
            let reply = try connection.command(["SCAN", cursor, "MATCH", "\(list):processing:*", "COUNT", "100"])
                .unwrap("SCAN")
            guard let parts = reply.array, parts.count == 2, let next = parts[0].string else {
                throw RespError(code: .unexpectedReply, operation: "SCAN", message: "\(reply)")
            }
            cursor = next
            for key in (parts[1].array ?? []).compactMap(\.string) where key != processingList {
                let owner = String(key.dropFirst("\(list):processing:".count))
                let alive = try connection.command(["EXISTS", "\(list):consumer:\(owner)"]).unwrap("EXISTS")
                guard alive.int == 0 else { continue }
                let moved = try connection.command(["EVAL", Self.returnScript, "2", key, list]).unwrap("EVAL return")
                let count = Int(moved.int ?? 0)
                recoveredCount.add(count, ordering: .relaxed)
                logger.info("recovered events of a dead consumer", metadata: ["redis.key": "\(key)", "events": "\(count)"])
            }
        } while cursor != "0"
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
