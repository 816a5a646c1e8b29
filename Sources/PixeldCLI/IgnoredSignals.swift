package import Logging
import UnixSignals

#if canImport(Glibc)
import Glibc
#endif

/// SIGHUP, SIGUSR1 and SIGUSR2: the signals daemons often take to reload their configuration or
/// reopen their log files, and whose default action ends a process. pixeld has no configuration file
/// to reload and logs to standard error, so it has nothing to do on them; but it must not die of them:
/// a `kill -HUP` sent out of habit (log rotation) or a terminal that closes would otherwise end
/// `pixeld ingest` at once, losing the messages of its memory queue uncounted. SIGTERM (or SIGINT)
/// stops pixeld, gracefully.
package enum IgnoredSignals {
    /// The signals.
    private static let signals: [UnixSignal] = [.sighup, .sigusr1, .sigusr2]

    /// Ignores the signals (`SIG_IGN`, for every thread of the process): the first thing
    /// ``AsyncParsableCommand/mainWithOneLineErrors()`` does, before the command starts any thread.
    /// Every command ignores them, the short ones too (a `replay` cut short leaves days half rebuilt).
    /// Ignored dispositions survive `exec`: a child must be given the defaults back (`Gzip.spawn`
    /// does).
    package static func ignore() {
        for signal in signals { _ = Glibc.signal(signal.rawValue, SIG_IGN) }
    }

    /// For the long-running commands (ingest, consume, serve): logs one line at notice level each
    /// time one of the signals arrives from now on, saying it was ignored and that SIGTERM stops
    /// pixeld. The signals stay ignored, through the same mechanism as the `ServiceGroup`'s SIGTERM
    /// (service-lifecycle's `UnixSignalsSequence`), watched until the process exits.
    /// - Parameter logger: the command's logger.
    package static func logWhenReceived(logger: Logger) async {
        let received = await UnixSignalsSequence(trapping: signals)
        Task.detached {
            for await signal in received {
                logger.notice(
                    "signal ignored: pixeld has no configuration file to reload and logs to standard error; SIGTERM stops it",
                    metadata: ["signal": "\(signal)"]
                )
            }
        }
    }
}
