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
    /// How long a busy UDP receiver that finds its socket empty sleeps before it waits on it (see
    /// ``defaultPauseNanoseconds``); 0 never pauses. Set before ``start()``: `pixeld ingest` sets
    /// ``pauseNanoseconds(forLingerNanoseconds:)`` of the writer's linger.
    package var pauseNanoseconds = DatagramListener.defaultPauseNanoseconds
    private let stopRequested = Atomic<Bool>(false)
    private var thread: DedicatedThread?

    /// Creates a listener on a bound socket.
    /// - Parameters:
    ///   - socket: see ``DatagramSocket``.
    ///   - rules: facility filter, program policy, size cap.
    ///   - sink: where accepted messages go; used on the listener thread only.
    ///   - batchSize: datagrams per `recvmmsg` call at most, 1…256 (the C shim's most; fewer are offered
    ///     while calls come back far from full).
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
        // A call that returns fewer than offered means the socket was empty (the drain at a stop ends
        // on it): offering more than the shim takes would read as that on every call.
        self.batchSize = min(max(batchSize, 1), 256)
        self.threadNice = threadNice
        self.threadNiceFailureLevel = threadNiceFailureLevel
        // One byte more than the largest accepted datagram, so an oversize one shows as truncated.
        self.slotCapacity = rules.maxMessageBytes + 1
        if case .udp = socket.address { pausesWhenBusy = true } else { pausesWhenBusy = false }
        self.statistics = ListenerStatistics(label: socket.address.description)
        statistics.readKernelDrops { [socket] in socket.kernelDropCount() }
    }

    /// Starts the receive thread.
    public func start() {
        precondition(thread == nil, "DatagramListener.start() called twice")
        thread = DedicatedThread(name: "pixeld-recv") { [self] in run() }
    }

    /// How long ``stop()`` may go on draining a socket that never falls empty (senders faster than the
    /// writer): past it, what is still queued in the kernel is left there, as what arrives after the
    /// stop is.
    static let drainGraceNanoseconds: Int64 = 250_000_000

    /// Stops receiving: drains what the socket already holds (until a receive finds it empty, at most
    /// ``drainGraceNanoseconds``), hands it to the sink, closes the socket, and returns when the thread
    /// has finished.
    public func stop() async {
        stopRequested.store(true, ordering: .relaxed)
        await thread?.finished()
    }

    private func run() {
        if let threadNice, cpixeld_set_thread_nice(Int32(threadNice)) != 0 {
            let error = errno  // now: the metadata is built lazily, after other calls
            logger.log(
                level: threadNiceFailureLevel,
                "could not set the receive thread's nice value (needs CAP_SYS_NICE to lower it)",
                metadata: ["pixeld.listener": "\(statistics.label)", "nice": "\(threadNice)", "errno": "\(error)"]
            )
        }
        let buffers = UnsafeMutableRawPointer.allocate(byteCount: slotCapacity * batchSize, alignment: 16)
        let slots = UnsafeMutableBufferPointer<cpixeld_datagram>.allocate(capacity: batchSize)
        defer {
            buffers.deallocate()
            slots.deallocate()
            _ = statistics.kernelDrops  // the counter's last reading (SO_MEMINFO), before the socket goes
            socket.close()
        }
        // The slots' buffers never change; `recvmmsg` fills in the lengths of those it used.
        for index in 0..<batchSize {
            slots[index] = cpixeld_datagram(buffer: buffers + index * slotCapacity, capacity: slotCapacity, length: 0, truncated: 0)
        }
        // The kernel's drop counter as the last received datagram carried it (SO_RXQ_OVFL, free);
        // readers of the statistic read the counter itself (see `ListenerStatistics.kernelDrops`).
        var kernelDrops: UInt32 = 0
        var draining = false
        var offered = batchSize
        var busy = false
        var rate = ArrivalRate(busyPerMillisecond: busyPerMillisecond)
        // Read once: both are fixed once the thread runs.
        let pauses = pausesWhenBusy && pauseNanoseconds > 0
        var drainUntil = Int64.max
        while true {
            if !draining && stopRequested.load(ordering: .relaxed) {
                draining = true
                drainUntil = MonotonicClock.nanoseconds() + Self.drainGraceNanoseconds
            }
            let asked = offered
            let count: Int
            let returnedAt: Int64
            let acceptedAt: Int64
            do {
                // (A local function, called directly: no closure context per call.)
                func receive(nonBlocking: Bool) throws(SyslogIngestError) -> Int {
                    try socket.receive(
                        into: UnsafeMutableBufferPointer(rebasing: slots[0..<offered]), nonBlocking: nonBlocking, kernelDrops: &kernelDrops
                    )
                }
                // What a receive after a pause returns is stamped with the pause's start (see
                // `defaultPauseNanoseconds`).
                var pausedSince: Int64?
                if busy && !draining {
                    var received = try receive(nonBlocking: true)
                    if received == 0 {
                        let pauseStart = MonotonicClock.nanoseconds()
                        var pause = timespec(tv_sec: 0, tv_nsec: pauseNanoseconds)
                        nanosleep(&pause, nil)
                        statistics.addPause()
                        received = try receive(nonBlocking: true)
                        if received > 0 {
                            pausedSince = pauseStart
                        } else {
                            received = try receive(nonBlocking: false)
                        }
                    }
                    count = received
                } else {
                    count = try receive(nonBlocking: draining)
                }
                returnedAt = MonotonicClock.nanoseconds()
                acceptedAt = pausedSince ?? returnedAt
                if pauses { busy = rate.busy(adding: count, at: returnedAt) }
                offered = Self.slotsToOffer(after: count, offered: offered, batchSize: batchSize)
            } catch {
                logger.error("receive failed", metadata: ["pixeld.listener": "\(statistics.label)", "error": "\(error)"])
                if draining { return }
                usleep(10_000)  // an error that repeats (ENOMEM) must not spin the core and flood the log
                continue
            }
            statistics.raiseKernelDrops(to: Int(kernelDrops))
            if count == 0 {
                if draining { return }
                continue
            }
            route(slots: UnsafeMutableBufferPointer(rebasing: slots[0..<count]), acceptedAt: acceptedAt)
            if !sink.endOfBatch() { return }
            // Fewer than asked for: the socket was empty, so everything that had arrived before the stop
            // is in. Under a flood it never is, and the drain ends at its deadline.
            if draining && (count < asked || MonotonicClock.nanoseconds() >= drainUntil) { return }
        }
    }

    /// Whether datagrams arrive fast enough for the receiver to pause before it waits (see
    /// ``defaultPauseNanoseconds``): at least `busyPerMillisecond` (5) over the last window of at least a
    /// millisecond, so that a pause of 1 ms finds several. Below that a pause costs the receiver a timer
    /// wake-up and an empty receive, and saves few sender wake-ups.
    package struct ArrivalRate {
        /// The default threshold.
        package static let defaultBusyPerMillisecond = 5
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
    /// nothing is, the thread sleeps ``pauseNanoseconds`` (this by default) and then takes what arrived
    /// meanwhile, waiting on the socket only if nothing did.
    ///
    /// Why: a thread waiting on a UDP socket is woken by every datagram, from the sender's CPU (loopback)
    /// or its softirq, and each wake-up costs both sides far more than receiving the datagram.
    /// - At the benchmark's maximum rate, 27 % of the sender's time went into waking pixeld's receiver,
    ///   and it sent 20 % less to pixeld than to a do-nothing sink (session 9; a 100 µs pause from 150
    ///   datagrams/ms fixed that).
    /// - At 10k/s on a host where a wake-up costs ~25 µs (session 10), 57 % of the receive thread's time
    ///   was being switched in. Pausing for the writer's linger (1 ms) from 5 datagrams/ms cut pixeld's
    ///   CPU per datagram by a quarter to a third at 10k, 50k and 100k/s (`BENCHMARKS.md`).
    ///
    /// What a receive after a pause returns is stamped with the pause's start: it arrived after the empty
    /// receive just before. So the ack-latency histogram counts the pause, and the writer, whose linger
    /// runs from a batch's oldest stamp, commits what a pause as long as its linger gathered at once: the
    /// receiver lingers instead of the writer, one wake-up per linger instead of one per datagram, and a
    /// datagram waits for Redis as long as without the pause. (Half the linger was tried: the writer then
    /// committed each receive on its own, twice the commits, and Redis's CPU doubled at 10k/s — the
    /// second pause ended on the writer's deadline; see ``pauseNanoseconds(forLingerNanoseconds:)``.)
    /// (A pause of 100 µs after every receive of two or more datagrams, tried in session 9, raised the CPU
    /// per datagram by 20–40 % at 10k and 50k/s: at 10k/s a 100 µs pause gathers one datagram.)
    ///
    /// It is also the longest pause ``pauseNanoseconds(forLingerNanoseconds:)`` gives: a longer one
    /// would fill more of the socket's buffer at high rates (where the kernel caps
    /// `--receive-buffer-bytes` at Linux's default `rmem_max`, 208 KiB, the buffer holds a few hundred
    /// datagrams of 250 bytes: a few ms at 100k/s).
    package static let defaultPauseNanoseconds = 1_000_000

    /// What a pause cycle costs beyond the pause itself: the sleep's overshoot (a thread's timer slack
    /// is 50 µs by default), the wake-up, and routing and handing over what the pause gathered.
    /// Measured in session 11: two 0.9 ms pauses took 1.97–2.03 ms (19.7–20.3 messages per commit at
    /// 10k/s), so ~100 µs per cycle at 10k/s; this leaves half as much again.
    package static let pauseOverheadNanoseconds = 150_000

    /// The pause that lines a busy receiver's hand-overs up with the writer's linger, which runs from
    /// a batch's oldest stamp, i.e. from the start of the pause that gathered it:
    ///
    /// - **Up to 1 ms, the linger itself.** What a pause gathered is due as it is handed over, and the
    ///   writer commits it at once.
    /// - **Above 1 ms, a whole number of pause cycles that end before the linger does**: `linger /
    ///   ⌈linger / 1 ms⌉` less ``pauseOverheadNanoseconds``, so 0.85 ms for any whole number of
    ///   milliseconds from 2. With pauses of `linger / n`, n cycles (each a pause plus its overhead)
    ///   outlast the linger, and the writer, whose timer fires at its deadline, commits without the
    ///   last pause's datagrams: n − 1 pauses per commit, one for a 2 ms linger, so as many commits as
    ///   with 1 ms and a longer wait (1 ms pauses and a 2 ms linger in session 11: 11 messages per
    ///   commit at 10k/s, as with 1 ms, and an ack p99 of 2.5 ms).
    /// - **0 (no linger): no pause.**
    package static func pauseNanoseconds(forLingerNanoseconds linger: Int64) -> Int {
        let longest = Int64(defaultPauseNanoseconds)
        guard linger > longest else { return Int(max(0, linger)) }
        let pauses = (linger + longest - 1) / longest
        return Int(linger / pauses - Int64(pauseOverheadNanoseconds))
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
    ///   whole batch, the queue, the linger and the commit. After a pause it is the pause's start (see
    ///   ``defaultPauseNanoseconds``). It does not include the time a datagram sat in the kernel's socket
    ///   buffer before the call returned while the receive thread was busy routing the previous batch or
    ///   waiting for the CPU (the end-to-end probe of `bench/run.py` measures that part too).
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
