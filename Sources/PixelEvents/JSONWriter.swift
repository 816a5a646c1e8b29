/// Appends JSON text to a byte buffer: escaped strings and verbatim numbers, no per-character `String` work.
struct JSONWriter {
    /// The JSON text written so far (UTF-8).
    var bytes: [UInt8]

    init(capacity: Int) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    init(appendingTo bytes: consuming [UInt8]) {
        self.bytes = bytes
    }

    @inline(__always)
    mutating func append(_ byte: UInt8) {
        bytes.append(byte)
    }

    /// Appends ASCII text that needs no escaping (punctuation, validated numbers).
    mutating func appendRaw(_ text: String) {
        bytes.append(contentsOf: text.utf8)
    }

    /// Appends `text` as a quoted JSON string, escaping `"`, `\` and every control character below U+0020.
    mutating func appendString(_ text: String) {
        let done: Void? = text.utf8.withContiguousStorageIfAvailable { appendString(utf8: $0) }
        if done == nil {
            // Bridged or otherwise non-contiguous strings: copy once.
            Array(text.utf8).withUnsafeBufferPointer { appendString(utf8: $0) }
        }
    }

    /// Appends already valid UTF-8 as a quoted JSON string.
    mutating func appendString(utf8: UnsafeBufferPointer<UInt8>) {
        bytes.append(ASCII.quote)
        var runStart = 0
        for index in 0..<utf8.count {
            let byte = utf8[index]
            guard byte < 0x20 || byte == ASCII.quote || byte == ASCII.backslash else {
                continue
            }
            if runStart < index {
                bytes.append(contentsOf: utf8.slice(runStart..<index))
            }
            appendEscape(byte)
            runStart = index + 1
        }
        if runStart < utf8.count {
            bytes.append(contentsOf: utf8.slice(runStart..<utf8.count))
        }
        bytes.append(ASCII.quote)
    }

    private mutating func appendEscape(_ byte: UInt8) {
        bytes.append(ASCII.backslash)
        switch byte {
        case ASCII.quote: bytes.append(ASCII.quote)
        case ASCII.backslash: bytes.append(ASCII.backslash)
        case ASCII.lineFeed: bytes.append(UInt8(ascii: "n"))
        case ASCII.carriageReturn: bytes.append(UInt8(ascii: "r"))
        case ASCII.tab: bytes.append(UInt8(ascii: "t"))
        case 0x08: bytes.append(UInt8(ascii: "b"))
        case 0x0C: bytes.append(UInt8(ascii: "f"))
        default:
            // Only bytes below 0x20 get here, so the high nibble is 0 or 1.
            let low = byte & 0xF
            bytes.append(UInt8(ascii: "u"))
            bytes.append(ASCII.zero)
            bytes.append(ASCII.zero)
            bytes.append(ASCII.zero + (byte >> 4))
            bytes.append(low < 10 ? ASCII.zero + low : UInt8(ascii: "a") + low - 10)
        }
    }
}
