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
    /// UDP only: a unix datagram socket queues 10 datagrams by default (`net.unix.max_dgram_qlen`),
    /// too few to hold what arrives during a pause (nginx drops what does not fit).
    private let pausesWhenBusy: Bool
    /// From how many datagrams per millisecond a UDP socket counts as busy (see ``ArrivalRate``); set
    /// before ``start()`` (tests set 0: always).
    package var busyPerMillisecond = ArrivalRate.defaultBusyPerMillisecond
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
    public init(
        socket: DatagramSocket,
        rules: IngestRules,
        sink: any AcceptedMessageSink,
        logger: Logger,
        batchSize: Int = 64,
        threadNice: Int? = nil,
        threadNiceFailureLevel: Logger.Level = .warning
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
        if case .udp = socket.address { pausesWhenBusy = true } else { pausesWhenBusy = false }
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
        var busy = false
        var rate = ArrivalRate(busyPerMillisecond: busyPerMillisecond)
        while true {
            if !draining && stopRequested.load(ordering: .relaxed) { draining = true }
            let count: Int
            let acceptedAt: Int64
            do {
                // (A local function, called directly: no closure context per call.)
                func receive(nonBlocking: Bool) throws(SyslogIngestError) -> Int {
                    try socket.receive(
                        into: UnsafeMutableBufferPointer(rebasing: slots[0..<offered]), nonBlocking: nonBlocking, kernelDrops: &kernelDrops
                    )
                }
                if busy && !draining {
                    // See `busyPauseNanoseconds`.
                    var received = try receive(nonBlocking: true)
                    if received == 0 {
                        var pause = timespec(tv_sec: 0, tv_nsec: Self.busyPauseNanoseconds)
                        nanosleep(&pause, nil)
                        statistics.addPause()
                        received = try receive(nonBlocking: false)
                    }
                    count = received
                } else {
                    count = try receive(nonBlocking: draining)
                }
                acceptedAt = MonotonicClock.nanoseconds()
                if pausesWhenBusy { busy = rate.busy(adding: count, at: acceptedAt) }
                offered = Self.slotsToOffer(after: count, offered: offered, batchSize: batchSize)
            } catch {
                logger.error("receive failed", metadata: ["pixeld.listener": "\(statistics.label)", "error": "\(error)"])
                if draining { return }
                continue
            }
            if count == 0 {
                if draining { return }
                continue
            }
            statistics.setKernelDrops(Int(kernelDrops))
            route(slots: UnsafeMutableBufferPointer(rebasing: slots[0..<count]), acceptedAt: acceptedAt)
            if !sink.endOfBatch() { return }
        }
    }

    /// Whether datagrams arrive fast enough for the receiver to pause before it waits (see
    /// ``busyPauseNanoseconds``): at least `busyPerMillisecond` (150) over the last window of at least a
    /// millisecond. Below that rate a pause costs the receiver more (a timer wake-up and an empty
    /// receive) than the sender's wake-ups it saves: at 10k and 50k/s it raised pixeld's CPU per
    /// datagram by 20–40 % in the benchmark.
    package struct ArrivalRate {
        /// The default threshold.
        package static let defaultBusyPerMillisecond = 150
        /// Datagrams per millisecond from which the socket counts as busy (0: always, for tests).
        package let busyPerMillisecond: Int
        private var windowStart: Int64 = 0
        private var count = 0
        private var busy = false

        package init(busyPerMillisecond: Int = Self.defaultBusyPerMillisecond) {
            self.busyPerMillisecond = busyPerMillisecond
        }

        /// Adds a receive of `received` datagrams that returned at `now` (monotonic ns); returns whether
        /// the socket counts as busy.
        package mutating func busy(adding received: Int, at now: Int64) -> Bool {
            count += received
            let elapsed = now - windowStart
            if elapsed >= 1_000_000 {
                // Divided, not multiplied: the first window spans the host's whole uptime.
                busy = Int64(count) * 1_000_000 / Int64(max(busyPerMillisecond, 1)) >= elapsed || busyPerMillisecond == 0
                windowStart = now
                count = 0
            }
            return busy
        }
    }
    /// While the socket is busy (see ``ArrivalRate``), a receive takes what is there without waiting; if
    /// nothing is, the thread sleeps this long and only then waits on the socket, by when more has
    /// usually arrived. A thread waiting on a UDP socket is woken by every datagram that arrives, on the
    /// sender's CPU (loopback) or in its softirq: at the benchmark's maximum rate 27 % of the sender's
    /// time went into waking pixeld's receiver, which — sharing its core with the writer and Redis —
    /// drained the socket and went back to wait about once per 4 datagrams, and the sender managed 20 %
    /// less with pixeld than with a do-nothing sink. At low rates (one datagram per call) nothing
    /// changes; while busy, a datagram may wait up to this long more (plus the thread's timer slack,
    /// 50 µs by default), time the ack-latency histogram does not see (see `route`).
    /// (Measured with a pause after every receive of two or more datagrams: udp-max 251k → 328–348k/s
    /// and 2.0 → 1.0 CPU s per million, but at 10k and 50k/s the CPU per datagram rose 20–40 %; hence
    /// ``ArrivalRate``.)
    static let busyPauseNanoseconds = 100_000

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
    ///   the receive thread was busy routing the previous batch or waiting for the CPU, or, on a busy
    ///   UDP socket, pausing (``busyPauseNanoseconds``) (the end-to-end probe of `bench/run.py`
    ///   measures that part too).
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
