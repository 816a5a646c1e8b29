/// One decoded pixel hit: its nginx timestamp, its query arguments and any other logged fields.
///
/// Produced by ``PixelEventDecoder/decode(_:maxBytes:)``; rendered with ``jsonLine()``.
public struct PixelEvent: Sendable, Equatable {
    /// One extra member of a JSON log line (anything other than `ts` and `args`), as text.
    public struct Field: Sendable, Equatable, Hashable {
        /// The member name, e.g. `"ua"`.
        public var name: String
        /// The member value as text; JSON numbers keep their literal text, `true`/`false` become
        /// `"true"`/`"false"`, and `null` becomes `""` (as nginx logs an empty variable).
        public var value: String

        /// Creates a field.
        /// - Parameters:
        ///   - name: The member name.
        ///   - value: The member value as text.
        public init(name: String, value: String) {
            self.name = name
            self.value = value
        }
    }

    /// The timestamp exactly as nginx wrote it (`$msec`, e.g. `"1379183721.115"`), with redundant
    /// leading zeros removed so that it is always a valid JSON number.
    public var timestampText: String
    /// The timestamp in seconds since the Unix epoch.
    public var timestamp: Double
    /// The decoded query arguments, in request order, repeated names kept.
    public var args: [QueryArg]
    /// The other members of a JSON log line, in input order; empty for a `$msec,$args` line.
    public var fields: [Field]

    /// Creates an event.
    /// - Parameters:
    ///   - timestampText: The timestamp as decimal text (`digits[.digits]`).
    ///   - timestamp: The same timestamp as a number of seconds since the Unix epoch.
    ///   - args: The decoded query arguments, in order.
    ///   - fields: Extra named fields, in order; names `ts` and `args` should not be used.
    public init(timestampText: String, timestamp: Double, args: [QueryArg] = [], fields: [Field] = []) {
        self.timestampText = timestampText
        self.timestamp = timestamp
        self.args = args
        self.fields = fields
    }

    /// All values of the query argument `name`, in request order.
    /// - Parameter name: The decoded argument name.
    /// - Returns: Every value given for `name`; empty when it is absent.
    public func values(of name: String) -> [String] {
        args.compactMap { $0.name == name ? $0.value : nil }
    }

    /// The first value of the query argument `name`, or `nil` when it is absent.
    /// - Parameter name: The decoded argument name.
    public func firstValue(of name: String) -> String? {
        args.first { $0.name == name }?.value
    }

    /// The value of the extra field `name` (e.g. `"ua"`), or `nil` when it is absent.
    /// - Parameter name: The field name.
    public func field(_ name: String) -> String? {
        fields.first { $0.name == name }?.value
    }
}
