import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Free loopback ports, found by binding port 0 and reading back what the kernel chose.
///
/// A port is free when returned, not reserved: the caller binds it soon after, and servers started
/// by this target retry on `EADDRINUSE` with a new port. Ports handed out in this process are not
/// handed out again (up to 10 tries), so two suites running in parallel do not collide.
public enum PortAllocator {
    private static let issued = LockedBox<Set<Int>>([])

    /// A TCP port free on 127.0.0.1 (or `::1` when `ipv6`).
    /// - Throws: ``TestSupportError`` when no socket can be bound.
    public static func freeTCPPort(ipv6: Bool = false) throws -> Int {
        try freePort(type: SocketConstants.stream, ipv6: ipv6)
    }

    /// A UDP port free on 127.0.0.1 (or `::1` when `ipv6`).
    /// - Throws: ``TestSupportError`` when no socket can be bound.
    public static func freeUDPPort(ipv6: Bool = false) throws -> Int {
        try freePort(type: SocketConstants.datagram, ipv6: ipv6)
    }

    private static func freePort(type: Int32, ipv6: Bool) throws -> Int {
        var last = 0
        for _ in 0..<10 {
            last = try bindEphemeral(type: type, ipv6: ipv6)
            let isNew = issued.withLock { ports in ports.insert(last).inserted }
            if isNew { return last }
        }
        return last
    }

    private static func bindEphemeral(type: Int32, ipv6: Bool) throws -> Int {
        let fd = socket(ipv6 ? AF_INET6 : AF_INET, type, 0)
        guard fd >= 0 else { throw TestSupportError("socket() failed: errno \(errno)") }
        defer { close(fd) }
        if ipv6 {
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_port = 0
            address.sin6_addr = in6addr_loopback
            var length = socklen_t(MemoryLayout<sockaddr_in6>.size)
            let bound = withUnsafeMutablePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
                    bind(fd, raw, length) == 0 && getsockname(fd, raw, &length) == 0
                }
            }
            guard bound else { throw TestSupportError("bind([::1]:0) failed: errno \(errno)") }
            return Int(UInt16(bigEndian: address.sin6_port))
        } else {
            guard let port = bindToLoopback(fd) else { throw TestSupportError("bind(127.0.0.1:0) failed: errno \(errno)") }
            return port
        }
    }
}

/// Whether something accepts TCP connections on 127.0.0.1:`port` right now.
func tcpPortAnswers(_ port: Int) -> Bool {
    let fd = socket(AF_INET, SocketConstants.stream, 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    return connectToLoopback(fd, port: port)
}

/// Binds `fd`, an IPv4 socket, to a free port on 127.0.0.1; the port the kernel chose, or `nil`
/// (`errno` says why).
public func bindToLoopback(_ fd: Int32) -> Int? {
    var address = loopbackAddress(port: 0)
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
            bind(fd, raw, length) == 0 && getsockname(fd, raw, &length) == 0
        }
    }
    return bound ? Int(UInt16(bigEndian: address.sin_port)) : nil
}

/// Connects `fd`, an IPv4 socket, to 127.0.0.1:`port`; whether it did (`errno` says why not).
public func connectToLoopback(_ fd: Int32, port: Int) -> Bool {
    var address = loopbackAddress(port: port)
    return withUnsafePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
            connect(fd, raw, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
        }
    }
}

private func loopbackAddress(port: Int) -> sockaddr_in {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = UInt16(port).bigEndian
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    return address
}

/// Socket types, close-on-exec so child processes never inherit the test's sockets.
enum SocketConstants {
    #if canImport(Glibc)
    static let stream = Int32(SOCK_STREAM.rawValue | SOCK_CLOEXEC.rawValue)
    static let datagram = Int32(SOCK_DGRAM.rawValue | SOCK_CLOEXEC.rawValue)
    #else
    static let stream = SOCK_STREAM
    static let datagram = SOCK_DGRAM
    #endif
}

/// A value behind an `NSLock`.
final class LockedBox<Value>: @unchecked Sendable {
    // @unchecked Sendable: `value` is only touched while `lock` is held.
    private let lock = NSLock()
    private var value: Value

    init(_ value: Value) {
        self.value = value
    }

    func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}

/// `close(2)`, reachable from types that have a `close()` method of their own.
public func systemClose(_ fd: Int32) {
    _ = close(fd)
}

/// `kill(2)`, reachable from types that have a `kill()` method of their own.
func systemKill(_ pid: Int32, _ signal: Int32) {
    _ = kill(pid, signal)
}
