public import Logging
import PixeldConcurrency

/// One blocking connection to Redis, with AUTH and SELECT done on every (re)connect.
///
/// A connection belongs to one thread at a time — the writer's or the consumer's dedicated thread —
/// because the hiredis context behind it is not thread-safe and its calls block. Only ``interrupt()``
/// and ``abandon()`` may be called from elsewhere, to make a blocked call return at shutdown.
///
/// `@unchecked Sendable`: the context is touched only by the owning thread; the copy used by
/// ``interrupt()`` and ``abandon()``, and the flag the latter sets, are guarded by a lock.
public final class RedisConnection: @unchecked Sendable {
    /// Where this connection goes.
    public let configuration: RedisConfiguration
    private let logger: Logger
    private var context: HiredisContext?
    private let interruptLock = ConditionLock()
    private var interruptTarget: HiredisContext?
    /// Set by ``abandon()``, under `interruptLock`: no context is made any more.
    private var abandoned = false
    /// Replies still owed by the server for the commands appended (never below 0: a pub/sub message
    /// is read without a command).
    private var pendingReplies = 0
    /// When the last reply was read, or the connection made (``MonotonicClock`` nanoseconds).
    private var lastReplyAt: Int64 = 0
    /// With ``whileWaiting``: when the wait for the replies owed began (the first read after commands
    /// were appended) and by when they must all have come (one command timeout later); `nil` while
    /// none is owed.
    private var exchange: (startedAt: Int64, deadline: Int64)?

    /// How long a connection must have had no reply for Redis to have closed it for idleness (its
    /// `timeout`, whose least setting is 1 s).
    static let idleNanoseconds: Int64 = 1_000_000_000

    /// Whether the connection is open and has had no reply for ``idleNanoseconds``: Redis may have
    /// closed it for idleness, so that its next use fails although Redis is up.
    public var mayHaveBeenClosedForIdleness: Bool {
        context != nil && MonotonicClock.nanoseconds() - lastReplyAt >= Self.idleNanoseconds
    }

    /// Closes the connection when Redis may have closed it for idleness
    /// (``mayHaveBeenClosedForIdleness``), so that the next command connects anew: for a connection
    /// used now and then, whose first use after a quiet spell would otherwise fail although Redis is
    /// up (its `timeout`, a restart, a `CLIENT KILL` while it idled). A stall is not hidden by it:
    /// a reply that does not come fails on the new connection as on the old one.
    public func closeIfIdle() {
        if mayHaveBeenClosedForIdleness { close() }
    }
    private let recordsClientID: Bool
    /// The server's id for this connection (`CLIENT ID`, asked at connect when the connection was
    /// created to record it), by which another connection can `CLIENT KILL` it; `nil` when not
    /// connected, not recorded, or refused.
    public private(set) var clientID: ClientID?

    /// A connection's `CLIENT ID` and the server process that gave it (`run_id` of `INFO server`): a
    /// Redis numbers its clients from 1 again when it restarts, and another server has numbers of its
    /// own, so an id means this connection only on the same `run_id`.
    public struct ClientID: Sendable, Equatable {
        /// `CLIENT ID`.
        public var id: Int64
        /// The server's `run_id`.
        public var server: String
    }

    /// Creates an unconnected connection; the first command connects.
    /// - Parameter recordsClientID: ask each new connection's ``clientID`` (two more round trips per connect).
    public init(configuration: RedisConfiguration, logger: Logger, recordsClientID: Bool = false) {
        self.configuration = configuration
        self.logger = logger
        self.recordsClientID = recordsClientID
    }

    /// Called on the owning thread every few milliseconds while a reply is awaited — or the command
    /// waits for room in the socket's send buffer (a peer that stopped reading) —, with the
    /// nanoseconds waited so far (the writer moves its queue to the spool there while Redis stalls);
    /// returning `false` ends the wait, as a timeout would (the writer's shutdown deadline). The
    /// replies owed when the first of them is read (a transaction's `+OK`, `+QUEUED`s and `EXEC`
    /// array, a pipeline's) share one command timeout, counted from that read, and the nanoseconds
    /// waited are counted from there too: a peer that trickles each reply just within the timeout
    /// cannot keep a commit going for as many timeouts as it has replies. (Commands appended while
    /// replies are still owed join that exchange.) `nil`: replies are awaited in one blocking read
    /// each, and it is each read of the socket that may take up to the command timeout.
    public var whileWaiting: ((_ waitedNanoseconds: Int64) -> Bool)?

    /// `true` while a live context is held.
    public var isConnected: Bool { context != nil }

    /// `true` when commands were sent whose replies have not been read (a pipeline abandoned part-way,
    /// e.g. after an error reply): the next read would return one of those stale replies, so such a
    /// connection is out of step and must be closed before it is used again.
    public var hasPendingReplies: Bool { pendingReplies > 0 }

    /// Connects (dropping any previous context), then sends AUTH and SELECT as configured.
    /// - Throws: ``RespError`` when the connection or the handshake fails.
    public func connect() throws(RespError) {
        close()
        guard !interruptLock.withLock({ abandoned }) else { throw Self.abandonedError }
        let fresh = try HiredisContext.connect(configuration)
        // Where ``abandon()`` finds it, unless it came first (while connecting).
        let installed = interruptLock.withLock {
            if !abandoned { interruptTarget = fresh }
            return !abandoned
        }
        guard installed else { throw Self.abandonedError }
        context = fresh
        lastReplyAt = MonotonicClock.nanoseconds()
        do {
            if let password = configuration.password {
                var auth: [[UInt8]] = [Array("AUTH".utf8)]
                if let username = configuration.username { auth.append(Array(username.utf8)) }
                auth.append(Array(password.utf8))
                try command(auth).unwrap("AUTH")
            }
            if configuration.database != 0 {
                try command(["SELECT", String(configuration.database)]).unwrap("SELECT")
            }
            if recordsClientID, let id = try command(["CLIENT", "ID"]).int, let server = Self.runID(try command(["INFO", "server"])) {
                clientID = ClientID(id: id, server: server)
            }
        } catch {
            close()
            throw error
        }
    }

    /// The `run_id:` line of an `INFO server` reply, or `nil` (refused, or not there).
    private static func runID(_ reply: RESPValue) -> String? {
        guard let text = reply.string else { return nil }
        let line = text.split(whereSeparator: \.isNewline).first { $0.hasPrefix("run_id:") }
        return line.map { String($0.dropFirst("run_id:".count)) }.flatMap { $0.isEmpty ? nil : $0 }
    }

    /// Drops the context, if any. The next command reconnects.
    public func close() {
        interruptLock.withLock { interruptTarget = nil }
        context = nil
        pendingReplies = 0
        exchange = nil
        clientID = nil
    }

    /// Makes a call blocked on this connection in another thread return with an error. Thread-safe.
    public func interrupt() {
        interruptLock.withLock { interruptTarget?.shutdownSocket() }
    }

    /// Makes a call blocked on this connection in another thread return with an error, as
    /// ``interrupt()`` does, and every later one fail at once without connecting again: for a
    /// shutdown that waits for Redis no longer. Thread-safe; for good.
    public func abandon() {
        interruptLock.withLock {
            abandoned = true
            interruptTarget?.shutdownSocket()
        }
    }

    private static let abandonedError = RespError(code: .closed, operation: "connect", message: "connection abandoned at shutdown")

    /// Sends one command and waits for its reply. Error replies are returned, not thrown.
    /// - Throws: ``RespError`` when the connection failed; it is closed then.
    public func command(_ arguments: [[UInt8]]) throws(RespError) -> RESPValue {
        try append(arguments)
        return try readReply()
    }

    /// Sends one command given as strings.
    public func command(_ arguments: [String]) throws(RespError) -> RESPValue {
        try command(arguments.map { Array($0.utf8) })
    }

    /// Sends all commands in one write and reads their replies in order (pipelining).
    /// - Throws: ``RespError`` when the connection failed part-way; it is closed then.
    public func pipeline(_ commands: [[[UInt8]]]) throws(RespError) -> [RESPValue] {
        for command in commands { try append(command) }
        var replies: [RESPValue] = []
        replies.reserveCapacity(commands.count)
        for _ in commands { replies.append(try readReply()) }
        return replies
    }

    /// Appends a command to the output buffer without waiting; connects first if needed.
    public func append(_ arguments: [[UInt8]]) throws(RespError) {
        try appending { context throws(RespError) in try context.appendCommand(arguments) }
    }

    /// Appends a command whose arguments point into the caller's buffers — the zero-copy path of the
    /// writer. The memory behind them only needs to stay valid for the duration of this call.
    func append(_ arguments: CommandArguments) throws(RespError) {
        try appending { context throws(RespError) in try context.appendCommand(arguments) }
    }

    /// Appends one command already encoded as RESP (`*N\r\n$len\r\narg\r\n…`, one complete
    /// command), copied as is: for large commands built straight into one buffer.
    public func append(encoded command: [UInt8]) throws(RespError) {
        try appending { context throws(RespError) in try context.appendFormatted(command) }
    }

    /// Appends one command with `body` (connecting first if needed) and expects its reply; closes
    /// the connection when appending fails.
    private func appending(_ body: (HiredisContext) throws(RespError) -> Void) throws(RespError) {
        let context = try liveContext()
        do {
            try body(context)
            pendingReplies += 1
        } catch {
            close()
            throw error
        }
    }

    /// Sends the commands appended so far without reading replies (``readReply()`` reads them later).
    /// - Throws: ``RespError`` when the connection failed; it is closed then.
    public func flush() throws(RespError) {
        guard let context else {
            throw RespError(code: .closed, operation: "redisBufferWrite", message: "not connected")
        }
        do {
            try context.flush()
        } catch {
            close()
            throw error
        }
    }

    /// Flushes the output buffer if needed and reads the next reply.
    /// - Throws: ``RespError`` when the connection failed; it is closed then.
    public func readReply() throws(RespError) -> RESPValue {
        guard let context else {
            throw RespError(code: .closed, operation: "redisGetReply", message: "not connected")
        }
        do {
            let reply: RESPValue
            if let whileWaiting {
                let exchange = self.exchange ?? Self.exchange(startingNowFor: configuration.commandTimeoutMilliseconds)
                self.exchange = exchange
                reply = try context.readReply(
                    waitingSince: exchange.startedAt, deadline: exchange.deadline, sliceMilliseconds: 10, whileWaiting: whileWaiting
                )
            } else {
                reply = try context.readReply()
            }
            pendingReplies = max(0, pendingReplies - 1)
            if pendingReplies == 0 { exchange = nil }
            lastReplyAt = MonotonicClock.nanoseconds()
            return reply
        } catch {
            logger.debug("redis connection failed", metadata: ["error": "\(error)"])
            close()
            throw error
        }
    }

    /// An exchange whose wait begins now and may last `timeoutMilliseconds`.
    private static func exchange(startingNowFor timeoutMilliseconds: Int) -> (startedAt: Int64, deadline: Int64) {
        let now = MonotonicClock.nanoseconds()
        return (now, now + Int64(timeoutMilliseconds) * 1_000_000)
    }

    private func liveContext() throws(RespError) -> HiredisContext {
        if let context { return context }
        try connect()
        return context!
    }
}
