#if canImport(Glibc)
public import Glibc
#endif

/// The TCP socket calls of pixeld's stream servers (the syslog TCP listener, the metrics endpoint):
/// listen, accept, non-blocking reads, poll. Every call retries `EINTR` and throws
/// ``SyslogIngestError`` naming the call.
public enum StreamSocket {
    /// Binds and listens on a numeric IPv4/IPv6 `host` and `port` (0 picks one); returns the fd and port.
    /// The socket is non-blocking: wait for connections with ``poll(_:timeoutMilliseconds:)``.
    public static func listen(host: String, port: Int, backlog: Int32 = 512) throws(SyslogIngestError) -> (fd: Int32, port: Int) {
        let ip = try IPSocketAddress(host: host, port: port)
        let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue)
        let bound = try ip.bindSocket(type: type, operation: "bind tcp://\(host):\(port)") { fd in
            var one: Int32 = 1
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        }
        guard Glibc.listen(bound.fd, backlog) == 0 else {
            let error = SyslogIngestError(code: .io, operation: "listen tcp://\(host):\(port)", errno: errno)
            close(bound.fd)
            throw error
        }
        return bound
    }

    /// What ``accept(_:)`` found.
    public enum Accepted: Equatable {
        /// A connection, non-blocking.
        case client(Int32)
        /// None pending (or it went away before it was accepted).
        case none
        /// `accept` failed with this errno while a connection waits: `EMFILE`/`ENFILE` (no file
        /// descriptor left), `ENOBUFS`/`ENOMEM`. The connection stays pending and keeps the
        /// listening socket readable, so the caller must wait before it polls that socket again,
        /// or it spins.
        case failed(Int32)
    }

    /// Accepts one pending connection, non-blocking.
    public static func accept(_ fd: Int32) -> Accepted {
        while true {
            let client = Glibc.accept(fd, nil, nil)
            if client >= 0 {
                _ = fcntl(client, F_SETFL, fcntl(client, F_GETFL) | O_NONBLOCK)
                _ = fcntl(client, F_SETFD, FD_CLOEXEC)
                return .client(client)
            }
            switch errno {
            case EINTR: continue
            case EMFILE, ENFILE, ENOBUFS, ENOMEM: return .failed(errno)
            default: return .none
            }
        }
    }

    /// Whether the peer of `fd` has closed its side and everything it sent has been read: a
    /// non-blocking `MSG_PEEK` of one byte returns 0. `false` while data is unread, or on an error.
    public static func peerHasClosed(_ fd: Int32) -> Bool {
        var byte: UInt8 = 0
        while true {
            let count = recv(fd, &byte, 1, Int32(MSG_PEEK) | Int32(MSG_DONTWAIT))
            if count >= 0 { return count == 0 }
            if errno == EINTR { continue }
            return false
        }
    }

    /// Reads what is available. Returns the byte count, 0 at end of stream, `nil` when nothing is
    /// available now; throws on a connection error.
    public static func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) throws(SyslogIngestError) -> Int? {
        while true {
            let count = recv(fd, buffer.baseAddress, buffer.count, 0)
            if count >= 0 { return count }
            if errno == EINTR { continue }
            if errno == EAGAIN || errno == EWOULDBLOCK { return nil }
            throw SyslogIngestError(code: .io, operation: "recv", errno: errno)
        }
    }

    /// Sends what the socket takes now of `buffer`, without waiting (`MSG_NOSIGNAL`: a peer that has
    /// gone is an error, not SIGPIPE). Returns the byte count, `nil` when the socket's send buffer is
    /// full now; throws on a connection error.
    public static func write(_ fd: Int32, from buffer: UnsafeRawBufferPointer) throws(SyslogIngestError) -> Int? {
        while true {
            let count = send(fd, buffer.baseAddress, buffer.count, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT))
            if count >= 0 { return count }
            if errno == EINTR { continue }
            if errno == EAGAIN || errno == EWOULDBLOCK { return nil }
            throw SyslogIngestError(code: .io, operation: "send", errno: errno)
        }
    }

    /// Bytes received on `fd` and not read yet (`FIONREAD`); 0 if unknown.
    public static func unreadBytes(_ fd: Int32) -> Int {
        var count: Int32 = 0
        return ioctl(fd, UInt(FIONREAD), &count) == 0 ? Int(count) : 0
    }

    /// Waits up to `timeoutMilliseconds` for what `fds` ask for (readability, or writability with
    /// `POLLOUT`); fills `revents`.
    public static func poll(_ fds: inout [pollfd], timeoutMilliseconds: Int32) -> Int {
        while true {
            let ready = Glibc.poll(&fds, nfds_t(fds.count), timeoutMilliseconds)
            if ready >= 0 { return Int(ready) }
            if errno == EINTR { continue }
            return 0
        }
    }

    /// Closes a descriptor.
    public static func close(_ fd: Int32) { _ = Glibc.close(fd) }
}
