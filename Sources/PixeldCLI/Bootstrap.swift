import CPixeldSystem
package import Logging
#if canImport(Glibc)
import Glibc
#endif
import Metrics
package import Prometheus

/// The one place that bootstraps the logging and metrics systems for the process.
package enum Bootstrap {
    /// Sends logs to standard error at `level`, and returns the root logger.
    package static func logging(level: Logger.Level, label: String) -> Logger {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        var logger = Logger(label: label)
        logger.logLevel = level
        return logger
    }

    /// Routes swift-metrics into a Prometheus registry, with latency buckets from 100 µs to 10 s —
    /// finer between 1 and 5 ms, where the ingest ack latency lives with the default 1 ms linger and
    /// with a longer `--flush-interval-ms` (with only 1, 2 and 5, a p99 read from the histogram could not
    /// tell 1.1 ms from 1.9, nor 2.1 ms from 4.8).
    package static func metrics() -> PrometheusCollectorRegistry {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [
            .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .microseconds(1250),
            .microseconds(1500), .microseconds(1750), .milliseconds(2), .microseconds(2500), .milliseconds(3),
            .milliseconds(4), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
            .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(10),
        ]
        factory.defaultValueHistogramBuckets = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000]
        MetricsSystem.bootstrap(factory)
        return registry
    }

    /// For the long-running commands: lets only the code they use stay resident (see
    /// `cpixeld_release_code_pages`), once now (argument parsing is over) and once more `delay`
    /// later (when set-up is over and every thread runs). Start-up maps ~15 MB of this 35 MB binary
    /// that the ingest loop never runs again; without this, RSS measures the binary, not pixeld.
    package static func releaseCodePages(now logger: Logger, again delay: Duration) {
        log(released: cpixeld_release_code_pages(), logger: logger)
        Task.detached(priority: .background) {
            try? await Task.sleep(for: delay)
            log(released: cpixeld_release_code_pages(), logger: logger)
        }
    }

    /// Raises the soft limit on open files to the hard one, at most 65,536 (systemd starts services
    /// with 1,024 soft and 524,288 hard): each syslog TCP connection holds a descriptor, up to 1,024 of them, besides
    /// Redis, spool and metrics. Logged at debug level; a failure only means the limit stays.
    package static func raiseOpenFileLimit(logger: Logger) {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return }
        let before = limit.rlim_cur, wanted = min(limit.rlim_max, 65_536)  // (no more is ever needed)
        guard before < wanted else { return }
        limit.rlim_cur = wanted
        if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 {
            logger.debug("raised the open-file limit", metadata: ["from": "\(before)", "to": "\(wanted)"])
        }
    }

    private static func log(released: Int, logger: Logger) {
        logger.debug("released start-up code pages", metadata: ["bytes.mapped": "\(released)"])
    }
}
