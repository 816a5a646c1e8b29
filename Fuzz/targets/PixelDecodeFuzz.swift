// Fuzz target `pixel-decode`: PixelEventDecoder.decode(_:) and PixelEvent.jsonLine() on a hostile Redis value.
//
// Built against a module `PixelEvents` made of Sources/PixelEvents/*.swift (Fuzz/build.sh), so it can use only
// the public API.
// The input is the raw value exactly as nginx logged it, so the seed corpus is real lines.
//
// Checked on every input:
//  1. decode() never traps (any trap, overflow or ASan report is a crash); an error's description is one
//     line of printable ASCII (it must never quote the input) and its offset lies inside the input;
//  2. on success, jsonLine() is accepted by a small strict RFC 8259 validator: starts with `{`, one object,
//     balanced, no raw control characters, valid escapes and UTF-8 (surrogates paired), valid numbers,
//     nothing after the object, and no duplicate member names in any object;
//  3. the JSON says what the event says: keys `ts`, `args`, then the fields in order; `ts` is a number whose
//     text is timestampText and whose value (strtod) is timestamp; `args` groups the arguments by name in
//     first-appearance order (one value → string, several → array in order), every string byte-exact;
//  4. appendJSONLine(to:) appends exactly jsonLine()'s bytes after what the buffer held;
//  5. decode() gives the same event (or error reason) with a UTF-8 BOM prepended and "\n" appended (both must
//     be ignored), and (for one input length in 8, to keep the rate up) through the copying Collection path.

import PixelEvents

@_cdecl("LLVMFuzzerTestOneInput")
public func pixelDecodeFuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = UnsafeBufferPointer(start: size == 0 ? nil : data, count: size)
    PixelDecodeFuzz.check(input)
    return 0
}

enum PixelDecodeFuzz {
    static func decode(_ bytes: some Collection<UInt8>) -> Result<PixelEvent, PixelDecodeError> {
        Result { () throws(PixelDecodeError) in try PixelEventDecoder.decode(bytes) }
    }

    static func check(_ input: UnsafeBufferPointer<UInt8>) {
        let result = decode(input)
        switch result {
        case .failure(let error):
            checkError(error, inputCount: input.count)
        case .success(let event):
            checkJSON(event)
        }
        checkVariants(result, input)
    }

    static func checkError(_ error: PixelDecodeError, inputCount: Int) {
        let description = error.description
        fuzzCheck(description.utf8.allSatisfy { $0 >= 0x20 && $0 < 0x7F }, "error description is not printable ASCII: \(description.debugDescription)")
        if let offset = error.offset {
            fuzzCheck(offset >= 0 && offset <= inputCount, "error offset \(offset) outside 0...\(inputCount): \(description)")
        }
    }

    static func checkJSON(_ event: PixelEvent) {
        let line = event.jsonLine()
        let bytes = Array(line.utf8)
        fuzzCheck(bytes.first == UInt8(ascii: "{") && bytes.last == UInt8(ascii: "}"), "jsonLine() is not {…}: \(line.debugDescription)")
        fuzzCheck(!bytes.contains(where: { $0 < 0x20 }), "jsonLine() has a raw control character: \(line.debugDescription)")
        var parser = StrictJSON(bytes)
        guard let document = parser.parseDocument() else {
            fuzzFail("jsonLine() is not valid JSON (\(parser.failure) at byte \(parser.index)): \(line.debugDescription)")
        }
        guard case .object(let members) = document else { fuzzFail("jsonLine() is not an object") }

        // Shape and round trip.
        fuzzCheck(members.count == 2 + event.fields.count, "jsonLine() has \(members.count) members for \(event.fields.count) fields: \(line.debugDescription)")
        fuzzCheck(members[0].name == Array("ts".utf8), "first member is not ts")
        guard case .number(let tsText) = members[0].value else { fuzzFail("ts is not a number: \(line.debugDescription)") }
        fuzzCheck(tsText == Array(event.timestampText.utf8), "ts \(String(decoding: tsText, as: UTF8.self)) is not timestampText \(event.timestampText)")
        let strtod = Double(String(decoding: tsText, as: UTF8.self))
        fuzzCheck(strtod == event.timestamp, "timestamp \(event.timestamp) is not strtod(\(event.timestampText)) = \(String(describing: strtod))")

        fuzzCheck(members[1].name == Array("args".utf8), "second member is not args")
        guard case .object(let argMembers) = members[1].value else { fuzzFail("args is not an object") }
        var groups: [(name: String, values: [String])] = []
        for arg in event.args {
            // Grouped byte for byte, as jsonLine() does (JSON compares member names by bytes; `String.==`
            // would merge `é` with `e` + U+0301).
            if let index = groups.firstIndex(where: { $0.name.utf8.elementsEqual(arg.name.utf8) }) {
                groups[index].values.append(arg.value)
            } else {
                groups.append((arg.name, [arg.value]))
            }
        }
        fuzzCheck(argMembers.count == groups.count, "args has \(argMembers.count) keys for \(groups.count) distinct names: \(line.debugDescription)")
        for (member, group) in zip(argMembers, groups) {
            fuzzCheck(member.name == Array(group.name.utf8), "args key \(fuzzHex(member.name)) is not \(fuzzHex(group.name.utf8))")
            if group.values.count == 1 {
                fuzzCheck(member.value == .string(Array(group.values[0].utf8)), "args[\(group.name.debugDescription)] is not its value")
            } else {
                fuzzCheck(member.value == .array(group.values.map { .string(Array($0.utf8)) }), "args[\(group.name.debugDescription)] is not its \(group.values.count) values in order")
            }
        }
        for (member, field) in zip(members.dropFirst(2), event.fields) {
            fuzzCheck(member.name == Array(field.name.utf8) && member.value == .string(Array(field.value.utf8)),
                "field \(field.name.debugDescription) does not round-trip: \(line.debugDescription)")
        }

        // appendJSONLine(to:) after existing bytes.
        var buffer: [UInt8] = [0x5B, 0x0A]
        event.appendJSONLine(to: &buffer)
        fuzzCheck(buffer.count == 2 + bytes.count && buffer[0] == 0x5B && buffer[1] == 0x0A && buffer[2...].elementsEqual(bytes),
            "appendJSONLine(to:) did not append exactly jsonLine()")
    }

    static func checkVariants(_ result: Result<PixelEvent, PixelDecodeError>, _ input: UnsafeBufferPointer<UInt8>) {
        if input.count & 7 == 0 {
            let generic = decode(input.lazy.map { $0 })
            fuzzCheck(generic == result, "decode(Collection) differs from decode(contiguous): \(generic) vs \(result)")
        }

        let startsWithBOM = input.count >= 3 && input[0] == 0xEF && input[1] == 0xBB && input[2] == 0xBF
        guard !startsWithBOM, input.count + 4 <= PixelEventDecoder.defaultMaxBytes else { return }
        let wrapped = decode([0xEF, 0xBB, 0xBF] + Array(input) + [0x0A])
        switch (result, wrapped) {
        case (.success(let event), .success(let other)):
            fuzzCheck(event == other, "BOM + input + LF decodes to a different event")
        case (.failure(let error), .failure(let other)):
            fuzzCheck(error.reason == other.reason, "BOM + input + LF fails with \(other) instead of \(error)")
        default:
            fuzzFail("BOM + input + LF: \(wrapped) but input alone: \(result)")
        }
    }
}

// MARK: - A small strict JSON reader (RFC 8259), independent of the code under test

indirect enum JSONValue: Equatable {
    case object([JSONMember])
    case array([JSONValue])
    case string([UInt8])
    case number([UInt8])
    case literal([UInt8])
}

struct JSONMember: Equatable {
    var name: [UInt8]
    var value: JSONValue
}

struct StrictJSON {
    let bytes: [UInt8]
    var index = 0
    var depth = 0
    var failure = ""

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    /// The one top-level object, or `nil` (see ``failure``).
    mutating func parseDocument() -> JSONValue? {
        skipWhitespace()
        guard peek() == UInt8(ascii: "{") else { return fail("document does not start with {") }
        guard let value = parseValue() else { return nil }
        skipWhitespace()
        guard index == bytes.count else { return fail("bytes after the top-level value") }
        return value
    }

    private mutating func fail(_ reason: String) -> JSONValue? {
        if failure.isEmpty { failure = reason }
        return nil
    }

    private func peek() -> UInt8? { index < bytes.count ? bytes[index] : nil }

    private mutating func skipWhitespace() {
        while let byte = peek(), byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D { index += 1 }
    }

    private mutating func parseValue() -> JSONValue? {
        skipWhitespace()
        guard let byte = peek() else { return fail("end of input, expected a value") }
        switch byte {
        case UInt8(ascii: "{"): return parseObject()
        case UInt8(ascii: "["): return parseArray()
        case UInt8(ascii: "\""): return parseString().map { .string($0) } ?? nil
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return parseNumber()
        default:
            for word in ["true", "false", "null"] {
                let utf8 = Array(word.utf8)
                if bytes.count - index >= utf8.count && bytes[index..<index + utf8.count].elementsEqual(utf8) {
                    index += utf8.count
                    return .literal(utf8)
                }
            }
            return fail("unexpected byte")
        }
    }

    private mutating func parseObject() -> JSONValue? {
        depth += 1
        defer { depth -= 1 }
        guard depth <= 8 else { return fail("nested too deep") }
        index += 1
        var members: [JSONMember] = []
        skipWhitespace()
        if peek() == UInt8(ascii: "}") {
            index += 1
            return .object(members)
        }
        while true {
            skipWhitespace()
            guard peek() == UInt8(ascii: "\"") else { return fail("expected a member name") }
            guard let name = parseString() else { return nil }
            guard !members.contains(where: { $0.name == name }) else { return fail("duplicate member name \(fuzzHex(name))") }
            skipWhitespace()
            guard peek() == UInt8(ascii: ":") else { return fail("expected :") }
            index += 1
            guard let value = parseValue() else { return nil }
            members.append(JSONMember(name: name, value: value))
            skipWhitespace()
            guard let next = peek() else { return fail("unterminated object") }
            index += 1
            if next == UInt8(ascii: "}") { return .object(members) }
            guard next == UInt8(ascii: ",") else { return fail("expected , or }") }
        }
    }

    private mutating func parseArray() -> JSONValue? {
        depth += 1
        defer { depth -= 1 }
        guard depth <= 8 else { return fail("nested too deep") }
        index += 1
        var elements: [JSONValue] = []
        skipWhitespace()
        if peek() == UInt8(ascii: "]") {
            index += 1
            return .array(elements)
        }
        while true {
            guard let value = parseValue() else { return nil }
            elements.append(value)
            skipWhitespace()
            guard let next = peek() else { return fail("unterminated array") }
            index += 1
            if next == UInt8(ascii: "]") { return .array(elements) }
            guard next == UInt8(ascii: ",") else { return fail("expected , or ]") }
        }
    }

    /// A string at `"`; returns its decoded UTF-8 bytes.
    private mutating func parseString() -> [UInt8]? {
        index += 1
        var out: [UInt8] = []
        while true {
            guard let byte = peek() else { failure = failure.isEmpty ? "unterminated string" : failure; return nil }
            switch byte {
            case UInt8(ascii: "\""):
                index += 1
                return out
            case 0x00..<0x20:
                failure = "raw control character in a string"
                return nil
            case UInt8(ascii: "\\"):
                index += 1
                guard let escape = peek() else { failure = "unterminated escape"; return nil }
                index += 1
                switch escape {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(escape)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    guard var scalar = hex4() else { failure = "bad \\u escape"; return nil }
                    if (0xD800..<0xDC00).contains(scalar) {
                        guard peek() == UInt8(ascii: "\\"), index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "u") else {
                            failure = "lone high surrogate"
                            return nil
                        }
                        index += 2
                        guard let low = hex4(), (0xDC00..<0xE000).contains(low) else { failure = "bad low surrogate"; return nil }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00..<0xE000).contains(scalar) {
                        failure = "lone low surrogate"
                        return nil
                    }
                    out.append(contentsOf: UTF8.encode(Unicode.Scalar(scalar)!)!)
                default:
                    failure = "invalid escape"
                    return nil
                }
            case 0x20..<0x80:
                out.append(byte)
                index += 1
            default:
                guard let length = utf8SequenceLength(at: index) else { failure = "invalid UTF-8"; return nil }
                out.append(contentsOf: bytes[index..<index + length])
                index += length
            }
        }
    }

    private mutating func hex4() -> UInt32? {
        guard bytes.count - index >= 4 else { return nil }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[index]
            let digit: UInt32
            switch byte {
            case 0x30...0x39: digit = UInt32(byte - 0x30)
            case 0x41...0x46: digit = UInt32(byte - 0x41 + 10)
            case 0x61...0x66: digit = UInt32(byte - 0x61 + 10)
            default: return nil
            }
            value = value << 4 | digit
            index += 1
        }
        return value
    }

    /// Length of the well-formed UTF-8 sequence (Unicode table 3-7) starting with a byte >= 0x80, or `nil`.
    private func utf8SequenceLength(at start: Int) -> Int? {
        let lead = bytes[start]
        let length: Int
        var low: UInt8 = 0x80
        var high: UInt8 = 0xBF
        switch lead {
        case 0xC2...0xDF: length = 2
        case 0xE0: length = 3; low = 0xA0
        case 0xE1...0xEC, 0xEE...0xEF: length = 3
        case 0xED: length = 3; high = 0x9F
        case 0xF0: length = 4; low = 0x90
        case 0xF1...0xF3: length = 4
        case 0xF4: length = 4; high = 0x8F
        default: return nil
        }
        guard bytes.count - start >= length else { return nil }
        guard bytes[start + 1] >= low && bytes[start + 1] <= high else { return nil }
        for offset in 2..<max(2, length) where bytes[start + offset] & 0xC0 != 0x80 { return nil }
        return length
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    private mutating func parseNumber() -> JSONValue? {
        let start = index
        if peek() == UInt8(ascii: "-") { index += 1 }
        guard let first = peek(), first >= 0x30 && first <= 0x39 else { return fail("number without digits") }
        index += 1
        if first != 0x30 { skipDigits() }
        if peek() == UInt8(ascii: ".") {
            index += 1
            guard skipDigits() > 0 else { return fail("no digits after .") }
        }
        if let e = peek(), e == UInt8(ascii: "e") || e == UInt8(ascii: "E") {
            index += 1
            if let sign = peek(), sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") { index += 1 }
            guard skipDigits() > 0 else { return fail("no digits in exponent") }
        }
        return .number(Array(bytes[start..<index]))
    }

    @discardableResult
    private mutating func skipDigits() -> Int {
        let start = index
        while let byte = peek(), byte >= 0x30 && byte <= 0x39 { index += 1 }
        return index - start
    }
}
