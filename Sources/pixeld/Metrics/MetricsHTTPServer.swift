import Logging
import PixeldConcurrency
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A deliberately small HTTP/1.0 responder for `/metrics` and `/healthz` on its own thread: one
/// request per connection, GET only, bodies built by a closure. The ingest path stays free of an HTTP
/// framework (and its memory); the dashboard uses Hummingbird.
///
/// `@unchecked Sendable`: the listening socket is used by the server thread only; the stop flag is atomic.
final class MetricsHTTPServer: @unchecked Sendable {
    /// A response: status line text, content type, body.
    struct Response: Sendable {
        var status: String
        var contentType: String
        var body: [UInt8]
    }

    private let fd: Int32
    private let handler: @Sendable (_ path: String) -> Response
    private let logger: Logger
    private let stopRequested = Atomic<Bool>(false)
    private var thread: DedicatedThread?
    /// The bound port (useful with port 0).
    let port: Int

    /// Binds `host:port` (numeric IPv4 or IPv6).
    init(host: String, port: Int, logger: Logger, handler: @escaping @Sendable (_ path: String) -> Response) throws {
        self.handler = handler
        self.logger = logger
        let ipv6 = host.contains(":")
        let fd = socket(ipv6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ServerError("socket: \(String(cString: strerror(errno)))") }
        self.fd = fd
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var timeout = timeval(tv_sec: 0, tv_usec: 200_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var storage = sockaddr_storage()
        var length: socklen_t
        if ipv6 {
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_port = in_port_t(UInt16(port).bigEndian)
            guard inet_pton(AF_INET6, host, &address.sin6_addr) == 1 else { throw ServerError("not an IPv6 address: \(host)") }
            withUnsafeBytes(of: address) { bytes in withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: bytes) } }
            length = socklen_t(MemoryLayout<sockaddr_in6>.size)
        } else {
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else { throw ServerError("not an IPv4 address: \(host)") }
            withUnsafeBytes(of: address) { bytes in withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: bytes) } }
            length = socklen_t(MemoryLayout<sockaddr_in>.size)
        }
        let bound = withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        guard bound == 0, listen(fd, 64) == 0 else {
            let message = String(cString: strerror(errno))
            close(fd)
            throw ServerError("bind \(host):\(port): \(message)")
        }
        length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        self.port = withUnsafeBytes(of: storage) { raw in
            ipv6 ? Int(UInt16(bigEndian: raw.load(as: sockaddr_in6.self).sin6_port))
                : Int(UInt16(bigEndian: raw.load(as: sockaddr_in.self).sin_port))
        }
    }

    /// Starts answering on a dedicated thread.
    func start() {
        thread = DedicatedThread(name: "pixeld-metrics") { [self] in run() }
    }

    /// Stops answering and closes the socket.
    func stop() async {
        stopRequested.store(true, ordering: .relaxed)
        await thread?.finished()
    }

    private func run() {
        defer { close(fd) }
        while !stopRequested.load(ordering: .relaxed) {
            let client = accept(fd, nil, nil)
            if client < 0 { continue }  // timeout (checks the stop flag) or EINTR
            serve(client)
            close(client)
        }
    }

    private func serve(_ client: Int32) {
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var request: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 2048)
        while request.count < 8192 {
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
        while sent < bytes.count {
            let count = bytes[sent...].withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if count <= 0 { break }
            sent += count
        }
    }

    struct ServerError: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }
}
