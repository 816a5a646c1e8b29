public import Logging
import PixeldConcurrency
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The Redis writer: one dedicated thread, one connection, pipelined variadic `LPUSH`.
///
/// Each flush takes everything waiting in the ``PushQueue``, groups it by key and sends one
/// `LPUSH key v1 … vN` per key (split every ``Options/maxValuesPerCommand`` values), all pipelined,
/// then reads the replies. Values keep their arrival order: the oldest ends up at the list's tail,
/// where `BRPOP`/`RPOP` take it first.
///
/// Failures: a lost connection is re-established with jittered backoff and the commands whose replies
/// were not read are sent again; transient server errors (`LOADING`, `BUSY`, `OOM`, `READONLY`,
/// `MASTERDOWN`…) are retried likewise; a permanent error for one key (`WRONGTYPE`, `NOPERM`) sends that
/// key's values to the dead-letter list `<key>:dead` and counts them, while every other key flows on.
///
/// `@unchecked Sendable`: the connection and batch buffers are used only on the writer thread; the
/// shutdown deadline is an atomic.
public final class LPushWriter: @unchecked Sendable {
    /// Tuning knobs.
    public struct Options: Sendable {
        /// How long the first message of a batch may wait for company, in nanoseconds (low at low rates).
        public var lingerNanoseconds: Int64 = 1_000_000
        /// Flush without lingering once this many bytes wait.
        public var maxBatchBytes: Int = 1 << 20
        /// Values per `LPUSH` command at most.
        public var maxValuesPerCommand: Int = 4096
        /// Suffix of the dead-letter list for a key whose pushes fail permanently.
        public var deadLetterSuffix: String = ":dead"
        /// Creates default options.
        public init() {}
    }

    private let queue: PushQueue
    private let connection: RedisConnection
    private let options: Options
    /// Totals for metrics and tests.
    public let statistics: WriterStatistics
    private let logger: Logger
    private var thread: DedicatedThread?
    /// `Int64.max` while running; at shutdown, the monotonic time after which undeliverable messages
    /// are given up.
    private let giveUpAt = Atomic<Int64>(.max)
    private let onDelivered: (@Sendable (_ batch: borrowing PushBatch, _ entryIndices: ArraySlice<Int>) -> Void)?

    // Writer-thread state, reused across batches.
    private var everConnected = false
    private var outageStartedAt: Int64?
    private var groups: [KeyGroup] = []
    private var argv = UnsafeMutablePointer<UnsafePointer<CChar>?>.allocate(capacity: 1)
    private var lengths = UnsafeMutablePointer<Int>.allocate(capacity: 1)
    private var argvCapacity = 1
    private let lpushName: UnsafeMutablePointer<CChar> = {
        let name = UnsafeMutablePointer<CChar>.allocate(capacity: 5)
        for (index, byte) in "LPUSH".utf8.enumerated() { name[index] = CChar(bitPattern: byte) }
        return name
    }()

    /// Creates a writer; call ``start()`` to run it.
    /// - Parameters:
    ///   - queue: where the receivers put accepted messages.
    ///   - redis: where to push.
    ///   - onDelivered: called on the writer thread with the entries Redis acknowledged (latency figures).
    public init(
        queue: PushQueue,
        redis: RedisConfiguration,
        options: Options = Options(),
        statistics: WriterStatistics = WriterStatistics(),
        logger: Logger,
        onDelivered: (@Sendable (_ batch: borrowing PushBatch, _ entryIndices: ArraySlice<Int>) -> Void)? = nil
    ) {
        self.queue = queue
        self.connection = RedisConnection(configuration: redis, logger: logger)
        self.options = options
        self.statistics = statistics
        self.logger = logger
        self.onDelivered = onDelivered
    }

    deinit {
        argv.deallocate()
        lengths.deallocate()
        lpushName.deallocate()
    }

    /// Starts the writer thread. It connects lazily and keeps retrying until Redis answers.
    public func start() {
        precondition(thread == nil, "LPushWriter.start() called twice")
        thread = DedicatedThread(name: "pixeld-writer") { [self] in run() }
    }

    /// Drains: stops accepting new messages, pushes everything already queued and returns when done or
    /// when `timeoutNanoseconds` have passed (then whatever could not be pushed is counted as lost).
    /// Stop the receivers first, so that they hand over what their sockets still hold.
    public func shutdown(timeoutNanoseconds: Int64) async {
        giveUpAt.store(MonotonicClock.nanoseconds() + timeoutNanoseconds, ordering: .relaxed)
        queue.close()
        await thread?.finished()
    }

    private var isGivingUp: Bool { MonotonicClock.nanoseconds() >= giveUpAt.load(ordering: .relaxed) }

    private func run() {
        var batch = PushBatch()
        while queue.take(into: &batch, lingerNanoseconds: options.lingerNanoseconds, maxBytes: options.maxBatchBytes) {
            deliver(batch)
            batch.removeAll()
        }
        connection.close()
    }

    // MARK: - One batch

    private struct KeyGroup {
        var keyStart: Int
        var keyCount: Int
        var entryIndices: [Int]
    }

    private struct Command {
        var group: Int
        var entries: Range<Int>
        var deadLetter = false
        var done = false
    }

    private func deliver(_ batch: PushBatch) {
        statistics.addBatch()
        group(batch)
        var commands: [Command] = []
        for (index, group) in groups.enumerated() {
            var start = 0
            while start < group.entryIndices.count {
                let end = min(group.entryIndices.count, start + options.maxValuesPerCommand)
                commands.append(Command(group: index, entries: start..<end))
                start = end
            }
        }
        var backoff = Backoff()
        while commands.contains(where: { !$0.done }) {
            if isGivingUp {
                let left = commands.filter { !$0.done }.reduce(0) { $0 + $1.entries.count }
                statistics.addLost(left)
                logger.error("gave up on messages at shutdown: redis unreachable", metadata: ["messages": "\(left)"])
                return
            }
            let retryNeeded = attempt(&commands, batch: batch)
            if retryNeeded {
                statistics.addRetry()
                sleep(milliseconds: backoff.nextDelayMilliseconds())
            } else {
                backoff.reset()
            }
        }
    }

    /// Sends every command not yet done and reads the replies.
    /// - Returns: `true` when something must be retried after a pause.
    private func attempt(_ commands: inout [Command], batch: PushBatch) -> Bool {
        var sent: [Int] = []
        do {
            try ensureConnected()
            try batch.bytes.withUnsafeBufferPointer { (bytes) throws(RespError) in
                for index in commands.indices where !commands[index].done {
                    try append(commands[index], batch: batch, bytes: bytes)
                    sent.append(index)
                }
            }
        } catch {
            noteFailure(error)
            return true
        }
        var retry = false
        for index in sent {
            let reply: RESPValue
            do {
                reply = try connection.readReply()
            } catch {
                noteFailure(error)
                return true
            }
            retry = handle(reply, for: &commands[index], batch: batch) || retry
        }
        if outageStartedAt != nil && !retry { noteRecovery() }
        return retry
    }

    /// Records the outcome of one `LPUSH`; returns `true` when it must be retried.
    private func handle(_ reply: RESPValue, for command: inout Command, batch: PushBatch) -> Bool {
        let group = groups[command.group]
        switch reply {
        case .integer:
            command.done = true
            if command.deadLetter {
                statistics.addDeadLettered(command.entries.count)
            } else {
                statistics.addPushed(command.entries.count)
                onDelivered?(batch, group.entryIndices[command.entries])
            }
            return false
        case .error(let text):
            let error = RespError(code: .server, operation: "LPUSH", message: text)
            if error.isTransientServerError {
                if outageStartedAt == nil {
                    logger.warning("redis busy, retrying", metadata: ["error": "\(text)"])
                    outageStartedAt = MonotonicClock.nanoseconds()
                }
                return true
            }
            let key = String(decoding: batch.bytes[group.keyStart..<group.keyStart + group.keyCount], as: UTF8.self)
            if command.deadLetter {
                command.done = true
                statistics.addLost(command.entries.count)
                logger.error(
                    "dead-letter push failed; messages lost",
                    metadata: ["redis.key": "\(key)\(options.deadLetterSuffix)", "error": "\(text)", "messages": "\(command.entries.count)"]
                )
                return false
            }
            logger.error(
                "push failed permanently; sending to dead-letter list",
                metadata: ["redis.key": "\(key)", "error": "\(text)", "messages": "\(command.entries.count)"]
            )
            command.deadLetter = true
            return true
        default:
            command.done = true
            statistics.addPushed(command.entries.count)
            return false
        }
    }

    private func append(_ command: Command, batch: PushBatch, bytes: UnsafeBufferPointer<UInt8>) throws(RespError) {
        let group = groups[command.group]
        let count = 2 + command.entries.count
        reserveArgv(count)
        let base = UnsafeRawPointer(bytes.baseAddress!)
        argv[0] = UnsafePointer(lpushName)
        lengths[0] = 5
        var index = 2
        for entryIndex in group.entryIndices[command.entries] {
            let entry = batch.entries[entryIndex]
            argv[index] = (base + entry.valueStart).assumingMemoryBound(to: CChar.self)
            lengths[index] = entry.valueCount
            index += 1
        }
        let key = base + group.keyStart
        guard command.deadLetter else {
            argv[1] = key.assumingMemoryBound(to: CChar.self)
            lengths[1] = group.keyCount
            try connection.append(argv: argv, lengths: lengths, count: count)
            return
        }
        var deadKey = Array(UnsafeRawBufferPointer(start: key, count: group.keyCount))
        deadKey.append(contentsOf: options.deadLetterSuffix.utf8)
        try deadKey.withUnsafeBufferPointer { (deadKey) throws(RespError) in
            argv[1] = UnsafeRawPointer(deadKey.baseAddress!).assumingMemoryBound(to: CChar.self)
            lengths[1] = deadKey.count
            try connection.append(argv: argv, lengths: lengths, count: count)
        }
    }

    private func group(_ batch: PushBatch) {
        for index in groups.indices { groups[index].entryIndices.removeAll(keepingCapacity: true) }
        var used = 0
        batch.bytes.withUnsafeBytes { bytes in
            for (entryIndex, entry) in batch.entries.enumerated() {
                var found = -1
                for candidate in 0..<used
                where groups[candidate].keyCount == entry.keyCount
                    && memcmp(bytes.baseAddress! + groups[candidate].keyStart, bytes.baseAddress! + entry.keyStart, entry.keyCount) == 0
                {
                    found = candidate
                    break
                }
                if found < 0 {
                    if used == groups.count {
                        groups.append(KeyGroup(keyStart: 0, keyCount: 0, entryIndices: []))
                    }
                    groups[used].keyStart = entry.keyStart
                    groups[used].keyCount = entry.keyCount
                    found = used
                    used += 1
                }
                groups[found].entryIndices.append(entryIndex)
            }
        }
        if groups.count > used { groups.removeLast(groups.count - used) }
    }

    private func reserveArgv(_ count: Int) {
        guard count > argvCapacity else { return }
        argv.deallocate()
        lengths.deallocate()
        argvCapacity = max(count, argvCapacity * 2)
        argv = .allocate(capacity: argvCapacity)
        lengths = .allocate(capacity: argvCapacity)
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

    private func noteFailure(_ error: RespError) {
        if outageStartedAt == nil {
            outageStartedAt = MonotonicClock.nanoseconds()
            logger.warning("redis unavailable, holding messages and retrying", metadata: ["error": "\(error)"])
        } else {
            logger.debug("redis still unavailable", metadata: ["error": "\(error)"])
        }
    }

    private func noteRecovery() {
        guard let started = outageStartedAt else { return }
        outageStartedAt = nil
        let milliseconds = (MonotonicClock.nanoseconds() - started) / 1_000_000
        logger.info("redis available again", metadata: ["outage.ms": "\(milliseconds)"])
    }

    private func sleep(milliseconds: Int) {
        // Sleep in slices so a shutdown deadline is noticed promptly.
        var left = milliseconds
        while left > 0 && !isGivingUp {
            let slice = min(left, 10)
            usleep(UInt32(slice * 1000))
            left -= slice
        }
    }
}
