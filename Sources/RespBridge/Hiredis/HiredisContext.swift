private import CHiredis
import PixeldConcurrency

#if canImport(Glibc)
import Glibc
#endif

/// The only owner of a hiredis `redisContext *` in pixeld, and the only file that imports CHiredis.
///
/// It connects, appends binary-safe commands (never format strings: argv with explicit lengths for the
/// writer's, RESP it encodes itself for the rest, see ``appendCommand(_:)``), reads replies and copies each
/// one into a Swift-owned ``RESPValue`` before freeing it. A hiredis context is not thread-safe: an
/// instance is used by one thread at a time (its ``RedisConnection``'s owner); only
/// ``shutdownSocket()`` may be called from another thread, to unblock a pending read at shutdown.
/// Any non-zero `c->err` makes the context dead (hiredis README): callers drop it and connect anew.
final class HiredisContext {
    private let context: UnsafeMutablePointer<redisContext>
    private let fd: Int32
    /// The socket's send and receive timeout (`redisSetTimeout`), named when one runs out.
    private let commandTimeoutMilliseconds: Int

    private init(context: UnsafeMutablePointer<redisContext>, commandTimeoutMilliseconds: Int) {
        self.context = context
        self.fd = chiredis_fd(context)
        self.commandTimeoutMilliseconds = commandTimeoutMilliseconds
    }

    deinit {
        redisFree(context)
    }

    /// Connects to the configured endpoint, applies the command timeout, enables TCP keep-alive.
    /// AUTH and SELECT are the caller's (``RedisConnection``'s) business.
    static func connect(_ configuration: RedisConfiguration) throws(RespError) -> HiredisContext {
        let connectTimeout = timeval(milliseconds: configuration.connectTimeoutMilliseconds)
        let raw: UnsafeMutablePointer<redisContext>?
        switch configuration.endpoint {
        case .tcp(let host, let port):
            raw = redisConnectWithTimeout(host, Int32(port), connectTimeout)
        case .unix(let path):
            raw = redisConnectUnixWithTimeout(path, connectTimeout)
        }
        guard let raw else {
            throw RespError(code: .outOfMemory, operation: "redisConnect", message: "could not allocate a context")
        }
        let context = HiredisContext(context: raw, commandTimeoutMilliseconds: configuration.commandTimeoutMilliseconds)
        if chiredis_err(raw) != 0 {
            throw RespError(
                code: .connectFailed,
                operation: "redisConnect",
                systemCode: chiredis_err(raw),
                message: String(cString: chiredis_errstr(raw))
            )
        }
        if redisSetTimeout(raw, timeval(milliseconds: configuration.commandTimeoutMilliseconds)) != REDIS_OK {
            throw context.error(operation: "redisSetTimeout")
        }
        if case .tcp = configuration.endpoint { enableKeepAlive(context.fd) }
        // hiredis 0.14 opens its socket without close-on-exec: a child spawned later (the archive's
        // gzip) would hold the connection open on Redis's side after this process closed it.
        _ = fcntl(context.fd, F_SETFD, fcntl(context.fd, F_GETFD) | FD_CLOEXEC)
        return context
    }

    /// Turns TCP keep-alive on for `fd` with `redisEnableKeepAlive`'s settings (probes after 15 s idle,
    /// every 5 s, 3 of them), as best it can: a `setsockopt` that fails leaves the connection without
    /// them, and usable. Not `redisEnableKeepAlive` itself: hiredis 0.14 records such a failure as the
    /// context's error, and a context with an error fails every later read and write at once, so the
    /// connection would be dropped and made again, for ever.
    private static func enableKeepAlive(_ fd: Int32) {
        let size = socklen_t(MemoryLayout<Int32>.size)
        var on: Int32 = 1
        guard setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, size) == 0 else { return }
        let idle = Int32(REDIS_KEEPALIVE_INTERVAL)
        for (option, value) in [(TCP_KEEPIDLE, idle), (TCP_KEEPINTVL, max(1, idle / 3)), (TCP_KEEPCNT, 3)] {
            var value = value
            _ = setsockopt(fd, Int32(IPPROTO_TCP), option, &value, size)
        }
    }

    /// Appends one command to the output buffer (nothing is sent until a reply is read); hiredis
    /// copies the arguments' bytes into it.
    func appendCommand(_ arguments: CommandArguments) throws(RespError) {
        if redisAppendCommandArgv(context, Int32(arguments.count), arguments.argv, arguments.lengths) != REDIS_OK {
            throw error(operation: "redisAppendCommandArgv")
        }
    }

    /// Appends one command given as byte arrays, formatted here as RESP in one buffer (hiredis
    /// copies it once, instead of formatting each argument).
    func appendCommand(_ arguments: [[UInt8]]) throws(RespError) {
        var total = 16
        for argument in arguments { total += argument.count + 24 }
        let ok = withUnsafeTemporaryAllocation(of: UInt8.self, capacity: total) { buffer -> Bool in
            var end = 0
            func put(_ byte: UInt8) {
                buffer[end] = byte
                end += 1
            }
            func header(_ kind: UInt8, _ value: Int) {
                put(kind)
                var digits = 1
                var rest = value / 10
                while rest > 0 {
                    digits += 1
                    rest /= 10
                }
                var number = value
                for index in stride(from: end + digits - 1, through: end, by: -1) {
                    buffer[index] = UInt8(ascii: "0") + UInt8(number % 10)
                    number /= 10
                }
                end += digits
                put(UInt8(ascii: "\r"))
                put(UInt8(ascii: "\n"))
            }
            header(UInt8(ascii: "*"), arguments.count)
            for argument in arguments {
                header(UInt8(ascii: "$"), argument.count)
                argument.withUnsafeBufferPointer { bytes in
                    if let base = bytes.baseAddress { (buffer.baseAddress! + end).update(from: base, count: bytes.count) }
                }
                end += argument.count
                put(UInt8(ascii: "\r"))
                put(UInt8(ascii: "\n"))
            }
            return appendFormatted(UnsafeBufferPointer(rebasing: buffer[..<end]))
        }
        if !ok { throw error(operation: "redisAppendFormattedCommand") }
    }

    /// Appends one command already encoded as RESP.
    func appendFormatted(_ command: [UInt8]) throws(RespError) {
        if !command.withUnsafeBufferPointer(appendFormatted) { throw error(operation: "redisAppendFormattedCommand") }
    }

    /// hiredis copies the encoded command into its output buffer; `false` when it could not.
    private func appendFormatted(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        bytes.baseAddress!.withMemoryRebound(to: CChar.self, capacity: bytes.count) {
            redisAppendFormattedCommand(context, $0, bytes.count) == REDIS_OK
        }
    }

    /// Writes everything buffered to the socket without waiting for replies.
    func flush() throws(RespError) {
        var done: Int32 = 0
        while done == 0 {
            if redisBufferWrite(context, &done) != REDIS_OK { throw error(operation: "redisBufferWrite") }
        }
    }

    /// Sends whatever is buffered and reads the next reply, blocking up to the command timeout.
    /// Error replies come back as ``RESPValue/error(_:)``, not as thrown errors: the connection is fine.
    /// - Throws: ``RespError`` when the connection failed; the context is dead afterwards.
    func readReply() throws(RespError) -> RESPValue {
        var raw: UnsafeMutableRawPointer?
        if redisGetReply(context, &raw) != REDIS_OK || raw == nil {
            throw error(operation: "redisGetReply")
        }
        let reply = raw!.assumingMemoryBound(to: redisReply.self)
        defer { freeReplyObject(reply) }
        return Self.copy(reply)
    }

    /// Like ``readReply()``, but nothing blocks: what is buffered is sent as the socket takes it, and
    /// the wait — for room in the socket's send buffer, then for the reply — is `poll(2)` in slices
    /// of `sliceMilliseconds`. At least once a slice `whileWaiting` runs with the nanoseconds waited
    /// since `waitingSince` (the writer moves its queue to the spool there while Redis stalls).
    /// `deadline` (``MonotonicClock`` nanoseconds) bounds the whole exchange, which the caller may
    /// spread over several calls (one per reply of a pipeline or a transaction: it passes the same
    /// deadline to each): once it has passed without the whole reply read — even while bytes come or
    /// go now and then (a peer that trickles a reply, or reads a byte of the command at a time, never
    /// leaves a slice idle) —, or when `whileWaiting` returns `false`, the call fails with
    /// ``RespError/Code/timeout`` (the context is dropped then, as after any failure).
    ///
    /// The send matters as much as the reply: a peer that stops reading (a remote Redis in a network
    /// partition, a stalled proxy) leaves a large commit (a spooled record being replayed, a backlog)
    /// in a full send buffer, and `redisBufferWrite` on this blocking socket would wait there up to
    /// the send timeout (the command timeout), with nothing spilled meanwhile.
    func readReply(
        waitingSince started: Int64, deadline: Int64, sliceMilliseconds: Int32, whileWaiting: (_ waitedNanoseconds: Int64) -> Bool
    ) throws(RespError) -> RESPValue {
        var lastCalled = MonotonicClock.nanoseconds()
        var sendDone: Int32 = 0  // (1 once the whole command is in the socket)
        while true {
            if sendDone == 0, chiredis_buffer_write_nowait(context, &sendDone) != REDIS_OK { throw error(operation: "redisBufferWrite") }
            var raw: UnsafeMutableRawPointer?
            // A reply already read into hiredis's buffer (pipelined replies arrive together) comes first.
            if redisGetReplyFromReader(context, &raw) != REDIS_OK { throw error(operation: "redisGetReply") }
            if let raw {
                let reply = raw.assumingMemoryBound(to: redisReply.self)
                defer { freeReplyObject(reply) }
                return Self.copy(reply)
            }
            // Checked on every pass, not only after an idle slice: bytes that trickle in (or out) keep
            // every slice busy.
            let left = deadline - MonotonicClock.nanoseconds()
            guard left > 0 else {
                throw sendDone == 0
                    ? RespError(code: .timeout, operation: "redisBufferWrite", message: "redis did not take the whole command within \(commandTimeoutMilliseconds) ms")
                    : RespError(code: .timeout, operation: "redisGetReply", message: "replies not all in within \(commandTimeoutMilliseconds) ms")
            }
            // Replies to the commands already sent are read while the rest waits for room.
            var descriptor = pollfd(fd: fd, events: Int16(sendDone == 0 ? POLLIN | POLLOUT : POLLIN), revents: 0)
            let ready = poll(&descriptor, 1, Int32(min(Int64(sliceMilliseconds), (left + 999_999) / 1_000_000)))
            if ready < 0 {
                if errno == EINTR { continue }
                throw RespError(code: .io, operation: "poll", systemCode: errno, message: String(cString: strerror(errno)))
            }
            let now = MonotonicClock.nanoseconds()
            let waited = now - started
            // (Also while a large command trickles out: the send buffer has room now and then.)
            if ready == 0 || now - lastCalled >= Int64(sliceMilliseconds) * 1_000_000 {
                lastCalled = now
                guard whileWaiting(waited) else {
                    throw RespError(code: .timeout, operation: "redisGetReply", message: "no reply after \(waited / 1_000_000) ms, no longer waited for")
                }
            }
            // Readable (or closed: the read then fails and says why); writable is the next send's business.
            if ready > 0, descriptor.revents & Int16(POLLIN | POLLERR | POLLHUP | POLLNVAL) != 0, redisBufferRead(context) != REDIS_OK {
                throw error(operation: "redisBufferRead")
            }
        }
    }

    /// Shuts the socket down so that a read blocked in another thread returns at once.
    func shutdownSocket() {
        _ = Glibc.shutdown(fd, Int32(SHUT_RDWR))
    }

    private static func copy(_ reply: UnsafeMutablePointer<redisReply>) -> RESPValue {
        let value = reply.pointee
        func bytes() -> [UInt8] {
            guard let str = value.str, value.len > 0 else { return [] }
            return Array(UnsafeRawBufferPointer(start: str, count: value.len))
        }
        switch value.type {
        case REDIS_REPLY_STRING: return .bulk(bytes())
        case REDIS_REPLY_STATUS: return .status(String(decoding: bytes(), as: UTF8.self))
        case REDIS_REPLY_ERROR: return .error(String(decoding: bytes(), as: UTF8.self))
        case REDIS_REPLY_INTEGER: return .integer(value.integer)
        case REDIS_REPLY_ARRAY:
            var elements: [RESPValue] = []
            elements.reserveCapacity(value.elements)
            for index in 0..<value.elements {
                if let element = value.element[index] { elements.append(copy(element)) } else { elements.append(.null) }
            }
            return .array(elements)
        default: return .null
        }
    }

    private func error(operation: String) -> RespError {
        let code = chiredis_err(context)
        let message = String(cString: chiredis_errstr(context))
        let kind: RespError.Code
        switch code {
        case REDIS_ERR_EOF: kind = .eof
        case REDIS_ERR_PROTOCOL: kind = .protocol
        case REDIS_ERR_OOM: kind = .outOfMemory
        case REDIS_ERR_IO:
            // EAGAIN: the socket's receive (or send) timeout ran out, which hiredis reports as errno's
            // text, "Resource temporarily unavailable": said as what happened, like the poll-based read's.
            if message.contains("Resource temporarily unavailable") {
                let what = operation == "redisBufferWrite" ? "redis took nothing sent within" : "no reply within"
                return RespError(code: .timeout, operation: operation, message: "\(what) \(commandTimeoutMilliseconds) ms")
            }
            kind = message.contains("timed out") ? .timeout : .io
        default: kind = .io
        }
        return RespError(code: kind, operation: operation, systemCode: code, message: message.isEmpty ? "connection failed" : message)
    }
}

extension timeval {
    fileprivate init(milliseconds: Int) {
        self.init(tv_sec: milliseconds / 1000, tv_usec: (milliseconds % 1000) * 1000)
    }
}
