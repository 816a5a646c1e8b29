/// Validation of nginx `$msec` timestamps, kept as decimal text so no precision is invented.
enum Timestamp {
    /// Longer text cannot be a real `$msec` (which is 10 digits, a dot and 3 digits until year 2286).
    static let maxLength = 32

    /// Validates `digits[.digits]` and returns the text (leading zeros trimmed) and its value.
    /// - Parameters:
    ///   - bytes: The timestamp bytes, without quotes or separators.
    ///   - offset: The offset of `bytes` in the whole input, for error messages.
    /// - Throws: ``PixelDecodeError`` with reason ``PixelDecodeError/Reason/badTimestamp``.
    static func parse(
        _ bytes: UnsafeBufferPointer<UInt8>,
        offset: Int
    ) throws(PixelDecodeError) -> (text: String, value: Double) {
        let count = bytes.count
        guard count > 0 else {
            throw PixelDecodeError(.badTimestamp, "timestamp is empty", offset: offset)
        }
        guard count <= maxLength else {
            throw PixelDecodeError(.badTimestamp, "timestamp is longer than \(maxLength) bytes", offset: offset)
        }
        var index = 0
        while index < count && ASCII.isDigit(bytes[index]) {
            index += 1
        }
        let integerEnd = index
        guard integerEnd > 0 else {
            throw PixelDecodeError(.badTimestamp, "timestamp does not start with a digit", offset: offset)
        }
        if index < count {
            guard bytes[index] == ASCII.period else {
                throw PixelDecodeError(.badTimestamp, "timestamp is not digits[.digits]", offset: offset + index)
            }
            index += 1
            let fractionStart = index
            while index < count && ASCII.isDigit(bytes[index]) {
                index += 1
            }
            guard index > fractionStart, index == count else {
                throw PixelDecodeError(.badTimestamp, "timestamp is not digits[.digits]", offset: offset + index)
            }
        }
        // JSON forbids leading zeros ("007.5"); keep one digit before the dot.
        var start = 0
        while start < integerEnd - 1 && bytes[start] == ASCII.zero {
            start += 1
        }
        let text = String(decoding: bytes.slice(start..<count), as: UTF8.self)
        if let value = fastValue(bytes.slice(start..<count)) {
            return (text, value)
        }
        guard let value = Double(text), value.isFinite else {
            throw PixelDecodeError(.badTimestamp, "timestamp is out of range", offset: offset)
        }
        return (text, value)
    }

    /// Powers of ten that a `Double` holds exactly.
    private static let exactPowersOfTen: [Double] = (0...22).map { exponent in
        var value = 1.0
        for _ in 0..<exponent {
            value *= 10
        }
        return value
    }

    /// Clinger's fast path: with at most 15 significant digits both the digits and the power of
    /// ten are exact doubles, so one division gives the correctly rounded value (as `strtod` would).
    /// Returns `nil` when the fast path does not apply. `bytes` is already validated.
    private static func fastValue(_ bytes: UnsafeBufferPointer<UInt8>) -> Double? {
        var mantissa: UInt64 = 0
        var digits = 0
        var fractionDigits = 0
        var inFraction = false
        for byte in bytes {
            if byte == ASCII.period {
                inFraction = true
                continue
            }
            mantissa = mantissa &* 10 &+ UInt64(byte &- ASCII.zero)
            if mantissa != 0 {
                digits += 1
            }
            if inFraction {
                fractionDigits += 1
            }
        }
        guard digits <= 15, fractionDigits < exactPowersOfTen.count else {
            return nil
        }
        return Double(mantissa) / exactPowersOfTen[fractionDigits]
    }

    /// Whether `text` is `digits[.digits]` without redundant leading zeros, hence a valid JSON number.
    static func isCanonicalJSONNumber(_ text: String) -> Bool {
        let utf8 = text.utf8
        guard let first = utf8.first, ASCII.isDigit(first) else {
            return false
        }
        var sawDot = false
        var previous = first
        var integerDigits = 0
        for byte in utf8 {
            if byte == ASCII.period {
                guard !sawDot, ASCII.isDigit(previous) else {
                    return false
                }
                sawDot = true
            } else if ASCII.isDigit(byte) {
                if !sawDot {
                    integerDigits += 1
                }
            } else {
                return false
            }
            previous = byte
        }
        guard ASCII.isDigit(previous) else {
            return false
        }
        return first != ASCII.zero || integerDigits == 1
    }
}
