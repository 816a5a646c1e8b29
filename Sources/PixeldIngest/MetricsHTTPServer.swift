package import Logging
import PixeldConcurrency
import Synchronization
import SyslogIngest

#if canImport(Glibc)
import Glibc
#endif

/// A deliberately small HTTP/1.0 responder for `/metrics` and `/healthz` on its own thread: one
/// request per connection, GET only, bodies built by a closure; up to ``maximumConnections``
/// connections served at once, each closed within ``connectionDeadlineNanoseconds``. The ingest path
/// stays free of an HTTP framework (and its memory); the dashboard uses Hummingbird.
///
/// Also `pixeld consume --metrics`.
///
/// `@unchecked Sendable`: the sockets are used by the server thread only; the stop flag is atomic.
package final class MetricsHTTPServer: @unchecked Sendable {
    /// A response: status line text, content type, body.
    package struct Response: Sendable {
        var status: String
        var contentType: String
        var body: [UInt8]

        package init(status: String, contentType: String, body: [UInt8]) {
            self.status = status
            self.contentType = contentType
            self.body = body
        }
    }

    private let fd: Int32
    private let handler: @Sendable (_ path: String) -> Response
    private let logger: Logger
    private let stopRequested = Atomic<Bool>(false)
    private var thread: DedicatedThread?
    /// The bound port (useful with port 0).
    package let port: Int

    /// Binds `host:port` (numeric IPv4 or IPv6).
    package init(host: String, port: Int, logger: Logger, handler: @escaping @Sendable (_ path: String) -> Response) throws {
        self.handler = handler
        self.logger = logger
        (fd, self.port) = try StreamSocket.listen(host: host, port: port, backlog: 64)
    }

    /// Starts answering on a dedicated thread.
    package func start() {
        thread = DedicatedThread(name: "pixeld-metrics") { [self] in run() }
    }

    /// Stops answering and closes the socket: returns once the answers being sent have gone out
    /// (within their deadline); connections still waiting for a request are closed.
    package func stop() async {
        stopRequested.store(true, ordering: .relaxed)
        await thread?.finished()
    }

    /// Most connections open at once. One more closes the oldest of those still waiting for their
    /// request (idle clients), or the oldest of all when every one is being answered.
    static let maximumConnections = 32

    /// How long one connection may take, its request read and its response sent, counted from its
    /// accept: a client that sends (or reads) a byte now and then, or nothing at all, is closed then,
    /// and cannot hold a connection slot, or the shutdown, for longer.
    static let connectionDeadlineNanoseconds: Int64 = 2_000_000_000

    /// Requests larger than this are answered with what has arrived of them.
    private static let requestLimitBytes = 8192

    /// One client connection: its request as it arrives, then its response as it goes out.
    private struct Connection {
        let fd: Int32
        /// When it is closed, answered or not (monotonic ns).
        let deadline: Int64
        var request: [UInt8] = []
        /// The response, once the request is in; ``sent`` bytes of it are out.
        var response: [UInt8]?
        var sent = 0
    }

    /// The server thread: one `poll` over the listening socket and every open connection, each
    /// connection advanced as far as it goes without waiting, so that idle or slow clients cannot
    /// delay `/healthz` for the others (served one at a time, five idle connections held it up 10 s).
    private func run() {
        var connections: [Connection] = []
        var listening = true
        defer {
            for connection in connections { StreamSocket.close(connection.fd) }
            if listening { StreamSocket.close(fd) }
        }
        var chunk = [UInt8](repeating: 0, count: 2048)
        var pollSet: [pollfd] = []
        while true {
            if listening && stopRequested.load(ordering: .relaxed) {
                // No new connections; those still waiting for a request are closed, answers being
                // sent finish (within their deadline).
                listening = false
                StreamSocket.close(fd)
                close(&connections) { $0.response == nil }
            }
            let now = MonotonicClock.nanoseconds()
            close(&connections) { $0.deadline <= now }
            if !listening && connections.isEmpty { return }
            pollSet.removeAll(keepingCapacity: true)
            if listening { pollSet.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0)) }
            for connection in connections {
                pollSet.append(pollfd(fd: connection.fd, events: Int16(connection.response == nil ? POLLIN : POLLOUT), revents: 0))
            }
            // At most 200 ms, to check the stop flag; less when a deadline comes first.
            let nearest = connections.lazy.map(\.deadline).min().map { ($0 - now + 999_999) / 1_000_000 } ?? 200
            guard StreamSocket.poll(&pollSet, timeoutMilliseconds: Int32(max(1, min(200, nearest)))) > 0 else { continue }
            let first = listening ? 1 : 0
            // From the last: removing one leaves the indices of those before it, and their pollfds, as they were.
            for index in connections.indices.reversed() where pollSet[first + index].revents != 0 {
                if !advance(&connections[index], chunk: &chunk) {
                    StreamSocket.close(connections[index].fd)
                    connections.remove(at: index)
                }
            }
            if listening && pollSet[0].revents != 0 { accept(into: &connections) }
        }
    }

    /// Closes and removes the connections that `condition` picks.
    private func close(_ connections: inout [Connection], where condition: (Connection) -> Bool) {
        connections.removeAll { connection in
            guard condition(connection) else { return false }
            StreamSocket.close(connection.fd)
            return true
        }
    }

    /// Accepts the pending connections; beyond ``maximumConnections``, each new one closes an old one.
    private func accept(into connections: inout [Connection]) {
        while true {
            switch StreamSocket.accept(fd) {
            case .client(let client):
                if connections.count >= Self.maximumConnections {
                    // In accept order: the first still waiting for its request is the oldest idle one.
                    let oldest = connections.firstIndex { $0.response == nil } ?? 0
                    StreamSocket.close(connections[oldest].fd)
                    connections.remove(at: oldest)
                }
                let deadline = MonotonicClock.nanoseconds() + Self.connectionDeadlineNanoseconds
                connections.append(Connection(fd: client, deadline: deadline))
            case .none:
                return
            case .failed:
                usleep(100_000)  // out of descriptors: the pending connection would make poll spin
                return
            }
        }
    }

    /// Reads what has arrived of the connection's request, or sends what the socket takes of its
    /// response, without waiting. Returns `false` once the connection is done with: answered, or failed.
    private func advance(_ connection: inout Connection, chunk: inout [UInt8]) -> Bool {
        if connection.response == nil {
            let count: Int?
            do {
                count = try chunk.withUnsafeMutableBytes { try StreamSocket.read(connection.fd, into: $0) }
            } catch {
                return false
            }
            guard let count else { return true }
            connection.request += chunk[0..<count]
            let complete = count == 0 || connection.request.count >= Self.requestLimitBytes || Self.endsWithABlankLine(connection.request)
            guard complete else { return true }
            connection.response = respond(to: connection.request)
        }
        guard let response = connection.response else { return true }
        while connection.sent < response.count {
            let count: Int?
            do {
                count = try response[connection.sent...].withUnsafeBytes { try StreamSocket.write(connection.fd, from: $0) }
            } catch {
                return false
            }
            guard let count, count > 0 else { return true }  // the send buffer is full: wait for POLLOUT
            connection.sent += count
        }
        return false
    }

    /// Whether `request` ends its header with a blank line: `\r\n\r\n`, or bare `\n\n` (which
    /// RFC 9112 lets a server accept, and `printf 'GET /healthz HTTP/1.0\n\n' | nc` sends).
    static func endsWithABlankLine(_ request: [UInt8]) -> Bool {
        request.suffix(2).elementsEqual([10, 10]) || request.suffix(3).elementsEqual([10, 13, 10])
    }

    /// The whole HTTP/1.0 response to `request` (its first line is all that is read).
    private func respond(to request: [UInt8]) -> [UInt8] {
        let line = request.prefix { $0 != 13 && $0 != 10 }.split(separator: UInt8(ascii: " "))
        let response: Response
        if line.count >= 2, line[0].elementsEqual("GET".utf8) {
            let target = String(decoding: line[1], as: UTF8.self)
            response = handler(String(target.prefix { $0 != "?" }))
        } else {
            response = Response(status: "405 Method Not Allowed", contentType: "text/plain", body: Array("GET only\n".utf8))
        }
        var bytes = Array("HTTP/1.0 \(response.status)\r\nContent-Type: \(response.contentType)\r\nContent-Length: \(response.body.count)\r\nConnection: close\r\n\r\n".utf8)
        bytes += response.body
        return bytes
    }
}
