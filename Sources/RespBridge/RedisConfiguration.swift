/// Where and how to reach Redis: endpoint, credentials, database and timeouts.
///
/// Build it from a URL, as operators write it on the command line:
/// `redis://[[user]:password@]host[:port][/db]` or `unix:///path/redis.sock[?db=N&password=…]`.
public struct RedisConfiguration: Sendable, Equatable, CustomStringConvertible {
    /// TCP or unix-socket endpoint.
    public enum Endpoint: Sendable, Equatable {
        /// A TCP host (name, IPv4 or IPv6 literal without brackets) and port.
        case tcp(host: String, port: Int)
        /// A unix stream socket path.
        case unix(path: String)
    }

    /// The endpoint.
    public var endpoint: Endpoint
    /// ACL user name for `AUTH user password`; `nil` sends `AUTH password` when a password is set.
    public var username: String?
    /// Password for `AUTH`; `nil` sends no `AUTH`.
    public var password: String?
    /// Database index selected after connecting.
    public var database: Int
    /// How long a connect may take, in milliseconds.
    public var connectTimeoutMilliseconds: Int
    /// How long a single command (one pipelined batch's replies) may take, in milliseconds. A read
    /// timeout kills a hiredis context, so it must be longer than any blocking command's timeout.
    public var commandTimeoutMilliseconds: Int

    /// Creates a configuration.
    /// - Throws: ``RespError`` with code `.configuration` when a value is out of range.
    public init(
        endpoint: Endpoint = .tcp(host: "127.0.0.1", port: 6379),
        username: String? = nil,
        password: String? = nil,
        database: Int = 0,
        connectTimeoutMilliseconds: Int = 1_000,
        commandTimeoutMilliseconds: Int = 5_000
    ) throws(RespError) {
        self.endpoint = endpoint
        self.username = username
        self.password = password
        self.database = database
        self.connectTimeoutMilliseconds = connectTimeoutMilliseconds
        self.commandTimeoutMilliseconds = commandTimeoutMilliseconds
        try validate()
    }

    /// Parses `redis://[[user]:password@]host[:port][/db]` or `unix:///path[?db=N&password=P]`.
    /// - Throws: ``RespError`` with code `.configuration` and a one-line explanation.
    public init(url: String) throws(RespError) {
        func fail(_ why: String) -> RespError {
            RespError(code: .configuration, operation: "redis URL", message: "\(why) in '\(url)'")
        }
        if url.hasPrefix("unix://") {
            let rest = url.dropFirst("unix://".count)
            let parts = rest.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
            let path = String(parts[0])
            guard path.hasPrefix("/") else { throw fail("the unix socket path must be absolute") }
            var database = 0
            var password: String?
            if parts.count == 2 {
                for pair in parts[1].split(separator: "&") {
                    let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                    let value = kv.count == 2 ? String(kv[1]) : ""
                    switch kv[0] {
                    case "db":
                        guard let db = Int(value) else { throw fail("db must be a number") }
                        database = db
                    case "password": password = value
                    default: throw fail("unknown parameter '\(kv[0])'")
                    }
                }
            }
            try self.init(endpoint: .unix(path: path), password: password, database: database)
            return
        }
        guard url.hasPrefix("redis://") else { throw fail("expected redis:// or unix://") }
        var rest = Substring(url.dropFirst("redis://".count))
        var username: String?
        var password: String?
        if let at = rest.lastIndex(of: "@") {
            let credentials = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = credentials.firstIndex(of: ":") {
                let user = credentials[..<colon]
                username = user.isEmpty ? nil : String(user)
                password = String(credentials[credentials.index(after: colon)...])
            } else {
                password = String(credentials)
            }
        }
        var database = 0
        if let slash = rest.firstIndex(of: "/") {
            let db = rest[rest.index(after: slash)...]
            rest = rest[..<slash]
            if !db.isEmpty {
                guard let value = Int(db) else { throw fail("the database must be a number") }
                database = value
            }
        }
        var host: Substring
        var port = 6379
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { throw fail("unterminated IPv6 address") }
            host = rest[rest.index(after: rest.startIndex)..<close]
            let after = rest[rest.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":"), let value = Int(after.dropFirst()) else { throw fail("bad port") }
                port = value
            }
        } else if let colon = rest.lastIndex(of: ":") {
            host = rest[..<colon]
            guard let value = Int(rest[rest.index(after: colon)...]) else { throw fail("bad port") }
            port = value
        } else {
            host = rest
        }
        guard !host.isEmpty else { throw fail("missing host") }
        try self.init(
            endpoint: .tcp(host: String(host), port: port),
            username: username,
            password: password,
            database: database
        )
    }

    private func validate() throws(RespError) {
        func fail(_ why: String) -> RespError { RespError(code: .configuration, operation: "redis", message: why) }
        if case .tcp(_, let port) = endpoint, !(1...65535).contains(port) {
            throw fail("port \(port) is out of range 1–65535")
        }
        guard (0...1_000_000).contains(database) else { throw fail("database \(database) is out of range") }
        guard connectTimeoutMilliseconds > 0, commandTimeoutMilliseconds > 0 else {
            throw fail("timeouts must be positive")
        }
    }

    /// The endpoint as a URL, without the password: safe for logs.
    public var description: String {
        switch endpoint {
        case .tcp(let host, let port):
            let shown = host.contains(":") ? "[\(host)]" : host
            return "redis://\(password == nil ? "" : "***@")\(shown):\(port)/\(database)"
        case .unix(let path):
            return "unix://\(path)?db=\(database)"
        }
    }
}
