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
///
/// TIMESTAMP is `Mmm dd hh:mm:ss`, `Mmm  d hh:mm:ss` or an RFC 3339 date-time. As in syslog-ng, a HOSTNAME is
/// looked for only after a TIMESTAMP: the next token is the hostname when it is made of `[A-Za-z0-9._-]`
/// (rsyslog's hostname characters), is followed by SP, and what follows that SP starts a non-empty TAG.
/// Otherwise that token is the TAG itself (nginx's `nohostname`: `pixel:` ends in `:`, so it is no hostname).
///
/// The TAG, and with it PROGRAM and MESSAGE:
/// - `pixel: msg` → program up to `:`; MESSAGE after `:` with one SP removed.
/// - `pixel[123]: msg` → program up to `[`, procID `123`; MESSAGE after `]:` with one SP removed
///   (the `:` is optional after `]`).
/// - no `:` or `[pid]` ending the first word → RFC 3164 §4.1.3: the TAG is the leading run of alphanumerics
///   (`hello world` → `hello` / `world`); MESSAGE starts right after it, one SP removed.
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

            var probe = cursor
            let candidate = probe.consume(while: ASCII.isHostnameCharacter)
            if !candidate.isEmpty, probe.consume(ASCII.space) {
                probe.consume(while: { $0 == ASCII.space })
                if !Self.scanTag(probe).program.isEmpty {
                    hostname = candidate
                    cursor = probe
                }
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

        // No `:` and no `[pid]`: RFC 3164 §4.1.3, the TAG is the leading run of alphanumerics.
        cursor = start
        let alphanumerics = cursor.consume(while: ASCII.isAlphanumeric)
        _ = cursor.consume(ASCII.space)
        return Tag(program: alphanumerics, procID: nil, message: cursor.index..<cursor.end)
    }

    // MARK: - Timestamps

    /// The end of a timestamp at the cursor that is followed by SP or the end of the datagram, or `nil`.
    static func timestampEnd(_ cursor: ByteCursor) -> Int? {
        guard let end = Self.bsdTimestampEnd(cursor) ?? RFC3339.end(cursor, strict: false) else { return nil }
        guard end == cursor.end || cursor.bytes[end] == ASCII.space else { return nil }
        return end
    }

    /// `Mmm dd hh:mm:ss`, `Mmm  d hh:mm:ss` (nginx, logger) or `Mmm d hh:mm:ss`; month names in any case.
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
        guard cursor.consumeDigits(exactly: 2) != nil, cursor.consume(ASCII.colon),
            cursor.consumeDigits(exactly: 2) != nil, cursor.consume(ASCII.colon),
            cursor.consumeDigits(exactly: 2) != nil
        else { return nil }
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
