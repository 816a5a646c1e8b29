/// Settings of the rollups.
public struct RollupConfiguration: Sendable {
    /// The key layout.
    public var keys: RollupKeys
    /// Days a day's rollups are kept after it ends (`--retention-days`).
    public var retentionDays: Int
    /// Distinct values kept per breakdown and day before the rest go to `(other)`.
    public var breakdownCap: Int
    /// A visit ends after this many seconds without a hit.
    public var sessionIdleSeconds: Int
    /// Seconds a visit's state is kept in Redis after its last hit was processed. Longer than the
    /// timeout so that a consumer that falls behind (or stops for a while) still finds it.
    public var sessionStateTTLSeconds: Int
    /// The prefix of visit state keys; ``RollupKeys/visitPrefix`` unless a replay isolates its own.
    public var visitPrefix: String

    /// Creates settings.
    /// - Parameters:
    ///   - keys: The key layout.
    ///   - retentionDays: Days to keep rollups after the day ends; 400 by default.
    ///   - breakdownCap: Distinct values per breakdown and day; 1000 by default.
    ///   - sessionIdleSeconds: The visit timeout; 30 minutes.
    ///   - sessionStateTTLSeconds: How long visit state outlives its last hit; 6 hours.
    public init(
        keys: RollupKeys = RollupKeys(), retentionDays: Int = 400, breakdownCap: Int = 1000,
        sessionIdleSeconds: Int = 1800, sessionStateTTLSeconds: Int = 21_600
    ) {
        self.keys = keys
        self.retentionDays = retentionDays
        self.breakdownCap = breakdownCap
        self.sessionIdleSeconds = sessionIdleSeconds
        self.sessionStateTTLSeconds = sessionStateTTLSeconds
        self.visitPrefix = keys.visitPrefix
    }

    /// The unix time at which the rollups of `day` expire.
    public func expireAt(_ day: Day) -> Int {
        (day.number + 1 + retentionDays) * 86_400
    }
}
