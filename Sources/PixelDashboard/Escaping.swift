/// Escaping for the three places visitor-controlled text (paths, referrers, UTM values, event names)
/// ends up: HTML text and attributes, JSON strings and CSV fields.
enum Escape {
    /// Text safe inside HTML element content and double- or single-quoted attribute values.
    static func html(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            case "`": out += "&#96;"
            default:
                if scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value) {
                    out += "\u{FFFD}"
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out
    }

    /// A quoted JSON string; `<`, `>` and `&` escaped too, so the JSON is also safe to embed.
    static func json(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "<", ">", "&", "\u{2028}", "\u{2029}":
                out += "\\u" + hex4(scalar.value)
            default:
                if scalar.value < 0x20 {
                    out += "\\u" + hex4(scalar.value)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }

    /// A CSV field (RFC 4180), with a leading `'` before `=`, `+`, `-`, `@` so that spreadsheets
    /// never evaluate a visitor's path as a formula. Both checks look at bytes, not characters: a
    /// combining mark after `=` (`"=\u{301}…"`) makes a different first `Character`, and `"\r\n"`
    /// is one `Character` that is neither `"\r"` nor `"\n"`.
    static func csv(_ text: String) -> String {
        var value = text
        if let first = value.utf8.first, "=+-@\t\r".utf8.contains(first) { value = "'" + value }
        if value.utf8.contains(where: { $0 == UInt8(ascii: ",") || $0 == UInt8(ascii: "\"") || $0 == 0x0A || $0 == 0x0D }) {
            var quoted = "\""
            for scalar in value.unicodeScalars {  // (a quote with a combining mark is one Character)
                if scalar == "\"" { quoted += "\"\"" } else { quoted.unicodeScalars.append(scalar) }
            }
            return quoted + "\""
        }
        return value
    }

    /// Percent-encodes a query parameter value (RFC 3986 unreserved characters kept).
    static func query(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                out += "%" + hex2(byte)
            }
        }
        return out
    }

    static func hex2(_ byte: UInt8) -> String {
        let digits = Array("0123456789ABCDEF")
        return String([digits[Int(byte >> 4)], digits[Int(byte & 0xF)]])
    }

    static func hex4(_ value: UInt32) -> String {
        hex2(UInt8((value >> 8) & 0xFF)) + hex2(UInt8(value & 0xFF))
    }
}
