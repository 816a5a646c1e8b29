import Synchronization

/// Running totals of one listener, lock-free; read by the metrics exporter and by tests.
///
/// Invariant kept by the listener: `received == accepted + Σ dropped(reason)`.
public final class ListenerStatistics: Sendable {
    /// The listener's label (its address), used as the metric label.
    public let label: String
    private let receivedCount = Atomic<Int>(0)
    private let acceptedCount = Atomic<Int>(0)
    private let droppedCounts: [Counter]
    private let kernelDropCount = Atomic<Int>(0)
    private let pauseCount = Atomic<Int>(0)
    private let dropReader = Mutex<(@Sendable () -> UInt32?)?>(nil)

    /// Creates zeroed totals.
    public init(label: String) {
        self.label = label
        droppedCounts = DropReason.allCases.map { _ in Counter() }
    }

    /// Datagrams read from the socket.
    public var received: Int { receivedCount.load(ordering: .relaxed) }
    /// Datagrams accepted and handed to the writer.
    public var accepted: Int { acceptedCount.load(ordering: .relaxed) }
    /// Datagrams dropped for `reason`.
    public func dropped(_ reason: DropReason) -> Int {
        droppedCounts[Self.index(of: reason)].value.load(ordering: .relaxed)
    }
    /// Datagrams dropped for any reason.
    public var droppedTotal: Int { DropReason.allCases.reduce(0) { $0 + dropped($1) } }
    /// Datagrams the kernel dropped because the socket buffer was full: the socket's drop counter
    /// (`/proc/net/udp`'s drops column, `sk_drops`), as the received datagrams carry it (SO_RXQ_OVFL:
    /// the counter when that datagram was queued, so drops at the end of a burst never show there)
    /// and as read now for this call (SO_MEMINFO, one system call) where a socket is attached — its
    /// receiver may be held up on a full queue, which is when the kernel drops. Both read one
    /// counter, which only grows: the statistic is the largest reading, never a sum. 0 for unix
    /// sockets, whose senders wait or get `EAGAIN` instead.
    public var kernelDrops: Int {
        if let now = dropReader.withLock({ $0 })?() { raiseKernelDrops(to: Int(now)) }
        return kernelDropCount.load(ordering: .relaxed)
    }
    /// Times the receiver found its busy UDP socket empty and paused before waiting on it.
    package var pauses: Int { pauseCount.load(ordering: .relaxed) }
    func addPause() { pauseCount.add(1, ordering: .relaxed) }

    func add(received: Int, accepted: Int) {
        receivedCount.add(received, ordering: .relaxed)
        acceptedCount.add(accepted, ordering: .relaxed)
    }

    func addDropped(_ reason: DropReason) {
        droppedCounts[Self.index(of: reason)].value.add(1, ordering: .relaxed)
    }

    /// Raises the kernel's drop count to `value` (readings of the one counter, which only grows, come
    /// from the listener's thread and from readers of ``kernelDrops``: the largest is the latest).
    func raiseKernelDrops(to value: Int) {
        var current = kernelDropCount.load(ordering: .relaxed)
        while value > current {
            let (exchanged, original) = kernelDropCount.compareExchange(expected: current, desired: value, ordering: .relaxed)
            if exchanged { return }
            current = original
        }
    }

    /// Attaches the socket's drop counter, read by ``kernelDrops``.
    func readKernelDrops(with reader: @escaping @Sendable () -> UInt32?) { dropReader.withLock { $0 = reader } }

    @inline(__always)
    private static func index(of reason: DropReason) -> Int {
        DropReason.allCases.firstIndex(of: reason)!
    }
}

/// One lock-free counter in a class box, so that counters can sit in an array.
private final class Counter: Sendable {
    let value = Atomic<Int>(0)
}
