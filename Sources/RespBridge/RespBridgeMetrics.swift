import CoreMetrics
import Metrics
import PixeldConcurrency

/// The writer's swift-metrics instruments, declared once. Labels follow the Prometheus convention
/// (`pixeld_` prefix, unit suffix). Created from whatever `MetricsSystem` the executable bootstrapped;
/// without one they are no-ops.
struct RespBridgeMetrics: Sendable {
    /// Time from sending a commit to reading its reply.
    let commitDuration = Metrics.Timer(label: "pixeld_redis_commit_seconds")
    /// Messages per commit.
    let batchSize = Recorder(label: "pixeld_redis_batch_messages")
    /// Time from a datagram's arrival to Redis acknowledging its push.
    let ackLatency = Metrics.Timer(label: "pixeld_ingest_ack_latency_seconds")

    /// Records one commit's round trip and size.
    func recordCommit(nanoseconds: Int64, messages: Int) {
        commitDuration.recordNanoseconds(nanoseconds)
        batchSize.record(messages)
    }

    /// Records the latency of every entry of `batch` named in `indices`, as of now.
    func recordAcks(_ batch: PushBatch, _ indices: [Int]) {
        let now = MonotonicClock.nanoseconds()
        for index in indices {
            let acceptedAt = batch.entries[index].acceptedAt
            if acceptedAt > 0 { ackLatency.recordNanoseconds(now - acceptedAt) }
        }
    }
}

/// The reliable consumer's swift-metrics instruments, declared once (no-ops without a bootstrapped
/// `MetricsSystem`).
struct ConsumerMetrics: Sendable {
    /// Commands of an ack that failed inside its script (the others applied).
    let ackCommandErrors = Counter(label: "pixeld_consume_ack_command_errors_total")

    /// Acks refused because their condition did not hold or the heartbeat was not the run's (the
    /// batch is handled again).
    let ackConflicts = Counter(label: "pixeld_consume_ack_conflicts_total")
    /// Events whose ack this process saw applied (dead-lettered ones included): an ack applied but
    /// whose reply was lost is missing, and events whose ack a failover lost count twice (README).
    let consumed = Counter(label: "pixeld_consume_events_total")
    /// Events moved to the dead-letter list by acks this process saw applied.
    let deadLettered = Counter(label: "pixeld_consume_dead_lettered_total")
    /// Events returned to the list from dead consumers' processing lists.
    let recovered = Counter(label: "pixeld_consume_recovered_total")
    /// Failed attempts of the handler — preparing (its output cut back to what Redis acknowledged),
    /// processing or finishing a batch —, each retried.
    let handlerFailures = Counter(label: "pixeld_consume_handler_failures_total")

    /// Counts an applied ack's events.
    func recordAck(events: Int, deadLetters: Int) {
        consumed.increment(by: events)
        if deadLetters > 0 { deadLettered.increment(by: deadLetters) }
    }
    /// Counts events returned from a dead consumer's processing list.
    func recordRecovered(_ events: Int) { recovered.increment(by: events) }
    /// Counts one failed command of an ack.
    func recordAckCommandError() { ackCommandErrors.increment() }
    /// Counts one refused ack.
    func recordAckConflict() { ackConflicts.increment() }
    /// Counts one failed attempt of the handler.
    func recordHandlerFailure() { handlerFailures.increment() }
}
