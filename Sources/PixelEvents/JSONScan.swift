/// Skips, eight bytes at a time, the part of a string that JSON holds as it is: the bytes before
/// the first quote, backslash or control byte. Log lines' long strings (user agents, query strings,
/// URLs) rarely hold any, so readers and writers of JSON strings start with this and go on byte by
/// byte from where it stops.
public enum JSONScan {
    /// The offset of the first 8-byte word at or after `start` that holds a `"`, a `\` or a byte
    /// below 0x20, or of the last 0–7 bytes when no such word comes first. Every byte before the
    /// returned offset is none of those.
    public static func plainWords(in bytes: UnsafeBufferPointer<UInt8>, from start: Int) -> Int {
        guard let base = bytes.baseAddress else { return start }
        var index = start
        while index + 8 <= bytes.count {
            let word = UInt64(littleEndian: UnsafeRawPointer(base + index).loadUnaligned(as: UInt64.self))
            if hasByte(word, 0x22) || hasByte(word, 0x5C) || hasByteBelow(word, 0x20) { break }
            index += 8
        }
        return index
    }

    private static let ones: UInt64 = 0x0101_0101_0101_0101
    private static let highBits: UInt64 = 0x8080_8080_8080_8080

    /// Whether a byte of `word` is `byte`: `word ^ pattern` has a zero byte exactly there.
    @inline(__always)
    private static func hasByte(_ word: UInt64, _ byte: UInt8) -> Bool {
        hasByteBelow(word ^ (ones &* UInt64(byte)), 1)
    }

    /// Whether a byte of `word` is below `limit` (≤ 128): `(x - limit·0x01…) & ~x & 0x80…` is
    /// non-zero exactly then ("hasless", Bit Twiddling Hacks).
    @inline(__always)
    private static func hasByteBelow(_ word: UInt64, _ limit: UInt8) -> Bool {
        (word &- ones &* UInt64(limit)) & ~word & highBits != 0
    }
}
