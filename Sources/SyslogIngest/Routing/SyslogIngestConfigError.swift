/// A configuration value for the ingest rules is invalid. Its ``description`` is one line that names the value.
///
/// Thrown while building ``FacilityFilter``, ``ProgramPolicy`` and ``IngestRules`` limits, so a bad flag fails at
/// start-up rather than dropping every datagram later.
public struct SyslogIngestConfigError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Which setting is wrong. An extensible set: switch with a `default` branch.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private enum Base: Sendable, Hashable {
            case unknownFacility
            case emptyFacilityList
            case invalidProgramName
            case emptyAllowList
            case invalidKeyPrefix
            case invalidMaxMessageBytes
        }

        private let base: Base

        private init(_ base: Base) { self.base = base }

        /// A facility name is not one of ``Facility``'s names.
        public static let unknownFacility = Code(.unknownFacility)
        /// A facility list names no facility, or has an empty item.
        public static let emptyFacilityList = Code(.emptyFacilityList)
        /// An allow-listed program name is not 1–64 bytes of `[A-Za-z0-9_.:/-]`.
        public static let invalidProgramName = Code(.invalidProgramName)
        /// An allow-list was given but is empty, so nothing could ever be accepted.
        public static let emptyAllowList = Code(.emptyAllowList)
        /// The Redis key prefix is too long or contains a space or control byte.
        public static let invalidKeyPrefix = Code(.invalidKeyPrefix)
        /// The maximum message size is out of range.
        public static let invalidMaxMessageBytes = Code(.invalidMaxMessageBytes)

        /// The code's name, for example `"unknownFacility"`.
        public var description: String {
            switch self.base {
            case .unknownFacility: "unknownFacility"
            case .emptyFacilityList: "emptyFacilityList"
            case .invalidProgramName: "invalidProgramName"
            case .emptyAllowList: "emptyAllowList"
            case .invalidKeyPrefix: "invalidKeyPrefix"
            case .invalidMaxMessageBytes: "invalidMaxMessageBytes"
            }
        }
    }

    /// Which setting is wrong.
    public var code: Code
    /// One human-readable line naming the bad value and what is expected.
    public var message: String

    /// Creates an error.
    /// - Parameters:
    ///   - code: Which setting is wrong.
    ///   - message: One line naming the bad value and what is expected.
    public init(code: Code, message: String) {
        self.code = code
        self.message = message
    }

    /// The ``message``.
    public var description: String { self.message }
}
