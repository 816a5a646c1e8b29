/// Why a datagram could not be parsed, and where.
///
/// Thrown by ``SyslogParser``; ``IngestRules/route(_:)`` maps it to a
/// ``DropReason`` (``Code/noProgram`` to ``DropReason/noProgram``, everything else to
/// ``DropReason/malformed``).
public struct SyslogParseError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What went wrong. An extensible set: switch with a `default` branch.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private enum Base: UInt8, Sendable, Hashable {
            case empty
            case missingPriority
            case badPriority
            case badTimestamp
            case badHeader
            case badStructuredData
            case unterminatedStructuredData
            case noProgram
        }

        private let base: Base

        private init(_ base: Base) { self.base = base }

        /// Nothing left once trailing `\n`, `\r` and `\0` are stripped.
        public static let empty = Code(.empty)
        /// The datagram does not start with `<`.
        public static let missingPriority = Code(.missingPriority)
        /// `<` is not followed by 1–3 digits and `>`, or the value is above 191.
        public static let badPriority = Code(.badPriority)
        /// An RFC 5424 TIMESTAMP is neither `-` nor an RFC 3339 date-time.
        public static let badTimestamp = Code(.badTimestamp)
        /// An RFC 5424 HOSTNAME, APP-NAME, PROCID or MSGID is missing, too long or not printable ASCII.
        public static let badHeader = Code(.badHeader)
        /// RFC 5424 STRUCTURED-DATA is neither `-` nor well-formed SD-ELEMENTs followed by SP or the end.
        public static let badStructuredData = Code(.badStructuredData)
        /// The datagram ends inside an RFC 5424 SD-ELEMENT.
        public static let unterminatedStructuredData = Code(.unterminatedStructuredData)
        /// The message is well-formed but names no program: RFC 5424 APP-NAME `-`, or an empty RFC 3164 TAG.
        public static let noProgram = Code(.noProgram)

        /// The code's name, for example `"badPriority"`.
        public var description: String {
            switch self.base {
            case .empty: "empty"
            case .missingPriority: "missingPriority"
            case .badPriority: "badPriority"
            case .badTimestamp: "badTimestamp"
            case .badHeader: "badHeader"
            case .badStructuredData: "badStructuredData"
            case .unterminatedStructuredData: "unterminatedStructuredData"
            case .noProgram: "noProgram"
            }
        }
    }

    /// What went wrong.
    public var code: Code
    /// The byte offset into the datagram where the problem was found.
    public var offset: Int

    /// Creates an error.
    /// - Parameters:
    ///   - code: What went wrong.
    ///   - offset: The byte offset into the datagram where it was found.
    public init(code: Code, offset: Int) {
        self.code = code
        self.offset = offset
    }

    /// One line: `syslog parse error: badPriority at byte 4`.
    public var description: String { "syslog parse error: \(self.code) at byte \(self.offset)" }
}
