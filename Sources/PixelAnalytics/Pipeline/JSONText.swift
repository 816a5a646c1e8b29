import PixelEvents

/// Appends JSON text to a byte buffer (the archive lines and reports): escaped strings, raw numbers.
struct JSONText {
    var bytes: [UInt8]

    init(capacity: Int = 256) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    mutating func raw(_ text: StaticString) {
        bytes.append(contentsOf: UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    mutating func raw(_ text: String) {
        bytes.append(contentsOf: text.utf8)
    }

    /// `,"name":"value"` (or without the comma for the first member). The name is a literal: copied
    /// from the binary, with none of a `String`'s reference counting (an archive line has ~12).
    mutating func member(_ name: StaticString, _ value: String, first: Bool = false) {
        if !first { bytes.append(UInt8(ascii: ",")) }
        bytes.append(UInt8(ascii: "\""))
        raw(name)
        raw("\":")
        string(value)
    }

    /// `,"name":value` with a raw (already valid JSON) value.
    mutating func rawMember(_ name: String, _ value: String, first: Bool = false) {
        if !first { bytes.append(UInt8(ascii: ",")) }
        bytes.append(UInt8(ascii: "\""))
        raw(name)
        raw("\":")
        raw(value)
    }

    /// A quoted JSON string; quotes, backslashes and control characters escaped.
    mutating func string(_ text: String) {
        bytes.append(UInt8(ascii: "\""))
        ASCIIBytes.withBytes(text) { utf8 in
            var runStart = 0
            for index in JSONScan.plainWords(in: utf8, from: 0)..<utf8.count {
                let byte = utf8[index]
                guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else { continue }
                if runStart < index { bytes.append(contentsOf: utf8.extracting(runStart..<index)) }
                switch byte {
                case UInt8(ascii: "\""): raw("\\\"")
                case UInt8(ascii: "\\"): raw("\\\\")
                case 0x0A: raw("\\n")
                case 0x0D: raw("\\r")
                case 0x09: raw("\\t")
                default:
                    let hex: StaticString = "0123456789abcdef"
                    raw("\\u00")
                    bytes.append(hex.utf8Start[Int(byte >> 4)])
                    bytes.append(hex.utf8Start[Int(byte & 0xF)])
                }
                runStart = index + 1
            }
            if runStart < utf8.count { bytes.append(contentsOf: utf8.extracting(runStart..<utf8.count)) }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    var text: String { String(decoding: bytes, as: UTF8.self) }
}
