public import Logging
import CPixeldSystem
import PixeldConcurrency
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Receives syslog datagrams on one socket, on its own thread, in batches (`recvmmsg`), routes each
/// through the ``IngestRules`` and hands the accepted ones to an ``AcceptedMessageSink``.
///
/// A plain socket on a dedicated thread rather than SwiftNIO: nginx writes to a unix socket from an
/// unbound socket (empty peer address), which NIO's datagram channel cannot receive.
///
/// `@unchecked Sendable`: the receive buffers and the sink are used only by the listener thread; the
/// stop flag is atomic.
public final class DatagramListener: @unchecked Sendable {
    /// The bound socket.
    public let socket: DatagramSocket
    /// Totals for metrics and tests.
    public let statistics: ListenerStatistics
    private let rules: IngestRules
    private let sink: any AcceptedMessageSink
    private let logger: Logger
    private let batchSize: Int
    private let threadNice: Int?
    private let threadNiceFailureLevel: Logger.Level
    private let slotCapacity: Int
    private let gathers: Bool
    private let stopRequested = Atomic<Bool>(false)
    private var thread: DedicatedThread?

    /// Creates a listener on a bound socket.
    /// - Parameters:
    ///   - socket: see ``DatagramSocket``.
    ///   - rules: facility filter, program policy, size cap.
    ///   - sink: where accepted messages go; used on the listener thread only.
    ///   - batchSize: datagrams per `recvmmsg` call at most (fewer are offered while calls come back far from full).
    ///   - threadNice: the receive thread's nice value (-20…19), or `nil` to keep the process's. A lower
    ///     value lets the thread pre-empt the writer (and a Redis on the same core) when datagrams
    ///     arrive; below the process's value it needs CAP_SYS_NICE (or RLIMIT_NICE), else the failure is
    ///     logged at `threadNiceFailureLevel` and the thread keeps the process's priority.
    ///   - threadNiceFailureLevel: `.warning` when the value was asked for, lower when it is a default.
    ///   - gathers: whether to let datagrams gather in the socket buffer while the sink holds them back
    ///     anyway (see ``gatherMarginNanoseconds``). Only for a socket whose buffer absorbs a pause: UDP,
    ///     not a unix socket, whose senders fail once 10 datagrams wait (`net.unix.max_dgram_qlen`).
    public init(
        socket: DatagramSocket,
        rules: IngestRules,
        sink: any AcceptedMessageSink,
        logger: Logger,
        batchSize: Int = 64,
        threadNice: Int? = nil,
        threadNiceFailureLevel: Logger.Level = .warning,
        gathers: Bool = false
    ) {
        self.socket = socket
        self.rules = rules
        self.sink = sink
        self.logger = logger
        self.batchSize = batchSize
        self.threadNice = threadNice
        self.threadNiceFailureLevel = threadNiceFailureLevel
        // One byte more than the largest accepted datagram, so an oversize one shows as truncated.
        self.slotCapacity = rules.maxMessageBytes + 1
        self.gathers = gathers
        self.statistics = ListenerStatistics(label: socket.address.description)
    }

    /// Starts the receive thread.
    public func start() {
        precondition(thread == nil, "DatagramListener.start() called twice")
        thread = DedicatedThread(name: "pixeld-recv") { [self] in run() }
    }

    /// Stops receiving: drains what the socket already holds, hands it to the sink, closes the socket,
    /// and returns when the thread has finished.
    public func stop() async {
        stopRequested.store(true, ordering: .relaxed)
        await thread?.finished()
    }

    private func run() {
        if let threadNice, cpixeld_set_thread_nice(Int32(threadNice)) != 0 {
            logger.log(
                level: threadNiceFailureLevel,
                "could not set the receive thread's nice value (needs CAP_SYS_NICE to lower it)",
                metadata: ["pixeld.listener": "\(statistics.label)", "nice": "\(threadNice)", "errno": "\(errno)"]
            )
        }
        let buffers = UnsafeMutableRawPointer.allocate(byteCount: slotCapacity * batchSize, alignment: 16)
        let slots = UnsafeMutableBufferPointer<cpixeld_datagram>.allocate(capacity: batchSize)
        defer {
            buffers.deallocate()
            slots.deallocate()
            socket.close()
        }
        // The slots' buffers never change; `recvmmsg` fills in the lengths of those it used.
        for index in 0..<batchSize {
            slots[index] = cpixeld_datagram(buffer: buffers + index * slotCapacity, capacity: slotCapacity, length: 0, truncated: 0)
        }
        var kernelDrops: UInt32 = 0
        var draining = false
        var offered = batchSize
        // When the thread began its last pause to gather datagrams (see `gather()`), if it did.
        var gatheringSince: Int64?
        while true {
            if !draining && stopRequested.load(ordering: .relaxed) { draining = true }
            let gathered = gatheringSince
            gatheringSince = nil
            let count: Int
            let acceptedAt: Int64
            let filled: Bool
            do {
                count = try socket.receive(
                    into: UnsafeMutableBufferPointer(rebasing: slots[0..<offered]), nonBlocking: draining, kernelDrops: &kernelDrops
                )
                // Datagrams that gathered arrived after the pause began: stamping them with its start
                // overstates their latency, never understates it.
                acceptedAt = gathered ?? MonotonicClock.nanoseconds()
                filled = count == offered
                offered = Self.slotsToOffer(after: count, offered: offered, batchSize: batchSize)
            } catch {
                logger.error("receive failed", metadata: ["pixeld.listener": "\(statistics.label)", "error": "\(error)"])
                if gathered != nil { sink.gatheringEnds() }
                if draining { return }
                continue
            }
            var handedOver = true
            if count > 0 {
                statistics.setKernelDrops(Int(kernelDrops))
                route(slots: UnsafeMutableBufferPointer(rebasing: slots[0..<count]), acceptedAt: acceptedAt)
                handedOver = sink.endOfBatch()
            }
            if gathered != nil { sink.gatheringEnds() }
            if !handedOver { return }
            if count == 0 {
                if draining { return }
                continue
            }
            if gathers && !filled && !draining {
                gatheringSince = gather()
                // What gathered may well exceed what the last calls returned.
                if gatheringSince != nil { offered = batchSize }
            }
        }
    }

    /// How long before the sink's departure deadline a gathering receiver wakes: long enough to
    /// receive and hand over what gathered before the writer takes its batch, despite Linux's 50 µs
    /// default timer slack (a writer waits a little for a receiver that wakes late all the same, see
    /// ``AcceptedMessageSink/gatheringBegins()``). From then until the deadline the receiver wakes per
    /// datagram again.
    public static let gatherMarginNanoseconds: Int64 = 150_000
    /// Pauses shorter than this are not worth a sleep.
    static let shortestGatherNanoseconds: Int64 = 100_000

    /// At low rates every datagram costs the receive thread a wake-up (10k/s: one per datagram), yet
    /// the writer holds the accepted messages back until its linger deadline anyway. So after a receive
    /// call that emptied the socket, the thread sleeps until just before that deadline
    /// (``AcceptedMessageSink/nextDepartureDeadline()`` minus ``gatherMarginNanoseconds``) and then
    /// receives everything that arrived meanwhile in one call: the same commits, one wake-up instead
    /// of many. Calls that come back full (high rates) never pause. The sink is told
    /// (``AcceptedMessageSink/gatheringBegins()``, and `gatheringEnds()` once the gathered datagrams
    /// are handed over), so that a writer holds its commit for a receiver that wakes late.
    /// - Returns: when the pause began, or `nil` if there was none.
    private func gather() -> Int64? {
        guard let deadline = sink.nextDepartureDeadline() else { return nil }
        let now = MonotonicClock.nanoseconds()
        let pause = deadline - Self.gatherMarginNanoseconds - now
        guard pause >= Self.shortestGatherNanoseconds else { return nil }
        sink.gatheringBegins()
        var request = timespec(tv_sec: Int(pause / 1_000_000_000), tv_nsec: Int(pause % 1_000_000_000))
        var left = timespec()
        while nanosleep(&request, &left) != 0 && errno == EINTR { request = left }
        return now
    }

    /// How many slots the next `recvmmsg` offers: twice as many (up to `batchSize`) after a call that
    /// filled every slot, else twice what the last call returned, at least 16 (more than a unix
    /// socket's default queue of 10, so a burst after a quiet spell still drains in one call). With
    /// `MSG_WAITFORONE` a call returns as soon as one datagram is there, so at low rates most calls
    /// return one, and a header prepared for each of 64 slots is wasted work: a call that returns one
    /// datagram took 0.88–0.95 µs with 64 slots and 0.71–0.81 µs with 8 (`cpixeld_recvmmsg` on
    /// loopback; small next to the wake-up).
    static func slotsToOffer(after received: Int, offered: Int, batchSize: Int) -> Int {
        min(batchSize, received >= offered ? offered * 2 : max(16, received * 2))
    }

    /// Routes one receive batch and hands the accepted messages to the sink.
    /// - Parameter acceptedAt: read once per receive call, as `recvmmsg` returns and before any routing,
    ///   so the ack-latency histogram (`pixeld_ingest_ack_latency_seconds`) includes the routing of the
    ///   whole batch, the queue, the linger and the commit. It does not include the time a datagram sat
    ///   in the kernel's socket buffer before the call returned: with `MSG_WAITFORONE` that is the time
    ///   the receive thread was busy routing the previous batch or waiting for the CPU (the end-to-end
    ///   probe of `bench/run.py` measures that part too).
    private func route(slots: UnsafeMutableBufferPointer<cpixeld_datagram>, acceptedAt: Int64) {
        var accepted = 0
        for slot in slots {
            if slot.truncated != 0 || slot.length > rules.maxMessageBytes {
                statistics.addDropped(.oversize)
                continue
            }
            let datagram = UnsafeRawBufferPointer(start: slot.buffer, count: slot.length)
            switch rules.route(datagram) {
            case .accept(let program, let message):
                sink.accept(
                    program: UnsafeRawBufferPointer(rebasing: datagram[program]),
                    message: UnsafeRawBufferPointer(rebasing: datagram[message]),
                    acceptedAt: acceptedAt
                )
                accepted += 1
            case .drop(let reason):
                statistics.addDropped(reason)
            }
        }
        statistics.add(received: slots.count, accepted: accepted)
    }
}
