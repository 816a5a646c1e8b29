public import Logging
import PixeldConcurrency
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Receives syslog over TCP (RFC 6587, octet counting or LF framing detected per connection) from any
/// number of forwarders, on one thread with `poll`.
///
/// When a peer closes its connection, a last LF-framed line without its LF is still a message (as
/// rsyslog's imtcp takes it), also when the peer closed just before a shutdown; an incomplete
/// octet-counted frame, or part of a line left when a connection is closed for another reason (read
/// error, or a shutdown while the peer is still sending), is counted as `truncated`.
///
/// A peer that stalls cannot hold the others up (every socket is non-blocking), a peer that sends
/// garbage is disconnected and counted as `malformed`, and when the writer's queue is full the sink
/// blocks, so pixeld stops reading and TCP's own flow control slows the senders down — backpressure
/// instead of loss.
///
/// `@unchecked Sendable`: connection state and the sink are used only on the listener thread.
public final class StreamListener: @unchecked Sendable {
    /// Totals for metrics and tests (`received` counts framed messages).
    public let statistics: ListenerStatistics
    /// The bound address (with the port the kernel chose for port 0).
    public let address: String
    /// The bound port.
    public let port: Int
    private let listenFD: Int32
    private let rules: IngestRules
    private let sink: any AcceptedMessageSink
    private let logger: Logger
    private let maxConnections: Int
    /// Set by ``stop()``; the thread drains once it sees it (internal: tests wait for it).
    let stopRequested = Atomic<Bool>(false)
    private let connectionCount = Atomic<Int>(0)
    private var thread: DedicatedThread?
    /// The sink refused a batch (its queue was closed): the thread ends. Listener thread only.
    private var sinkClosed = false

    private struct Connection {
        var fd: Int32
        var framer: SyslogStreamFramer
        /// While stopping: how many of the bytes received before the stop are still to be read.
        var drainLeft = Int.max
        /// The peer closed its side (a read returned 0).
        var endOfStream = false
        /// A read failed (a reset, a timeout): what the framer holds was cut short, whatever the socket says now.
        var readFailed = false
    }

    /// Binds `host:port` and prepares to serve.
    /// - Throws: ``SyslogIngestError`` when the address cannot be bound.
    public init(host: String, port: Int, rules: IngestRules, sink: any AcceptedMessageSink, logger: Logger, maxConnections: Int = 1024)
        throws(SyslogIngestError)
    {
        let (fd, actual) = try StreamSocket.listen(host: host, port: port)
        listenFD = fd
        self.port = actual
        self.address = Self.address(host: host, port: actual)
        self.rules = rules
        self.sink = sink
        self.logger = logger
        self.maxConnections = maxConnections
        statistics = ListenerStatistics(label: address)
    }

    /// `tcp://HOST:PORT` (`tcp://[IPV6]:PORT`), as listeners and their errors name an address.
    public static func address(host: String, port: Int) -> String {
        host.contains(":") ? "tcp://[\(host)]:\(port)" : "tcp://\(host):\(port)"
    }

    /// Open connections now.
    public var connections: Int { connectionCount.load(ordering: .relaxed) }

    /// Starts the listener thread.
    public func start() {
        precondition(thread == nil)
        thread = DedicatedThread(name: "pixeld-tcp") { [self] in run() }
    }

    /// How long ``stop()`` also reads what arrives after it was called (data a sender had in flight).
    /// Past it only what had arrived before the stop is read: a forwarder that keeps sending (a backlog
    /// after an outage) would otherwise keep the drain going for as long as it has data.
    static let drainGraceNanoseconds: Int64 = 250_000_000
    /// How long the listening socket stays out of the poll after `accept` failed for want of
    /// descriptors.
    static let acceptPauseNanoseconds: Int64 = 200_000_000

    /// Stops accepting; reads what the connections had received, and what arrives for another 250 ms
    /// or until they fall silent for 10 ms; closes them, and returns when done.
    public func stop() async {
        stopRequested.store(true, ordering: .relaxed)
        await thread?.finished()
    }

    private func run() {
        var connections: [Connection] = []
        var pollSet: [pollfd] = []
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 << 10, alignment: 16)
        var draining = false
        defer {
            chunk.deallocate()
            for connection in connections { close(connection) }
            _ = sink.endOfBatch()
            // Closed once: a second close could hit a descriptor another thread has opened since.
            if !draining { StreamSocket.close(listenFD) }
            connectionCount.store(0, ordering: .relaxed)
        }
        var graceUntil = Int64.max
        var acceptPausedUntil: Int64 = 0
        var lastAcceptWarning: Int64?
        while true {
            if !draining && stopRequested.load(ordering: .relaxed) {
                draining = true
                graceUntil = MonotonicClock.nanoseconds() + Self.drainGraceNanoseconds
                StreamSocket.close(listenFD)
                for index in connections.indices { connections[index].drainLeft = StreamSocket.unreadBytes(connections[index].fd) }
            }
            if draining && MonotonicClock.nanoseconds() >= graceUntil {
                // From now on only what had arrived before the stop.
                connections.removeAll { connection in
                    if connection.drainLeft <= 0 { close(connection) }
                    return connection.drainLeft <= 0
                }
                if connections.isEmpty { return }
            }
            pollSet.removeAll(keepingCapacity: true)
            // At the connection limit the listening socket stays out of the poll: a pending connection
            // would keep it readable, and the loop would spin without accepting it.
            // Nor while accepting fails for want of descriptors (it would spin the same way).
            let listening = !draining && connections.count < maxConnections && MonotonicClock.nanoseconds() >= acceptPausedUntil
            if listening { pollSet.append(pollfd(fd: listenFD, events: Int16(POLLIN), revents: 0)) }
            for connection in connections { pollSet.append(pollfd(fd: connection.fd, events: Int16(POLLIN), revents: 0)) }
            let ready = StreamSocket.poll(&pollSet, timeoutMilliseconds: draining ? 10 : 100)
            if ready == 0 {
                if draining { return }
                continue
            }
            var offset = 0
            if listening {
                offset = 1
                if pollSet[0].revents & Int16(POLLIN) != 0 {
                    accepting: while connections.count < maxConnections {
                        switch StreamSocket.accept(listenFD) {
                        case .client(let client):
                            connections.append(Connection(fd: client, framer: SyslogStreamFramer(maxMessageBytes: rules.maxMessageBytes)))
                        case .none:
                            break accepting
                        case .failed(let code):
                            let now = MonotonicClock.nanoseconds()
                            acceptPausedUntil = now + Self.acceptPauseNanoseconds
                            // Once a minute at most: near the limit, failures and successes alternate.
                            if lastAcceptWarning.map({ now - $0 >= 60_000_000_000 }) ?? true {
                                lastAcceptWarning = now
                                logger.warning(
                                    "cannot accept syslog connections: \(String(cString: strerror(code))); retrying every 200 ms (raise the open-file limit, LimitNOFILE= in the unit)",
                                    metadata: ["pixeld.listener": "\(address)", "connections": "\(connections.count)"]
                                )
                            }
                            break accepting
                        }
                    }
                }
            }
            var closed: [Int] = []
            for index in 0..<(pollSet.count - offset) where pollSet[index + offset].revents != 0 {
                if sinkClosed { break }
                let graceOver = draining && MonotonicClock.nanoseconds() >= graceUntil
                if !serve(&connections[index], chunk: chunk, limited: graceOver) || graceOver && connections[index].drainLeft <= 0 {
                    closed.append(index)
                }
            }
            for index in closed.reversed() { close(connections.remove(at: index)) }
            connectionCount.store(connections.count, ordering: .relaxed)
            if sinkClosed || !sink.endOfBatch() { return }
        }
    }

    /// Reads what one connection has (up to a few chunks, so one busy peer cannot starve the others)
    /// and routes its frames, ending the sink's batch after each chunk: a batch holds one read's
    /// messages, so what waits for the queue stays within a read's size whatever the number of busy
    /// peers (a round's batch of 1,024 connections × 4 reads was up to 256 MiB, past `--buffer-bytes`,
    /// and its buffers kept that size). Returns `false` when the connection ended or must be dropped.
    /// `limited`: read no more than ``Connection/drainLeft``.
    private func serve(_ connection: inout Connection, chunk: UnsafeMutableRawBufferPointer, limited: Bool = false) -> Bool {
        for _ in 0..<4 {
            let count: Int?
            let room = limited ? min(chunk.count, max(0, connection.drainLeft)) : chunk.count
            if room == 0 { return true }
            do {
                count = try StreamSocket.read(connection.fd, into: UnsafeMutableRawBufferPointer(rebasing: chunk[0..<room]))
            } catch {
                logger.debug("tcp read failed", metadata: ["pixeld.listener": "\(address)", "error": "\(error)"])
                connection.readFailed = true
                return false
            }
            guard let count else { return true }
            if count == 0 {
                connection.endOfStream = true
                return false
            }
            if connection.drainLeft != .max { connection.drainLeft -= count }  // below 0 past the snapshot
            connection.framer.append(UnsafeRawBufferPointer(rebasing: chunk[0..<count]))
            var received = 0
            var accepted = 0
            let acceptedAt = MonotonicClock.nanoseconds()
            defer { statistics.add(received: received, accepted: accepted) }
            while let event = connection.framer.next() {
                received += 1
                if route(event, of: connection.framer, acceptedAt: acceptedAt) { accepted += 1 }
                if event == .malformed {
                    logger.info("closing a tcp connection that does not speak syslog", metadata: ["pixeld.listener": "\(address)"])
                    return false
                }
            }
            // Blocks while the queue is full: the peer's unread bytes wait in the kernel (TCP's
            // flow control), not here.
            if !sink.endOfBatch() {
                sinkClosed = true
                return true
            }
            if count < room { return true }
        }
        return true
    }

    /// Hands an accepted message of `framer` to the sink, or counts the event's drop by its reason.
    /// - Returns: `true` when the message was accepted.
    private func route(_ event: SyslogStreamFramer.Event, of framer: SyslogStreamFramer, acceptedAt: Int64) -> Bool {
        switch event {
        case .message(let range):
            let decision = framer.bytes.withUnsafeBytes { bytes in
                let frame = UnsafeRawBufferPointer(rebasing: bytes[range])
                let decision = rules.route(frame)
                if case .accept(let program, let message) = decision {
                    sink.accept(
                        program: UnsafeRawBufferPointer(rebasing: frame[program]),
                        message: UnsafeRawBufferPointer(rebasing: frame[message]),
                        acceptedAt: acceptedAt
                    )
                }
                return decision
            }
            switch decision {
            case .accept: return true
            case .drop(let reason): statistics.addDropped(reason)
            }
        case .oversize: statistics.addDropped(.oversize)
        case .malformed: statistics.addDropped(.malformed)
        case .truncated: statistics.addDropped(.truncated)
        }
        return false
    }

    /// Closes a connection, routing or counting what its framer still holds (see ``SyslogStreamFramer/finish(endOfStream:)``);
    /// the caller ends the sink's batch. A peer that closed before the listener read its end of
    /// stream (the drain at shutdown stops at what had arrived) counts as closed all the same; after a
    /// failed read it does not (a reset socket also reads as closed).
    private func close(_ connection: Connection) {
        var framer = connection.framer
        let endOfStream = connection.endOfStream || (!connection.readFailed && StreamSocket.peerHasClosed(connection.fd))
        if let event = framer.finish(endOfStream: endOfStream) {
            let accepted = route(event, of: framer, acceptedAt: MonotonicClock.nanoseconds())
            statistics.add(received: 1, accepted: accepted ? 1 : 0)
        }
        StreamSocket.close(connection.fd)
    }
}
