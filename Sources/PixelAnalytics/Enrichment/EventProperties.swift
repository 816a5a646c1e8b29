/// Custom event properties (`p`): a flat JSON object of strings, numbers and booleans, e.g.
/// `{"plan":"pro","seats":3}`. Anything else (nesting, invalid JSON, too many or too long members)
/// is rejected as a whole — the event still counts, without properties.
public enum EventProperties {
    /// Members kept at most.
    public static let maxCount = 30
    /// Longest name, in bytes.
    public static let maxNameBytes = 64
    /// Longest value, in bytes.
    public static let maxValueBytes = 256

    /// Parses `text` into (name, value) pairs in order; numbers and booleans keep their literal text.
    /// - Returns: `nil` when `text` is not such an object.
    public static func parse(_ text: String) -> [(name: String, value: String)]? {
        ASCIIBytes.withBytes(text) { bytes in
            var parser = Parser(bytes: bytes)
            return parser.object()
        }
    }

    /// The pairs as a compact JSON object with string values (what the archive stores).
    public static func json(_ pairs: [(name: String, value: String)]) -> String {
        var out = JSONText()
        out.raw("{")
        for (index, pair) in pairs.enumerated() {
            if index > 0 { out.raw(",") }
            out.string(pair.name)
            out.raw(":")
            out.string(pair.value)
        }
        out.raw("}")
        return out.text
    }

    private struct Parser {
        let bytes: UnsafeBufferPointer<UInt8>
        var index = 0

        mutating func skipSpace() {
            while index < bytes.count, bytes[index] == 0x20 || bytes[index] == 0x09 || bytes[index] == 0x0A || bytes[index] == 0x0D {
                index += 1
            }
        }

        mutating func object() -> [(name: String, value: String)]? {
            skipSpace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: "{") else { return nil }
            index += 1
            var pairs: [(name: String, value: String)] = []
            skipSpace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
                index += 1
                skipSpace()
                return index == bytes.count ? pairs : nil
            }
            while true {
                skipSpace()
                guard let name = string(), name.utf8.count <= EventProperties.maxNameBytes, !name.isEmpty else { return nil }
                skipSpace()
                guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { return nil }
                index += 1
                skipSpace()
                guard let value = scalar(), value.utf8.count <= EventProperties.maxValueBytes else { return nil }
                guard !pairs.contains(where: { $0.name == name }) else { return nil }
                pairs.append((DimensionText.clean(name, limit: EventProperties.maxNameBytes), DimensionText.clean(value, limit: EventProperties.maxValueBytes)))
                guard pairs.count <= EventProperties.maxCount else { return nil }
                skipSpace()
                guard index < bytes.count else { return nil }
                if bytes[index] == UInt8(ascii: ",") {
                    index += 1
                    continue
                }
                guard bytes[index] == UInt8(ascii: "}") else { return nil }
                index += 1
                skipSpace()
                return index == bytes.count ? pairs : nil
            }
        }

        mutating func scalar() -> String? {
            guard index < bytes.count else { return nil }
            if bytes[index] == UInt8(ascii: "\"") { return string() }
            let start = index
            while index < bytes.count {
                let byte = bytes[index]
                let isLiteral = (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || byte == UInt8(ascii: "-")
                    || byte == UInt8(ascii: "+") || byte == UInt8(ascii: ".") || (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z"))
                    || byte == UInt8(ascii: "E")
                guard isLiteral else { break }
                index += 1
            }
            let literal = String(decoding: bytes.extracting(start..<index), as: UTF8.self)
            if literal == "true" || literal == "false" { return literal }
            guard let first = literal.utf8.first, first == UInt8(ascii: "-") || (first >= UInt8(ascii: "0") && first <= UInt8(ascii: "9")),
                Double(literal) != nil
            else { return nil }
            return literal
        }

        mutating func string() -> String? {
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { return nil }
            index += 1
            var out: [UInt8] = []
            while index < bytes.count {
                let byte = bytes[index]
                index += 1
                switch byte {
                case UInt8(ascii: "\""):
                    return String(decoding: out, as: UTF8.self)
                case UInt8(ascii: "\\"):
                    guard index < bytes.count else { return nil }
                    let escaped = bytes[index]
                    index += 1
                    switch escaped {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(escaped)
                    case UInt8(ascii: "n"): out.append(0x0A)
                    case UInt8(ascii: "t"): out.append(0x09)
                    case UInt8(ascii: "r"): out.append(0x0D)
                    case UInt8(ascii: "b"): out.append(0x08)
                    case UInt8(ascii: "f"): out.append(0x0C)
                    case UInt8(ascii: "u"):
                        guard index + 4 <= bytes.count else { return nil }
                        var value: UInt32 = 0
                        for offset in 0..<4 {
                            let digit = bytes[index + offset]
                            let nibble: UInt32
                            switch digit {
                            case UInt8(ascii: "0")...UInt8(ascii: "9"): nibble = UInt32(digit - UInt8(ascii: "0"))
                            case UInt8(ascii: "a")...UInt8(ascii: "f"): nibble = UInt32(digit - UInt8(ascii: "a") + 10)
                            case UInt8(ascii: "A")...UInt8(ascii: "F"): nibble = UInt32(digit - UInt8(ascii: "A") + 10)
                            default: return nil
                            }
                            value = value << 4 | nibble
                        }
                        index += 4
                        // Surrogates are not paired here: replaced, as invalid UTF-8 would be.
                        let scalar = Unicode.Scalar(value) ?? "\u{FFFD}"
                        out.append(contentsOf: String(Character(scalar)).utf8)
                    default:
                        return nil
                    }
                default:
                    guard byte >= 0x20 else { return nil }
                    out.append(byte)
                }
            }
            return nil
        }
    }
}
