#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A minimal blocking RESP2 client over a plain POSIX socket, independent of the code under test:
/// tests use it to look at Redis byte-exactly (`LRANGE`, `LLEN`, `DEL`, `FLUSHALL`,
/// `CLIENT KILL`, `CLIENT PAUSE`, `DEBUG SLEEP`…).
///
/// Every read and write is bounded by the timeout given at connect time. Not thread-safe: use one
/// connection per thread (``RedisServer/command(_:)`` opens a fresh one per call).
public final class RESPConnection {
    private let fd: Int32
    private var buffer: [UInt8] = []
    private var position = 0
    private var closed = false

    /// Connects to `127.0.0.1:port`.
    /// - Parameters:
    ///   - port: the server's TCP port.
    ///   - timeout: seconds each read or write may block.
    /// - Throws: ``TestSupportError`` when the connection fails.
    public init(port: Int, timeout: Double = 5) throws {
        let fd = socket(AF_INET, SocketConstants.stream, 0)
        guard fd >= 0 else { throw TestSupportError("socket() failed: errno \(errno)") }
        if !connectToLoopback(fd, port: port) {
            let code = errno
            systemClose(fd)
            throw TestSupportError("connect(127.0.0.1:\(port)) failed: errno \(code)")
        }
        self.fd = fd
        setTimeout(timeout)
    }

    /// Connects to a unix stream socket at `path`.
    /// - Throws: ``TestSupportError`` when the connection fails.
    public init(unixSocketPath path: String, timeout: Double = 5) throws {
        let fd = socket(AF_UNIX, SocketConstants.stream, 0)
        guard fd >= 0 else { throw TestSupportError("socket(AF_UNIX) failed: errno \(errno)") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let pathBytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard pathBytes.count < capacity else {
            systemClose(fd)
            throw TestSupportError("unix socket path too long (\(pathBytes.count) bytes): \(path)")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: pathBytes)
        }
        let result = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
                connect(fd, raw, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        if result != 0 {
            let code = errno
            systemClose(fd)
            throw TestSupportError("connect(unix:\(path)) failed: errno \(code)")
        }
        self.fd = fd
        setTimeout(timeout)
    }

    private func setTimeout(_ seconds: Double) {
        var value = timeval()
        value.tv_sec = .init(seconds)
        value.tv_usec = .init((seconds - Double(Int(seconds))) * 1_000_000)
        let size = socklen_t(MemoryLayout<timeval>.size)
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &value, size)
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &value, size)
    }

    /// Sends one command and reads its reply. Error replies are returned as ``RESP/error(_:)``.
    /// - Parameter arguments: the command and its arguments as UTF-8 text.
    /// - Throws: ``TestSupportError`` on I/O errors, timeouts or malformed replies.
    public func command(_ arguments: [String]) throws -> RESP {
        try command(bytes: arguments.map { Array($0.utf8) })
    }

    /// Sends one command whose arguments are arbitrary bytes and reads its reply.
    /// - Throws: ``TestSupportError`` on I/O errors, timeouts or malformed replies.
    public func command(bytes arguments: [[UInt8]]) throws -> RESP {
        try send(bytes: arguments)
        return try readReply()
    }

    /// Sends several commands at once, then reads all replies (a pipeline).
    /// - Throws: ``TestSupportError`` on I/O errors, timeouts or malformed replies.
    public func pipeline(_ commands: [[String]]) throws -> [RESP] {
        for arguments in commands { try send(bytes: arguments.map { Array($0.utf8) }) }
        return try commands.map { _ in try readReply() }
    }

    /// Writes one command without reading its reply.
    public func send(bytes arguments: [[UInt8]]) throws {
        try send(encoded: Self.encode(arguments))
    }

    /// A command as RESP: an array of bulk strings.
    public static func encode(_ arguments: [[UInt8]]) -> [UInt8] {
        var out: [UInt8] = Array("*\(arguments.count)\r\n".utf8)
        for argument in arguments {
            out += Array("$\(argument.count)\r\n".utf8)
            out += argument
            out += [13, 10]
        }
        return out
    }

    /// Writes one command already encoded as RESP without reading its reply.
    public func send(encoded out: [UInt8]) throws {
        var offset = 0
        while offset < out.count {
            let written = out.withUnsafeBytes { raw in
                write(fd, raw.baseAddress! + offset, raw.count - offset)
            }
            if written < 0 {
                if errno == EINTR { continue }
                throw TestSupportError("write to redis failed: errno \(errno)")
            }
            offset += written
        }
    }

    /// Reads one reply.
    public func readReply() throws -> RESP {
        let line = try readLine()
        guard let type = line.first else { throw TestSupportError("empty RESP line") }
        let rest = String(decoding: line.dropFirst(), as: UTF8.self)
        switch type {
        case UInt8(ascii: "+"):
            return .simpleString(rest)
        case UInt8(ascii: "-"):
            return .error(rest)
        case UInt8(ascii: ":"):
            guard let value = Int64(rest) else { throw TestSupportError("bad RESP integer: \(rest)") }
            return .integer(value)
        case UInt8(ascii: "$"):
            guard let length = Int(rest) else { throw TestSupportError("bad RESP bulk length: \(rest)") }
            if length < 0 { return .null }
            let payload = try readExactly(length + 2)
            return .bulkString(Array(payload.dropLast(2)))
        case UInt8(ascii: "*"):
            guard let count = Int(rest) else { throw TestSupportError("bad RESP array length: \(rest)") }
            if count < 0 { return .null }
            var elements: [RESP] = []
            elements.reserveCapacity(count)
            for _ in 0..<count { elements.append(try readReply()) }
            return .array(elements)
        default:
            throw TestSupportError("unexpected RESP type byte \(type)")
        }
    }

    private func fill() throws {
        if position > 0 && position == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            position = 0
        }
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count > 0 {
                buffer.append(contentsOf: chunk[0..<count])
                return
            }
            if count == 0 { throw TestSupportError("redis closed the connection") }
            if errno == EINTR { continue }
            if errno == EAGAIN || errno == EWOULDBLOCK { throw TestSupportError("redis reply timed out") }
            throw TestSupportError("read from redis failed: errno \(errno)")
        }
    }

    private func readLine() throws -> [UInt8] {
        while true {
            if let end = buffer[position...].firstIndex(of: 10), end > position, buffer[end - 1] == 13 {
                let line = Array(buffer[position..<(end - 1)])
                position = end + 1
                return line
            }
            try fill()
        }
    }

    private func readExactly(_ count: Int) throws -> [UInt8] {
        while buffer.count - position < count { try fill() }
        let bytes = Array(buffer[position..<(position + count)])
        position += count
        return bytes
    }

    /// Closes the socket (also done on deinit).
    public func close() {
        guard !closed else { return }
        closed = true
        systemClose(fd)
    }

    deinit { close() }
}
