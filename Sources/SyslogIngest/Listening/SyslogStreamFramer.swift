/// Splits a syslog TCP byte stream into messages (RFC 6587), detecting the framing per connection from
/// its first byte: a digit means octet counting (`LEN SP MSG`, as rsyslog `omfwd` with
/// `TCP_Framing="octet-counted"` and syslog-ng `syslog()` send), `<` means non-transparent framing
/// (messages end with LF, as syslog-ng `network()` and rsyslog's default send).
///
/// Pure: bytes in, frames out; no I/O. Memory per connection stays bounded: an oversize frame is
/// skipped as it streams past, never buffered whole.
public struct SyslogStreamFramer: Sendable {
    /// The framing of a connection, known after its first byte.
    enum Framing: Sendable, Equatable {
        /// Not yet known.
        case undetermined
        /// `LEN SP MSG`.
        case octetCounting
        /// `MSG LF`.
        case lineFeed
    }

    /// One result of ``next()``.
    public enum Event: Sendable, Equatable {
        /// A whole message; the range indexes ``bytes`` until the next call to ``append(_:)`` or ``next()``.
        case message(Range<Int>)
        /// A message longer than the maximum was skipped.
        case oversize
        /// The stream is not syslog (bad length field, unknown first byte): close the connection.
        case malformed
        /// The connection ended inside a frame (see ``finish(endOfStream:)``): the partial message is
        /// dropped, never forwarded cut short.
        case truncated
    }

    /// The largest message accepted.
    public let maxMessageBytes: Int
    /// The framing detected so far.
    private var framing: Framing = .undetermined
    /// Buffered bytes; frames index into it.
    public private(set) var bytes: [UInt8] = []
    private var start = 0
    /// LF framing: `bytes[start..<scanned]` is known to hold no LF, so a line arriving in many small
    /// reads is scanned once, not once per read.
    private var scanned = 0
    /// Bytes of an oversize octet-counted frame still to skip.
    private var skipRemaining = 0
    /// Inside an oversize LF-framed line: discard until the next LF.
    private var discardingLine = false
    private var failed = false

    /// The most buffer capacity a framer keeps once everything in it has been framed (the listener
    /// reads 64 KiB at a time).
    public static let retainedCapacity = 128 << 10

    /// Creates a framer for one connection.
    public init(maxMessageBytes: Int) {
        self.maxMessageBytes = maxMessageBytes
    }

    /// Bytes buffered but not yet framed.
    public var pendingByteCount: Int { bytes.count - start }

    /// Adds bytes read from the connection.
    public mutating func append(_ chunk: UnsafeRawBufferPointer) {
        if start > 0 && start == bytes.count {
            // Everything framed: keep a read's worth of room, not a large message's for the
            // connection's lifetime (up to 1,024 connections each held its high-water mark).
            bytes.removeAll(keepingCapacity: bytes.capacity <= Self.retainedCapacity)
            scanned = 0
            start = 0
        } else if start > 65536 && start > bytes.count / 2 {
            bytes.removeSubrange(0..<start)
            scanned = max(0, scanned - start)
            start = 0
        }
        var chunk = chunk[...]
        if skipRemaining > 0 {
            let skipped = min(skipRemaining, chunk.count)
            skipRemaining -= skipped
            chunk = chunk.dropFirst(skipped)
        }
        bytes.append(contentsOf: chunk)
    }

    /// The next event, or `nil` when more bytes are needed.
    public mutating func next() -> Event? {
        if failed { return nil }
        if framing == .undetermined {
            guard start < bytes.count else { return nil }
            switch bytes[start] {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): framing = .octetCounting
            case UInt8(ascii: "<"): framing = .lineFeed
            default:
                failed = true
                return .malformed
            }
        }
        return framing == .octetCounting ? nextCounted() : nextLine()
    }

    /// The connection is closing: what the bytes left after the last ``next()`` amount to, once.
    ///
    /// - LF framing, at the end of the peer's stream: a last line without its LF
    ///   (`printf '<158>pixel: hi' | nc`) is a message, as rsyslog's imtcp takes it.
    /// - Anything else left — an octet-counted frame shorter than its length, or part of a line when
    ///   the close is not the peer's (a read error, shutdown): ``Event/truncated``.
    /// - `nil` when nothing is left, or what is left belongs to an oversize frame already reported, or
    ///   the stream was malformed.
    /// - Parameter endOfStream: the peer closed its side, so what it sent last is all there is.
    public mutating func finish(endOfStream: Bool) -> Event? {
        defer {
            start = bytes.count
            scanned = bytes.count
        }
        guard !failed, !discardingLine, skipRemaining == 0, start < bytes.count else { return nil }
        guard framing == .lineFeed && endOfStream else { return .truncated }
        let line = start..<bytes.count
        if bytes[line].allSatisfy({ $0 == UInt8(ascii: "\r") || $0 == 0 }) { return nil }  // an end of line, no message
        return line.count > maxMessageBytes ? .oversize : .message(line)
    }

    private mutating func nextCounted() -> Event? {
        guard skipRemaining == 0 else { return nil }
        var index = start
        var length = 0
        while index < bytes.count, bytes[index] != UInt8(ascii: " ") {
            let byte = bytes[index]
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9"), index - start < 9 else {
                failed = true
                return .malformed
            }
            length = length * 10 + Int(byte - UInt8(ascii: "0"))
            index += 1
        }
        guard index < bytes.count else { return nil }  // the length field continues in the next read
        guard index > start, length > 0 else {
            failed = true
            return .malformed
        }
        let body = index + 1
        if length > maxMessageBytes {
            let available = bytes.count - body
            if available >= length {
                start = body + length
            } else {
                skipRemaining = length - available
                start = bytes.count
            }
            return .oversize
        }
        guard bytes.count - body >= length else { return nil }
        start = body + length
        return .message(body..<body + length)
    }

    private mutating func nextLine() -> Event? {
        // A loop, not recursion: a peer may send any number of empty lines in a row.
        while true {
            guard let newline = bytes[max(start, scanned)...].firstIndex(of: UInt8(ascii: "\n")) else {
                scanned = bytes.count
                if bytes.count - start > maxMessageBytes {
                    // Too long already: drop what we have and the rest of the line as it arrives.
                    start = bytes.count
                    let wasDiscarding = discardingLine
                    discardingLine = true
                    return wasDiscarding ? nil : .oversize
                }
                return nil
            }
            let line = start..<newline
            start = newline + 1
            if discardingLine {
                discardingLine = false
                continue
            }
            if line.count > maxMessageBytes { return .oversize }
            // Blank lines, `\r\n` ones too (a CRLF sender's keep-alive or separator), carry nothing.
            if line.isEmpty || line.count == 1 && bytes[line.lowerBound] == UInt8(ascii: "\r") { continue }
            return .message(line)
        }
    }
}
