/// A small, non-allocating forward cursor over the bytes of one datagram.
///
/// All positions are offsets from the start of `bytes`, so ranges found with a cursor index straight into the
/// buffer that was handed to ``IngestRules/route(_:)``. `end` may be shorter than `bytes.count` (trailing
/// `\n`, `\r`, `\0` trimmed); the cursor never reads at or past `end`.
struct ByteCursor {
    /// The whole datagram.
    let bytes: UnsafeRawBufferPointer
    /// One past the last byte the cursor may read.
    let end: Int
    /// The offset of the next byte to read.
    var index: Int

    init(_ bytes: UnsafeRawBufferPointer, index: Int = 0, end: Int) {
        precondition(index >= 0 && end <= bytes.count)
        self.bytes = bytes
        self.index = index
        self.end = end
    }

    var isAtEnd: Bool { self.index >= self.end }

    var remaining: Int { self.end - self.index }

    /// The next byte, or `nil` at the end.
    @inline(__always)
    func peek() -> UInt8? {
        self.index < self.end ? self.bytes[self.index] : nil
    }

    /// The byte `offset` positions ahead of ``index``, or `nil` when that is at or past the end.
    @inline(__always)
    func peek(ahead offset: Int) -> UInt8? {
        let position = self.index + offset
        return position < self.end ? self.bytes[position] : nil
    }

    @inline(__always)
    mutating func advance(by count: Int = 1) {
        self.index = min(self.index + count, self.end)
    }

    /// Consumes `byte` if it is next.
    @inline(__always)
    mutating func consume(_ byte: UInt8) -> Bool {
        guard self.index < self.end, self.bytes[self.index] == byte else { return false }
        self.index += 1
        return true
    }

    /// Consumes bytes while `predicate` holds, at most `limit` of them; returns the consumed range.
    @inline(__always)
    @discardableResult
    mutating func consume(while predicate: (UInt8) -> Bool, limit: Int = .max) -> Range<Int> {
        let start = self.index
        let stop = limit >= self.end - start ? self.end : start + limit
        while self.index < stop, predicate(self.bytes[self.index]) {
            self.index += 1
        }
        return start..<self.index
    }

    /// Consumes exactly `count` ASCII digits and returns their value, or returns `nil` and consumes nothing.
    @inline(__always)
    mutating func consumeDigits(exactly count: Int) -> Int? {
        guard self.remaining >= count else { return nil }
        var value = 0
        for offset in 0..<count {
            let byte = self.bytes[self.index + offset]
            guard ASCII.isDigit(byte) else { return nil }
            value = value * 10 + Int(byte &- ASCII.zero)
        }
        self.index += count
        return value
    }
}

/// Byte constants and character classes used by the parsers.
enum ASCII {
    static let nul: UInt8 = 0x00
    static let lineFeed: UInt8 = 0x0A
    static let carriageReturn: UInt8 = 0x0D
    static let space: UInt8 = 0x20
    static let quote: UInt8 = 0x22
    static let percent: UInt8 = 0x25
    static let plus: UInt8 = 0x2B
    static let hyphen: UInt8 = 0x2D
    static let period: UInt8 = 0x2E
    static let slash: UInt8 = 0x2F
    static let zero: UInt8 = 0x30
    static let one: UInt8 = 0x31
    static let colon: UInt8 = 0x3A
    static let lessThan: UInt8 = 0x3C
    static let equals: UInt8 = 0x3D
    static let greaterThan: UInt8 = 0x3E
    static let upperT: UInt8 = 0x54
    static let upperZ: UInt8 = 0x5A
    static let leftBracket: UInt8 = 0x5B
    static let backslash: UInt8 = 0x5C
    static let rightBracket: UInt8 = 0x5D
    static let underscore: UInt8 = 0x5F
    static let lowerT: UInt8 = 0x74
    static let lowerZ: UInt8 = 0x7A

    /// The UTF-8 byte order mark, which RFC 5424 puts before a UTF-8 MSG.
    static let byteOrderMark: (UInt8, UInt8, UInt8) = (0xEF, 0xBB, 0xBF)

    @inline(__always)
    static func isDigit(_ byte: UInt8) -> Bool { byte &- 0x30 < 10 }

    @inline(__always)
    static func isLetter(_ byte: UInt8) -> Bool { (byte | 0x20) &- 0x61 < 26 }

    @inline(__always)
    static func isAlphanumeric(_ byte: UInt8) -> Bool { isDigit(byte) || isLetter(byte) }

    @inline(__always)
    static func isHexDigit(_ byte: UInt8) -> Bool { isDigit(byte) || (byte | 0x20) &- 0x61 < 6 }

    /// `PRINTUSASCII` of RFC 5424: `%d33-126`.
    @inline(__always)
    static func isPrintUSASCII(_ byte: UInt8) -> Bool { byte &- 33 < 94 }

    /// The characters rsyslog's pmrfc3164 accepts in a hostname: `[A-Za-z0-9._-]`.
    @inline(__always)
    static func isHostnameCharacter(_ byte: UInt8) -> Bool {
        isAlphanumeric(byte) || byte == period || byte == underscore || byte == hyphen
    }

    /// ASCII lower-casing of a letter; other bytes are returned unchanged.
    @inline(__always)
    static func lowercased(_ byte: UInt8) -> UInt8 { isLetter(byte) ? byte | 0x20 : byte }
}
