import PixeldConcurrency

/// A failure that repeats at every attempt until one succeeds (a handler that cannot write to a full
/// disk, retried every half second), as the log tells it: one line when it begins, debug lines while
/// it lasts with a reminder every ``reminderNanoseconds`` giving the attempts that failed so far, and
/// one line when an attempt succeeds again — not a line per attempt. ``OutageLog`` tells Redis
/// outages with it. The caller logs; this keeps the count and says which line is due.
public struct FailureEpisode: Sendable {
    /// What a failed attempt calls for.
    public enum Line: Equatable, Sendable {
        /// The first failure of an episode: the one line at its level (error, say).
        case began
        /// A failure when a reminder is due: `attempts` failed so far in the episode (this one
        /// included), which has lasted `milliseconds`.
        case reminder(attempts: Int, milliseconds: Int64)
        /// Any other failure of the episode: debug.
        case repeated(attempts: Int)
    }

    /// A reminder at most this often while the episode lasts (a minute by default).
    public let reminderNanoseconds: Int64
    /// When the episode under way began (`MonotonicClock` nanoseconds); `nil` while attempts succeed.
    public private(set) var startedAt: Int64?
    /// The attempts that failed in the episode under way.
    public private(set) var attempts = 0
    private var lastLineAt: Int64 = 0

    public init(reminderNanoseconds: Int64 = 60_000_000_000) {
        self.reminderNanoseconds = reminderNanoseconds
    }

    /// An attempt failed: which line it calls for.
    public mutating func failed(now: Int64) -> Line {
        attempts += 1
        guard let started = startedAt else {
            startedAt = now
            lastLineAt = now
            return .began
        }
        guard now - lastLineAt >= reminderNanoseconds else { return .repeated(attempts: attempts) }
        lastLineAt = now
        return .reminder(attempts: attempts, milliseconds: (now - started) / 1_000_000)
    }

    /// An episode that ended: its failed attempts and its length, for the line that says so.
    public struct Ended: Equatable, Sendable {
        public let attempts: Int
        public let milliseconds: Int64
    }

    /// An attempt succeeded: ends the episode under way, if any.
    public mutating func succeeded(now: Int64) -> Ended? {
        guard let started = startedAt else { return nil }
        defer {
            startedAt = nil
            attempts = 0
        }
        return Ended(attempts: attempts, milliseconds: (now - started) / 1_000_000)
    }
}

/// Occurrences that may come by the thousand a second (undecodable values sent to a dead-letter
/// list), as the log tells them: the first at once, then at most one line per ``intervalNanoseconds``
/// with the number since the previous line, so that however many there are the log says that they
/// happen and how many, in a line a minute at most. The occurrences in between are the caller's to
/// log at debug. A count still pending is given with the next call after the interval — occurrences
/// or not — so a burst is summed up by the first call a minute later.
public struct ThrottledCount: Sendable {
    /// A line at most this often (a minute by default).
    public let intervalNanoseconds: Int64
    /// Occurrences not given in a line yet.
    public private(set) var pending = 0
    /// All occurrences so far.
    public private(set) var total = 0
    private var lastLineAt: Int64?

    public init(intervalNanoseconds: Int64 = 60_000_000_000) {
        self.intervalNanoseconds = intervalNanoseconds
    }

    /// Adds `count` occurrences (0: none, just a chance to report what is pending); returns the
    /// number since the previous line when a line is due now, else `nil`.
    public mutating func add(_ count: Int, now: Int64) -> Int? {
        pending += count
        total += count
        guard pending > 0 else { return nil }
        if let last = lastLineAt, now - last < intervalNanoseconds { return nil }
        lastLineAt = now
        defer { pending = 0 }
        return pending
    }
}
