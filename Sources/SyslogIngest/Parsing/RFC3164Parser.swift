/// The lenient BSD syslog (RFC 3164) scanner: `[TIMESTAMP SP [HOSTNAME SP]] TAG MSG`.
///
/// Every part before the TAG is optional, because real senders disagree:
///
/// | sender | bytes after the PRI |
/// |---|---|
/// | nginx `syslog:` | `Nov 22 12:38:13 vm pixel: 1795351093.220,e=…` |
/// | nginx `syslog:…,nohostname` | `Nov 22 12:38:13 pixel: 1795351093.220,e=…` |
/// | `logger --rfc3164` | `Nov 22 12:38:22 vm pixel[4809]: hello` |
/// | rsyslog `RSYSLOG_ForwardFormat` | `2026-11-22T12:38:50.278946+00:00 vm pixel: …` |
/// | Python `SysLogHandler` | `pixel: hello\0` (no header at all) |
/// | Cisco-style, some appliances | `Nov 22 2026 12:38:13.123 vm pixel: …` |
///
/// TIMESTAMP is `Mmm dd hh:mm:ss`, `Mmm  d hh:mm:ss` (either with a year after the day and a fraction
/// after the seconds), `YYYY-MM-DD hh:mm:ss[.fff]` or an RFC 3339 date-time. As in syslog-ng, a
/// HOSTNAME is looked for only after a TIMESTAMP: the next token is the hostname when it is made of
/// `[A-Za-z0-9._-]` (rsyslog's hostname characters) or is an IPv6 address (with a zone: `fe80::1%eth0`), and is followed by SP (RFC
/// 3164 requires it there). Otherwise that token is the TAG itself (nginx's `nohostname`: `pixel:` ends
/// in `:`, so it is no hostname).
///
/// The TAG, and with it PROGRAM and MESSAGE:
/// - `pixel: msg` → program up to `:`; MESSAGE after `:` with one SP removed.
/// - `pixel[123]: msg` → program up to `[`, procID `123`; MESSAGE after `]:` with one SP removed
///   (the `:` is optional after `]`).
/// - no `:` or `[pid]` ending the first word → the whole word, up to SP, `:` or `[`, is the program
///   (`pixel-worker started` → `pixel-worker` / `started`), as rsyslog and syslog-ng read it, when it
///   starts with a letter or digit (else there is no TAG); MESSAGE
///   starts right after it, one SP removed. (RFC 3164 §4.1.3 ends the TAG at the first
///   non-alphanumeric byte instead, which would key `pixel-worker`'s lines as `pixel`.)
/// Every other byte of MESSAGE is kept exactly. Spaces before the TAG (and between header fields) are skipped.
enum RFC3164Parser {
    /// Scans the part after the PRI.
    /// - Throws: ``SyslogParseError/Code/noProgram`` when the TAG is empty; nothing else, as the format is lenient.
    static func scan(_ start: ByteCursor) throws(SyslogParseError) -> SyslogFields {
        var cursor = start
        var timestamp: Range<Int>?
        var hostname: Range<Int>?

        if let timestampEnd = Self.timestampEnd(cursor) {
            timestamp = cursor.index..<timestampEnd
            cursor.index = timestampEnd
            cursor.consume(while: { $0 == ASCII.space })

            if let (candidate, after) = Self.hostname(cursor) {
                hostname = candidate
                cursor = after
            }
        } else {
            cursor.consume(while: { $0 == ASCII.space })
        }

        let tag = Self.scanTag(cursor)
        guard !tag.program.isEmpty else {
            throw SyslogParseError(code: .noProgram, offset: cursor.index)
        }
        return SyslogFields(
            format: .rfc3164,
            timestamp: timestamp,
            hostname: hostname,
            program: tag.program,
            procID: tag.procID,
            message: tag.message
        )
    }

    /// A HOSTNAME at the cursor, right after the TIMESTAMP: hostname characters or an IPv6 address,
    /// followed by SP; returns it and the cursor past the spaces after it.
    static func hostname(_ start: ByteCursor) -> (Range<Int>, ByteCursor)? {
        var probe = start
        var candidate = probe.consume(while: ASCII.isHostnameCharacter)
        if probe.peek() == ASCII.colon {
            // `2001:db8::5`, `::1`: what rsyslog writes for a sender it knows only by its address.
            probe = start
            candidate = probe.consume(while: { ASCII.isHexDigit($0) || $0 == ASCII.colon || $0 == ASCII.period })
            guard start.bytes[candidate].lazy.filter({ $0 == ASCII.colon }).count >= 2 else { return nil }
            // A link-local address's zone: `fe80::1%eth0`.
            var zone = probe
            if zone.consume(ASCII.percent), !zone.consume(while: ASCII.isHostnameCharacter).isEmpty {
                probe = zone
                candidate = candidate.lowerBound..<probe.index
            }
        }
        guard !candidate.isEmpty, probe.consume(ASCII.space) else { return nil }
        probe.consume(while: { $0 == ASCII.space })
        return (candidate, probe)
    }

    /// PROGRAM, optional PID and MESSAGE of a TAG starting at the cursor.
    struct Tag {
        var program: Range<Int>
        var procID: Range<Int>?
        var message: Range<Int>
    }

    static func scanTag(_ start: ByteCursor) -> Tag {
        var cursor = start
        let word = cursor.consume(while: { $0 != ASCII.space && $0 != ASCII.colon && $0 != ASCII.leftBracket })

        if cursor.consume(ASCII.colon) {
            _ = cursor.consume(ASCII.space)
            return Tag(program: word, procID: nil, message: cursor.index..<cursor.end)
        }

        if cursor.peek() == ASCII.leftBracket {
            var pidCursor = cursor
            pidCursor.advance()
            let pid = pidCursor.consume(while: { $0 != ASCII.rightBracket && $0 != ASCII.space })
            if pidCursor.consume(ASCII.rightBracket) {
                _ = pidCursor.consume(ASCII.colon)
                _ = pidCursor.consume(ASCII.space)
                return Tag(program: word, procID: pid, message: pidCursor.index..<pidCursor.end)
            }
        }

        // No `:` and no `[pid]`: the word is the program (see the type's documentation), when it
        // starts like one (`!!`, `[12.3] eth0 up` hold none).
        guard let first = word.first, ASCII.isAlphanumeric(cursor.bytes[first]) else {
            return Tag(program: start.index..<start.index, procID: nil, message: start.index..<start.end)
        }
        _ = cursor.consume(ASCII.space)
        return Tag(program: word, procID: nil, message: cursor.index..<cursor.end)
    }

    // MARK: - Timestamps

    /// The end of a timestamp at the cursor that is followed by SP or the end of the datagram, or `nil`.
    static func timestampEnd(_ cursor: ByteCursor) -> Int? {
        guard let end = Self.bsdTimestampEnd(cursor) ?? RFC3339.end(cursor, strict: false) ?? Self.spacedDateTimeEnd(cursor) else {
            return nil
        }
        guard end == cursor.end || cursor.bytes[end] == ASCII.space else { return nil }
        return end
    }

    /// `Mmm dd hh:mm:ss`, `Mmm  d hh:mm:ss` (nginx, logger) or `Mmm d hh:mm:ss`; month names in any
    /// case; a year after the day (`Mmm dd yyyy hh:mm:ss`) and a fraction after the seconds
    /// (`.123`) as Cisco-style senders write them.
    static func bsdTimestampEnd(_ start: ByteCursor) -> Int? {
        var cursor = start
        guard cursor.remaining >= 14,
            Self.isMonth(cursor.bytes[cursor.index], cursor.bytes[cursor.index + 1], cursor.bytes[cursor.index + 2])
        else { return nil }
        cursor.advance(by: 3)
        guard cursor.consume(ASCII.space) else { return nil }
        _ = cursor.consume(ASCII.space)  // space-padded day: "Nov  2"
        let day = cursor.consume(while: ASCII.isDigit, limit: 2)
        guard !day.isEmpty, cursor.consume(ASCII.space) else { return nil }
        var year = cursor
        if year.consumeDigits(exactly: 4) != nil, year.consume(ASCII.space) { cursor = year }
        return Self.timeEnd(cursor)
    }

    /// `yyyy-mm-dd hh:mm:ss[.fff]`, an RFC 3339 date-time with a space for the `T`, also as Python's
    /// logging writes it (`2026-11-22 12:38:13,123`), with an optional `Z` or `±hh:mm`.
    static func spacedDateTimeEnd(_ start: ByteCursor) -> Int? {
        var cursor = start
        guard cursor.consumeDigits(exactly: 4) != nil, cursor.consume(ASCII.hyphen),
            cursor.consumeDigits(exactly: 2) != nil, cursor.consume(ASCII.hyphen),
            cursor.consumeDigits(exactly: 2) != nil, cursor.consume(ASCII.space),
            let time = Self.timeEnd(cursor, fractionAfterComma: true)
        else { return nil }
        cursor.index = time
        if cursor.consume(ASCII.upperZ) { return cursor.index }
        var offset = cursor
        if offset.consume(ASCII.plus) || offset.consume(ASCII.hyphen), offset.consumeDigits(exactly: 2) != nil,
            offset.consume(ASCII.colon), offset.consumeDigits(exactly: 2) != nil
        {
            return offset.index
        }
        return cursor.index
    }

    /// `hh:mm:ss`, with an optional fraction after `.` (or `,`, when `fractionAfterComma`).
    private static func timeEnd(_ start: ByteCursor, fractionAfterComma: Bool = false) -> Int? {
        var cursor = start
        guard cursor.consumeDigits(exactly: 2) != nil, cursor.consume(ASCII.colon),
            cursor.consumeDigits(exactly: 2) != nil, cursor.consume(ASCII.colon),
            cursor.consumeDigits(exactly: 2) != nil
        else { return nil }
        var fraction = cursor
        if fraction.consume(ASCII.period) || fractionAfterComma && fraction.consume(UInt8(ascii: ",")),
            !fraction.consume(while: ASCII.isDigit).isEmpty
        {
            cursor = fraction
        }
        return cursor.index
    }

    private static func isMonth(_ first: UInt8, _ second: UInt8, _ third: UInt8) -> Bool {
        let packed =
            UInt32(ASCII.lowercased(first)) << 16 | UInt32(ASCII.lowercased(second)) << 8
            | UInt32(ASCII.lowercased(third))
        switch packed {
        case 0x6A_616E, 0x66_6562, 0x6D_6172, 0x61_7072, 0x6D_6179, 0x6A_756E,  // jan feb mar apr may jun
            0x6A_756C, 0x61_7567, 0x73_6570, 0x6F_6374, 0x6E_6F76, 0x64_6563:  // jul aug sep oct nov dec
            return true
        default:
            return false
        }
    }
}
