/// Turns raw Redis list values straight into JSON lines, byte for byte what
/// `PixelEventDecoder.decode(value).appendJSONLine(to:)` writes, without building a ``PixelEvent``.
///
/// For the classic `$msec,$args` shape (what nginx's default escaping logs) the query string is
/// percent-decoded into one scratch buffer that the encoder keeps between calls, and the JSON is
/// written from byte ranges of it: no `String`, no ``QueryArg`` array per event. Everything else takes
/// the general path (``PixelEventDecoder/decode(_:maxBytes:)`` then ``PixelEvent/appendJSONLine(to:)``):
/// JSON-shaped values, more than 16 arguments, an argument name that is not ASCII (`String` equality,
/// which groups repeated names, is Unicode-aware), and a value that decodes to non-ASCII bytes is
/// written through `String(decoding:)` so that invalid UTF-8 becomes U+FFFD exactly as there.
///
/// Keep one encoder per consumer thread (it is a value with scratch buffers, not shared state).
public struct PixelEventLineEncoder: Sendable {
    /// Decoded names and values of the current event, back to back.
    private var scratch: [UInt8] = []
    /// Per argument: the name's and the value's ranges in `scratch`.
    private var names: [Range<Int>] = []
    private var values: [Range<Int>] = []

    /// The most arguments the direct path handles; more take the general path (hash-grouped there).
    static let maxDirectArguments = 16

    /// Creates an encoder with empty scratch buffers.
    public init() {}

    /// Decodes `value` and appends its JSON line (without a trailing newline) to `output`.
    /// - Parameters:
    ///   - value: one raw list value.
    ///   - output: where the line goes; nothing is appended when decoding fails.
    ///   - maxBytes: values longer than this are rejected without being read.
    /// - Throws: ``PixelDecodeError``, exactly as ``PixelEventDecoder/decode(_:maxBytes:)`` would.
    public mutating func appendJSONLine(
        of value: some Collection<UInt8>,
        to output: inout [UInt8],
        maxBytes: Int = PixelEventDecoder.defaultMaxBytes
    ) throws(PixelDecodeError) {
        let count = value.count
        guard count <= maxBytes else {
            throw PixelDecodeError(.tooLarge, "value is \(count) bytes, the limit is \(maxBytes)")
        }
        try withContiguousBytes(value) { buffer throws(PixelDecodeError) in
            try appendJSONLine(buffer: buffer, to: &output)
        }
    }

    private mutating func appendJSONLine(buffer: UnsafeBufferPointer<UInt8>, to output: inout [UInt8]) throws(PixelDecodeError) {
        guard case .classic(let line, let comma, let offset) = try PixelEventDecoder.shape(of: buffer) else {
            try PixelEventDecoder.decode(buffer: buffer).appendJSONLine(to: &output)
            return
        }
        let (timestamp, timestampValue) = try Timestamp.parse(line.slice(0..<comma), offset: offset)
        let rawArgs = line.slice((comma + 1)..<line.count)
        let direct: Bool
        if rawArgs.count == 1 && rawArgs[0] == ASCII.minus {
            names.removeAll(keepingCapacity: true)
            direct = true
        } else if let unescaped = NginxEscapes.unescapeDefault(rawArgs) {
            direct = unescaped.withUnsafeBufferPointer { splitArguments($0) }
        } else {
            direct = splitArguments(rawArgs)
        }
        guard direct else {
            try PixelEventDecoder.decode(buffer: buffer).appendJSONLine(to: &output)
            return
        }
        var writer = JSONWriter(appendingTo: output)
        output = []
        writer.appendRaw("{\"ts\":")
        // As PixelEvent.writeTimestamp; Timestamp.parse only returns canonical numbers for this shape.
        if Timestamp.isCanonicalJSONNumber(timestamp) {
            writer.appendRaw(timestamp)
        } else {
            writer.appendRaw(timestampValue.isFinite ? "\(timestampValue)" : "null")
        }
        writer.appendRaw(",\"args\":{")
        writeArguments(into: &writer)
        writer.append(ASCII.closeBrace)
        writer.append(ASCII.closeBrace)
        output = writer.bytes
    }

    /// Percent-decodes every argument of `query` into `scratch`, as ``QueryString`` parses it.
    /// - Returns: `false` when the event must take the general path (see the type's documentation).
    private mutating func splitArguments(_ query: UnsafeBufferPointer<UInt8>) -> Bool {
        scratch.removeAll(keepingCapacity: true)
        names.removeAll(keepingCapacity: true)
        values.removeAll(keepingCapacity: true)
        let end = query.count
        var start = 0
        while start < end {
            let segmentEnd = query.firstIndex(of: ASCII.ampersand, from: start, to: end)
            if segmentEnd > start {
                guard names.count < Self.maxDirectArguments else { return false }
                let equals = query.firstIndex(of: ASCII.equals, from: start, to: segmentEnd)
                let name = decodeComponent(query.slice(start..<equals))
                for index in name where scratch[index] >= 0x80 { return false }
                let value = equals < segmentEnd ? decodeComponent(query.slice((equals + 1)..<segmentEnd)) : scratch.count..<scratch.count
                names.append(name)
                values.append(value)
            }
            start = segmentEnd + 1
        }
        return true
    }

    /// Appends the `+`/`%HH`-decoded `bytes` to `scratch` and returns where they are.
    private mutating func decodeComponent(_ bytes: UnsafeBufferPointer<UInt8>) -> Range<Int> {
        let start = scratch.count
        QueryString.appendDecoded(bytes, to: &scratch)
        return start..<scratch.count
    }

    /// Writes the `args` members: a name given once maps to a string, a repeated name to an array of
    /// its values in order, placed where it first appeared (as `PixelEvent.appendJSONLine` does).
    private func writeArguments(into writer: inout JSONWriter) {
        scratch.withUnsafeBufferPointer { bytes in
            func same(_ a: Range<Int>, _ b: Range<Int>) -> Bool {
                guard a.count == b.count else { return false }
                var offset = 0
                while offset < a.count, bytes[a.lowerBound + offset] == bytes[b.lowerBound + offset] { offset += 1 }
                return offset == a.count
            }
            func writeValue(_ range: Range<Int>) {
                let value = bytes.slice(range)
                if value.contains(where: { $0 >= 0x80 }) {
                    writer.appendString(String(decoding: value, as: UTF8.self))
                } else {
                    writer.appendString(utf8: value)
                }
            }
            var first = true
            for index in names.indices {
                if names[..<index].contains(where: { same($0, names[index]) }) { continue }
                if !first { writer.append(ASCII.comma) }
                first = false
                writer.appendString(utf8: bytes.slice(names[index]))
                writer.append(ASCII.colon)
                let repeats = names[(index + 1)...].contains { same($0, names[index]) }
                if !repeats {
                    writeValue(values[index])
                    continue
                }
                writer.append(ASCII.openBracket)
                writeValue(values[index])
                for later in (index + 1)..<names.count where same(names[later], names[index]) {
                    writer.append(ASCII.comma)
                    writeValue(values[later])
                }
                writer.append(UInt8(ascii: "]"))
            }
        }
    }
}
