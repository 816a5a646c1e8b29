/// The error thrown when a raw pixel value cannot be turned into a ``PixelEvent``.
///
/// The consumer moves such values to a dead-letter list and counts them by ``reason``; the
/// ``description`` is a single line that never contains the raw input, so it is safe to log.
public struct PixelDecodeError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Why a value could not be decoded; an extensible set of stable codes (use ``code`` as a metric label).
    public struct Reason: Hashable, Sendable, CustomStringConvertible {
        /// A stable, snake_case name for the reason, suitable as a metric label or log value.
        public let code: String

        private init(_ code: String) {
            self.code = code
        }

        /// The value was empty (after removing trailing `\n`, `\r` and NUL bytes).
        public static let empty = Reason("empty")
        /// The value is longer than the decoder's byte limit.
        public static let tooLarge = Reason("too_large")
        /// The value is neither a `$msec,$args` line nor a JSON object.
        public static let unknownShape = Reason("unknown_shape")
        /// The timestamp is not `digits[.digits]` (or is too long to be a real `$msec`).
        public static let badTimestamp = Reason("bad_timestamp")
        /// A JSON line has no `ts` member.
        public static let missingTimestamp = Reason("missing_timestamp")
        /// A JSON line is malformed, nested, has a duplicate key, or has too many members.
        public static let badJSON = Reason("bad_json")

        /// The same as ``code``.
        public var description: String { code }
    }

    /// Why decoding failed.
    public var reason: Reason
    /// A short human-readable explanation; never contains input bytes.
    public var detail: String
    /// The byte offset in the input where the problem was found, when known.
    public var offset: Int?

    /// Creates an error.
    /// - Parameters:
    ///   - reason: Why decoding failed.
    ///   - detail: A short explanation that does not quote the input.
    ///   - offset: The byte offset of the problem, when known.
    public init(_ reason: Reason, _ detail: String, offset: Int? = nil) {
        self.reason = reason
        self.detail = detail
        self.offset = offset
    }

    /// One line: `reason: detail [at byte N]`.
    public var description: String {
        if let offset {
            return "\(reason.code): \(detail) at byte \(offset)"
        }
        return "\(reason.code): \(detail)"
    }
}
