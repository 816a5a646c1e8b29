package import Logging
import PixeldConcurrency
import Synchronization
import SyslogIngest

#if canImport(Glibc)
import Glibc
#endif

/// A deliberately small HTTP/1.0 responder for `/metrics` and `/healthz` on its own thread: one
/// request per connection, GET only, bodies built by a closure. The ingest path stays free of an HTTP
/// framework (and its memory); the dashboard uses Hummingbird.
///
/// Also `pixeld consume --metrics`.
///
/// `@unchecked Sendable`: the listening socket is used by the server thread only; the stop flag is atomic.
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

    /// Stops answering and closes the socket.
    package func stop() async {
        stopRequested.store(true, ordering: .relaxed)
        await thread?.finished()
    }

    private func run() {
        defer { close(fd) }
        var pollSet = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0)]
        while !stopRequested.load(ordering: .relaxed) {
            pollSet[0].revents = 0
            guard StreamSocket.poll(&pollSet, timeoutMilliseconds: 200) > 0 else { continue }  // checks the stop flag
            accepting: while true {
                switch StreamSocket.accept(fd) {
                case .client(let client):
                    // Accepted sockets are non-blocking; the response path wants plain blocking I/O.
                    _ = fcntl(client, F_SETFL, fcntl(client, F_GETFL) & ~O_NONBLOCK)
                    serve(client)
                    close(client)
                case .none:
                    break accepting
                case .failed:
                    usleep(100_000)  // out of descriptors: the pending connection would make poll spin
                    break accepting
                }
            }
        }
    }

    /// How long one connection may take, its request read and its response sent: the server answers
    /// one connection at a time, so a client that sends (or reads) a byte now and then must not hold
    /// `/metrics`, `/healthz` and the shutdown up for longer.
    static let connectionDeadlineNanoseconds: Int64 = 2_000_000_000

    private func serve(_ client: Int32) {
        let deadline = MonotonicClock.nanoseconds() + Self.connectionDeadlineNanoseconds
        /// Sets the socket's timeouts to what is left of the deadline; `false` once it has passed.
        func timeLeft() -> Bool {
            let left = deadline - MonotonicClock.nanoseconds()
            guard left > 0 else { return false }
            let micro = max(1, Int(left / 1000))  // a zero timeval would mean no timeout at all
            var timeout = timeval(tv_sec: micro / 1_000_000, tv_usec: micro % 1_000_000)
            setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            return true
        }
        var request: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 2048)
        while request.count < 8192, timeLeft() {
            let count = chunk.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
            if count <= 0 { break }
            request += chunk[0..<count]
            if request.count >= 4, request.suffix(4).elementsEqual([13, 10, 13, 10]) { break }
        }
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
        var sent = 0
        while sent < bytes.count, timeLeft() {
            let count = bytes[sent...].withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if count <= 0 { break }
            sent += count
        }
    }
}
