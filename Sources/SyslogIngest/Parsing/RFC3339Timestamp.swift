/// RFC 3339 date-times, as RFC 5424 TIMESTAMP and as rsyslog puts them in RFC 3164 headers.
enum RFC3339 {
    /// The end of `YYYY-MM-DDThh:mm:ss[.frac](Z|±hh:mm)` at the cursor, or `nil`.
    ///
    /// `strict` (RFC 5424 §6.2.3): uppercase `T` and `Z`, 1–6 fraction digits, offset required.
    /// Lenient: also lowercase `t`/`z`, any number of fraction digits, offset optional.
    static func end(_ start: ByteCursor, strict: Bool) -> Int? {
        var cursor = start
        guard cursor.consumeDigits(exactly: 4) != nil, cursor.consume(ASCII.hyphen),
            cursor.consumeDigits(exactly: 2) != nil, cursor.consume(ASCII.hyphen),
            cursor.consumeDigits(exactly: 2) != nil
        else { return nil }
        guard cursor.consume(ASCII.upperT) || (!strict && cursor.consume(ASCII.lowerT)) else { return nil }
        guard cursor.consumeDigits(exactly: 2) != nil, cursor.consume(ASCII.colon),
            cursor.consumeDigits(exactly: 2) != nil, cursor.consume(ASCII.colon),
            cursor.consumeDigits(exactly: 2) != nil
        else { return nil }
        if cursor.consume(ASCII.period) {
            let fraction = cursor.consume(while: ASCII.isDigit)
            guard !fraction.isEmpty, !strict || fraction.count <= 6 else { return nil }
        }
        if cursor.consume(ASCII.upperZ) || (!strict && cursor.consume(ASCII.lowerZ)) {
            return cursor.index
        }
        if cursor.consume(ASCII.plus) || cursor.consume(ASCII.hyphen) {
            guard cursor.consumeDigits(exactly: 2) != nil, cursor.consume(ASCII.colon),
                cursor.consumeDigits(exactly: 2) != nil
            else { return nil }
            return cursor.index
        }
        return strict ? nil : cursor.index
    }
}
