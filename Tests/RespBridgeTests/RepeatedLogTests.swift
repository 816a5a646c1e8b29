import RespBridge
import Testing

/// The bookkeeping behind lines that would otherwise repeat by the thousand, on a clock given by hand.
struct RepeatedLogTests {
    private let second: Int64 = 1_000_000_000

    /// One line when the failures begin, a reminder a minute (the attempts so far), the rest debug;
    /// a success ends the episode with its attempts and length, and the next failure begins another.
    @Test func aFailureEpisodeHasOneBeginningARemindersAMinuteAndOneEnd() {
        var episode = FailureEpisode()
        #expect(episode.succeeded(now: 0) == nil)
        #expect(episode.failed(now: 10 * second) == .began)
        // Two attempts a second for two and a half minutes.
        var lines: [FailureEpisode.Line] = []
        for attempt in 1...300 { lines.append(episode.failed(now: 10 * second + Int64(attempt) * second / 2)) }
        let reminders = lines.filter { if case .reminder = $0 { true } else { false } }
        #expect(reminders == [.reminder(attempts: 121, milliseconds: 60_000), .reminder(attempts: 241, milliseconds: 120_000)])
        #expect(lines.first == .repeated(attempts: 2))
        let ended = episode.succeeded(now: 161 * second)
        #expect(ended?.attempts == 301)
        #expect(ended?.milliseconds == 151_000)
        #expect(episode.succeeded(now: 162 * second) == nil)
        #expect(episode.failed(now: 163 * second) == .began)
    }

    /// The first occurrences at once, then one line a minute at most with the count since the last
    /// one; what is pending is given by the first call after the minute, occurrences or not.
    @Test func aThrottledCountGivesTheFirstAtOnceThenOneLineAMinute() {
        var count = ThrottledCount()
        #expect(count.add(0, now: 0) == nil)
        #expect(count.add(512, now: 1 * second) == 512)
        // 5,000 more in the next second: nothing due.
        for batch in 1...10 { #expect(count.add(500, now: 1 * second + Int64(batch) * second / 10) == nil) }
        #expect(count.pending == 5_000)
        #expect(count.add(0, now: 30 * second) == nil)
        #expect(count.add(0, now: 61 * second) == 5_000)
        #expect(count.add(0, now: 200 * second) == nil)
        // After a quiet spell, the next occurrence at once.
        #expect(count.add(3, now: 300 * second) == 3)
        #expect(count.total == 5_515)
    }
}
