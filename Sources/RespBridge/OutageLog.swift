import Logging
import PixeldConcurrency

/// A Redis outage as the logs tell it, for the writer and the consumer alike: one warning when it
/// begins, debug lines while it lasts, and `redis available again` with its length when it ends —
/// not a warning per retry. The episode's bookkeeping is ``FailureEpisode``'s (as for a failing
/// handler); an outage gives no reminders (`failed` logs them at debug too).
struct OutageLog {
    private var episode = FailureEpisode()

    /// When the outage began (`MonotonicClock` nanoseconds); `nil` while Redis answers.
    var startedAt: Int64? { episode.startedAt }

    /// A failed call: logged at warning as `message` if it begins an outage, else at debug as
    /// `repeatMessage`.
    mutating func failed(_ error: any Error, logger: Logger, message: Logger.Message, repeatMessage: Logger.Message) {
        if case .began = episode.failed(now: MonotonicClock.nanoseconds()) {
            logger.warning(message, metadata: ["error": "\(error)"])
        } else {
            logger.debug(repeatMessage, metadata: ["error": "\(error)"])
        }
    }

    /// Ends the outage under way without a word, so that the next failure begins a new one.
    mutating func forget() { _ = episode.succeeded(now: 0) }

    /// Redis answered: ends the outage under way, if any, with `redis available again`.
    mutating func recovered(logger: Logger) {
        guard let ended = episode.succeeded(now: MonotonicClock.nanoseconds()) else { return }
        logger.info("redis available again", metadata: ["outage.ms": "\(ended.milliseconds)"])
    }
}
