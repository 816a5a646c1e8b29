/// The wire format a message was parsed as.
public enum SyslogFormat: Sendable, Hashable {
    /// BSD syslog (RFC 3164), parsed leniently: nginx, `logger --rfc3164`, Python's `SysLogHandler`.
    case rfc3164
    /// The syslog protocol (RFC 5424), parsed strictly: `logger --rfc5424`, rsyslog forwarding.
    case rfc5424
}

/// One RFC 5424 `SD-ELEMENT`: an ID and its parameters, in wire order.
public struct StructuredDataElement: Sendable, Equatable {
    /// One `PARAM-NAME="PARAM-VALUE"` pair; the value is unescaped (`\"`, `\\`, `\]` become `"`, `\`, `]`).
    public struct Param: Sendable, Equatable {
        /// The parameter name.
        public var name: String
        /// The unescaped parameter value.
        public var value: String

        /// Creates a parameter.
        /// - Parameters:
        ///   - name: The parameter name.
        ///   - value: The unescaped value.
        public init(name: String, value: String) {
            self.name = name
            self.value = value
        }
    }

    /// The `SD-ID`, for example `"exampleSDID@32473"` or `"timeQuality"`.
    public var id: String
    /// The parameters, in wire order (names may repeat).
    public var parameters: [Param]

    /// Creates an element.
    /// - Parameters:
    ///   - id: The `SD-ID`.
    ///   - parameters: The parameters, in wire order.
    public init(id: String, parameters: [Param] = []) {
        self.id = id
        self.parameters = parameters
    }
}

/// A fully parsed syslog message, as ``SyslogParser/parse(_:)`` returns it.
///
/// ``program`` and ``message`` are the bytes ``IngestRules/route(_:)`` would use as the Redis key (before the
/// prefix) and value; they are kept as bytes because the value must arrive byte-equal.
public struct SyslogMessage: Sendable, Equatable {
    /// Facility and severity.
    public var priority: Priority
    /// The format the message was parsed as.
    public var format: SyslogFormat
    /// The timestamp as sent (`"Nov 22 12:38:13"`, `"2026-11-22T12:38:22.942276+00:00"`); `nil` when absent or
    /// the RFC 5424 NILVALUE.
    public var timestamp: String?
    /// The sending host as sent; `nil` when absent or NILVALUE.
    public var hostname: String?
    /// The program: the RFC 5424 APP-NAME, or the RFC 3164 TAG up to `[` or `:`. Never empty.
    public var program: [UInt8]
    /// The process ID (RFC 5424 PROCID, or the RFC 3164 `[pid]`); `nil` when absent or NILVALUE.
    public var procID: String?
    /// The RFC 5424 MSGID; `nil` for RFC 3164 and for NILVALUE.
    public var msgID: String?
    /// The RFC 5424 structured data; empty for RFC 3164 and for NILVALUE.
    public var structuredData: [StructuredDataElement]
    /// The message body, byte-exact (an RFC 5424 leading BOM removed). May be empty.
    public var message: [UInt8]

    /// Creates a message.
    /// - Parameters:
    ///   - priority: Facility and severity.
    ///   - format: The wire format.
    ///   - timestamp: The timestamp text, if any.
    ///   - hostname: The hostname, if any.
    ///   - program: The program bytes.
    ///   - procID: The process ID, if any.
    ///   - msgID: The RFC 5424 MSGID, if any.
    ///   - structuredData: The RFC 5424 structured data.
    ///   - message: The message bytes.
    public init(
        priority: Priority,
        format: SyslogFormat,
        timestamp: String? = nil,
        hostname: String? = nil,
        program: [UInt8],
        procID: String? = nil,
        msgID: String? = nil,
        structuredData: [StructuredDataElement] = [],
        message: [UInt8]
    ) {
        self.priority = priority
        self.format = format
        self.timestamp = timestamp
        self.hostname = hostname
        self.program = program
        self.procID = procID
        self.msgID = msgID
        self.structuredData = structuredData
        self.message = message
    }

    /// The facility, from ``priority``.
    public var facility: Facility { self.priority.facility }
    /// The severity, from ``priority``.
    public var severity: Severity { self.priority.severity }
}
