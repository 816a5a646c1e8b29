/// An error from the Redis side of pixeld: it names the failing call, keeps hiredis' or the server's
/// code and text, and says whether the connection it happened on is still usable.
public struct RespError: Error, Sendable, CustomStringConvertible, Equatable {
    /// What went wrong, as an extensible set of codes.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        /// Could not connect (refused, unreachable, DNS, timeout while connecting).
        public static let connectFailed = Code("connectFailed")
        /// Refused without being sent: too many requests were already waiting for a connection.
        public static let busy = Code("busy")
        /// A consumer's move was refused: its heartbeat no longer holds its run's token.
        public static let fenced = Code("fenced")
        /// A consumer's list holds another type than a list (nothing to consume; the consumer stops).
        public static let notAList = Code("notAList")
        /// A read or write failed on an established connection.
        public static let io = Code("io")
        /// The server closed the connection.
        public static let eof = Code("eof")
        /// The server's bytes were not valid RESP.
        public static let `protocol` = Code("protocol")
        /// A command or read timed out; hiredis treats the context as dead afterwards.
        public static let timeout = Code("timeout")
        /// The server answered with an error reply (`-ERR …`, `-WRONGTYPE …`, `-LOADING …`).
        public static let server = Code("server")
        /// The connection was closed by this process (shutdown) or is not connected.
        public static let closed = Code("closed")
        /// The configuration (URL, timeouts) is invalid.
        public static let configuration = Code("configuration")
        /// A reply had an unexpected shape for the command.
        public static let unexpectedReply = Code("unexpectedReply")
        /// Out of memory inside hiredis.
        public static let outOfMemory = Code("outOfMemory")
        public var description: String { name }
    }

    /// What went wrong.
    public var code: Code
    /// The call that failed: `"redisConnect"`, `"redisGetReply"`, `"AUTH"`, `"LPUSH"`…
    public var operation: String
    /// hiredis' `c->err`, or the errno, where there is one.
    public var systemCode: Int32?
    /// The text from hiredis or the server.
    public var message: String

    /// Creates an error.
    public init(code: Code, operation: String, systemCode: Int32? = nil, message: String) {
        self.code = code
        self.operation = operation
        self.systemCode = systemCode
        self.message = message
    }

    /// `true` when the connection that produced this error can no longer be used and must be
    /// replaced (hiredis: any non-zero `c->err` makes the context unusable): it could not connect,
    /// failed, timed out or closed, or hiredis ran out of memory. Not for an error reply, a reply of
    /// an unexpected shape, or a refusal that never reached the connection (`busy`, `fenced`, …).
    public var connectionIsDead: Bool { Self.deadConnectionCodes.contains(code) }

    private static let deadConnectionCodes: Set<Code> = [.connectFailed, .io, .eof, .protocol, .timeout, .closed, .outOfMemory]

    /// For server errors, the first word of the reply (`WRONGTYPE`, `LOADING`, `NOSCRIPT`…).
    public var serverErrorPrefix: Substring? {
        guard code == .server else { return nil }
        return message.split(separator: " ", maxSplits: 1).first
    }

    /// `true` for server errors that say this server does not take writes now — a replica
    /// (`READONLY`), a replica cut off from its master (`MASTERDOWN`), a server still loading its data
    /// (`LOADING`) — while the address may lead to another server by now: after a failover behind a
    /// proxy, a DNS name or a unix-socket symlink, the old connection stays with the demoted server.
    /// Such a connection is replaced, so that the next attempt connects (and resolves the address)
    /// again. Other transient errors (`OOM`, `BUSY`, `FULL`, `NOREPLICAS`) come from the right server,
    /// which a new connection would reach again.
    public var callsForReconnect: Bool {
        guard let prefix = serverErrorPrefix else { return false }
        return ["READONLY", "MASTERDOWN", "LOADING"].contains(prefix)
    }

    public var description: String {
        var text = "\(operation): \(message)"
        if let systemCode { text += " (\(code) \(systemCode))" } else { text += " (\(code))" }
        return text
    }
}
