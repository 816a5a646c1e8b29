/// A syslog facility: the kind of program that sent a message (RFC 5424 §6.2.1, table 1).
///
/// The raw value is the facility code, `0...23`; the wire PRI is `facility * 8 + severity`.
/// pixeld keeps `local3` by default (see ``FacilityFilter``).
public enum Facility: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    /// Kernel messages (0).
    case kern = 0
    /// User-level messages (1).
    case user
    /// Mail system (2).
    case mail
    /// System daemons (3).
    case daemon
    /// Security/authorization messages (4).
    case auth
    /// Messages generated internally by syslogd (5).
    case syslog
    /// Line printer subsystem (6).
    case lpr
    /// Network news subsystem (7).
    case news
    /// UUCP subsystem (8).
    case uucp
    /// Clock daemon (9).
    case cron
    /// Security/authorization messages, private (10).
    case authpriv
    /// FTP daemon (11).
    case ftp
    /// NTP subsystem (12).
    case ntp
    /// Log audit (13); FreeBSD's `security`.
    case audit
    /// Log alert (14); FreeBSD's `console`.
    case alert
    /// Clock daemon, as Solaris numbers it (15).
    case solarisCron
    /// Local use 0 (16).
    case local0
    /// Local use 1 (17).
    case local1
    /// Local use 2 (18).
    case local2
    /// Local use 3 (19), pixeld's default.
    case local3
    /// Local use 4 (20).
    case local4
    /// Local use 5 (21).
    case local5
    /// Local use 6 (22).
    case local6
    /// Local use 7 (23).
    case local7

    /// The canonical lower-case name, as written in configuration: `"local3"`, `"authpriv"`, `"solaris-cron"`.
    public var name: String {
        switch self {
        case .kern: "kern"
        case .user: "user"
        case .mail: "mail"
        case .daemon: "daemon"
        case .auth: "auth"
        case .syslog: "syslog"
        case .lpr: "lpr"
        case .news: "news"
        case .uucp: "uucp"
        case .cron: "cron"
        case .authpriv: "authpriv"
        case .ftp: "ftp"
        case .ntp: "ntp"
        case .audit: "audit"
        case .alert: "alert"
        case .solarisCron: "solaris-cron"
        case .local0: "local0"
        case .local1: "local1"
        case .local2: "local2"
        case .local3: "local3"
        case .local4: "local4"
        case .local5: "local5"
        case .local6: "local6"
        case .local7: "local7"
        }
    }

    /// The same as ``name``.
    public var description: String { self.name }

    /// Looks a facility up by name, ignoring ASCII case.
    ///
    /// Accepts every canonical ``name`` (`"local3"`, `"LOCAL3"`, `"Local3"`), the code itself (`"19"`), the
    /// names nginx gives codes 5 and 9 (`"intern"`, `"clock"`), FreeBSD's `"console"` (14), plus
    /// `"solariscron"`; `"security"` is ``auth`` (4), as glibc's syslog.h, util-linux's `logger -p` and
    /// rsyslog read it (FreeBSD numbers it 13: write `audit` or `13` for that). nginx calls code 15
    /// `cron`, where syslog.h (and this type) calls 9 `cron`: nginx's `facility=cron` is ``solarisCron``
    /// (or `"15"`).
    /// - Parameter name: The facility name or code.
    /// - Returns: `nil` when the name is unknown.
    public init?(name: String) {
        let lowered = Self.asciiLowercased(name)
        switch lowered {
        case "intern": self = .syslog
        case "clock": self = .cron
        case "security": self = .auth
        case "console": self = .alert
        case "solariscron": self = .solarisCron
        case _ where !lowered.isEmpty && lowered.utf8.count <= 2 && lowered.utf8.allSatisfy({ (0x30...0x39).contains($0) }):
            guard let code = UInt8(lowered), let facility = Facility(rawValue: code) else { return nil }
            self = facility
        default:
            guard let match = Self.allCases.first(where: { $0.name == lowered }) else { return nil }
            self = match
        }
    }

    private static func asciiLowercased(_ text: String) -> String {
        String(decoding: text.utf8.map { $0 >= 0x41 && $0 <= 0x5A ? $0 | 0x20 : $0 }, as: UTF8.self)
    }
}
