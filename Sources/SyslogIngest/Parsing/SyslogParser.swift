/// Parses syslog datagrams: RFC 5424 strictly, everything else leniently as RFC 3164.
///
/// ``parse(_:)-(some Collection<UInt8>)`` builds a full, allocating ``SyslogMessage`` for tests and later
/// stages. The hot path, ``IngestRules/route(_:)``, runs the same non-allocating scanners and uses only the
/// byte ranges they find, so both always agree on program and message.
///
/// Framing, in order: trailing `\n`, `\r` and `\0` are stripped; the PRI `<`1–3 digits`>` (0–191) must come
/// first; `1 ` right after the PRI selects RFC 5424, anything else is RFC 3164.
public enum SyslogParser {
    /// Parses one datagram.
    /// - Parameter bytes: The datagram, exactly as received.
    /// - Returns: The parsed message; its `program` is never empty.
    /// - Throws: ``SyslogParseError`` when the datagram is not a syslog message or names no program.
    public static func parse(_ bytes: some Collection<UInt8>) throws(SyslogParseError) -> SyslogMessage {
        let contiguous = bytes.withContiguousStorageIfAvailable { buffer in
            Result { () throws(SyslogParseError) in try Self.parse(UnsafeRawBufferPointer(buffer)) }
        }
        if let contiguous {
            return try contiguous.get()
        }
        let copy = Array(bytes)
        return try copy.withUnsafeBytes { buffer in
            Result { () throws(SyslogParseError) in try Self.parse(buffer) }
        }.get()
    }

    /// Parses one datagram held in a raw buffer.
    /// - Parameter buffer: The datagram, exactly as received.
    /// - Returns: The parsed message; its `program` is never empty.
    /// - Throws: ``SyslogParseError`` when the datagram is not a syslog message or names no program.
    public static func parse(_ buffer: UnsafeRawBufferPointer) throws(SyslogParseError) -> SyslogMessage {
        var cursor = ByteCursor(buffer, end: Self.contentEnd(of: buffer))
        let priority = try Self.scanPriority(&cursor)
        let fields = try Self.scanBody(cursor)
        return fields.message(priority: priority, in: buffer)
    }

    // MARK: - Shared, non-allocating steps (also used by IngestRules.route)

    /// The end of the content once trailing `\n`, `\r` and `\0` bytes are stripped.
    static func contentEnd(of buffer: UnsafeRawBufferPointer) -> Int {
        var end = buffer.count
        while end > 0 {
            let byte = buffer[end - 1]
            guard byte == ASCII.lineFeed || byte == ASCII.carriageReturn || byte == ASCII.nul else { break }
            end -= 1
        }
        return end
    }

    /// Reads `<PRI>`: `<`, 1–3 digits, `>`, value 0–191. Leaves the cursor after `>`.
    static func scanPriority(_ cursor: inout ByteCursor) throws(SyslogParseError) -> Priority {
        guard !cursor.isAtEnd else { throw SyslogParseError(code: .empty, offset: cursor.index) }
        guard cursor.consume(ASCII.lessThan) else {
            throw SyslogParseError(code: .missingPriority, offset: cursor.index)
        }
        let digits = cursor.consume(while: ASCII.isDigit, limit: 3)
        guard !digits.isEmpty, cursor.consume(ASCII.greaterThan) else {
            throw SyslogParseError(code: .badPriority, offset: cursor.index)
        }
        var value = 0
        for position in digits {
            value = value * 10 + Int(cursor.bytes[position] &- ASCII.zero)
        }
        guard let priority = Priority(value: value) else {
            throw SyslogParseError(code: .badPriority, offset: digits.lowerBound)
        }
        return priority
    }

    /// Scans everything after the PRI, choosing the format.
    static func scanBody(_ cursor: ByteCursor) throws(SyslogParseError) -> SyslogFields {
        if RFC5424Parser.isVersionOne(cursor) {
            return try RFC5424Parser.scan(cursor)
        }
        return try RFC3164Parser.scan(cursor)
    }
}

/// Where each part of a message lies in the datagram buffer: the common result of both scanners.
///
/// Optional ranges are `nil` when the part is absent or the RFC 5424 NILVALUE.
struct SyslogFields {
    var format: SyslogFormat
    var timestamp: Range<Int>?
    var hostname: Range<Int>?
    /// Never empty: the scanners throw ``SyslogParseError/Code/noProgram`` instead.
    var program: Range<Int>
    var procID: Range<Int>?
    var msgID: Range<Int>?
    /// The SD-ELEMENTs, from the first `[` to the last `]`; `nil` for NILVALUE and RFC 3164.
    var structuredData: Range<Int>?
    var message: Range<Int>

    /// Copies the parts out of `buffer` into an allocating ``SyslogMessage``.
    func message(priority: Priority, in buffer: UnsafeRawBufferPointer) -> SyslogMessage {
        func text(_ range: Range<Int>?) -> String? {
            range.map { String(decoding: UnsafeRawBufferPointer(rebasing: buffer[$0]), as: UTF8.self) }
        }
        return SyslogMessage(
            priority: priority,
            format: self.format,
            timestamp: text(self.timestamp),
            hostname: text(self.hostname),
            program: Array(buffer[self.program]),
            procID: text(self.procID),
            msgID: text(self.msgID),
            structuredData: self.structuredData.map { RFC5424Parser.decodeStructuredData(buffer, range: $0) } ?? [],
            message: Array(buffer[self.message])
        )
    }
}
