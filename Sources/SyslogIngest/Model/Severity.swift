/// A syslog severity (RFC 5424 §6.2.1, table 2).
///
/// Ordered by raw value, so the most severe level is the smallest: `.emergency < .debug`, and
/// "at least as severe as warning" reads `severity <= .warning`.
public enum Severity: UInt8, Sendable, CaseIterable, Comparable, CustomStringConvertible {
    /// System is unusable (0).
    case emergency = 0
    /// Action must be taken immediately (1).
    case alert
    /// Critical conditions (2).
    case critical
    /// Error conditions (3).
    case error
    /// Warning conditions (4).
    case warning
    /// Normal but significant condition (5).
    case notice
    /// Informational messages (6).
    case informational
    /// Debug-level messages (7).
    case debug

    /// The short syslog name: `"emerg"`, `"alert"`, `"crit"`, `"err"`, `"warning"`, `"notice"`, `"info"`, `"debug"`.
    public var name: String {
        switch self {
        case .emergency: "emerg"
        case .alert: "alert"
        case .critical: "crit"
        case .error: "err"
        case .warning: "warning"
        case .notice: "notice"
        case .informational: "info"
        case .debug: "debug"
        }
    }

    /// The same as ``name``.
    public var description: String { self.name }

    /// Looks a severity up by its short or long name, ignoring ASCII case (`"info"`, `"informational"`, `"ERR"`,
    /// `"error"`, `"warn"`, `"panic"`).
    /// - Parameter name: The severity name.
    /// - Returns: `nil` when the name is unknown.
    public init?(name: String) {
        switch String(decoding: name.utf8.map { $0 >= 0x41 && $0 <= 0x5A ? $0 | 0x20 : $0 }, as: UTF8.self) {
        case "emerg", "emergency", "panic": self = .emergency
        case "alert": self = .alert
        case "crit", "critical": self = .critical
        case "err", "error": self = .error
        case "warning", "warn": self = .warning
        case "notice": self = .notice
        case "info", "informational": self = .informational
        case "debug": self = .debug
        default: return nil
        }
    }

    /// Orders by raw value: a more severe level compares smaller.
    public static func < (lhs: Severity, rhs: Severity) -> Bool {
        lhs.rawValue < rhs.rawValue
    }
}
