/// Where and how to reach Redis: endpoint, credentials, database and timeouts.
///
/// Build it from a URL, as operators write it on the command line:
/// `redis://[[user]:password@]host[:port][/db]` or `unix:///path/redis.sock[?db=N&user=…&password=…]`.
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

    /// Parses `redis://[[user]:password@]host[:port][/db]` or `unix:///path[?db=N&user=U&password=P]`.
    ///
    /// User and password are percent-decoded, as `redis-cli -u` decodes them (`p%40ss` is `p@ss`).
    /// - Throws: ``RespError`` with code `.configuration` and a one-line explanation that quotes the URL
    ///   with its credentials hidden (see ``redacted(_:)``).
    public init(url: String) throws(RespError) {
        func fail(_ why: String) -> RespError {
            RespError(code: .configuration, operation: "redis URL", message: "\(why) in '\(Self.redacted(url))'")
        }
        func decoded(_ text: Substring, _ what: String) throws(RespError) -> String {
            guard let value = Self.percentDecoded(text) else { throw fail("bad percent-encoding in the \(what)") }
            return value
        }
        if url.hasPrefix("unix://") {
            let rest = url.dropFirst("unix://".count)
            let parts = rest.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
            let path = String(parts[0])
            guard path.hasPrefix("/") else { throw fail("the unix socket path must be absolute") }
            var database = 0
            var username: String?
            var password: String?
            if parts.count == 2 {
                for pair in parts[1].split(separator: "&") {
                    let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                    let value = kv.count == 2 ? kv[1] : ""
                    switch kv[0] {
                    case "db":
                        guard let db = Int(value) else { throw fail("db must be a number") }
                        database = db
                    case "user": username = try decoded(value, "user")
                    case "password": password = try decoded(value, "password")
                    default: throw fail("unknown parameter '\(kv[0])' (known: db, user, password)")
                    }
                }
            }
            try self.init(endpoint: .unix(path: path), username: username, password: password, database: database)
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
                username = user.isEmpty ? nil : try decoded(user, "user")
                password = try decoded(credentials[credentials.index(after: colon)...], "password")
            } else {
                password = try decoded(credentials, "password")
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

    /// `url` with its credentials replaced by `***`, safe for error lines and logs, whatever the
    /// scheme (`rediss://` is refused, and must not show its password either): what precedes the last
    /// `@` of the authority, and the rest of the URL from `password=`.
    /// `redis://alice:***@host:6379/0`, `unix:///run/redis.sock?db=1&password=***`.
    public static func redacted(_ url: String) -> String {
        if let password = url.firstRange(of: "password=") { return url[..<password.upperBound] + "***" }
        let authority = url.firstRange(of: "://")?.upperBound ?? url.startIndex
        guard let at = url[authority...].lastIndex(of: "@") else { return url }
        let credentials = url[authority..<at]
        let user = credentials.firstIndex(of: ":").map { credentials[..<$0] + ":" } ?? ""
        return url[..<authority] + user + "***" + url[at...]
    }

    /// Decodes `%XX` escapes; `nil` for a `%` not followed by two hex digits or bytes that are not UTF-8.
    static func percentDecoded(_ text: Substring) -> String? {
        guard text.contains("%") else { return String(text) }
        var bytes: [UInt8] = []
        var iterator = text.utf8.makeIterator()
        func hex(_ byte: UInt8?) -> UInt8? {
            switch byte {
            case let digit? where (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(digit): digit - UInt8(ascii: "0")
            case let letter? where (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(letter | 0x20): (letter | 0x20) - UInt8(ascii: "a") + 10
            default: nil
            }
        }
        while let byte = iterator.next() {
            guard byte == UInt8(ascii: "%") else {
                bytes.append(byte)
                continue
            }
            guard let high = hex(iterator.next()), let low = hex(iterator.next()) else { return nil }
            bytes.append(high << 4 | low)
        }
        return String(validating: bytes, as: UTF8.self)
    }

    private func validate() throws(RespError) {
        func fail(_ why: String) -> RespError { RespError(code: .configuration, operation: "redis", message: why) }
        if case .tcp(_, let port) = endpoint, !(1...65535).contains(port) {
            throw fail("port \(port) is out of range 1–65535")
        }
        guard (0...1_000_000).contains(database) else { throw fail("database \(database) is out of range") }
        guard username == nil || password != nil else { throw fail("a user name needs a password (AUTH user password)") }
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
