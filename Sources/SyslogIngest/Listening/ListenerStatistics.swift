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
    /// (`/proc/net/udp`'s drops column), read through SO_RXQ_OVFL and SO_MEMINFO (see
    /// `DatagramListener.dropsReadIntervalNanoseconds`); 0 for unix sockets, which do not drop.
    public var kernelDrops: Int { kernelDropCount.load(ordering: .relaxed) }
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

    func setKernelDrops(_ value: Int) { kernelDropCount.store(value, ordering: .relaxed) }

    @inline(__always)
    private static func index(of reason: DropReason) -> Int {
        DropReason.allCases.firstIndex(of: reason)!
    }
}

/// One lock-free counter in a class box, so that counters can sit in an array.
private final class Counter: Sendable {
    let value = Atomic<Int>(0)
}
