/// Exponential reconnect backoff with a low cap and jitter, so that recovery starts within a second
/// of Redis coming back and many pixeld processes do not reconnect in lockstep.
public struct Backoff: Sendable, Equatable {
    /// The first delay, in milliseconds.
    public var initialMilliseconds: Int
    /// The largest delay, in milliseconds.
    public var maximumMilliseconds: Int
    /// Each failure multiplies the delay by this.
    public var multiplier: Int
    /// The fraction (0…1) of each delay that is randomised downwards.
    public var jitter: Double
    private var attempt = 0

    /// Creates a backoff: 50 ms, doubling, capped at 500 ms, with 20 % jitter by default.
    public init(initialMilliseconds: Int = 50, maximumMilliseconds: Int = 500, multiplier: Int = 2, jitter: Double = 0.2) {
        self.initialMilliseconds = initialMilliseconds
        self.maximumMilliseconds = maximumMilliseconds
        self.multiplier = multiplier
        self.jitter = jitter
    }

    /// The delay before the next attempt, in milliseconds; advances the attempt counter.
    public mutating func nextDelayMilliseconds<G: RandomNumberGenerator>(using generator: inout G) -> Int {
        var delay = initialMilliseconds
        for _ in 0..<min(attempt, 30) {
            delay = min(maximumMilliseconds, delay * multiplier)
        }
        attempt += 1
        let spread = Int(Double(delay) * jitter)
        return spread > 0 ? delay - Int.random(in: 0...spread, using: &generator) : delay
    }

    /// The delay before the next attempt with the system random generator.
    public mutating func nextDelayMilliseconds() -> Int {
        var generator = SystemRandomNumberGenerator()
        return nextDelayMilliseconds(using: &generator)
    }

    /// Forgets past failures after a success.
    public mutating func reset() { attempt = 0 }
}
