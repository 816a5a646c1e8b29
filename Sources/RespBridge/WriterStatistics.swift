import Synchronization

/// Running totals of the writer, read by the metrics exporter and by tests. Lock-free.
public final class WriterStatistics: Sendable {
    private let pushedCount = Atomic<Int>(0)
    private let deadLetteredCount = Atomic<Int>(0)
    private let lostCount = Atomic<Int>(0)
    private let batchCount = Atomic<Int>(0)
    private let reconnectCount = Atomic<Int>(0)
    private let retryCount = Atomic<Int>(0)

    /// Creates zeroed totals.
    public init() {}

    /// Messages acknowledged by Redis in their own list.
    public var pushed: Int { pushedCount.load(ordering: .relaxed) }
    /// Messages a permanent per-key error sent to the key's dead-letter list.
    public var deadLettered: Int { deadLetteredCount.load(ordering: .relaxed) }
    /// Messages that could be delivered neither to Redis nor to a dead-letter list before shutdown.
    public var lost: Int { lostCount.load(ordering: .relaxed) }
    /// Batches flushed.
    public var batches: Int { batchCount.load(ordering: .relaxed) }
    /// Connections (re)established after a failure.
    public var reconnects: Int { reconnectCount.load(ordering: .relaxed) }
    /// Command retries after transient errors or lost connections.
    public var retries: Int { retryCount.load(ordering: .relaxed) }

    func addPushed(_ n: Int) { pushedCount.add(n, ordering: .relaxed) }
    func addDeadLettered(_ n: Int) { deadLetteredCount.add(n, ordering: .relaxed) }
    func addLost(_ n: Int) { lostCount.add(n, ordering: .relaxed) }
    func addBatch() { batchCount.add(1, ordering: .relaxed) }
    func addReconnect() { reconnectCount.add(1, ordering: .relaxed) }
    func addRetry() { retryCount.add(1, ordering: .relaxed) }
}
