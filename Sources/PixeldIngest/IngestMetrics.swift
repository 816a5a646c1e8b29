import PixeldConcurrency
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
                let series = registry.makeCounter(descriptor: Self.descriptor(name), labels: labels)
                if delta > 0 { series.increment(by: Int64(delta)) }
                exported[key] = max(value, exported[key, default: 0])
            }
            func gauge(_ name: String, _ value: Int) { registry.makeGauge(descriptor: Self.descriptor(name)).set(Double(value)) }

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
            counter("pixeld_redis_trimmed_total", [], writer.trimmed)
            counter("pixeld_redis_reconnects_total", [], writer.reconnects)
            counter("pixeld_redis_retries_total", [], writer.retries)
            counter("pixeld_spool_write_errors_total", [], writer.spoolWriteErrors)
            gauge("pixeld_queue_messages", queue.pendingCount + writer.inFlight)
            gauge("pixeld_queue_bytes", queue.pendingFootprintBytes)
            gauge("pixeld_spool_messages", writer.spooled)
            return registry.emitToBuffer()
        }
    }

    private static let help: [String: String] = [
        "pixeld_ingest_datagrams_total": "Datagrams (or TCP frames) received, per listener.",
        "pixeld_ingest_accepted_total": "Messages accepted for Redis, per listener.",
        "pixeld_ingest_kernel_drops_total": "Datagrams the kernel dropped on a full socket buffer (the socket's drops in /proc/net/udp), per listener.",
        "pixeld_ingest_dropped_total": "Messages dropped, by reason.",
        "pixeld_redis_pushed_total": "Messages of this run committed to their Redis list.",
        "pixeld_redis_dead_lettered_total": "Messages sent to <key>:dead after a permanent per-key error.",
        "pixeld_redis_recovered_total": "Messages from a previous run's spool committed by this run.",
        "pixeld_redis_trimmed_total": "Oldest values trimmed from lists at --max-list-length (policy drop-oldest).",
        "pixeld_redis_reconnects_total": "Redis connections re-established after a failure.",
        "pixeld_redis_retries_total": "Failed commit attempts (connection errors, timeouts, transient server errors).",
        "pixeld_spool_write_errors_total": "Spool writes that failed (disk full or read-only); their messages stayed in memory.",
        "pixeld_queue_messages": "Messages accepted and held in memory (queue and in-flight batch).",
        "pixeld_queue_bytes": "Bytes waiting in the memory queue.",
        "pixeld_spool_messages": "Messages waiting in the disk spool.",
    ]

    private static func descriptor(_ name: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help[name] ?? name)
    }

    /// How long a commit may wait for Redis before `/healthz` says `"redis":"slow"` (a commit takes
    /// about a millisecond).
    static let slowCommitNanoseconds: Int64 = 1_000_000_000

    /// The `/healthz` body: liveness plus whether Redis currently takes writes.
    func health() -> [UInt8] {
        let received = listeners.reduce(0) { $0 + $1.received }
        // Still 200 when Redis fails: ingest keeps accepting (queued or spooled), and a restart would
        // only lose what the memory queue holds.
        let state: String
        switch writer.redis {
        case .unknown, .ok:
            if let waiting = writer.commitWaitingNanoseconds, waiting >= Self.slowCommitNanoseconds {
                // A stall: no error yet (that takes the 5 s command timeout), but no answer either.
                state = #""status":"degraded","redis":"slow","waiting_ms":\#(waiting / 1_000_000)"#
            } else {
                state = writer.redis == .ok ? #""status":"ok","redis":"ok""# : #""status":"ok","redis":"unknown""#
            }
        case .failing(let reason, let since):
            state = #""status":"degraded","redis":"\#(reason)","failing_ms":\#((MonotonicClock.nanoseconds() - since) / 1_000_000)"#
        }
        return Array(
            """
            {\(state),"received":\(received),\
            "pushed":\(writer.pushed),"queued":\(queue.pendingCount + writer.inFlight),"spooled":\(writer.spooled),\
            "reconnects":\(writer.reconnects)}

            """.utf8
        )
    }
}
