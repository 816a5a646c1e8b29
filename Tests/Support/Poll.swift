public import Foundation

/// Bounded polling: every wait in the support target goes through here, so none can spin forever.
public enum Poll {
    /// Calls `condition` until it returns `true` or `timeout` seconds have passed.
    /// - Parameters:
    ///   - timeout: the most seconds to wait.
    ///   - interval: seconds between calls.
    ///   - condition: checked at least once.
    /// - Returns: `true` when the condition held before the deadline.
    @discardableResult
    public static func until(
        timeout: TimeInterval,
        interval: TimeInterval = 0.02,
        _ condition: () throws -> Bool
    ) rethrows -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        let maxIterations = Int(timeout / max(interval, 0.001)) + 2
        for _ in 0..<maxIterations {
            if try condition() { return true }
            if Date() >= deadline { break }
            Thread.sleep(forTimeInterval: interval)
        }
        return try condition()
    }
}
