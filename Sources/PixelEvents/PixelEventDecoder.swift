/// Turns one raw Redis list value (what nginx logged for a pixel hit) into a ``PixelEvent``.
///
/// Two shapes are accepted:
/// - **classic** `$msec,$args`, e.g. `1379183721.115,foo=bar&baz=1`: everything before the first
///   comma is the timestamp, everything after it the query string. nginx's default log escaping
///   is undone first (`\x22` → `"`, `\xC3\xA9` → `é`), and `-` (nginx's empty value) means no args;
/// - **JSON**, a flat object from `log_format … escape=json`, e.g.
///   `{"ts":1763805600.123,"args":"e=pageview","ua":"…"}`: `ts` (number or string) is required,
///   `args` (string) is parsed as a query string, and every other member becomes a
///   ``PixelEvent/Field``. The reader is lenient where nginx is not strict JSON: raw non-ASCII
///   bytes, `\xHH` escapes (a JSON-shaped format without `escape=json`), unknown escapes kept as
///   written; nested objects and arrays are rejected.
///
/// Shape detection: trailing `\n`, `\r` and NUL bytes, a leading UTF-8 BOM and then leading
/// whitespace are ignored; a value whose first other byte is `{` is JSON; otherwise a value
/// containing a comma is classic; anything else is ``PixelDecodeError/Reason/unknownShape``.
///
/// Decoding never traps on any input: every failure is a thrown ``PixelDecodeError``.
public enum PixelEventDecoder {
    /// The default limit on the size of one value: 64 KiB, just above ingest's default `--max-message-bytes` (65535).
    public static let defaultMaxBytes = 65_536

    /// Decodes one raw value.
    /// - Parameters:
    ///   - bytes: The value as stored in Redis (UTF-8 expected, not required).
    ///   - maxBytes: Values longer than this are rejected without being read.
    /// - Returns: The decoded event.
    /// - Throws: ``PixelDecodeError`` with reason `.empty`, `.tooLarge`, `.unknownShape`,
    ///   `.badTimestamp`, `.missingTimestamp` or `.badJSON`.
    public static func decode(
        _ bytes: some Collection<UInt8>,
        maxBytes: Int = defaultMaxBytes
    ) throws(PixelDecodeError) -> PixelEvent {
        let count = bytes.count
        guard count <= maxBytes else {
            throw PixelDecodeError(.tooLarge, "value is \(count) bytes, the limit is \(maxBytes)")
        }
        return try withContiguousBytes(bytes) { buffer throws(PixelDecodeError) in
            try decode(buffer: buffer)
        }
    }

    static func decode(buffer whole: UnsafeBufferPointer<UInt8>) throws(PixelDecodeError) -> PixelEvent {
        switch try shape(of: whole) {
        case .json(let buffer, let offset):
            return try decodeJSON(buffer, offset: offset)
        case .classic(let buffer, let comma, let offset):
            return try decodeClassic(buffer, comma: comma, offset: offset)
        }
    }

    /// A value's shape, with the ignored leading and trailing bytes cut off.
    enum Shape {
        /// A JSON object; `offset` is where `buffer` starts in the whole value.
        case json(UnsafeBufferPointer<UInt8>, offset: Int)
        /// `$msec,$args`, `comma` the index of the first comma in `buffer`.
        case classic(UnsafeBufferPointer<UInt8>, comma: Int, offset: Int)
    }

    /// Detects the shape as described in the type's documentation.
    /// - Throws: ``PixelDecodeError`` with reason `.empty` or `.unknownShape`.
    static func shape(of whole: UnsafeBufferPointer<UInt8>) throws(PixelDecodeError) -> Shape {
        var end = whole.count
        while end > 0, whole[end - 1] == ASCII.lineFeed || whole[end - 1] == ASCII.carriageReturn || whole[end - 1] == 0
        {
            end -= 1
        }
        var start = 0
        if end >= 3, whole[0] == 0xEF, whole[1] == 0xBB, whole[2] == 0xBF {
            start = 3
        }
        guard start < end else {
            throw PixelDecodeError(.empty, "value is empty")
        }
        let buffer = whole.slice(start..<end)
        var first = 0
        while first < buffer.count && ASCII.isWhitespace(buffer[first]) {
            first += 1
        }
        if first < buffer.count && buffer[first] == ASCII.openBrace {
            return .json(buffer, offset: start)
        }
        // (Leading whitespace: rsyslog relaying as RFC 5424 keeps the space after nginx's `pixel:`.)
        let classic = buffer.slice(first..<buffer.count)
        let comma = classic.firstIndex(of: ASCII.comma, from: 0, to: classic.count)
        guard comma < classic.count else {
            throw PixelDecodeError(.unknownShape, "neither a $msec,$args line nor a JSON object")
        }
        return .classic(classic, comma: comma, offset: start + first)
    }

    /// `$msec,$args`, as written by nginx's default (`escape=default`) log escaping.
    private static func decodeClassic(
        _ buffer: UnsafeBufferPointer<UInt8>,
        comma: Int,
        offset: Int
    ) throws(PixelDecodeError) -> PixelEvent {
        let (text, value) = try Timestamp.parse(buffer.slice(0..<comma), offset: offset)
        let rawArgs = buffer.slice((comma + 1)..<buffer.count)
        let args: [QueryArg]
        if rawArgs.count == 1 && rawArgs[0] == ASCII.minus {
            args = []
        } else if let unescaped = NginxEscapes.unescapeDefault(rawArgs) {
            args = unescaped.withUnsafeBufferPointer { QueryString.parse(buffer: $0) }
        } else {
            args = QueryString.parse(buffer: rawArgs)
        }
        return PixelEvent(timestampText: text, timestamp: value, args: args)
    }

    private static let tsHash = JSONLineReader.Key.hash("ts")
    private static let argsHash = JSONLineReader.Key.hash("args")

    /// A flat JSON object from an `escape=json` log format.
    private static func decodeJSON(
        _ buffer: UnsafeBufferPointer<UInt8>,
        offset: Int
    ) throws(PixelDecodeError) -> PixelEvent {
        var timestamp: (text: String, value: Double)?
        var args: [QueryArg] = []
        var sawArgs = false
        var fields: [PixelEvent.Field] = []
        fields.reserveCapacity(12)
        // The members' name hashes, for the duplicate check: the first 16 (nginx formats log ~10) without
        // an allocation.
        var fieldHashes = InlineArray<16, UInt64>(repeating: 0)
        var moreFieldHashes: [UInt64] = []
        var reader = JSONLineReader(buffer)
        do {
            try reader.readObject { key, value, valueOffset, reader throws(PixelDecodeError) in
                switch key.hash {
                case tsHash where key.name == "ts":
                    guard timestamp == nil else {
                        throw PixelDecodeError(.badJSON, "duplicate member \"ts\"", offset: valueOffset)
                    }
                    switch value {
                    case .number(let range):
                        timestamp = try Timestamp.parse(buffer.slice(range), offset: valueOffset)
                    case .string(let token):
                        timestamp = try reader.withBytes(token) { bytes throws(PixelDecodeError) in
                            try Timestamp.parse(bytes, offset: valueOffset + 1)
                        }
                    case .literal:
                        throw PixelDecodeError(.badTimestamp, "ts is not a number", offset: valueOffset)
                    }
                case argsHash where key.name == "args":
                    guard !sawArgs else {
                        throw PixelDecodeError(.badJSON, "duplicate member \"args\"", offset: valueOffset)
                    }
                    sawArgs = true
                    switch value {
                    case .string(let token):
                        args = reader.withBytes(token) { QueryString.parse(buffer: $0) }
                    case .literal(""):
                        args = []
                    case .number, .literal:
                        throw PixelDecodeError(.badJSON, "args is not a string", offset: valueOffset)
                    }
                default:
                    let isDuplicate = fields.indices.contains { index in
                        let hash = index < fieldHashes.count ? fieldHashes[index] : moreFieldHashes[index - fieldHashes.count]
                        return hash == key.hash && fields[index].name == key.name
                    }
                    guard !isDuplicate else {
                        throw PixelDecodeError(.badJSON, "duplicate member name", offset: valueOffset)
                    }
                    let text: String
                    switch value {
                    case .string(let token):
                        text = reader.string(token)
                    case .number(let range):
                        text = String(decoding: buffer.slice(range), as: UTF8.self)
                    case .literal(let literal):
                        text = literal
                    }
                    if fields.count < fieldHashes.count {
                        fieldHashes[fields.count] = key.hash
                    } else {
                        moreFieldHashes.append(key.hash)
                    }
                    fields.append(PixelEvent.Field(name: key.name, value: text))
                }
            }
        } catch {
            throw error.shifted(by: offset)
        }
        guard let timestamp else {
            throw PixelDecodeError(.missingTimestamp, "JSON object has no \"ts\" member")
        }
        return PixelEvent(timestampText: timestamp.text, timestamp: timestamp.value, args: args, fields: fields)
    }
}

extension PixelDecodeError {
    /// The same error with its offset moved by `delta` (offsets are reported against the whole input).
    fileprivate func shifted(by delta: Int) -> PixelDecodeError {
        var copy = self
        copy.offset = offset.map { $0 + delta }
        return copy
    }
}
