import CPixeldSystem
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A bound datagram socket (UDP or unix), the one place in SyslogIngest that makes datagram socket
/// calls (``StreamSocket`` makes the TCP ones, ``IPSocketAddress`` binds both).
///
/// Every call retries `EINTR` and throws ``SyslogIngestError`` naming the call and errno. The socket
/// has a short receive timeout so that its receive loop notices a stop request promptly.
///
/// Not `Sendable` in spirit: one listener thread receives on it. `@unchecked Sendable` so that the
/// owner can hand it to that thread; `close()` happens only after the thread has finished.
public final class DatagramSocket: @unchecked Sendable {
    /// The file descriptor.
    let fd: Int32
    /// What it is bound to; for UDP with port 0, the port the kernel picked.
    public private(set) var address: ListenAddress
    /// The kernel's receive buffer size after configuration (the kernel reports twice the request).
    public private(set) var receiveBufferBytes: Int = 0
    /// What the kernel granted of a requested `SO_RCVBUF`, to compare with the request: half of
    /// ``receiveBufferBytes``.
    public var grantedReceiveBufferBytes: Int { receiveBufferBytes / 2 }
    /// The most `SO_RCVBUF` the kernel grants anyone (`INT_MAX / 2`), privileged or not.
    public static let largestReceiveBufferBytes = Int(Int32.max) / 2

    /// Whether the kernel granted less than `requested` (`net.core.rmem_max` without
    /// `CAP_NET_ADMIN`), a request beyond ``largestReceiveBufferBytes`` counting as that much.
    public func receiveBufferIsShort(of requested: Int) -> Bool {
        grantedReceiveBufferBytes < min(requested, Self.largestReceiveBufferBytes)
    }
    /// Whether ``close()`` ran; held while the descriptor is closed, and while another thread reads
    /// the drop counter (``kernelDropCount()``), so that it never reads a reused descriptor number.
    private let closed = Mutex(false)
    /// The inode of the socket file this socket bound (unix): the only file ``close()`` removes.
    private var boundInode: ino_t?

    /// Creates and binds a socket.
    /// - Parameters:
    ///   - address: UDP or unix path. A stale unix socket file is replaced; any other file there is an error.
    ///   - receiveBufferBytes: the `SO_RCVBUF` to ask for; 0 keeps the kernel default.
    ///   - receiveTimeoutMilliseconds: how long one receive may block.
    /// - Throws: ``SyslogIngestError`` naming the failing call.
    public init(binding address: ListenAddress, receiveBufferBytes: Int, receiveTimeoutMilliseconds: Int = 100)
        throws(SyslogIngestError)
    {
        self.address = address
        switch address {
        case .udp(let host, let port):
            let ip = try IPSocketAddress(host: host, port: port)
            let bound = try ip.bindSocket(type: Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), operation: "bind \(address)")
            fd = bound.fd
            if port == 0 { self.address = .udp(host: host, port: bound.port) }
        case .unix(let path, let mode):
            var sun = sockaddr_un()
            sun.sun_family = sa_family_t(AF_UNIX)
            let pathBytes = Array(path.utf8)
            guard pathBytes.count < MemoryLayout.size(ofValue: sun.sun_path) else {
                throw SyslogIngestError(code: .configuration, operation: "bind", message: "unix socket path too long: \(path)")
            }
            withUnsafeMutableBytes(of: &sun.sun_path) { $0.copyBytes(from: pathBytes + [0]) }
            // Probe, unlink and bind as one step: two instances starting together could otherwise
            // both find a stale file refused, and the second unlink the first one's new socket file.
            let bound = try Self.holdingDirectoryLock(of: path) { () throws(SyslogIngestError) in
                try Self.removeStaleSocket(at: path, address: sun)
                return try Self.bindUnixSocket(sun, path: path)
            }
            fd = bound.fd
            boundInode = bound.inode
            do {
                _ = try Self.check("chmod \(path)") { chmod(path, mode_t(mode)) }
            } catch {
                close()  // (deinit runs too, every property being set: close() is idempotent)
                throw error
            }
        }
        do {
            if receiveBufferBytes > 0 {
                let effective = try Self.check("setsockopt SO_RCVBUF") { cpixeld_set_receive_buffer(fd, Int32(receiveBufferBytes)) }
                self.receiveBufferBytes = Int(effective)
            } else {
                var size: Int32 = 0
                var length = socklen_t(MemoryLayout<Int32>.size)
                getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, &length)
                self.receiveBufferBytes = Int(size)
            }
            _ = cpixeld_enable_drop_counter(fd)
            var timeout = timeval(tv_sec: receiveTimeoutMilliseconds / 1000, tv_usec: (receiveTimeoutMilliseconds % 1000) * 1000)
            _ = try Self.check("setsockopt SO_RCVTIMEO") {
                setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            }
        } catch {
            close()
            throw error
        }
    }

    deinit { close() }

    /// Gives a unix socket file to `owner`, so that a web server running as another user can write
    /// to a socket with a mode such as 0660. Nothing for a UDP socket.
    /// - Throws: ``SyslogIngestError`` when `chown` fails.
    public func changeOwner(to owner: UnixOwner) throws(SyslogIngestError) {
        guard case .unix(let path, _) = address, owner.uid != nil || owner.gid != nil else { return }
        // -1 (the largest id): leave unchanged.
        _ = try Self.check("chown \(path)") { chown(path, owner.uid ?? uid_t.max, owner.gid ?? gid_t.max) }
    }

    /// Receives up to `slots.count` datagrams in one call.
    ///
    /// The blocking form passes `MSG_WAITFORONE`: it waits (up to the socket's receive timeout) for the
    /// first datagram only, then takes whatever else is already queued and returns. Without it Linux's
    /// `recvmmsg` would keep waiting until every slot is filled, holding a datagram in the kernel until
    /// 63 more arrive (~6 ms at 10k msg/s, seconds at trickle rates). At high rates the call still
    /// returns full batches, because the queue already holds them.
    /// - Parameters:
    ///   - nonBlocking: return at once when nothing is queued (drain at shutdown; a busy socket).
    ///   - kernelDrops: updated with the kernel's cumulative drop counter when the kernel reports it.
    /// - Returns: how many slots were filled; 0 on timeout or when nothing was queued.
    func receive(into slots: UnsafeMutableBufferPointer<cpixeld_datagram>, nonBlocking: Bool, kernelDrops: inout UInt32)
        throws(SyslogIngestError) -> Int
    {
        let flags = nonBlocking ? Int32(MSG_DONTWAIT) : Int32(CPIXELD_MSG_WAITFORONE)
        let received = cpixeld_recvmmsg(fd, slots.baseAddress, UInt32(slots.count), flags, &kernelDrops)
        if received >= 0 { return Int(received) }
        let error = errno
        if error == EAGAIN || error == EWOULDBLOCK || error == ETIMEDOUT { return 0 }
        throw SyslogIngestError(code: .io, operation: "recvmmsg", errno: error)
    }

    /// The kernel's count of datagrams dropped on this socket so far, read now (`SO_MEMINFO`): the
    /// counter that ``receive(into:nonBlocking:kernelDrops:)`` sees through `SO_RXQ_OVFL` only as it
    /// was when the next datagram was queued. One system call; `nil` when the kernel does not say.
    /// Thread-safe: `nil` once the socket is closed.
    func kernelDropCount() -> UInt32? {
        closed.withLock { closed in
            guard !closed else { return nil }
            var drops: UInt32 = 0
            return cpixeld_socket_drops(fd, &drops) == 0 ? drops : nil
        }
    }

    /// Closes the socket and, for a unix socket, removes its file: first, and only if it is still
    /// this socket's. Until the file is gone a new instance's check finds the socket live and waits
    /// for nothing; removing it after the close could remove the file of an instance that, finding
    /// this one's refused meanwhile, had replaced it.
    public func close() {
        closed.withLock { closed in
            guard !closed else { return }
            closed = true
            if case .unix(let path, _) = address, let boundInode {
                var info = stat()
                if lstat(path, &info) == 0, info.st_ino == boundInode { unlink(path) }
            }
            Glibc.close(fd)
        }
    }

    /// Removes a leftover socket file from an earlier run; refuses to remove anything else, and a socket
    /// that a live process (another pixeld ingest) is bound to: only a socket whose `connect` is refused
    /// is stale.
    private static func removeStaleSocket(at path: String, address: sockaddr_un) throws(SyslogIngestError) {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        guard (info.st_mode & S_IFMT) == S_IFSOCK else {
            throw SyslogIngestError(code: .configuration, operation: "bind", message: "\(path) exists and is not a socket")
        }
        let probe = try unixSocket()
        defer { Glibc.close(probe) }
        while withSocketAddress(address, { connect(probe, $0, $1) }) != 0 {
            let code = errno
            if code == EINTR { continue }
            guard code == ECONNREFUSED else { throw SyslogIngestError(code: .io, operation: "connect \(path)", errno: code) }
            unlink(path)
            return
        }
        throw SyslogIngestError(
            code: .configuration, operation: "bind \(path)", message: "in use by another process (another pixeld ingest?)"
        )
    }

    /// A new unix datagram socket bound to `address` (at `path`), and the inode of the socket file it made.
    private static func bindUnixSocket(_ address: sockaddr_un, path: String) throws(SyslogIngestError) -> (fd: Int32, inode: ino_t?) {
        let fd = try unixSocket()
        do {
            _ = try check("bind \(path)") { withSocketAddress(address) { bind(fd, $0, $1) } }
        } catch {
            Glibc.close(fd)
            throw error
        }
        var info = stat()
        return (fd, lstat(path, &info) == 0 ? info.st_ino : nil)
    }

    /// Runs `body` holding an exclusive `flock` on the directory that holds `path` (no file is added
    /// to it), so that instances starting together on one socket path take turns at checking and
    /// replacing its file. Waits up to 5 s for another holder (which holds it for a few system calls).
    ///
    /// The lock is a best effort: where the directory cannot be opened (no read permission) or locked
    /// (a file system without `flock`, or another program holding a lock on a shared directory such as
    /// `/run` for 5 s), `body` runs without it, as it did before the lock existed — the race it closes
    /// needs two instances started at the same moment, and refusing to start would be worse.
    /// - Throws: What `body` throws.
    private static func holdingDirectoryLock<Value>(
        of path: String, _ body: () throws(SyslogIngestError) -> Value
    ) throws(SyslogIngestError) -> Value {
        let directory = path.lastIndex(of: "/").map { path[..<$0].isEmpty ? "/" : String(path[..<$0]) } ?? "."
        let lock = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard lock >= 0 else { return try body() }
        defer {
            // Unlocked before the close: a child spawned meanwhile may share the descriptor until its exec.
            flock(lock, LOCK_UN)
            Glibc.close(lock)
        }
        var waits = 0
        while flock(lock, LOCK_EX | LOCK_NB) != 0 {
            let code = errno
            if code == EINTR { continue }
            guard code == EWOULDBLOCK, waits < 5_000 else { break }
            waits += 1
            usleep(1_000)
        }
        return try body()
    }

    /// A new unix datagram socket.
    private static func unixSocket() throws(SyslogIngestError) -> Int32 {
        try check("socket") { socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
    }

    /// Calls `body` with `address` as a `sockaddr` pointer and its length (for `bind`, `connect`).
    private static func withSocketAddress(_ address: sockaddr_un, _ body: (UnsafePointer<sockaddr>, socklen_t) -> Int32) -> Int32 {
        withUnsafePointer(to: address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
    }

    /// Runs a system call, retrying `EINTR`, and turns -1 into an error naming the call.
    private static func check(_ operation: String, _ call: () -> Int32) throws(SyslogIngestError) -> Int32 {
        while true {
            let result = call()
            if result >= 0 { return result }
            if errno == EINTR { continue }
            throw SyslogIngestError(code: .io, operation: operation, errno: errno)
        }
    }
}
