/// RFC 3339 date-times, as RFC 5424 TIMESTAMP and as rsyslog puts them in RFC 3164 headers.
enum RFC3339 {
    /// The end of `YYYY-MM-DDThh:mm:ss[.frac](Z|±hh:mm)` at the cursor, or `nil`.
    ///
    /// `strict` (RFC 5424 TIMESTAMP): offset required, 1–9 fraction digits. RFC 5424 §6.2.3 allows
    /// only 6 and uppercase `T`/`Z`, but senders write nanoseconds (Go's `time.RFC3339Nano`) and
    /// lowercase, and rsyslog takes them: a message is not dropped for its timestamp's precision.
    /// Lenient (in RFC 3164 headers): any number of fraction digits, offset optional.
    static func end(_ start: ByteCursor, strict: Bool) -> Int? {
        var cursor = start
        guard cursor.consumeDigits(exactly: 4) != nil, cursor.consume(ASCII.hyphen),
            cursor.consumeDigits(exactly: 2) != nil, cursor.consume(ASCII.hyphen),
            cursor.consumeDigits(exactly: 2) != nil
        else { return nil }
        guard cursor.consume(ASCII.upperT) || cursor.consume(ASCII.lowerT) else { return nil }
        guard cursor.consumeDigits(exactly: 2) != nil, cursor.consume(ASCII.colon),
            cursor.consumeDigits(exactly: 2) != nil, cursor.consume(ASCII.colon),
            cursor.consumeDigits(exactly: 2) != nil
        else { return nil }
        if cursor.consume(ASCII.period) {
            let fraction = cursor.consume(while: ASCII.isDigit)
            guard !fraction.isEmpty, !strict || fraction.count <= 9 else { return nil }
        }
        if cursor.consume(ASCII.upperZ) || cursor.consume(ASCII.lowerZ) {
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
