import Synchronization

/// Remembers what the last few thousand distinct user agents were (bot verdict and families), since
/// real traffic repeats a small set of them: a repeat costs one hash lookup instead of a scan.
///
/// Bounded (cleared when full, so hostile traffic with endless distinct user agents costs a scan
/// each, never memory); held only in memory, never written anywhere.
final class UserAgentCache: Sendable {
    struct Entry: Sendable {
        var verdict: BotDetector.Verdict?
        var families: UserAgentClassifier.Families
    }

    static let capacity = 4096
    private let entries = Mutex<[String: Entry]>([:])

    /// What was remembered for `userAgent`, if anything.
    func entry(for userAgent: String) -> Entry? {
        entries.withLock { $0[userAgent] }
    }

    /// Remembers `entry` for `userAgent`. (Two calls rather than one taking a closure that makes the
    /// entry: such a closure captured the whole `HitProcessor`, which was copied for every hit.)
    func remember(_ entry: Entry, for userAgent: String) {
        entries.withLock { entries in
            if entries.count >= Self.capacity { entries.removeAll(keepingCapacity: true) }
            entries[userAgent] = entry
        }
    }
}
