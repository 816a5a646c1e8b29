import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A TCP proxy in front of Redis that loses replies on purpose: every `dropEvery`-th read from Redis
/// that a ``Replies`` kind matches is not forwarded, and both connections are closed instead. The
/// command reached Redis and ran; the client only sees its connection die — the "applied, but the
/// reply was lost" case that a retry must not apply twice.
///
/// A reply is recognised by how the read that carries it begins (or what it holds): Redis writes the
/// replies to one client's pipelined read in one go, and pixeld's clients read every reply before
/// they write again on that connection, so a read from Redis starts at the start of a reply (a large
/// reply may span several reads; only the first is recognised). Loopback only; threads end when
/// their sockets close; ``close()`` ends everything.
///
/// It can also hold up the first transaction a client sends (the read from the client holding
/// `MULTI`) for a while before passing it on, as TCP retransmission to a remote Redis does: long
/// enough, the client times out, closes its connection and retries on another, while the held bytes
/// still reach Redis on the first one — unless Redis dropped that client meanwhile. A test may end
/// the hold when it chooses (``releaseHeldTransaction()``), and have new connections refused
/// meanwhile (``refusesNewConnections``): the client's retry then fails too, as when a remote Redis
/// cannot be reached, while its first transaction is still on its way.
///
/// And it can hold a read back until a later one overtakes it (``LateRead``): a command that was
/// still on its way when the client gave up on it, and that reaches Redis at the worst moment.
///
/// And it can stop reading from its clients (``stopReading(afterReadHolding:)``), as a remote Redis
/// in a network partition does: what a client sends then fills the proxy's receive buffer and the
/// client's send buffer, and the client's next write waits for room. On loopback those buffers are
/// large (the send buffer grows with the 64 KiB segments to a few MiB), so
/// `init(…segmentBytes:receiveBufferBytes:)` can make them small, as on a real network: the accepted
/// connections advertise that segment size (`TCP_MAXSEG`) and receive buffer (`SO_RCVBUF`), set on
/// the listening socket, from which they inherit.
///
/// And it can trickle Redis's replies to the clients, a byte at a time with a pause after each
/// (``trickleReplies(everyMilliseconds:)``), as a congested link or a stalled proxy does: the client's
/// socket is never quiet for long, yet a reply takes as long as the test likes.
///
/// ```swift
/// let proxy = try ReplyLosingProxy(upstreamPort: redis.port, dropEvery: 3, replies: .commits)
/// defer { proxy.close() }
/// // … run a client against proxy.url, then:
/// #expect(proxy.droppedReplies > 0)
/// ```
public final class ReplyLosingProxy: @unchecked Sendable {
    /// Which replies count towards `dropEvery`.
    public enum Replies: Sendable {
        /// The writer's commits: replies that begin with an array (a commit script's) or with
        /// Redis's replies to a pipelined `MULTI` (`+OK` then `+QUEUED`).
        case commits
        /// Reads that hold a consumer's ack: the ack script's reply, an array that starts with an
        /// integer (`*<n>\r\n:`; no other reply on a consumer's connection does), with any replies
        /// pipelined ahead of it.
        case acks
        /// Replies that begin with a non-empty array: a consumer's takes of several events (its take
        /// script) and its reads of a non-empty processing list. Empty and null arrays (`*0`, `*-1`:
        /// an idle consumer's reads and a `BLMOVE` that timed out) do not count, as losing them
        /// loses nothing; nor does a `BLMOVE` that returns one event (a bulk string).
        case arrays
        /// Reads that are exactly the integer reply `:value` (one reply of its own), such as a
        /// consumer's heartbeat script's answer.
        case integer(Int)

        func matches(_ read: ArraySlice<UInt8>) -> Bool {
            switch self {
            case .commits:
                return read.first == UInt8(ascii: "*") || read.starts(with: Self.transactionStart)
            case .acks:
                return Self.holdsAnArrayStartingWithAnInteger(read)
            case .arrays:
                return read.first == UInt8(ascii: "*") && !read.starts(with: Self.emptyArray) && !read.starts(with: Self.nullArray)
            case .integer(let value):
                return read.elementsEqual(":\(value)\r\n".utf8)
            }
        }

        /// How Redis's replies to a pipelined transaction begin (its `EXEC` array follows in the same read).
        private static let transactionStart = Array("+OK\r\n+QUEUED\r\n".utf8)

        /// Whether a line of `read` is an array header followed by an integer line.
        private static func holdsAnArrayStartingWithAnInteger(_ read: ArraySlice<UInt8>) -> Bool {
            var index = read.startIndex
            while let star = read[index...].firstIndex(of: UInt8(ascii: "*")) {
                var next = star + 1
                if star == read.startIndex || read[star - 1] == UInt8(ascii: "\n") {
                    while next < read.endIndex, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(read[next]) { next += 1 }
                    if next > star + 1, read[next...].starts(with: Array("\r\n:".utf8)) { return true }
                }
                index = next
            }
            return false
        }
        private static let emptyArray = Array("*0\r\n".utf8)
        private static let nullArray = Array("*-1\r\n".utf8)
    }

    /// A read from a client held back until another connection sends the same kind of command: the
    /// first read on client connection `connection` (counted from 1, in the order accepted) that holds
    /// `marker` waits — while its client may time out and close — until a read that holds `marker`
    /// comes on another connection. Then the held read goes to Redis first, and the other one only once
    /// Redis answered the held one (or after 10 s), so that the late command runs right before it.
    /// Once only.
    public struct LateRead: Sendable {
        /// Bytes that the held read and the read that releases it hold.
        public var marker: [UInt8]
        /// The client connection whose read is held.
        public var connection: Int
        /// Holds the first read holding `marker` on client connection `connection`.
        public init(marker: String, connection: Int) {
            self.marker = Array(marker.utf8)
            self.connection = connection
        }
    }

    /// Where a ``LateRead`` stands; guarded by `lateCondition`.
    private enum LateState {
        case waiting
        case holding
        case released
        case answered
    }

    // @unchecked Sendable: mutable state is guarded by `lock`, and the late read's by `lateCondition`.
    /// The proxy's port on 127.0.0.1.
    public let port: Int
    private let upstreamPort: Int
    private let listenFD: Int32
    private let dropEvery: Int
    private let replies: Replies
    private let lock = NSLock()
    private var open: Set<Int32> = []
    private var matching = 0
    private var dropped = 0
    private var accepted = 0
    private var closed = false
    private let holdSeconds: Double?
    private var holds = 0
    private var forwardedHolds = 0
    /// ``releaseHeldTransaction()`` was called; guarded by `holdCondition`.
    private var holdReleased = false
    private let holdCondition = NSCondition()
    private var refusing = false
    private var refused = 0
    private let late: LateRead?
    private let lateCondition = NSCondition()
    private var lateState = LateState.waiting
    /// ``stopReading(afterReadHolding:)``: the bytes that stop the reads, until the first read holding
    /// them; guarded by `readingCondition`, as is `readingStopped`.
    private var stopMarker: [UInt8]?
    private var readingStopped = false
    private let readingCondition = NSCondition()
    /// ``trickleReplies(everyMilliseconds:)``: the pause after each byte of a reply; guarded by `lock`.
    private var trickleMilliseconds: Int?
    private var trickled = 0

    /// Starts a proxy to Redis on `upstreamPort` that loses every `dropEvery`-th reply of the kind
    /// `replies` (default: the writer's commits) and, with `holdingFirstTransactionFor`, holds up the
    /// first transaction a client sends for that many seconds (or until ``releaseHeldTransaction()``),
    /// and with `holdingLate`, holds that read back until another overtakes it.
    ///
    /// `segmentBytes` and `receiveBufferBytes`, when set, are the largest segment (`TCP_MAXSEG`, at
    /// least 88) and the receive buffer (`SO_RCVBUF`; Linux doubles it) of the connections accepted,
    /// so that what a client sends while the proxy does not read fills its buffers soon.
    public init(
        upstreamPort: Int, dropEvery: Int, replies: Replies = .commits, holdingFirstTransactionFor holdSeconds: Double? = nil,
        holdingLate late: LateRead? = nil, segmentBytes: Int? = nil, receiveBufferBytes: Int? = nil
    ) throws {
        self.upstreamPort = upstreamPort
        self.dropEvery = dropEvery
        self.replies = replies
        self.holdSeconds = holdSeconds
        self.late = late
        let fd = socket(AF_INET, SocketConstants.stream, 0)
        guard fd >= 0 else { throw TestSupportError("socket failed: errno \(errno)") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        for (level, option, value) in [(Int32(IPPROTO_TCP), TCP_MAXSEG, segmentBytes), (SOL_SOCKET, SO_RCVBUF, receiveBufferBytes)] {
            guard var value = value.map(Int32.init) else { continue }
            guard setsockopt(fd, level, option, &value, socklen_t(MemoryLayout<Int32>.size)) == 0 else {
                systemClose(fd)
                throw TestSupportError("proxy setsockopt \(option) \(value) failed: errno \(errno)")
            }
        }
        guard let port = bindToLoopback(fd), listen(fd, 16) == 0 else {
            systemClose(fd)
            throw TestSupportError("proxy bind/listen failed: errno \(errno)")
        }
        listenFD = fd
        self.port = port
        let thread = Thread { [self] in acceptLoop() }
        thread.name = "pixeld-fault-proxy"
        thread.start()
    }

    /// `redis://127.0.0.1:<port>/0`.
    public var url: String { "redis://127.0.0.1:\(port)/0" }
    /// Replies withheld so far.
    public var droppedReplies: Int { lock.withLock { dropped } }
    /// Replies of the watched kind seen so far, forwarded or withheld.
    public var matchingReplies: Int { lock.withLock { matching } }
    /// Client connections accepted so far.
    public var connections: Int { lock.withLock { accepted } }
    /// Transactions held up so far (at most one).
    public var heldTransactions: Int { lock.withLock { holds } }
    /// Held transactions passed on to Redis so far, after their wait (whether Redis still took them).
    public var forwardedHeldTransactions: Int { lock.withLock { forwardedHolds } }
    /// While `true`, a client that connects is disconnected at once, with no connection to Redis made
    /// for it (its first command finds the connection closed), as when Redis cannot be reached;
    /// connections already made go on. Refused connections are not counted in ``connections``.
    public var refusesNewConnections: Bool {
        get { lock.withLock { refusing } }
        set { lock.withLock { refusing = newValue } }
    }
    /// Client connections refused so far (``refusesNewConnections``).
    public var refusedConnections: Int { lock.withLock { refused } }
    /// Whether the ``LateRead`` was held, passed on to Redis once overtaken, and answered there.
    public var lateReadAnswered: Bool { lateCondition.withLock { lateState == .answered } }

    private static let multi = Array("$5\r\nMULTI\r\n".utf8)

    /// From the first read from a client that holds `marker` on (that read is passed on), nothing
    /// more is read from any client, on the connections made so far or later, until
    /// ``resumeReading()``; replies from Redis still flow.
    public func stopReading(afterReadHolding marker: String) {
        readingCondition.withLock { stopMarker = Array(marker.utf8) }
    }

    /// Whether ``stopReading(afterReadHolding:)`` has stopped the reads (and ``resumeReading()`` not
    /// resumed them yet).
    public var readingIsStopped: Bool { readingCondition.withLock { readingStopped } }

    /// Reads from the clients again (and forgets a marker not yet met).
    public func resumeReading() {
        readingCondition.withLock {
            stopMarker = nil
            readingStopped = false
            readingCondition.broadcast()
        }
    }

    /// Before a read from a client: waits while the reads are stopped (or the proxy closes).
    private func waitWhileReadingStopped() {
        readingCondition.lock()
        while readingStopped && !lock.withLock({ closed }) { _ = readingCondition.wait(until: Date().addingTimeInterval(0.1)) }
        readingCondition.unlock()
    }

    /// After a read from a client: stops the reads if it holds the marker.
    private func noteReadFromClient(_ read: ArraySlice<UInt8>) {
        readingCondition.withLock {
            guard let marker = stopMarker, read.firstRange(of: marker) != nil else { return }
            stopMarker = nil
            readingStopped = true
        }
    }

    /// From now on, what Redis sends is passed to the clients one byte at a time, with a pause of
    /// `milliseconds` after each, until ``stopTrickling()``.
    public func trickleReplies(everyMilliseconds milliseconds: Int) {
        lock.withLock { trickleMilliseconds = milliseconds }
    }

    /// Passes Redis's replies on at once again (the rest of a reply being trickled too).
    public func stopTrickling() {
        lock.withLock { trickleMilliseconds = nil }
    }

    /// Bytes of replies passed on a byte at a time so far.
    public var trickledBytes: Int { lock.withLock { trickled } }

    /// The pause after each byte of a reply, while ``trickleReplies(everyMilliseconds:)`` is on and the
    /// proxy open; counts the byte as trickled then.
    private func trickleNextByte() -> Int? {
        lock.withLock { () -> Int? in
            guard let milliseconds = trickleMilliseconds, !closed else { return nil }
            trickled += 1
            return milliseconds
        }
    }

    /// Ends the hold of the first transaction (`holdingFirstTransactionFor`) now: the held read goes on
    /// to Redis at once, and a first transaction not yet sent will not be held.
    public func releaseHeldTransaction() {
        holdCondition.withLock {
            holdReleased = true
            holdCondition.broadcast()
        }
    }

    /// Waits out the hold if `read` (from a client) is the first transaction, until its time is up, it
    /// is released or the proxy closes; `true` when it did, and the read is to be counted as forwarded
    /// once written.
    private func holdIfFirstTransaction(_ read: ArraySlice<UInt8>) -> Bool {
        guard let holdSeconds, read.firstRange(of: Self.multi) != nil else { return false }
        let first = lock.withLock { () -> Bool in
            guard holds == 0 else { return false }
            holds = 1
            return true
        }
        if first {
            let deadline = Date().addingTimeInterval(holdSeconds)
            holdCondition.lock()
            while !holdReleased && !lock.withLock({ closed }) && holdCondition.wait(until: deadline) {}
            holdCondition.unlock()
        }
        return first
    }

    private func acceptLoop() {
        for _ in 0..<100_000 {
            let client = accept(listenFD, nil, nil)
            if client < 0 {
                if errno == EINTR { continue }
                return
            }
            let refuse = lock.withLock { () -> Bool in
                if refusing { refused += 1 }
                return refusing
            }
            if refuse {
                systemClose(client)
                continue
            }
            guard let server = connectUpstream() else {
                systemClose(client)
                continue
            }
            // The connection's number, counted from 1; `nil` once closed.
            let admitted = lock.withLock { () -> Int? in
                if closed { return nil }
                open.insert(client)
                open.insert(server)
                accepted += 1
                return accepted
            }
            guard let number = admitted else {
                systemClose(client)
                systemClose(server)
                return
            }
            let up = Thread { [self] in pump(from: client, to: server, watchReplies: false, connection: number) }
            up.name = "pixeld-fault-proxy-up"
            up.start()
            let down = Thread { [self] in pump(from: server, to: client, watchReplies: true, connection: number) }
            down.name = "pixeld-fault-proxy-down"
            down.start()
        }
    }

    private func connectUpstream() -> Int32? {
        let fd = socket(AF_INET, SocketConstants.stream, 0)
        guard fd >= 0 else { return nil }
        guard connectToLoopback(fd, port: upstreamPort) else {
            systemClose(fd)
            return nil
        }
        return fd
    }

    /// What a read plays in the ``LateRead``: the held one, the one that releases it, or neither.
    private enum LateRole {
        case neither
        case held
        case overtaking
    }

    /// Holds `read` (from client connection `connection`) if it is the ``LateRead``, until it is
    /// overtaken; or, if it overtakes the held one, releases that and waits for Redis's answer to it.
    private func takeLateRole(_ read: ArraySlice<UInt8>, connection: Int) -> LateRole {
        guard let late, read.firstRange(of: late.marker) != nil else { return .neither }
        lateCondition.lock()
        defer { lateCondition.unlock() }
        switch lateState {
        case .waiting where connection == late.connection:
            lateState = .holding
            let deadline = Date().addingTimeInterval(60)
            while lateState == .holding && !lock.withLock({ closed }) && lateCondition.wait(until: deadline) {}
            return .held
        case .holding where connection != late.connection:
            lateState = .released
            lateCondition.broadcast()
            let deadline = Date().addingTimeInterval(10)
            while lateState == .released && lateCondition.wait(until: deadline) {}
            return .overtaking
        default:
            return .neither
        }
    }

    /// After the held ``LateRead`` went to Redis: waits (up to 10 s) for Redis's answer, so that the
    /// connection is not shut down before Redis ran it.
    private func awaitLateAnswer() {
        lateCondition.lock()
        defer { lateCondition.unlock() }
        let deadline = Date().addingTimeInterval(10)
        while lateState == .released && lateCondition.wait(until: deadline) {}
    }

    /// Notes a read from Redis on client connection `connection`: the answer to the late read, once released.
    private func noteLateAnswer(connection: Int) {
        guard let late, connection == late.connection else { return }
        lateCondition.withLock {
            if lateState == .released {
                lateState = .answered
                lateCondition.broadcast()
            }
        }
    }

    private func pump(from source: Int32, to destination: Int32, watchReplies: Bool, connection: Int) {
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            if !watchReplies { waitWhileReadingStopped() }
            let count = chunk.withUnsafeMutableBytes { read(source, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }
            if !watchReplies { noteReadFromClient(chunk[..<count]) }
            if watchReplies { noteLateAnswer(connection: connection) }
            let lateRole = watchReplies ? .neither : takeLateRole(chunk[..<count], connection: connection)
            let held = !watchReplies && holdIfFirstTransaction(chunk[..<count])
            defer { if held { lock.withLock { forwardedHolds += 1 } } }
            if watchReplies && replies.matches(chunk[..<count]) {
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
                let pause = watchReplies ? trickleNextByte() : nil
                let length = pause == nil ? count - offset : 1
                let written = chunk.withUnsafeBytes { write(destination, $0.baseAddress! + offset, length) }
                if let pause, written > 0 { usleep(UInt32(pause * 1000)) }
                if written < 0 && errno == EINTR { continue }
                if written <= 0 { break }
                offset += written
            }
            if lateRole == .held { awaitLateAnswer() }
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
            systemClose(source)
            systemClose(destination)
        }
    }

    /// Stops accepting and shuts every connection down.
    public func close() {
        let descriptors = lock.withLock { () -> [Int32]? in
            if closed { return nil }
            closed = true
            return Array(open)
        }
        guard let descriptors else { return }
        lateCondition.withLock { lateCondition.broadcast() }
        readingCondition.withLock { readingCondition.broadcast() }
        holdCondition.withLock { holdCondition.broadcast() }
        shutdown(listenFD, Int32(SHUT_RDWR))
        systemClose(listenFD)
        for fd in descriptors { shutdown(fd, Int32(SHUT_RDWR)) }
    }

    deinit { close() }  // reached only after close(): the accept thread holds the proxy until then
}
