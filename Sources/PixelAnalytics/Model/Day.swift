/// A UTC calendar day, the unit of every rollup and of the daily visitor key.
///
/// Stored as the number of days since 1970-01-01; rendered as `YYYY-MM-DD`.
public struct Day: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// Days since 1970-01-01 (negative before it).
    public var number: Int

    /// Creates a day from its number of days since 1970-01-01.
    /// - Parameter number: Days since the Unix epoch.
    public init(number: Int) {
        self.number = number
    }

    /// The UTC day that contains `timestamp`, clamped to years 0–9999 (hostile input can carry any
    /// number; it is dropped by the time window, but must not trap first).
    /// - Parameter timestamp: Seconds since the Unix epoch.
    public init(timestamp: Double) {
        let days = (timestamp / 86_400).rounded(.down)
        self.number = days.isNaN ? 0 : Int(min(max(days, Self.minimumNumber), Self.maximumNumber))
    }

    /// 0000-01-01 and 9999-12-31.
    static let minimumNumber = -719_528.0
    static let maximumNumber = 2_932_896.0

    /// Parses `YYYY-MM-DD` (a valid Gregorian date).
    /// - Parameter text: The date text.
    /// - Returns: `nil` when `text` is not a valid date in that form.
    public init?(_ text: String) {
        let bytes = Array(text.utf8)
        guard bytes.count == 10, bytes[4] == UInt8(ascii: "-"), bytes[7] == UInt8(ascii: "-") else { return nil }
        func number(_ range: Range<Int>) -> Int? {
            var value = 0
            for index in range {
                let digit = bytes[index] &- UInt8(ascii: "0")
                guard digit < 10 else { return nil }
                value = value * 10 + Int(digit)
            }
            return value
        }
        guard let year = number(0..<4), let month = number(5..<7), let day = number(8..<10),
            (1...12).contains(month), day >= 1, day <= Self.daysIn(month: month, year: year)
        else { return nil }
        self.number = Self.daysFromCivil(year: year, month: month, day: day)
    }

    /// The first second of the day, in seconds since the Unix epoch.
    public var startTimestamp: Double { Double(number) * 86_400 }

    /// The day before.
    public var previous: Day { Day(number: number - 1) }

    /// The day after.
    public var next: Day { Day(number: number + 1) }

    /// `YYYY-MM-DD`.
    public var description: String {
        let (year, month, day) = civil
        var text = String(year)
        while text.utf8.count < 4 { text = "0" + text }
        return text + (month < 10 ? "-0" : "-") + String(month) + (day < 10 ? "-0" : "-") + String(day)
    }

    /// Year, month (1–12) and day of month (1–31).
    public var civil: (year: Int, month: Int, day: Int) {
        // Howard Hinnant's civil_from_days.
        let z = number + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    public static func < (lhs: Day, rhs: Day) -> Bool { lhs.number < rhs.number }

    static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = month > 2 ? month - 3 : month + 9
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }
}
