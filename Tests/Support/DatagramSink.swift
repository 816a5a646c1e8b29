public import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A bound datagram socket that collects what senders (nginx, logger) send, standing in for
/// `pixeld ingest` when a test checks the sending side alone.
public final class DatagramSink {
    private let fd: Int32
    /// The UDP port (0 for a unix socket).
    public let port: Int
    /// The unix socket path (`nil` for UDP).
    public let path: String?

    private init(fd: Int32, port: Int, path: String?) {
        self.fd = fd
        self.port = port
        self.path = path
    }

    /// A UDP socket bound to a free port on 127.0.0.1.
    /// - Throws: ``TestSupportError`` when the socket cannot be bound.
    public static func udp() throws -> DatagramSink {
        let fd = socket(AF_INET, SocketConstants.datagram, 0)
        guard fd >= 0 else { throw TestSupportError("socket() failed: errno \(errno)") }
        guard let port = bindToLoopback(fd) else {
            systemClose(fd)
            throw TestSupportError("bind(127.0.0.1:0/udp) failed: errno \(errno)")
        }
        var size: Int32 = 4 << 20
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        return DatagramSink(fd: fd, port: port, path: nil)
    }

    /// A unix datagram socket at `path`, mode 0666 so nginx workers running as another user can
    /// send to it (its directory must be searchable by them too).
    /// - Throws: ``TestSupportError`` when the socket cannot be bound.
    public static func unix(path: String) throws -> DatagramSink {
        let fd = socket(AF_UNIX, SocketConstants.datagram, 0)
        guard fd >= 0 else { throw TestSupportError("socket(AF_UNIX) failed: errno \(errno)") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            systemClose(fd)
            throw TestSupportError("unix socket path too long: \(path)")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        unlink(path)
        let ok = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
                bind(fd, raw, socklen_t(MemoryLayout<sockaddr_un>.size)) == 0
            }
        }
        guard ok, chmod(path, 0o666) == 0 else {
            systemClose(fd)
            throw TestSupportError("bind/chmod(\(path)) failed: errno \(errno)")
        }
        return DatagramSink(fd: fd, port: 0, path: path)
    }

    /// Receives until `count` datagrams arrived or `timeout` seconds passed.
    /// - Returns: the datagrams received, in arrival order (possibly fewer than `count`).
    public func receive(count: Int, timeout: TimeInterval) -> [[UInt8]] {
        var result: [[UInt8]] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        let deadline = Date().addingTimeInterval(timeout)
        while result.count < count {
            let remaining = deadline.timeIntervalSinceNow
            if remaining <= 0 { break }
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, Int32(min(remaining, 1) * 1000) + 1)
            if ready <= 0 { continue }
            let received = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if received >= 0 { result.append(Array(buffer[0..<received])) }
        }
        return result
    }

    deinit {
        systemClose(fd)
        if let path { unlink(path) }
    }
}
