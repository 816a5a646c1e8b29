#if canImport(Glibc)
import Glibc
#endif

/// A numeric IPv4 or IPv6 address and port as the socket API wants it, and the one place that builds
/// `sockaddr_in`/`sockaddr_in6` for pixeld's UDP, TCP and metrics sockets.
struct IPSocketAddress: Sendable {
    /// `AF_INET` or `AF_INET6`.
    let family: Int32
    private let storage: sockaddr_storage
    private let length: socklen_t

    /// Parses a numeric host (`127.0.0.1`, `::1`, without brackets) and a port.
    /// - Throws: ``SyslogIngestError`` with code `.configuration` when the host is not a numeric address.
    init(host: String, port: Int) throws(SyslogIngestError) {
        var storage = sockaddr_storage()
        if host.contains(":") {
            family = AF_INET6
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_port = in_port_t(UInt16(port).bigEndian)
            guard inet_pton(AF_INET6, host, &address.sin6_addr) == 1 else {
                throw SyslogIngestError(code: .configuration, operation: "inet_pton", message: "not an IPv6 address: \(host)")
            }
            withUnsafeBytes(of: address) { bytes in withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: bytes) } }
            length = socklen_t(MemoryLayout<sockaddr_in6>.size)
        } else {
            family = AF_INET
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else {
                throw SyslogIngestError(code: .configuration, operation: "inet_pton", message: "not an IPv4 address: \(host)")
            }
            withUnsafeBytes(of: address) { bytes in withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: bytes) } }
            length = socklen_t(MemoryLayout<sockaddr_in>.size)
        }
        self.storage = storage
    }

    /// Creates a socket of `type` in this address's family (IPv6 sockets are IPv6-only), binds it, and
    /// returns it with the port actually bound (useful with port 0). The socket is closed on failure.
    /// - Parameter type: e.g. `SOCK_DGRAM` or `SOCK_STREAM`, plus flags such as `SOCK_CLOEXEC`.
    func bindSocket(type: Int32, operation: String, configure: (Int32) -> Void = { _ in }) throws(SyslogIngestError) -> (fd: Int32, port: Int) {
        let fd = socket(family, type, 0)
        guard fd >= 0 else { throw SyslogIngestError(code: .io, operation: "socket", errno: errno) }
        var one: Int32 = 1
        if family == AF_INET6 {
            setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &one, socklen_t(MemoryLayout<Int32>.size))
        }
        configure(fd)
        var address = storage
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        guard bound == 0 else {
            let error = SyslogIngestError(code: .io, operation: operation, errno: errno)
            close(fd)
            throw error
        }
        var local = sockaddr_storage()
        var localLength = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &local) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &localLength) } }
        let port = withUnsafeBytes(of: local) { raw in
            family == AF_INET6
                ? Int(UInt16(bigEndian: raw.load(as: sockaddr_in6.self).sin6_port))
                : Int(UInt16(bigEndian: raw.load(as: sockaddr_in.self).sin_port))
        }
        return (fd, port)
    }
}
