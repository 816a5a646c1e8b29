/// A small, lenient reader for the flat JSON objects nginx writes with `log_format … escape=json`.
///
/// Accepts exactly one object whose members are strings, numbers, `true`, `false` or `null`;
/// nested objects and arrays are rejected. Lenient where nginx output is not strict JSON:
/// - raw bytes (non-ASCII, invalid UTF-8, even raw control characters) inside strings are kept
///   (nginx passes non-ASCII bytes through unescaped); invalid UTF-8 later becomes U+FFFD;
/// - `\xHH` inside strings is read as the byte `0xHH`, so a JSON-shaped `log_format` written
///   without `escape=json` (nginx's default `\x22` escaping) still decodes;
/// - an unknown escape such as `\q` is kept literally; a lone UTF-16 surrogate becomes U+FFFD.
struct JSONLineReader {
    /// A decoded JSON string: either a range of the input (no escapes) or the reader's scratch buffer.
    enum StringToken {
        case input(Range<Int>)
        case scratch
    }

    /// A member name with a hash of its bytes, so duplicate checks rarely compare strings.
    struct Key {
        /// The decoded name.
        var name: String
        /// FNV-1a of the name's UTF-8 — after invalid sequences became U+FFFD, so that names that
        /// compare equal always hash equal (`\xFF` and `\xFE` both decode to "\u{FFFD}").
        var hash: UInt64

        init(bytes: UnsafeBufferPointer<UInt8>) {
            var name = String(decoding: bytes, as: UTF8.self)
            self.hash = name.withUTF8 { Self.hash($0) }
            self.name = name
        }

        /// FNV-1a, 64 bit.
        static func hash(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt64 {
            var hash: UInt64 = 0xCBF2_9CE4_8422_2325
            for byte in bytes {
                hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3
            }
            return hash
        }

        static func hash(_ text: StaticString) -> UInt64 {
            hash(UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
        }
    }

    /// One member value.
    enum Value {
        case string(StringToken)
        case number(Range<Int>)
        case literal(String)
    }

    /// The most members an object may have (nginx log formats have a dozen or so).
    static let maxMembers = 256

    let input: UnsafeBufferPointer<UInt8>
    var position: Int
    var scratch: [UInt8] = []

    init(_ input: UnsafeBufferPointer<UInt8>, position: Int = 0) {
        self.input = input
        self.position = position
    }

    /// Reads the whole input as one flat object and calls `member` for each member, in order.
    mutating func readObject(
        member: (_ key: Key, _ value: Value, _ valueOffset: Int, inout JSONLineReader) throws(PixelDecodeError) -> Void
    ) throws(PixelDecodeError) {
        skipWhitespace()
        try expect(ASCII.openBrace, "expected '{'")
        skipWhitespace()
        if peek() == ASCII.closeBrace {
            position += 1
        } else {
            var members = 0
            while true {
                members += 1
                guard members <= Self.maxMembers else {
                    throw error("object has more than \(Self.maxMembers) members")
                }
                skipWhitespace()
                try expect(ASCII.quote, "expected a member name")
                let keyToken = try readString()
                let key = withBytes(keyToken) { Key(bytes: $0) }
                skipWhitespace()
                try expect(ASCII.colon, "expected ':' after member name")
                skipWhitespace()
                let valueOffset = position
                let value = try readValue()
                try member(key, value, valueOffset, &self)
                skipWhitespace()
                guard let next = peek() else {
                    throw error("unexpected end of input in object")
                }
                position += 1
                if next == ASCII.closeBrace {
                    break
                }
                guard next == ASCII.comma else {
                    position -= 1
                    throw error("expected ',' or '}'")
                }
            }
        }
        skipWhitespace()
        guard position == input.count else {
            throw error("unexpected bytes after the object")
        }
    }

    /// Runs `body` over the bytes of a decoded string token.
    func withBytes<Result, Failure: Error>(
        _ token: StringToken,
        _ body: (UnsafeBufferPointer<UInt8>) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        switch token {
        case .input(let range):
            return try body(input.slice(range))
        case .scratch:
            return try scratch.withUnsafeBufferPointer(body)
        }
    }

    /// The text of a decoded string token, invalid UTF-8 replaced by U+FFFD.
    func string(_ token: StringToken) -> String {
        withBytes(token) { String(decoding: $0, as: UTF8.self) }
    }

    // MARK: - Tokens

    private mutating func readValue() throws(PixelDecodeError) -> Value {
        guard let byte = peek() else {
            throw error("unexpected end of input, expected a value")
        }
        switch byte {
        case ASCII.quote:
            position += 1
            return .string(try readString())
        case ASCII.minus, ASCII.zero...ASCII.nine:
            return .number(try readNumber())
        case UInt8(ascii: "t"):
            try expectWord("true")
            return .literal("true")
        case UInt8(ascii: "f"):
            try expectWord("false")
            return .literal("false")
        case UInt8(ascii: "n"):
            try expectWord("null")
            return .literal("")
        case ASCII.openBrace, ASCII.openBracket:
            throw error("nested objects and arrays are not supported")
        default:
            throw error("unexpected byte, expected a value")
        }
    }

    /// Reads a string whose opening quote has been consumed; leaves `position` after the closing quote.
    private mutating func readString() throws(PixelDecodeError) -> StringToken {
        let start = position
        let count = input.count
        // The user agent and the args are 100+ bytes without a quote or an escape: words first.
        var index = JSONScan.plainWords(in: input, from: start)
        while index < count {
            let byte = input[index]
            if byte == ASCII.quote {
                position = index + 1
                return .input(start..<index)
            }
            if byte == ASCII.backslash {
                break
            }
            index += 1
        }
        guard index < count else {
            throw PixelDecodeError(.badJSON, "unterminated string", offset: start - 1)
        }
        scratch.removeAll(keepingCapacity: true)
        scratch.append(contentsOf: input.slice(start..<index))
        while index < count {
            let byte = input[index]
            if byte == ASCII.quote {
                position = index + 1
                return .scratch
            }
            if byte != ASCII.backslash {
                scratch.append(byte)
                index += 1
                continue
            }
            guard index + 1 < count else {
                break
            }
            let escape = input[index + 1]
            switch escape {
            case ASCII.quote, ASCII.backslash, ASCII.slash:
                scratch.append(escape)
                index += 2
            case UInt8(ascii: "b"):
                scratch.append(0x08)
                index += 2
            case UInt8(ascii: "f"):
                scratch.append(0x0C)
                index += 2
            case UInt8(ascii: "n"):
                scratch.append(ASCII.lineFeed)
                index += 2
            case UInt8(ascii: "r"):
                scratch.append(ASCII.carriageReturn)
                index += 2
            case UInt8(ascii: "t"):
                scratch.append(ASCII.tab)
                index += 2
            case UInt8(ascii: "u"):
                index = readUnicodeEscape(at: index)
            case UInt8(ascii: "x"):
                if index + 3 < count, let high = ASCII.hexValue(input[index + 2]),
                    let low = ASCII.hexValue(input[index + 3])
                {
                    scratch.append(high << 4 | low)
                    index += 4
                } else {
                    scratch.append(ASCII.backslash)
                    index += 1
                }
            default:
                // Unknown escape: keep the backslash; the next byte is copied on the next turn.
                scratch.append(ASCII.backslash)
                index += 1
            }
        }
        throw PixelDecodeError(.badJSON, "unterminated string", offset: start - 1)
    }

    /// Decodes `\uXXXX` (and a following low surrogate) at `index`; returns the index after it.
    private mutating func readUnicodeEscape(at index: Int) -> Int {
        guard let unit = hex4(at: index + 2) else {
            scratch.append(ASCII.backslash)
            return index + 1
        }
        var next = index + 6
        var scalar = Unicode.Scalar(unit)
        if (0xD800..<0xDC00).contains(unit), next + 1 < input.count, input[next] == ASCII.backslash,
            input[next + 1] == UInt8(ascii: "u"), let low = hex4(at: next + 2), (0xDC00..<0xE000).contains(low)
        {
            scalar = Unicode.Scalar(0x10000 + ((UInt32(unit) - 0xD800) << 10) + (UInt32(low) - 0xDC00))
            next += 6
        }
        for byte in UTF8.encode(scalar ?? "\u{FFFD}")! {
            scratch.append(byte)
        }
        return next
    }

    private func hex4(at index: Int) -> UInt16? {
        guard index + 4 <= input.count else {
            return nil
        }
        var value: UInt16 = 0
        for offset in 0..<4 {
            guard let digit = ASCII.hexValue(input[index + offset]) else {
                return nil
            }
            value = value << 4 | UInt16(digit)
        }
        return value
    }

    /// Reads the run of number characters; the text is checked by whoever uses it.
    private mutating func readNumber() throws(PixelDecodeError) -> Range<Int> {
        let start = position
        var sawDigit = false
        while let byte = peek() {
            if ASCII.isDigit(byte) {
                sawDigit = true
            } else if !(byte == ASCII.minus || byte == ASCII.plus || byte == ASCII.period || byte | 0x20 == 0x65) {
                break
            }
            position += 1
        }
        guard sawDigit else {
            throw PixelDecodeError(.badJSON, "malformed number", offset: start)
        }
        return start..<position
    }

    // MARK: - Bytes

    @inline(__always)
    private func peek() -> UInt8? {
        position < input.count ? input[position] : nil
    }

    @inline(__always)
    private mutating func skipWhitespace() {
        while position < input.count && ASCII.isWhitespace(input[position]) {
            position += 1
        }
    }

    private mutating func expect(_ byte: UInt8, _ message: String) throws(PixelDecodeError) {
        guard peek() == byte else {
            throw error(position < input.count ? message : "unexpected end of input, \(message)")
        }
        position += 1
    }

    private mutating func expectWord(_ word: StaticString) throws(PixelDecodeError) {
        let length = word.utf8CodeUnitCount
        guard position + length <= input.count else {
            throw error("unexpected end of input in literal")
        }
        let expected = UnsafeBufferPointer(start: word.utf8Start, count: length)
        for offset in 0..<length where input[position + offset] != expected[offset] {
            throw error("invalid literal")
        }
        position += length
    }

    private func error(_ message: String) -> PixelDecodeError {
        PixelDecodeError(.badJSON, message, offset: position)
    }
}
