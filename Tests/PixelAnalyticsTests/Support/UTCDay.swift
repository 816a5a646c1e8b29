import Foundation
@testable import PixelAnalytics

/// The current UTC day, once it has at least `margin` seconds left: a test whose hits must all fall
/// on one day (and the day before, within `--max-age-hours`) waits past midnight when it is nearer.
/// Waits `margin` seconds and a second at most.
func dayAwayFromMidnight(margin: Double = 90) -> Day {
    let now = Date().timeIntervalSince1970
    let left = Day(timestamp: now).next.startTimestamp - now
    if left < margin { Thread.sleep(forTimeInterval: left + 1) }
    return Day(timestamp: Date().timeIntervalSince1970)
}
