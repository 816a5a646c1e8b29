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
///
/// SIGXFSZ too, though no operator sends it: the kernel raises it at a write past the file size
/// limit (`ulimit -f`, systemd's `LimitFSIZE=`), and its default action ends the process (with a
/// core) and everything held in memory with it — unless the writing thread blocks it, as the
/// spool's and the archive's threads happen to, inheriting the mask of the Dispatch thread that
/// starts them (the main thread blocks nothing). Ignored, that write fails with `EFBIG` instead,
/// which is handled as any failed write: a spool write (`ingest --spool`) leaves its messages in
/// memory, counted in `pixeld_spool_write_errors_total`; an archive write (`consume --archive`)
/// fails the batch, kept and retried. It is not logged when received (it comes with every such write).
package enum IgnoredSignals {
    /// The signals an operator may send, logged when received (``logWhenReceived(logger:)``).
    private static let signals: [UnixSignal] = [.sighup, .sigusr1, .sigusr2]
    /// Signals ignored without a word: raised by the kernel, not sent (SIGXFSZ, see the type's documentation).
    private static let silent: [Int32] = [SIGXFSZ]

    /// Ignores the signals, SIGXFSZ included (`SIG_IGN`, for every thread of the process): the first thing
    /// ``AsyncParsableCommand/mainWithOneLineErrors()`` does, before the command starts any thread.
    /// Every command ignores them, the short ones too (a `replay` is stopped only by SIGINT or SIGTERM,
    /// where each day is whole: see ``Interruption``).
    /// Ignored dispositions survive `exec`: a child must be given the defaults back (`Gzip.spawn`
    /// does).
    package static func ignore() {
        for signal in signals.map(\.rawValue) + silent { _ = Glibc.signal(signal, SIG_IGN) }
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
