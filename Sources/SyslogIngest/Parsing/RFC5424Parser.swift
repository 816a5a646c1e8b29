/// The strict syslog protocol (RFC 5424) scanner:
/// `1 SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID SP STRUCTURED-DATA [SP MSG]`.
///
/// As rsyslog's pmrfc5424 does, it gives up cleanly on anything that does not follow the grammar of §6:
/// header fields are 1…N bytes of PRINTUSASCII (HOSTNAME ≤ 255, APP-NAME ≤ 48, PROCID ≤ 128, MSGID ≤ 32) or
/// the NILVALUE `-`; TIMESTAMP is `-` or an RFC 3339 date-time; STRUCTURED-DATA is `-` or SD-ELEMENTs whose
/// PARAM-VALUEs may contain escaped `\"`, `\\` and `\]`. A leading UTF-8 BOM is removed from MSG. PROGRAM is
/// APP-NAME; a NILVALUE APP-NAME is reported as ``SyslogParseError/Code/noProgram`` only once the rest of the
/// message has been found well-formed.
enum RFC5424Parser {
    static let maxHostnameBytes = 255
    static let maxAppNameBytes = 48
    static let maxProcIDBytes = 128
    static let maxMsgIDBytes = 32
    static let maxSDNameBytes = 32

    /// Whether the bytes after the PRI start with VERSION `1` and SP.
    static func isVersionOne(_ cursor: ByteCursor) -> Bool {
        cursor.peek() == ASCII.one && cursor.peek(ahead: 1) == ASCII.space
    }

    /// Scans the part after the PRI; the cursor must be at VERSION (see ``isVersionOne(_:)``).
    static func scan(_ start: ByteCursor) throws(SyslogParseError) -> SyslogFields {
        var cursor = start
        cursor.advance(by: 2)  // "1 "

        let timestamp: Range<Int>?
        if cursor.peek() == ASCII.hyphen && cursor.peek(ahead: 1) == ASCII.space {
            timestamp = nil
            cursor.advance()
        } else if let end = RFC3339.end(cursor, strict: true) {
            timestamp = cursor.index..<end
            cursor.index = end
        } else {
            throw SyslogParseError(code: .badTimestamp, offset: cursor.index)
        }
        guard cursor.consume(ASCII.space) else { throw SyslogParseError(code: .badTimestamp, offset: cursor.index) }

        let hostname = try Self.headerField(&cursor, maxBytes: Self.maxHostnameBytes)
        let appName = try Self.headerField(&cursor, maxBytes: Self.maxAppNameBytes)
        let procID = try Self.headerField(&cursor, maxBytes: Self.maxProcIDBytes)
        let msgID = try Self.headerField(&cursor, maxBytes: Self.maxMsgIDBytes)
        let structuredData = try Self.scanStructuredData(&cursor)

        var messageStart = cursor.index
        if !cursor.isAtEnd {
            guard cursor.consume(ASCII.space) else {
                throw SyslogParseError(code: .badStructuredData, offset: cursor.index)
            }
            messageStart = cursor.index
            let bom = ASCII.byteOrderMark
            if cursor.peek() == bom.0 && cursor.peek(ahead: 1) == bom.1 && cursor.peek(ahead: 2) == bom.2 {
                messageStart += 3
            }
        }

        guard let appName else {
            throw SyslogParseError(code: .noProgram, offset: start.index)
        }
        return SyslogFields(
            format: .rfc5424,
            timestamp: timestamp,
            hostname: hostname,
            program: appName,
            procID: procID,
            msgID: msgID,
            structuredData: structuredData,
            message: messageStart..<cursor.end
        )
    }

    /// One header field followed by SP: `nil` for the NILVALUE `-`.
    private static func headerField(
        _ cursor: inout ByteCursor,
        maxBytes: Int
    ) throws(SyslogParseError) -> Range<Int>? {
        let field = cursor.consume(while: ASCII.isPrintUSASCII, limit: maxBytes)
        guard !field.isEmpty, cursor.consume(ASCII.space) else {
            throw SyslogParseError(code: .badHeader, offset: cursor.index)
        }
        if field.count == 1 && cursor.bytes[field.lowerBound] == ASCII.hyphen {
            return nil
        }
        return field
    }

    // MARK: - Structured data

    /// Checks STRUCTURED-DATA and moves past it; returns the range of the SD-ELEMENTs, `nil` for NILVALUE.
    static func scanStructuredData(_ cursor: inout ByteCursor) throws(SyslogParseError) -> Range<Int>? {
        if cursor.consume(ASCII.hyphen) {
            return nil
        }
        guard cursor.peek() == ASCII.leftBracket else {
            throw SyslogParseError(
                code: cursor.isAtEnd ? .unterminatedStructuredData : .badStructuredData,
                offset: cursor.index
            )
        }
        let start = cursor.index
        while cursor.consume(ASCII.leftBracket) {
            try Self.sdName(&cursor)
            while cursor.consume(ASCII.space) {
                try Self.sdName(&cursor)
                try Self.expect(ASCII.equals, &cursor)
                try Self.expect(ASCII.quote, &cursor)
                while true {
                    guard let byte = cursor.peek() else {
                        throw SyslogParseError(code: .unterminatedStructuredData, offset: cursor.index)
                    }
                    cursor.advance(by: byte == ASCII.backslash ? 2 : 1)
                    if byte == ASCII.quote { break }
                }
            }
            try Self.expect(ASCII.rightBracket, &cursor)
        }
        return start..<cursor.index
    }

    /// SD-NAME: 1–32 PRINTUSASCII except `=`, SP, `]` and `"`.
    private static func sdName(_ cursor: inout ByteCursor) throws(SyslogParseError) {
        let name = cursor.consume(while: Self.isSDNameCharacter, limit: Self.maxSDNameBytes + 1)
        guard !cursor.isAtEnd else {
            throw SyslogParseError(code: .unterminatedStructuredData, offset: cursor.index)
        }
        guard !name.isEmpty, name.count <= Self.maxSDNameBytes else {
            throw SyslogParseError(code: .badStructuredData, offset: name.lowerBound)
        }
    }

    private static func expect(_ byte: UInt8, _ cursor: inout ByteCursor) throws(SyslogParseError) {
        guard !cursor.isAtEnd else {
            throw SyslogParseError(code: .unterminatedStructuredData, offset: cursor.index)
        }
        guard cursor.consume(byte) else {
            throw SyslogParseError(code: .badStructuredData, offset: cursor.index)
        }
    }

    @inline(__always)
    private static func isSDNameCharacter(_ byte: UInt8) -> Bool {
        ASCII.isPrintUSASCII(byte) && byte != ASCII.equals && byte != ASCII.rightBracket && byte != ASCII.quote
    }

    /// Decodes SD-ELEMENTs that ``scanStructuredData(_:)`` has already accepted (allocating; not the hot path).
    ///
    /// PARAM-VALUE escapes `\"`, `\\` and `\]` are unescaped; a backslash before any other byte is kept, as
    /// RFC 5424 §6.3.3 requires.
    static func decodeStructuredData(_ buffer: UnsafeRawBufferPointer, range: Range<Int>) -> [StructuredDataElement] {
        var cursor = ByteCursor(buffer, index: range.lowerBound, end: range.upperBound)
        var elements: [StructuredDataElement] = []
        func text(_ range: Range<Int>) -> String {
            String(decoding: UnsafeRawBufferPointer(rebasing: buffer[range]), as: UTF8.self)
        }
        while cursor.consume(ASCII.leftBracket) {
            var element = StructuredDataElement(id: text(cursor.consume(while: Self.isSDNameCharacter)))
            while cursor.consume(ASCII.space) {
                let name = text(cursor.consume(while: Self.isSDNameCharacter))
                cursor.advance(by: 2)  // ="
                var value: [UInt8] = []
                while let byte = cursor.peek(), byte != ASCII.quote {
                    cursor.advance()
                    if byte == ASCII.backslash, let next = cursor.peek(),
                        next == ASCII.quote || next == ASCII.backslash || next == ASCII.rightBracket
                    {
                        value.append(next)
                        cursor.advance()
                    } else {
                        value.append(byte)
                    }
                }
                cursor.advance()  // closing quote
                element.parameters.append(.init(name: name, value: String(decoding: value, as: UTF8.self)))
            }
            cursor.advance()  // ]
            elements.append(element)
        }
        return elements
    }
}
