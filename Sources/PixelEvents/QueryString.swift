/// Parsing of URL query strings (`a=1&b=x%2Fy+z`) into ordered ``QueryArg`` pairs.
///
/// Rules, matching what browsers send and what `URLSearchParams` reads:
/// - pairs are separated by `&`; empty segments (`a=1&&b=2`) are skipped;
/// - the first `=` splits name from value; a segment without `=` has the value `""`;
/// - `+` is a space, `%HH` (either case) is the byte `0xHH`; a `%` not followed by two hex
///   digits (`%zz`, a trailing `%4`) is kept literally;
/// - decoded bytes that are not valid UTF-8 become U+FFFD;
/// - order and repeated names are kept exactly as sent.
public enum QueryString {
    /// Parses a raw (still percent-encoded) query string.
    /// - Parameter s: The bytes after `?`, without the `?`.
    /// - Returns: The decoded pairs, in input order, repeated names kept.
    public static func parse(_ s: some Collection<UInt8>) -> [QueryArg] {
        if let result = s.withContiguousStorageIfAvailable({ parse(buffer: $0) }) {
            return result
        }
        return Array(s).withUnsafeBufferPointer { parse(buffer: $0) }
    }

    /// Parses a raw (still percent-encoded) query string given as text.
    /// - Parameter s: The text after `?`, without the `?`.
    /// - Returns: The decoded pairs, in input order, repeated names kept.
    public static func parse(_ s: some StringProtocol) -> [QueryArg] {
        parse(Array(s.utf8))
    }

    /// Decodes one query component: `+` becomes a space and `%HH` the byte `0xHH`.
    /// - Parameter component: A name or value exactly as it appears in the query string.
    /// - Returns: The decoded text, with invalid UTF-8 replaced by U+FFFD.
    public static func decodeComponent(_ component: some Collection<UInt8>) -> String {
        if let result = component.withContiguousStorageIfAvailable({ decode($0) }) {
            return result
        }
        return Array(component).withUnsafeBufferPointer { decode($0) }
    }

    /// Parses a contiguous query string; the hot path used by ``PixelEventDecoder``.
    static func parse(buffer: UnsafeBufferPointer<UInt8>) -> [QueryArg] {
        let end = buffer.count
        guard end > 0 else {
            return []
        }
        var separators = 0
        for byte in buffer where byte == ASCII.ampersand {
            separators += 1
        }
        var result: [QueryArg] = []
        result.reserveCapacity(separators + 1)
        var start = 0
        while start < end {
            let segmentEnd = buffer.firstIndex(of: ASCII.ampersand, from: start, to: end)
            if segmentEnd > start {
                let equals = buffer.firstIndex(of: ASCII.equals, from: start, to: segmentEnd)
                let name = decode(buffer.slice(start..<equals))
                let value =
                    equals < segmentEnd
                    ? decode(buffer.slice((equals + 1)..<segmentEnd))
                    : ""
                result.append(QueryArg(name: name, value: value))
            }
            start = segmentEnd + 1
        }
        return result
    }

    /// Percent- and plus-decodes `bytes`, straight into the new string's storage (decoding never
    /// lengthens the text); invalid UTF-8 is repaired by the `String` initialiser.
    static func decode(_ bytes: UnsafeBufferPointer<UInt8>) -> String {
        guard bytes.contains(where: { $0 == ASCII.percent || $0 == ASCII.plus }) else {
            return String(decoding: bytes, as: UTF8.self)
        }
        return String(unsafeUninitializedCapacity: bytes.count) { decode(bytes, into: $0) }
    }

    /// Appends `bytes` to `output` with `+` as a space and `%HH` as the byte `0xHH` (a `%` not followed
    /// by two hex digits is kept); no UTF-8 check.
    static func appendDecoded(_ bytes: UnsafeBufferPointer<UInt8>, to output: inout [UInt8]) {
        let start = output.count
        output.append(contentsOf: repeatElement(0, count: bytes.count))
        let written = output.withUnsafeMutableBufferPointer { decode(bytes, into: UnsafeMutableBufferPointer(rebasing: $0[start...])) }
        output.removeLast(bytes.count - written)
    }

    /// Writes `bytes` decoded (`+` → space, `%HH` → the byte `0xHH`, a `%` not followed by two hex
    /// digits kept) to the start of `output`, which has room for `bytes.count`; returns the length.
    private static func decode(_ bytes: UnsafeBufferPointer<UInt8>, into output: UnsafeMutableBufferPointer<UInt8>) -> Int {
        let count = bytes.count
        var index = 0
        var written = 0
        while index < count {
            let byte = bytes[index]
            if byte == ASCII.plus {
                output[written] = ASCII.space
                index += 1
            } else if byte == ASCII.percent, index + 2 < count, let high = ASCII.hexValue(bytes[index + 1]),
                let low = ASCII.hexValue(bytes[index + 2])
            {
                output[written] = high << 4 | low
                index += 3
            } else {
                output[written] = byte
                index += 1
            }
            written += 1
        }
        return written
    }
}
