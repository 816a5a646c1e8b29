import SyslogIngest
import Testing

/// One datagram captured from a real sender, and the message it must parse to.
///
/// Every `bytes` below was received on loopback by a throwaway Python receiver (UDP and a unix datagram
/// socket) that printed each datagram's exact bytes; nothing here is hand-written except the RFC 5424 §6.5
/// examples, copied from the RFC text (`BOM` there is the three bytes EF BB BF, `\u{FEFF}` here).
/// Machine: Debian 12, hostname `vm`, clock in UTC.
struct Capture: Sendable, CustomTestStringConvertible {
    /// Sender, version and configuration that produced the bytes.
    let sender: String
    /// The datagram exactly as received.
    let bytes: [UInt8]
    /// What `SyslogParser.parse` must return; its `program`/`message` are also what `route` must select.
    let expected: SyslogMessage

    var testDescription: String { self.sender }

    init(_ sender: String, _ text: String, _ expected: SyslogMessage) {
        self.sender = sender
        self.bytes = Array(text.utf8)
        self.expected = expected
    }
}

/// Shorthand for the expected messages below.
func bsd(
    _ pri: Int,
    _ timestamp: String?,
    _ hostname: String?,
    _ program: String,
    pid: String? = nil,
    _ message: String
) -> SyslogMessage {
    SyslogMessage(
        priority: Priority(value: pri)!,
        format: .rfc3164,
        timestamp: timestamp,
        hostname: hostname,
        program: Array(program.utf8),
        procID: pid,
        message: Array(message.utf8)
    )
}

/// Shorthand for an expected RFC 5424 message.
func ietf(
    _ pri: Int,
    _ timestamp: String?,
    _ hostname: String?,
    _ program: String,
    pid: String? = nil,
    msgID: String? = nil,
    sd: [StructuredDataElement] = [],
    _ message: String
) -> SyslogMessage {
    SyslogMessage(
        priority: Priority(value: pri)!,
        format: .rfc5424,
        timestamp: timestamp,
        hostname: hostname,
        program: Array(program.utf8),
        procID: pid,
        msgID: msgID,
        structuredData: sd,
        message: Array(message.utf8)
    )
}

/// The `[timeQuality …]` element util-linux logger 2.38.1 adds unless `--rfc5424=notq`.
let loggerTimeQuality = StructuredDataElement(
    id: "timeQuality",
    parameters: [.init(name: "tzKnown", value: "1"), .init(name: "isSynced", value: "0")]
)

enum Fixtures {
    /// nginx 1.22.1 (Debian 12 package), `log_format pixelfmt '$msec,$args';` and
    /// `access_log syslog:server=127.0.0.1:PORT,facility=local3,tag=pixel pixelfmt;` (+ `,nohostname`,
    /// + `server=unix:/tmp/…sock`). The unix-socket datagrams were byte-identical to the UDP ones, from an
    /// unbound socket (empty peer address). nginx sends no trailing newline.
    static let nginx: [Capture] = [
        Capture(
            "nginx 1.22.1 access_log syslog UDP (same bytes over unix socket)",
            "<158>Nov 22 12:38:13 vm pixel: 1795351093.220,e=pageview&u=https%3A%2F%2Fex.com%2F",
            bsd(158, "Nov 22 12:38:13", "vm", "pixel", "1795351093.220,e=pageview&u=https%3A%2F%2Fex.com%2F")
        ),
        Capture(
            "nginx 1.22.1 access_log syslog nohostname",
            "<158>Nov 22 12:38:13 pixel: 1795351093.220,e=pageview&u=https%3A%2F%2Fex.com%2F",
            bsd(158, "Nov 22 12:38:13", nil, "pixel", "1795351093.220,e=pageview&u=https%3A%2F%2Fex.com%2F")
        ),
        Capture(
            "nginx 1.22.1 access_log, percent-encoded UTF-8 and quotes in $args",
            "<158>Nov 22 12:38:13 vm pixel: 1795351093.230,e=click&u=https%3A%2F%2Fex.com%2F%C3%A9t%C3%A9&p=%22q%22%20x",
            bsd(
                158,
                "Nov 22 12:38:13",
                "vm",
                "pixel",
                "1795351093.230,e=click&u=https%3A%2F%2Fex.com%2F%C3%A9t%C3%A9&p=%22q%22%20x"
            )
        ),
        Capture(
            "nginx 1.22.1 error_log syslog:…,tag=pixelerr (local3.err)",
            #"<155>Nov 22 12:38:13 vm pixelerr: 2026/11/22 12:38:13 [error] 4700#4700: *3 open() "/tmp/pcap/ngx/nonexistent/missing" failed (2: No such file or directory), client: 127.0.0.1, server: , request: "GET /missing HTTP/1.1", host: "127.0.0.1:18081""#,
            bsd(
                155,
                "Nov 22 12:38:13",
                "vm",
                "pixelerr",
                #"2026/11/22 12:38:13 [error] 4700#4700: *3 open() "/tmp/pcap/ngx/nonexistent/missing" failed (2: No such file or directory), client: 127.0.0.1, server: , request: "GET /missing HTTP/1.1", host: "127.0.0.1:18081""#
            )
        ),
        Capture(
            "nginx 1.22.1 log_format escape=json, severity=info, UA with quotes and UTF-8",
            #"<158>Nov 22 12:38:19 vm pixel: {"msec":"1795351099.776","id":"dbe9acdfa5e020d63bbc91c18342294c","args":"e=pageview&u=https%3A%2F%2Fex.com%2F","ua":"Mozilla/5.0 \"x\" é","ref":"https://ref.example/?a=1"}"#,
            bsd(
                158,
                "Nov 22 12:38:19",
                "vm",
                "pixel",
                #"{"msec":"1795351099.776","id":"dbe9acdfa5e020d63bbc91c18342294c","args":"e=pageview&u=https%3A%2F%2Fex.com%2F","ua":"Mozilla/5.0 \"x\" é","ref":"https://ref.example/?a=1"}"#
            )
        ),
        Capture(
            "nginx 1.22.1 log_format '  $args ' (leading and trailing spaces kept)",
            "<158>Nov 22 12:38:19 vm pixel:   e=pageview&u=https%3A%2F%2Fex.com%2F ",
            bsd(158, "Nov 22 12:38:19", "vm", "pixel", "  e=pageview&u=https%3A%2F%2Fex.com%2F ")
        ),
        Capture(
            "nginx 1.22.1 under faketime, single-digit day is space-padded",
            "<158>Nov  2 09:05:09 vm pixel: 1793610309.120,e=pageview&u=https%3A%2F%2Fex.com%2F",
            bsd(158, "Nov  2 09:05:09", "vm", "pixel", "1793610309.120,e=pageview&u=https%3A%2F%2Fex.com%2F")
        ),
        Capture(
            "nginx 1.22.1 under faketime, padded day, nohostname",
            "<158>Nov  2 09:05:09 pixel: 1793610309.120,e=pageview&u=https%3A%2F%2Fex.com%2F",
            bsd(158, "Nov  2 09:05:09", nil, "pixel", "1793610309.120,e=pageview&u=https%3A%2F%2Fex.com%2F")
        ),
    ]

    /// util-linux logger 2.38.1, `logger --rfc3164 -d -n 127.0.0.1 -P PORT -p local3.info -t pixel …`, and
    /// `logger -u SOCKET` without a format option (its local format: no hostname).
    static let logger3164: [Capture] = [
        Capture(
            "logger 2.38.1 --rfc3164 -d",
            "<158>Nov 22 12:38:22 vm pixel: hello",
            bsd(158, "Nov 22 12:38:22", "vm", "pixel", "hello")
        ),
        Capture(
            "logger 2.38.1 --rfc3164 -d -i (pid)",
            "<158>Nov 22 12:38:22 vm pixel[4809]: hello pid",
            bsd(158, "Nov 22 12:38:22", "vm", "pixel", pid: "4809", "hello pid")
        ),
        Capture(
            "logger 2.38.1 --rfc3164 -u unix socket",
            "<158>Nov 22 12:38:22 vm pixel: hello unix 3164",
            bsd(158, "Nov 22 12:38:22", "vm", "pixel", "hello unix 3164")
        ),
        Capture(
            "logger 2.38.1 -u unix socket, default local format (no hostname)",
            "<158>Nov 22 12:38:22 pixel: hello unix default",
            bsd(158, "Nov 22 12:38:22", nil, "pixel", "hello unix default")
        ),
        Capture(
            "logger 2.38.1 --rfc3164, leading spaces, quotes, UTF-8",
            #"<158>Nov 22 12:38:26 vm pixel:   two leading spaces, "quotes", é ü 日本"#,
            bsd(158, "Nov 22 12:38:26", "vm", "pixel", #"  two leading spaces, "quotes", é ü 日本"#)
        ),
        Capture(
            "logger 2.38.1 --rfc3164 under faketime, padded day",
            "<158>Nov  2 09:05:07 vm pixel: padded day",
            bsd(158, "Nov  2 09:05:07", "vm", "pixel", "padded day")
        ),
    ]

    /// util-linux logger 2.38.1, `logger [--rfc5424[=…]] -d -n 127.0.0.1 -P PORT -p local3.info -t pixel …`
    /// (RFC 5424 is logger's default for remote and `-u` sockets).
    static let logger5424: [Capture] = [
        Capture(
            "logger 2.38.1 --rfc5424 -d",
            #"<158>1 2026-11-22T12:38:22.942276+00:00 vm pixel - - [timeQuality tzKnown="1" isSynced="0"] hello 5424"#,
            ietf(158, "2026-11-22T12:38:22.942276+00:00", "vm", "pixel", sd: [loggerTimeQuality], "hello 5424")
        ),
        Capture(
            "logger 2.38.1 -d (default format is RFC 5424)",
            #"<158>1 2026-11-22T12:38:22.954232+00:00 vm pixel - - [timeQuality tzKnown="1" isSynced="0"] hello udp default"#,
            ietf(158, "2026-11-22T12:38:22.954232+00:00", "vm", "pixel", sd: [loggerTimeQuality], "hello udp default")
        ),
        Capture(
            "logger 2.38.1 --rfc5424=notq,nohost -p local3.notice",
            "<157>1 2026-11-22T12:38:22.945633+00:00 - pixel - - - hello notq nohost",
            ietf(157, "2026-11-22T12:38:22.945633+00:00", nil, "pixel", "hello notq nohost")
        ),
        Capture(
            "logger 2.38.1 --rfc5424=notime",
            "<158>1 - vm pixel - - - hello notime",
            ietf(158, nil, "vm", "pixel", "hello notime")
        ),
        Capture(
            "logger 2.38.1 --rfc5424 --msgid ID47 --sd-id exampleSDID@32473 --sd-param …",
            #"<158>1 2026-11-22T12:38:26.486989+00:00 vm pixel - ID47 [timeQuality tzKnown="1" isSynced="0"][exampleSDID@32473 iut="3" eventSource="Application"] hello sd"#,
            ietf(
                158,
                "2026-11-22T12:38:26.486989+00:00",
                "vm",
                "pixel",
                msgID: "ID47",
                sd: [
                    loggerTimeQuality,
                    StructuredDataElement(
                        id: "exampleSDID@32473",
                        parameters: [.init(name: "iut", value: "3"), .init(name: "eventSource", value: "Application")]
                    ),
                ],
                "hello sd"
            )
        ),
        Capture(
            #"logger 2.38.1 --rfc5424 --sd-id x@1 --sd-param 'a="q\"b\]c\\d"' (escapes)"#,
            #"<158>1 2026-11-22T12:38:26.489036+00:00 vm pixel - - [timeQuality tzKnown="1" isSynced="0"][x@1 a="q\"b\]c\\d"] esc sd"#,
            ietf(
                158,
                "2026-11-22T12:38:26.489036+00:00",
                "vm",
                "pixel",
                sd: [
                    loggerTimeQuality,
                    StructuredDataElement(id: "x@1", parameters: [.init(name: "a", value: #"q"b]c\d"#)]),
                ],
                "esc sd"
            )
        ),
        Capture(
            "logger 2.38.1 --rfc5424=notq --msgid M1",
            "<158>1 2026-11-22T12:38:26.492810+00:00 vm pixel - M1 - with msgid",
            ietf(158, "2026-11-22T12:38:26.492810+00:00", "vm", "pixel", msgID: "M1", "with msgid")
        ),
        Capture(
            "logger 2.38.1 --rfc5424 -i (PROCID)",
            #"<158>1 2026-11-22T12:38:26.494707+00:00 vm pixel 4838 - [timeQuality tzKnown="1" isSynced="0"] with pid"#,
            ietf(
                158,
                "2026-11-22T12:38:26.494707+00:00",
                "vm",
                "pixel",
                pid: "4838",
                sd: [loggerTimeQuality],
                "with pid"
            )
        ),
        Capture(
            "logger 2.38.1 --rfc5424 -u unix socket",
            #"<158>1 2026-11-22T12:38:22.950696+00:00 vm pixel - - [timeQuality tzKnown="1" isSynced="0"] hello unix 5424"#,
            ietf(158, "2026-11-22T12:38:22.950696+00:00", "vm", "pixel", sd: [loggerTimeQuality], "hello unix 5424")
        ),
    ]

    /// CPython 3.11.7 `logging.handlers.SysLogHandler(address=…, facility=LOG_LOCAL3)`: `<PRI>` + the formatted
    /// record + `\0`, with no timestamp or hostname at all.
    static let python: [Capture] = [
        Capture(
            "Python 3.11.7 SysLogHandler UDP, Formatter('%(name)s: %(message)s')",
            "<158>pixel: hello from python\0",
            bsd(158, nil, nil, "pixel", "hello from python")
        ),
        Capture(
            "Python 3.11.7 SysLogHandler UDP, warning with UTF-8",
            "<156>pixel: e=pageview&u=https%3A%2F%2Fex.com%2F é\0",
            bsd(156, nil, nil, "pixel", "e=pageview&u=https%3A%2F%2Fex.com%2F é")
        ),
        Capture(
            "Python 3.11.7 SysLogHandler UDP, no formatter (no tag: leading alphanumerics)",
            "<158>hello world\0",
            bsd(158, nil, nil, "hello", "world")
        ),
        Capture(
            "Python 3.11.7 SysLogHandler unix socket, Formatter('%(name)s: %(message)s')",
            "<158>pixel: via unix\0",
            bsd(158, nil, nil, "pixel", "via unix")
        ),
        Capture(
            "Python 3.11.7 SysLogHandler with ident='pixel: '",
            "<158>pixel: with ident\0",
            bsd(158, nil, nil, "pixel", "with ident")
        ),
    ]

    /// rsyslogd 8.2302.0 (Debian 12) receiving logger's message on imudp and forwarding it with omfwd/UDP using
    /// the built-in templates.
    static let rsyslog: [Capture] = [
        Capture(
            "rsyslog 8.2302.0 RSYSLOG_ForwardFormat (RFC 3339 timestamp), RFC 3164 input",
            "<158>2026-11-22T12:38:43+00:00 vm pixel: via rsyslog 1795351093.220,e=pageview",
            bsd(158, "2026-11-22T12:38:43+00:00", "vm", "pixel", "via rsyslog 1795351093.220,e=pageview")
        ),
        Capture(
            "rsyslog 8.2302.0 RSYSLOG_TraditionalForwardFormat, RFC 3164 input",
            "<158>Nov 22 12:38:43 vm pixel: via rsyslog 1795351093.220,e=pageview",
            bsd(158, "Nov 22 12:38:43", "vm", "pixel", "via rsyslog 1795351093.220,e=pageview")
        ),
        Capture(
            "rsyslog 8.2302.0 RSYSLOG_SyslogProtocol23Format, RFC 3164 input (MSG keeps its leading space, trailing LF)",
            "<158>1 2026-11-22T12:38:43+00:00 vm pixel - - -  via rsyslog 1795351093.220,e=pageview\n",
            ietf(158, "2026-11-22T12:38:43+00:00", "vm", "pixel", " via rsyslog 1795351093.220,e=pageview")
        ),
        Capture(
            "rsyslog 8.2302.0 RSYSLOG_ForwardFormat, RFC 5424 input (microseconds; TAG without colon)",
            "<158>2026-11-22T12:38:50.278946+00:00 vm pixel via rsyslog 5424",
            bsd(158, "2026-11-22T12:38:50.278946+00:00", "vm", "pixel", "via rsyslog 5424")
        ),
        Capture(
            "rsyslog 8.2302.0 RSYSLOG_TraditionalForwardFormat, RFC 5424 input (TAG without colon)",
            "<158>Nov 22 12:38:50 vm pixel via rsyslog 5424",
            bsd(158, "Nov 22 12:38:50", "vm", "pixel", "via rsyslog 5424")
        ),
        Capture(
            "rsyslog 8.2302.0 RSYSLOG_SyslogProtocol23Format, RFC 5424 input (trailing LF)",
            #"<158>1 2026-11-22T12:38:50.278946+00:00 vm pixel - - [timeQuality tzKnown="1" isSynced="0"] via rsyslog 5424"#
                + "\n",
            ietf(158, "2026-11-22T12:38:50.278946+00:00", "vm", "pixel", sd: [loggerTimeQuality], "via rsyslog 5424")
        ),
    ]

    static let exampleSD = StructuredDataElement(
        id: "exampleSDID@32473",
        parameters: [
            .init(name: "iut", value: "3"), .init(name: "eventSource", value: "Application"),
            .init(name: "eventID", value: "1011"),
        ]
    )

    /// RFC 5424 §6.5, examples 1–4, copied from the RFC text.
    static let rfc5424Examples: [Capture] = [
        Capture(
            "RFC 5424 6.5 example 1, with no STRUCTURED-DATA (BOM before MSG)",
            "<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - \u{FEFF}'su root' failed for lonvick on /dev/pts/8",
            ietf(
                34,
                "2003-10-11T22:14:15.003Z",
                "mymachine.example.com",
                "su",
                msgID: "ID47",
                "'su root' failed for lonvick on /dev/pts/8"
            )
        ),
        Capture(
            "RFC 5424 6.5 example 2, with no STRUCTURED-DATA",
            "<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time to make the do-nuts.",
            ietf(
                165,
                "2003-08-24T05:14:15.000003-07:00",
                "192.0.2.1",
                "myproc",
                pid: "8710",
                "%% It's time to make the do-nuts."
            )
        ),
        Capture(
            "RFC 5424 6.5 example 3, with STRUCTURED-DATA",
            #"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"] "#
                + "\u{FEFF}An application event log entry...",
            ietf(
                165,
                "2003-10-11T22:14:15.003Z",
                "mymachine.example.com",
                "evntslog",
                msgID: "ID47",
                sd: [exampleSD],
                "An application event log entry..."
            )
        ),
        Capture(
            "RFC 5424 6.5 example 4, STRUCTURED-DATA only",
            #"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"][examplePriority@32473 class="high"]"#,
            ietf(
                165,
                "2003-10-11T22:14:15.003Z",
                "mymachine.example.com",
                "evntslog",
                msgID: "ID47",
                sd: [
                    exampleSD,
                    StructuredDataElement(
                        id: "examplePriority@32473",
                        parameters: [.init(name: "class", value: "high")]
                    ),
                ],
                ""
            )
        ),
    ]

    static let rfc3164: [Capture] = nginx + logger3164 + python + rsyslog.filter { $0.expected.format == .rfc3164 }
    static let rfc5424: [Capture] = logger5424 + rsyslog.filter { $0.expected.format == .rfc5424 } + rfc5424Examples
    static let all: [Capture] = rfc3164 + rfc5424
}

// MARK: - Helpers shared by the suites

/// Routes `bytes` through `rules`.
func route(_ bytes: [UInt8], _ rules: IngestRules = IngestRules()) -> RouteDecision {
    bytes.withUnsafeBytes { rules.route($0) }
}

/// Routes `text`'s UTF-8 bytes through `rules`.
func route(_ text: String, _ rules: IngestRules = IngestRules()) -> RouteDecision {
    route(Array(text.utf8), rules)
}

/// The program and message bytes an accepting decision selects from `bytes`, or `nil` for a drop.
func accepted(_ decision: RouteDecision, in bytes: [UInt8]) -> (program: [UInt8], message: [UInt8])? {
    guard case .accept(let program, let message) = decision else { return nil }
    return (Array(bytes[program]), Array(bytes[message]))
}

/// Accept every facility and every valid program, so the parser's view can be checked on its own.
let permissiveRules = IngestRules(facilities: .all)

extension Array where Element == UInt8 {
    /// Decodes for readable failure messages.
    var text: String { String(decoding: self, as: UTF8.self) }
}
