import Logging
import PixeldCLI
import RespBridge
import ServiceLifecycle
import SyslogIngest

/// `pixeld ingest` as a service: listeners → queue → writer, started in dependency order and stopped in
/// reverse on graceful shutdown (listeners drain their sockets, then the writer flushes the queue).
final class IngestService: Service, Sendable {
    let listeners: [any SyslogListener]
    let writer: LPushWriter
    let queue: PushQueue
    let metricsServer: MetricsHTTPServer?
    let shutdownTimeoutNanoseconds: Int64
    let logger: Logger

    init(
        listeners: [any SyslogListener],
        writer: LPushWriter,
        queue: PushQueue,
        metricsServer: MetricsHTTPServer?,
        shutdownTimeoutNanoseconds: Int64,
        logger: Logger
    ) {
        self.listeners = listeners
        self.writer = writer
        self.queue = queue
        self.metricsServer = metricsServer
        self.shutdownTimeoutNanoseconds = shutdownTimeoutNanoseconds
        self.logger = logger
    }

    func run() async throws {
        writer.start()
        for listener in listeners { listener.start() }
        metricsServer?.start()
        logger.info(
            "ingest ready",
            metadata: [
                "pixeld.listeners": .array(listeners.map { .string($0.statistics.label) }),
                // `pixeld-ingest` when `pixeld ingest` runs the lean program, else pixeld's own path.
                "pixeld.program": "\(CommandLine.arguments.first ?? "?")", "pixeld.version": "\(pixeldVersion)",
            ]
        )
        // Wait for SIGTERM/SIGINT (or the group ending).
        try? await gracefulShutdown()
        logger.info("shutting down: draining sockets and flushing to redis")
        // The deadline first: a receiver waiting on a full queue during an outage must not hold us up.
        writer.beginShutdown(timeoutNanoseconds: shutdownTimeoutNanoseconds)
        for listener in listeners { await listener.stop() }
        await writer.shutdown(timeoutNanoseconds: shutdownTimeoutNanoseconds)
        await metricsServer?.stop()
        let received = listeners.reduce(0) { $0 + $1.statistics.received }
        let dropped = listeners.reduce(0) { $0 + $1.statistics.droppedTotal }
        logger.info(
            "ingest stopped",
            metadata: [
                "received": "\(received)", "dropped": "\(dropped)", "spool_full": "\(writer.statistics.spoolFull)",
                "pushed": "\(writer.statistics.pushed)",
                "dead_lettered": "\(writer.statistics.deadLettered)", "lost": "\(writer.statistics.lost)",
                "spooled": "\(writer.statistics.spooled)", "recovered": "\(writer.statistics.recovered)",
            ]
        )
    }
}
