#if canImport(Glibc)
import Glibc
#endif

/// The TCP socket calls of the syslog TCP listener: listen, accept, non-blocking reads, poll.
/// Every call retries `EINTR` and throws ``SyslogIngestError`` naming the call.
enum StreamSocket {
    /// Binds and listens on a numeric IPv4/IPv6 `host` and `port` (0 picks one); returns the fd and port.
    static func listen(host: String, port: Int, backlog: Int32 = 512) throws(SyslogIngestError) -> (fd: Int32, port: Int) {
        let ipv6 = host.contains(":")
        let fd = socket(ipv6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw SyslogIngestError(code: .io, operation: "socket", errno: errno) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var storage = sockaddr_storage()
        var length: socklen_t
        if ipv6 {
            setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &one, socklen_t(MemoryLayout<Int32>.size))
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_port = in_port_t(UInt16(port).bigEndian)
            guard inet_pton(AF_INET6, host, &address.sin6_addr) == 1 else {
                close(fd)
                throw SyslogIngestError(code: .configuration, operation: "inet_pton", message: "not an IPv6 address: \(host)")
            }
            withUnsafeBytes(of: address) { bytes in withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: bytes) } }
            length = socklen_t(MemoryLayout<sockaddr_in6>.size)
        } else {
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else {
                close(fd)
                throw SyslogIngestError(code: .configuration, operation: "inet_pton", message: "not an IPv4 address: \(host)")
            }
            withUnsafeBytes(of: address) { bytes in withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: bytes) } }
            length = socklen_t(MemoryLayout<sockaddr_in>.size)
        }
        let bound = withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        guard bound == 0, Glibc.listen(fd, backlog) == 0 else {
            let error = SyslogIngestError(code: .io, operation: "bind tcp://\(host):\(port)", errno: errno)
            close(fd)
            throw error
        }
        length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        let actual = withUnsafeBytes(of: storage) { raw in
            ipv6 ? Int(UInt16(bigEndian: raw.load(as: sockaddr_in6.self).sin6_port))
                : Int(UInt16(bigEndian: raw.load(as: sockaddr_in.self).sin_port))
        }
        return (fd, actual)
    }

    /// Accepts one pending connection, non-blocking; `nil` when none is pending.
    static func accept(_ fd: Int32) -> Int32? {
        while true {
            let client = Glibc.accept(fd, nil, nil)
            if client >= 0 {
                _ = fcntl(client, F_SETFL, fcntl(client, F_GETFL) | O_NONBLOCK)
                _ = fcntl(client, F_SETFD, FD_CLOEXEC)
                return client
            }
            if errno == EINTR { continue }
            return nil
        }
    }

    /// Reads what is available. Returns the byte count, 0 at end of stream, `nil` when nothing is
    /// available now; throws on a connection error.
    static func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) throws(SyslogIngestError) -> Int? {
        while true {
            let count = recv(fd, buffer.baseAddress, buffer.count, 0)
            if count >= 0 { return count }
            if errno == EINTR { continue }
            if errno == EAGAIN || errno == EWOULDBLOCK { return nil }
            throw SyslogIngestError(code: .io, operation: "recv", errno: errno)
        }
    }

    /// Waits up to `timeoutMilliseconds` for readability on `fds`; fills `revents`.
    static func poll(_ fds: inout [pollfd], timeoutMilliseconds: Int32) -> Int {
        while true {
            let ready = Glibc.poll(&fds, nfds_t(fds.count), timeoutMilliseconds)
            if ready >= 0 { return Int(ready) }
            if errno == EINTR { continue }
            return 0
        }
    }

    /// Closes a descriptor.
    static func close(_ fd: Int32) { _ = Glibc.close(fd) }
}
