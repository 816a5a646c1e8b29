/// A syslog priority: the facility and severity carried by the `<PRI>` prefix of every message.
///
/// The wire value is `facility * 8 + severity`, `0...191`: `<158>` is `local3.info`.
public struct Priority: Sendable, Hashable, CustomStringConvertible {
    /// The largest valid PRI value, `local7.debug`.
    public static let maxValue = 191

    /// The facility, the PRI value divided by 8.
    public var facility: Facility
    /// The severity, the PRI value modulo 8.
    public var severity: Severity

    /// Creates a priority from its two parts.
    /// - Parameters:
    ///   - facility: The facility.
    ///   - severity: The severity.
    public init(facility: Facility, severity: Severity) {
        self.facility = facility
        self.severity = severity
    }

    /// Decodes a PRI value.
    /// - Parameter value: The number between `<` and `>`.
    /// - Returns: `nil` unless `value` is in `0...191`.
    public init?(value: Int) {
        guard value >= 0, value <= Self.maxValue,
            let facility = Facility(rawValue: UInt8(truncatingIfNeeded: value >> 3)),
            let severity = Severity(rawValue: UInt8(truncatingIfNeeded: value & 7))
        else { return nil }
        self.init(facility: facility, severity: severity)
    }

    /// The PRI value, `facility * 8 + severity`.
    public var value: Int { Int(self.facility.rawValue) << 3 | Int(self.severity.rawValue) }

    /// `facility.severity`, for example `"local3.info"`.
    public var description: String { "\(self.facility.name).\(self.severity.name)" }
}
