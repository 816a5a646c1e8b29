import PixelEvents
import Testing

@Suite("Malformed values throw, never crash")
struct MalformedInputTests {
    /// One malformed value; described by name only, so test output stays readable for huge inputs.
    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var bytes: [UInt8]
        var reason: PixelDecodeError.Reason

        init(_ name: String, _ bytes: [UInt8], _ reason: PixelDecodeError.Reason) {
            self.name = name
            self.bytes = bytes
            self.reason = reason
        }

        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case("empty", [], .empty),
        Case("newline only", Array("\n".utf8), .empty),
        Case("CR LF NUL", [0x0D, 0x0A, 0x00], .empty),
        Case("BOM only", [0xEF, 0xBB, 0xBF], .empty),
        Case("binary garbage", [0x00, 0xFF, 0xFE, 0x80, 0x01, 0x9B], .unknownShape),
        Case("words", Array("hello world".utf8), .unknownShape),
        Case("timestamp without comma", Array("1379183721.115".utf8), .unknownShape),
        Case("abc,", Array("abc,".utf8), .badTimestamp),
        Case("1.2.3,x", Array("1.2.3,x".utf8), .badTimestamp),
        Case("no timestamp", Array(",a=b".utf8), .badTimestamp),
        Case("dot without fraction", Array("1.,a=b".utf8), .badTimestamp),
        Case("fraction only", Array(".5,a=b".utf8), .badTimestamp),
        Case("negative", Array("-1.5,a=b".utf8), .badTimestamp),
        Case("exponent", Array("1e9,a=b".utf8), .badTimestamp),
        Case("binary before comma", [0xFF, 0x2C, 0x61], .badTimestamp),
        Case("33-digit timestamp", Array("\(String(repeating: "1", count: 33)),a".utf8), .badTimestamp),
        Case("JSON cut after ts", Array(#"{"ts":"#.utf8), .badJSON),
        Case("JSON cut in number", Array(#"{"ts":1.5"#.utf8), .badJSON),
        Case("JSON cut in string", Array(#"{"ts":1.5,"ua":"Mozil"#.utf8), .badJSON),
        Case("JSON cut in escape", Array(#"{"ts":1.5,"ua":"a\"#.utf8), .badJSON),
        Case("lone brace", Array("{".utf8), .badJSON),
        Case("empty object", Array("{}".utf8), .missingTimestamp),
        Case("object without ts", Array(#"{"args":"a=1","ua":"x"}"#.utf8), .missingTimestamp),
        Case("ts text", Array(#"{"ts":"soon"}"#.utf8), .badTimestamp),
        Case("ts null", Array(#"{"ts":null}"#.utf8), .badTimestamp),
        Case("ts negative", Array(#"{"ts":-1}"#.utf8), .badTimestamp),
        Case("ts exponent", Array(#"{"ts":1.7e9}"#.utf8), .badTimestamp),
        Case("minus alone", Array(#"{"ts":-}"#.utf8), .badJSON),
        Case("trailing brace", Array(#"{"ts":1.5}}"#.utf8), .badJSON),
        Case("trailing comma", Array(#"{"ts":1.5,}"#.utf8), .badJSON),
        Case("missing comma", Array(#"{"ts":1.5 "a":"b"}"#.utf8), .badJSON),
        Case("unquoted key", Array("{ts:1.5}".utf8), .badJSON),
        Case("nested object", Array(#"{"ts":1.5,"a":{}}"#.utf8), .badJSON),
        Case("nested array", Array(#"{"ts":1.5,"a":[1]}"#.utf8), .badJSON),
        Case("bad literal", Array(#"{"ts":1.5,"a":tru}"#.utf8), .badJSON),
        Case("duplicate ts", Array(#"{"ts":1.5,"ts":2}"#.utf8), .badJSON),
        Case("duplicate args", Array(#"{"ts":1.5,"args":"","args":"a"}"#.utf8), .badJSON),
        Case("duplicate field", Array(#"{"ts":1.5,"a":"1","a":"2"}"#.utf8), .badJSON),
        // Found by the fuzzer: two different invalid bytes decode to the same name "\u{FFFD}".
        Case("duplicate field after U+FFFD repair", [0x7B, 0x22, 0x74, 0x73, 0x22, 0x3A, 0x31, 0x2C, 0x22, 0xFF, 0x22, 0x3A, 0x30, 0x2C, 0x22, 0xFE, 0x22, 0x3A, 0x30, 0x7D], .badJSON),
        Case(
            "duplicate field beyond the first 16",
            Array(("{\"ts\":1" + (0..<20).map { ",\"k\($0)\":\"v\"" }.joined() + ",\"k18\":\"w\"}").utf8),
            .badJSON
        ),
        Case("args number", Array(#"{"ts":1.5,"args":5}"#.utf8), .badJSON),
        Case("garbage after object", Array(#"{"ts":1.5} x"#.utf8), .badJSON),
        Case(
            "too many members",
            Array(("{\"ts\":1" + (0..<300).map { ",\"k\($0)\":\"v\"" }.joined() + "}").utf8),
            .badJSON
        ),
        Case("huge line", Array(repeating: UInt8(ascii: "1"), count: 70_000), .tooLarge),
        Case(
            "huge JSON line",
            Array(("{\"ts\":1,\"a\":\"" + String(repeating: "x", count: 70_000) + "\"}").utf8),
            .tooLarge
        ),
    ]

    @Test("throws the right reason", arguments: cases)
    func throwsReason(_ malformed: Case) {
        let (name, bytes, reason) = (malformed.name, malformed.bytes, malformed.reason)
        let error = #expect(throws: PixelDecodeError.self, "\(name)") {
            try PixelEventDecoder.decode(bytes)
        }
        #expect(error?.reason == reason, "\(name): \(error.map(String.init(describing:)) ?? "no error")")
        if let error {
            let description = error.description
            #expect(description.hasPrefix(reason.code + ": "))
            #expect(!description.contains("\n"))
            #expect(description.utf8.count < 120)
        }
    }

    @Test("errors carry the offset in the whole input")
    func offsets() throws {
        let error = #expect(throws: PixelDecodeError.self) {
            try PixelEventDecoder.decode(Array("\u{FEFF}{\"ts\":1.5,}".utf8))
        }
        #expect(error?.offset == 3 + 10)
        #expect(error?.description == "bad_json: expected a member name at byte 13")
    }

    @Test("many distinct members decode, in order (duplicate check past its 16 inline hashes)")
    func manyMembers() throws {
        let names = (0..<40).map { "k\($0)" }
        let event = try PixelEventDecoder.decode(Array(("{\"ts\":1" + names.map { ",\"\($0)\":\"v\"" }.joined() + "}").utf8))
        #expect(event.fields.map(\.name) == names)
    }

    @Test("reason codes are stable strings")
    func reasonCodes() {
        let reasons: [PixelDecodeError.Reason] = [
            .empty, .tooLarge, .unknownShape, .badTimestamp, .missingTimestamp, .badJSON,
        ]
        #expect(
            reasons.map(\.code)
                == ["empty", "too_large", "unknown_shape", "bad_timestamp", "missing_timestamp", "bad_json"]
        )
        #expect(Set(reasons).count == reasons.count)
    }
}
