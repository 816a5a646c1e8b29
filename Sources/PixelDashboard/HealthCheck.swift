import RespBridge

/// `/healthz`'s check of Redis, which anyone may ask for: one check at a time, however many callers,
/// and its result reused for ``maxAge``. The check's `PING` waits for a read connection beyond the
/// queue's limit (busy is not down), so without this a flood of `/healthz` while Redis is slow would
/// queue one `PING` per request without bound, and every real request behind them would be refused
/// as busy (a `503`).
actor HealthCheck {
    /// How long a finished check's result is given to later callers.
    let maxAge: Duration
    private let check: @Sendable () async -> RespError?
    /// The check under way; every caller meanwhile waits for it.
    private var inFlight: Task<RespError?, Never>?
    private var last: (at: ContinuousClock.Instant, failure: RespError?)?

    /// - Parameters:
    ///   - maxAge: How long a result is reused.
    ///   - check: One check of Redis: `nil` when it answered, else why not.
    init(maxAge: Duration = .seconds(1), check: @escaping @Sendable () async -> RespError?) {
        self.maxAge = maxAge
        self.check = check
    }

    /// `nil` when Redis answered the last check (at most ``maxAge`` old, or the one under way, or a
    /// new one), else why it did not.
    func failure() async -> RespError? {
        if let last, ContinuousClock.now - last.at < maxAge { return last.failure }
        if let inFlight { return await inFlight.value }
        let task = Task { await check() }
        inFlight = task
        let failure = await task.value
        inFlight = nil
        last = (ContinuousClock.now, failure)
        return failure
    }
}
