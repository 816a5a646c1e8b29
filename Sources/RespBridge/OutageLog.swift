import Logging
import PixeldConcurrency

/// A Redis outage as the logs tell it, for the writer and the consumer alike: one warning when it
/// begins, debug lines while it lasts, and `redis available again` with its length when it ends —
/// not a warning per retry.
struct OutageLog {
    /// When the outage began (`MonotonicClock` nanoseconds); `nil` while Redis answers.
    private(set) var startedAt: Int64?

    /// A failed call: logged at warning as `message` if it begins an outage, else at debug as
    /// `repeatMessage`.
    mutating func failed(_ error: any Error, logger: Logger, message: Logger.Message, repeatMessage: Logger.Message) {
        if startedAt == nil {
            startedAt = MonotonicClock.nanoseconds()
            logger.warning(message, metadata: ["error": "\(error)"])
        } else {
            logger.debug(repeatMessage, metadata: ["error": "\(error)"])
        }
    }

    /// Ends the outage under way without a word, so that the next failure begins a new one.
    mutating func forget() { startedAt = nil }

    /// Redis answered: ends the outage under way, if any, with `redis available again`.
    mutating func recovered(logger: Logger) {
        guard let started = startedAt else { return }
        startedAt = nil
        logger.info("redis available again", metadata: ["outage.ms": "\((MonotonicClock.nanoseconds() - started) / 1_000_000)"])
    }
}
