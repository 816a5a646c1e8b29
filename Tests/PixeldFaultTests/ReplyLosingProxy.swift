import Foundation
import PixeldTestSupport

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A TCP proxy in front of Redis that loses replies on purpose: every `dropEvery`-th reply that starts
/// with `prefix` (`*`: the array reply of an applied commit script) or is the reply to a pipelined
/// `MULTI` … `EXEC` (`+OK` then `+QUEUED`…: a commit without Lua) is not forwarded, and both
/// connections are closed instead. The command reached Redis and ran; the client only sees its
/// connection die — the "applied, but the reply was lost" case that a retry must not apply twice.
///
/// Clients talk one request, one reply (pixeld's writer does), so a reply starts at the start of a
/// read from Redis. Loopback only; threads end when their sockets close; ``close()`` ends everything.
final class ReplyLosingProxy: @unchecked Sendable {
    // @unchecked Sendable: mutable state is guarded by `lock`.
    let port: Int
    private let upstreamPort: Int
    private let listenFD: Int32
    private let dropEvery: Int
    private let prefix: UInt8
    private let lock = NSLock()
    private var open: Set<Int32> = []
    private var matching = 0
    private var dropped = 0
    private var accepted = 0
    private var closed = false

    init(upstreamPort: Int, dropEvery: Int, prefix: UInt8 = UInt8(ascii: "*")) throws {
        self.upstreamPort = upstreamPort
        self.dropEvery = dropEvery
        self.prefix = prefix
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue | SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw TestSupportError("socket failed: errno \(errno)") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 && listen(fd, 16) == 0
            }
        }
        guard bound else {
            closeDescriptor(fd)
            throw TestSupportError("proxy bind/listen failed: errno \(errno)")
        }
        listenFD = fd
        port = Int(UInt16(bigEndian: address.sin_port))
        let thread = Thread { [self] in acceptLoop() }
        thread.name = "pixeld-fault-proxy"
        thread.start()
    }

    /// `redis://127.0.0.1:<port>/0`.
    var url: String { "redis://127.0.0.1:\(port)/0" }
    /// Replies withheld so far.
    var droppedReplies: Int { lock.withLock { dropped } }
    /// Client connections accepted so far.
    var connections: Int { lock.withLock { accepted } }

    private func acceptLoop() {
        for _ in 0..<100_000 {
            let client = accept(listenFD, nil, nil)
            if client < 0 {
                if errno == EINTR { continue }
                return
            }
            guard let server = connectUpstream() else {
                closeDescriptor(client)
                continue
            }
            let admitted = lock.withLock { () -> Bool in
                if closed { return false }
                open.insert(client)
                open.insert(server)
                accepted += 1
                return true
            }
            guard admitted else {
                closeDescriptor(client)
                closeDescriptor(server)
                return
            }
            let up = Thread { [self] in pump(from: client, to: server, watchReplies: false) }
            up.name = "pixeld-fault-proxy-up"
            up.start()
            let down = Thread { [self] in pump(from: server, to: client, watchReplies: true) }
            down.name = "pixeld-fault-proxy-down"
            down.start()
        }
    }

    private func connectUpstream() -> Int32? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue | SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(upstreamPort).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        if !connected {
            closeDescriptor(fd)
            return nil
        }
        return fd
    }

    private func pump(from source: Int32, to destination: Int32, watchReplies: Bool) {
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(source, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }
            if watchReplies && (chunk[0] == prefix || (count >= Self.transactionReply.count && chunk.starts(with: Self.transactionReply))) {
                let drop = lock.withLock { () -> Bool in
                    matching += 1
                    if matching % dropEvery == 0 {
                        dropped += 1
                        return true
                    }
                    return false
                }
                if drop { break }
            }
            var offset = 0
            while offset < count {
                let written = chunk.withUnsafeBytes { write(destination, $0.baseAddress! + offset, count - offset) }
                if written < 0 && errno == EINTR { continue }
                if written <= 0 { break }
                offset += written
            }
            if offset < count { break }
        }
        // Either side ending ends both: shutdown wakes the other pump, which then closes.
        shutdown(source, Int32(SHUT_RDWR))
        shutdown(destination, Int32(SHUT_RDWR))
        let last = lock.withLock { () -> Bool in
            // The second pump of a pair to finish closes both descriptors.
            if open.contains(source) && open.contains(destination) {
                open.remove(source)
                return false
            }
            open.remove(destination)
            open.remove(source)
            return true
        }
        if last {
            closeDescriptor(source)
            closeDescriptor(destination)
        }
    }

    /// How Redis's replies to a pipelined transaction begin (its `EXEC` array follows in the same read).
    private static let transactionReply = Array("+OK\r\n+QUEUED\r\n".utf8)

    /// Stops accepting and shuts every connection down.
    func close() {
        let descriptors = lock.withLock { () -> [Int32]? in
            if closed { return nil }
            closed = true
            return Array(open)
        }
        guard let descriptors else { return }
        shutdown(listenFD, Int32(SHUT_RDWR))
        closeDescriptor(listenFD)
        for fd in descriptors { shutdown(fd, Int32(SHUT_RDWR)) }
    }

    deinit { close() }  // reached only after close(): the accept thread holds the proxy until then
}
