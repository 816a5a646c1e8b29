#if canImport(Glibc)
import Glibc
#endif

/// Where a syslog listener receives: a UDP address (IPv4 or IPv6) or a unix datagram socket path.
public enum ListenAddress: Sendable, Equatable, CustomStringConvertible {
    /// UDP on `host` (an IPv4 or IPv6 literal, without brackets) and `port` (0 picks a free port).
    case udp(host: String, port: Int)
    /// A unix datagram socket at `path`, created with permission bits `mode` (0666 by default, like
    /// /dev/log, so that nginx's unprivileged workers can write to it).
    case unix(path: String, mode: UInt32)

    /// Parses `HOST:PORT` or `[IPV6]:PORT` as a UDP address.
    /// - Throws: ``SyslogIngestError`` with code `.configuration` and a one-line explanation.
    public static func udp(parsing text: String) throws(SyslogIngestError) -> ListenAddress {
        let (host, port) = try parseHostPort(text, flag: "udp")
        return .udp(host: host, port: port)
    }

    /// Splits `HOST:PORT` or `[IPV6]:PORT`; the host must be a numeric address.
    public static func parseHostPort(_ text: String, flag: String) throws(SyslogIngestError) -> (String, Int) {
        func fail(_ why: String) -> SyslogIngestError {
            SyslogIngestError(
                code: .configuration,
                operation: "--\(flag) '\(text)'",
                message: "\(why) (expected HOST:PORT or [IPV6]:PORT)"
            )
        }
        var host: Substring
        var portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { throw fail("unterminated IPv6 address") }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { throw fail("missing port") }
            portText = rest.dropFirst()
        } else {
            guard let colon = text.lastIndex(of: ":") else { throw fail("missing port") }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            if host.contains(":") { throw fail("put IPv6 addresses in brackets") }
        }
        guard let port = Int(portText), (0...65535).contains(port) else { throw fail("bad port") }
        if host == "localhost" { host = "127.0.0.1" }
        guard !host.isEmpty else { throw fail("missing host") }
        guard isNumericAddress(String(host)) else { throw fail("the host must be a numeric IPv4 or IPv6 address, or localhost") }
        return (String(host), port)
    }

    /// Whether `host` is an IPv4 or IPv6 literal (a name would only fail later, at bind time).
    static func isNumericAddress(_ host: String) -> Bool {
        var buffer = in6_addr()
        return inet_pton(AF_INET, host, &buffer) == 1 || inet_pton(AF_INET6, host, &buffer) == 1
    }

    /// The address as the operator wrote it, used as the `listener` metric label.
    public var description: String {
        switch self {
        case .udp(let host, let port): return host.contains(":") ? "udp://[\(host)]:\(port)" : "udp://\(host):\(port)"
        case .unix(let path, _): return "unix://\(path)"
        }
    }
}
