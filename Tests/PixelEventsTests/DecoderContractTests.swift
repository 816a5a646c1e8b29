import PixelEvents
import Testing

@Suite("The decoding contract")
struct DecoderContractTests {
    @Test("the classic example, exactly")
    func classicExample() throws {
        let event = try PixelEventDecoder.decode(Array("1379183721.115,foo=bar&baz=1".utf8))
        #expect(event.timestampText == "1379183721.115")
        #expect(event.timestamp == 1379183721.115)
        #expect(event.args == qargs(["foo": "bar", "baz": "1"]))
        #expect(event.fields.isEmpty)
        #expect(event.jsonLine() == #"{"ts":1379183721.115,"args":{"foo":"bar","baz":"1"}}"#)
    }

    @Test("the escape=json example, exactly")
    func jsonExample() throws {
        let line =
            #"{"ts":1763805600.123,"rid":"abc","args":"e=pageview&u=https%3A%2F%2Fex.com%2F","ip":"203.0.113.9","ua":"Mozilla/5.0 …","ref":"https://google.com/","dnt":"","gpc":"","country":"DE"}"#
        let event = try PixelEventDecoder.decode(Array(line.utf8))
        #expect(
            event.jsonLine()
                == #"{"ts":1763805600.123,"args":{"e":"pageview","u":"https://ex.com/"},"rid":"abc","ip":"203.0.113.9","ua":"Mozilla/5.0 …","ref":"https://google.com/","dnt":"","gpc":"","country":"DE"}"#
        )
        #expect(event.firstValue(of: "u") == "https://ex.com/")
        #expect(event.field("country") == "DE")
        #expect(event.field("ts") == nil)
        #expect(event.field("args") == nil)
    }

    /// The string reader skips eight bytes at a time until a word holds a quote or a backslash:
    /// either one at every offset of a long string (and every multi-byte character) must still be
    /// found where it is.
    @Test("a quote or an escape is found at every offset of a long string", arguments: 0..<24)
    func quotesAndEscapesAtEveryOffset(offset: Int) throws {
        let head = String(repeating: "a", count: offset)
        for (written, meant) in [(#"\""#, "\""), (#"\\"#, "\\"), (#"\u00e9"#, "é"), ("é", "é"), ("", "")] {
            let ua = head + written + "bcdefghijklmnopqrstuvwxyz"
            let line = #"{"ts":1763805600.123,"args":"e=x","ua":""# + ua + #"","ref":"r"}"#
            let event = try PixelEventDecoder.decode(Array(line.utf8))
            #expect(event.field("ua") == head + meant + "bcdefghijklmnopqrstuvwxyz", "\(written) at \(offset)")
            #expect(event.field("ref") == "r")
        }
    }

    @Test(
        "ts keeps the text nginx wrote",
        arguments: [
            ("1379183721.115", "1379183721.115"),
            ("1379183721.100", "1379183721.100"),
            ("1379183721.1", "1379183721.1"),
            ("1379183721", "1379183721"),
            ("0.5", "0.5"),
            ("0", "0"),
            ("000", "0"),
            ("0001.50", "1.50"),
            ("1763805600.123456789", "1763805600.123456789"),
        ]
    )
    func timestampText(input: String, expected: String) throws {
        let classic = try PixelEventDecoder.decode(Array("\(input),a=1".utf8))
        #expect(classic.timestampText == expected)
        #expect(classic.timestamp == Double(input))
        #expect(classic.jsonLine() == "{\"ts\":\(expected),\"args\":{\"a\":\"1\"}}")
        let json = try PixelEventDecoder.decode(Array("{\"ts\":\(input)}".utf8))
        #expect(json.timestampText == expected)
        #expect(json.jsonLine() == "{\"ts\":\(expected),\"args\":{}}")
    }

    @Test(
        "empty args",
        arguments: [
            "1.5,", "1.5,-", "1.5,&", "1.5,&&", #"{"ts":1.5}"#, #"{"ts":1.5,"args":""}"#, #"{"ts":1.5,"args":null}"#,
        ]
    )
    func emptyArgs(line: String) throws {
        let event = try PixelEventDecoder.decode(Array(line.utf8))
        #expect(event.args.isEmpty)
        #expect(event.jsonLine().hasPrefix(#"{"ts":1.5,"args":{}"#))
    }

    @Test(
        "nginx default escapes in classic lines are undone once, before percent-decoding",
        arguments: [
            (#"1.5,a=\x22\x5C\xc3\xa9"#, "\"\\é"),
            (#"1.5,a=\x4"#, #"\x4"#),
            (#"1.5,a=\xZZ"#, #"\xZZ"#),
            (#"1.5,a=%5Cx41"#, #"\x41"#),
            (#"1.5,a=\x2541"#, "A"),
        ]
    )
    func classicEscapes(line: String, expected: String) throws {
        let event = try PixelEventDecoder.decode(Array(line.utf8))
        #expect(event.args == [QueryArg(name: "a", value: expected)])
    }

    @Test("only the first comma separates ts from args")
    func commaInArgs() throws {
        let event = try PixelEventDecoder.decode(Array("1.5,a=x,y&b=1,".utf8))
        #expect(event.args == qargs(["a": "x,y", "b": "1,"]))
    }

    @Test(
        "tolerated framing: trailing newline/CR/NUL, BOM, JSON whitespace",
        arguments: [
            "1.5,a=1\n", "1.5,a=1\r\n", "1.5,a=1\0\0", "\u{FEFF}1.5,a=1",
            " { \"ts\" : 1.5 , \"args\" : \"a=1\" } \n", "\u{FEFF}{\"ts\":\"1.5\",\"args\":\"a=1\"}",
        ]
    )
    func framing(line: String) throws {
        let event = try PixelEventDecoder.decode(Array(line.utf8))
        #expect(event.timestampText == "1.5")
        #expect(event.args == qargs(["a": "1"]))
    }

    @Test("lenient JSON reading")
    func lenientJSON() throws {
        let line =
            #"{"ts":"1.5","s":200,"rt":0.004,"n":-1e3,"t":true,"f":false,"z":null,"old":"a\x22b\xC3\xA9","u":"\u00e9\ud83d\ude00","lone":"\ud83d!","odd":"\q\x4","sl":"a\/b"}"#
        let event = try PixelEventDecoder.decode(Array(line.utf8))
        #expect(
            event.fields
                == fields([
                    "s": "200", "rt": "0.004", "n": "-1e3", "t": "true", "f": "false", "z": "", "old": "a\"bé",
                    "u": "é😀", "lone": "\u{FFFD}!", "odd": #"\q\x4"#, "sl": "a/b",
                ])
        )
        expectJSONMatches(event.jsonLine(), event)
    }

    @Test("raw control characters inside JSON strings are kept and re-escaped")
    func rawControlsInJSON() throws {
        let event = try PixelEventDecoder.decode(rawBytes("{\"ts\":1,\"ua\":\"a\tb\u{01}\u{1F}\"}"))
        #expect(event.field("ua") == "a\tb\u{01}\u{1F}")
        #expect(event.jsonLine() == #"{"ts":1,"args":{},"ua":"a\tb\u0001\u001f"}"#)
    }

    @Test("non-contiguous and sliced inputs")
    func collectionKinds() throws {
        let bytes = Array("xx1.5,a=1".utf8)
        let sliced = try PixelEventDecoder.decode(bytes[2...])
        let lazy = try PixelEventDecoder.decode(bytes.dropFirst(2).lazy.map { $0 })
        let utf8 = try PixelEventDecoder.decode("1.5,a=1".utf8)
        #expect(sliced == lazy)
        #expect(sliced == utf8)
        #expect(sliced.args == qargs(["a": "1"]))
    }

    @Test("a large value under the limit decodes")
    func largeValue() throws {
        let value = String(repeating: "x", count: 60_000)
        let event = try PixelEventDecoder.decode(Array("1.5,big=\(value)".utf8))
        #expect(event.firstValue(of: "big")?.utf8.count == 60_000)
        let small = #expect(throws: PixelDecodeError.self) {
            try PixelEventDecoder.decode(Array("1.5,big=\(value)".utf8), maxBytes: 1000)
        }
        #expect(small?.reason == .tooLarge)
    }
}
