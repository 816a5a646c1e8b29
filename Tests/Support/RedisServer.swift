public import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A private `redis-server` on a free loopback port, run in the foreground as a child of the test
/// process (so we own its PID), with its data in a temporary directory.
///
/// ```swift
/// let redis = try RedisServer.start()
/// _ = try redis.command(["LPUSH", "pixel", "a"])
/// #expect(try redis.lrangeRaw("pixel") == [Array("a".utf8)])
/// ```
/// The server is stopped (SIGTERM, then SIGKILL) when the value is deinitialized.
public final class RedisServer: @unchecked Sendable {
    // @unchecked Sendable: `child` is replaced only by restart(), under `lock`; everything else is
    // immutable after start.
    private let lock = NSLock()
    private var child: ChildProcess?
    private let executable: URL
    private let arguments: [String]

    /// The TCP port on 127.0.0.1.
    public let port: Int
    /// `redis://127.0.0.1:<port>/0`.
    public var url: String { "redis://127.0.0.1:\(port)/0" }
    /// The unix socket the server also listens on (mode 0700).
    public let unixSocketPath: String
    /// `unix://<unixSocketPath>` (database 0).
    public var unixURL: String { "unix://\(unixSocketPath)" }
    /// The server's data directory (AOF lives here).
    public let directory: TempDirectory

    /// The server's PID, or `nil` when it is not running.
    public var pid: Int32? {
        lock.lock()
        defer { lock.unlock() }
        guard let child, child.isRunning else { return nil }
        return child.pid
    }

    /// What the server logged so far (it logs to stdout).
    public var log: String {
        lock.lock()
        defer { lock.unlock() }
        return child?.stdout.text ?? ""
    }

    private init(executable: URL, port: Int, directory: TempDirectory, appendOnly: Bool, extraArgs: [String]) {
        self.executable = executable
        self.port = port
        self.directory = directory
        self.unixSocketPath = directory.appending("redis.sock").path
        self.arguments = [
            "--port", String(port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", appendOnly ? "yes" : "no",
            "--dir", directory.path,
            "--unixsocket", unixSocketPath,
            "--unixsocketperm", "700",
            "--daemonize", "no",
            "--logfile", "",
        ] + extraArgs
    }

    /// Starts a server and waits (at most 5 s) until it answers `PING`.
    ///
    /// The command line is `redis-server --port P --bind 127.0.0.1 --save '' --appendonly yes|no
    /// --dir TMP --unixsocket TMP/redis.sock --unixsocketperm 700 --daemonize no --logfile ''`
    /// followed by `extraArgs`. A port taken between choosing and binding is retried with another.
    /// - Parameters:
    ///   - appendOnly: enable the AOF so data survives ``restart()`` after ``kill()`` (add
    ///     `["--appendfsync", "always"]` to `extraArgs` to lose nothing on SIGKILL).
    ///   - extraArgs: more `redis-server` options, e.g. `["--requirepass", "secret"]`.
    /// - Throws: ``TestSupportError`` when `redis-server` is missing or does not come up.
    public static func start(appendOnly: Bool = false, extraArgs: [String] = []) throws -> RedisServer {
        let executable = try TestEnvironment.requireTool("redis-server")
        var lastError: (any Error)?
        for _ in 0..<5 {
            let server = RedisServer(
                executable: executable,
                port: try PortAllocator.freeTCPPort(),
                directory: try TempDirectory(prefix: "pixeld-redis"),
                appendOnly: appendOnly,
                extraArgs: extraArgs
            )
            do {
                try server.launch()
                return server
            } catch let error as TestSupportError where error.message.contains("Address already in use") {
                lastError = error
                continue
            }
        }
        throw lastError ?? TestSupportError("redis-server did not start")
    }

    private func launch() throws {
        let child = try ChildProcess(executable: executable, arguments: arguments)
        lock.lock()
        self.child = child
        lock.unlock()
        let ready = Poll.until(timeout: 5, interval: 0.02) {
            guard child.isRunning else { return true }
            return (try? RESPConnection(port: port, timeout: 1).command(["PING"])) == .simpleString("PONG")
        }
        if ready && child.isRunning { return }
        child.stop(timeout: 2)
        throw TestSupportError(
            "redis-server on 127.0.0.1:\(port) did not answer PING within 5 s\(child.tail)"
        )
    }

    /// Sends one command over a fresh connection and returns the reply (error replies included).
    /// - Parameters:
    ///   - arguments: the command and its arguments.
    ///   - timeout: seconds the reply may take (raise it for blocking commands).
    /// - Throws: ``TestSupportError`` on connection or protocol failure.
    public func command(_ arguments: [String], timeout: Double = 5) throws -> RESP {
        try RESPConnection(port: port, timeout: timeout).command(arguments)
    }

    /// How many times Redis ran `command` (lowercase, e.g. `"evalsha"`), from `INFO commandstats`;
    /// 0 before its first call. Commands a script runs count too.
    public func calls(of command: String) throws -> Int {
        let info = try self.command(["INFO", "commandstats"]).string ?? ""
        let prefix = "cmdstat_\(command):calls="
        guard let line = info.split(whereSeparator: \.isNewline).first(where: { $0.hasPrefix(prefix) }) else { return 0 }
        return Int(line.dropFirst(prefix.count).prefix { $0.isNumber }) ?? 0
    }

    /// Opens a connection for several commands (e.g. `MULTI`, `CLIENT PAUSE`, blocking pops).
    public func connect(timeout: Double = 5) throws -> RESPConnection {
        try RESPConnection(port: port, timeout: timeout)
    }

    /// `LRANGE key 0 -1`, each element's bytes exactly as stored (index 0 = most recent `LPUSH`).
    /// - Throws: ``TestSupportError`` on an error reply or a non-array reply.
    public func lrangeRaw(_ key: String) throws -> [[UInt8]] {
        let reply = try command(["LRANGE", key, "0", "-1"])
        guard case .array(let elements) = reply else {
            throw TestSupportError("LRANGE \(key) replied \(reply)")
        }
        return try elements.map { element in
            guard case .bulkString(let bytes) = element else {
                throw TestSupportError("LRANGE \(key) element is \(element)")
            }
            return bytes
        }
    }

    /// `LRANGE key 0 -1` decoded as UTF-8 strings.
    public func lrange(_ key: String) throws -> [String] {
        try lrangeRaw(key).map { String(decoding: $0, as: UTF8.self) }
    }

    /// `LLEN key`.
    /// - Throws: ``TestSupportError`` on a non-integer reply.
    public func llen(_ key: String) throws -> Int {
        let reply = try command(["LLEN", key])
        guard let value = reply.integer else { throw TestSupportError("LLEN \(key) replied \(reply)") }
        return Int(value)
    }

    /// `KEYS *`, sorted.
    public func keys(_ pattern: String = "*") throws -> [String] {
        let reply = try command(["KEYS", pattern])
        guard let elements = reply.array else { throw TestSupportError("KEYS replied \(reply)") }
        return elements.compactMap(\.string).sorted()
    }

    /// Waits up to `timeout` seconds until `LLEN key` is at least `count`.
    /// - Returns: the last length seen.
    @discardableResult
    public func waitForLength(_ key: String, atLeast count: Int, timeout: TimeInterval) throws -> Int {
        var length = 0
        _ = try Poll.until(timeout: timeout, interval: 0.02) {
            length = try llen(key)
            return length >= count
        }
        return length
    }

    /// Runs `redis-cli -h 127.0.0.1 -p PORT --raw ARGS…` and returns its stdout without the final
    /// newline. `--raw` prints values as they are (no quoting, no `1)` numbering, errors as plain
    /// text on stdout): fine for text, use ``lrangeRaw(_:)`` for byte-exact checks.
    /// - Throws: ``TestSupportError`` when `redis-cli` is missing, fails or times out.
    @discardableResult
    public func cli(_ arguments: String...) throws -> String {
        var text = try ChildProcess.run(
            "redis-cli",
            ["-h", "127.0.0.1", "-p", String(port), "--raw"] + arguments,
            timeout: 10
        ).stdout
        if text.hasSuffix("\n") { text.removeLast() }
        return text
    }

    /// ``cli(_:)`` split into lines (one per list element or reply line).
    public func cliLines(_ arguments: [String]) throws -> [String] {
        let text = try ChildProcess.run(
            "redis-cli",
            ["-h", "127.0.0.1", "-p", String(port), "--raw"] + arguments,
            timeout: 10
        ).stdout
        if text.isEmpty { return [] }
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if lines.last == "" { lines.removeLast() }
        return lines
    }

    /// SIGKILL, no chance to write anything; waits until the process is gone.
    public func kill() {
        lock.lock()
        let child = self.child
        lock.unlock()
        child?.kill()
        _ = child?.exitStatus(waitingUpTo: 5)
    }

    /// SIGTERM (redis fsyncs the AOF and exits), SIGKILL after 5 s.
    public func stop() {
        lock.lock()
        let child = self.child
        lock.unlock()
        child?.stop(timeout: 5)
    }

    /// Stops the server if it runs, then starts it again on the same port with the same directory,
    /// so an AOF written before is loaded again. Waits until it answers `PING`.
    /// - Throws: ``TestSupportError`` when it does not come back within 5 s.
    public func restart() throws {
        stop()
        var lastError: (any Error)?
        // The port may linger briefly; retry a few times.
        for _ in 0..<5 {
            do {
                try launch()
                return
            } catch {
                lastError = error
                Thread.sleep(forTimeInterval: 0.2)
            }
        }
        throw lastError ?? TestSupportError("redis-server did not restart")
    }

    deinit {
        stop()
    }
}
