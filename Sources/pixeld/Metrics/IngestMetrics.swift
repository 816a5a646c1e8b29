import Prometheus
import RespBridge
import Synchronization
import SyslogIngest

/// Publishes the ingest totals as Prometheus text. The hot path counts with plain atomics
/// (``ListenerStatistics``, ``WriterStatistics``); at each scrape this copies them into the
/// swift-prometheus registry, which also holds the writer's swift-metrics histograms.
///
/// The figures keep the invariant, exact whenever traffic is quiet:
/// `Σ pixeld_ingest_datagrams_total = pixeld_redis_pushed_total + pixeld_queue_messages +
/// pixeld_spool_messages + pixeld_redis_dead_lettered_total + Σ pixeld_ingest_dropped_total`.
final class IngestMetrics: Sendable {
    private let registry: PrometheusCollectorRegistry
    private let listeners: [ListenerStatistics]
    private let writer: WriterStatistics
    private let queue: PushQueue
    private let exported = Mutex<[String: Int]>([:])

    init(registry: PrometheusCollectorRegistry, listeners: [ListenerStatistics], writer: WriterStatistics, queue: PushQueue) {
        self.registry = registry
        self.listeners = listeners
        self.writer = writer
        self.queue = queue
    }

    /// Prometheus text exposition of everything.
    func render() -> [UInt8] {
        exported.withLock { exported in
            func counter(_ name: String, _ labels: [(String, String)], _ value: Int) {
                let key = name + labels.map { "\($0.0)=\($0.1)" }.joined(separator: ",")
                let delta = value - exported[key, default: 0]
                // Made even at zero, so every series is visible from the first scrape.
                let series = registry.makeCounter(name: name, labels: labels)
                if delta > 0 { series.increment(by: Int64(delta)) }
                exported[key] = max(value, exported[key, default: 0])
            }
            func gauge(_ name: String, _ value: Int) { registry.makeGauge(name: name).set(Double(value)) }

            var droppedByReason: [String: Int] = [:]
            for listener in listeners {
                let labels = [("listener", listener.label)]
                counter("pixeld_ingest_datagrams_total", labels, listener.received)
                counter("pixeld_ingest_accepted_total", labels, listener.accepted)
                counter("pixeld_ingest_kernel_drops_total", labels, listener.kernelDrops)
                for reason in DropReason.allCases { droppedByReason[reason.rawValue, default: 0] += listener.dropped(reason) }
            }
            droppedByReason["spool_full"] = writer.spoolFull
            droppedByReason["redis_unavailable"] = writer.lost
            for (reason, value) in droppedByReason.sorted(by: { $0.key < $1.key }) {
                counter("pixeld_ingest_dropped_total", [("reason", reason)], value)
            }
            counter("pixeld_redis_pushed_total", [], writer.pushed)
            counter("pixeld_redis_dead_lettered_total", [], writer.deadLettered)
            counter("pixeld_redis_recovered_total", [], writer.recovered)
            counter("pixeld_redis_reconnects_total", [], writer.reconnects)
            counter("pixeld_redis_retries_total", [], writer.retries)
            gauge("pixeld_queue_messages", queue.pendingCount + writer.inFlight)
            gauge("pixeld_queue_bytes", queue.pendingBytes)
            gauge("pixeld_spool_messages", writer.spooled)
            return registry.emitToBuffer()
        }
    }

    /// The `/healthz` body: liveness plus whether Redis currently takes writes.
    func health() -> [UInt8] {
        let received = listeners.reduce(0) { $0 + $1.received }
        return Array(
            """
            {"status":"ok","received":\(received),"pushed":\(writer.pushed),"queued":\(queue.pendingCount + writer.inFlight),\
            "spooled":\(writer.spooled),"reconnects":\(writer.reconnects)}

            """.utf8
        )
    }
}
