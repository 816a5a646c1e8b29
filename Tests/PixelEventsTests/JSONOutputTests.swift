import Foundation
import PixelEvents
import Testing

@Suite("JSON output")
struct JSONOutputTests {
    @Test("a repeated name becomes an array at its first position; single names stay strings")
    func repeatedKeys() throws {
        let event = try PixelEventDecoder.decode(Array("1.5,k=1&e=x&k=2&k=3&flag".utf8))
        #expect(event.jsonLine() == #"{"ts":1.5,"args":{"k":["1","2","3"],"e":"x","flag":""}}"#)
        #expect(event.values(of: "k") == ["1", "2", "3"])
        #expect(event.firstValue(of: "k") == "1")
        #expect(event.values(of: "missing").isEmpty)
        expectJSONMatches(event.jsonLine(), event)
    }

    @Test("many args (hashed grouping) keep first-appearance order")
    func manyArgs() throws {
        var query: [String] = []
        for round in 0..<2 {
            for name in 0..<20 {
                query.append("n\(name)=\(round * 20 + name)")
            }
        }
        query.append("last=1")
        let event = try PixelEventDecoder.decode(Array("1.5,\(query.joined(separator: "&"))".utf8))
        let expected = (0..<20).map { "\"n\($0)\":[\"\($0)\",\"\($0 + 20)\"]" }.joined(separator: ",")
        #expect(event.jsonLine() == "{\"ts\":1.5,\"args\":{\(expected),\"last\":\"1\"}}")
        expectJSONMatches(event.jsonLine(), event)
    }

    @Test("names are grouped byte for byte: canonically equivalent but different names stay apart")
    func canonicallyEquivalentNamesStayApart() throws {
        // "é" precomposed (C3 A9) and "e" + combining acute (65 CC 81): equal as Swift Strings, not as
        // JSON member names. Both the scanning (≤ 16 args) and the hashing path keep them apart.
        let few = try PixelEventDecoder.decode(Array("1.5,%C3%A9=1&e%CC%81=2&%C3%A9=3".utf8))
        #expect(few.jsonLine() == "{\"ts\":1.5,\"args\":{\"\u{E9}\":[\"1\",\"3\"],\"e\u{301}\":\"2\"}}")
        let padding = (0..<20).map { "p\($0)=x" }.joined(separator: "&")
        let many = try PixelEventDecoder.decode(Array("1.5,%C3%A9=1&e%CC%81=2&\(padding)&%C3%A9=3".utf8))
        #expect(many.jsonLine().hasPrefix("{\"ts\":1.5,\"args\":{\"\u{E9}\":[\"1\",\"3\"],\"e\u{301}\":\"2\",\"p0\":\"x\""))
    }

    @Test("every control character, quote, backslash and non-BMP text round-trips")
    func escaping() throws {
        let nasty = String(decoding: (0..<0x20).map { UInt8($0) }, as: UTF8.self) + "\"\\/\u{7F}\u{2028}\u{2029}😀é"
        let event = PixelEvent(
            timestampText: "1.5",
            timestamp: 1.5,
            args: [QueryArg(name: nasty, value: nasty)],
            fields: [PixelEvent.Field(name: "f" + nasty, value: nasty)]
        )
        let line = event.jsonLine()
        #expect(!line.contains("\n") && !line.contains("\r"))
        #expect(line.utf8.allSatisfy { $0 >= 0x20 })
        #expect(line.contains(#"\u0000\u0001"#) && line.contains(#"\b\t\n\u000b\f\r"#))
        expectJSONMatches(line, event)
    }

    @Test(
        "a timestamp that is not a JSON number falls back to the value, or null",
        arguments: [
            ("abc", 12.5, "12.5"),
            ("1.", 1.0, "1.0"),
            ("01", 1.0, "1.0"),
            ("", 3.0, "3.0"),
            ("-1", -1.0, "-1.0"),
            ("x", Double.nan, "null"),
            ("x", Double.infinity, "null"),
        ]
    )
    func timestampFallback(text: String, value: Double, expected: String) {
        let event = PixelEvent(timestampText: text, timestamp: value)
        #expect(event.jsonLine() == "{\"ts\":\(expected),\"args\":{}}")
        #expect((try? JSONSerialization.jsonObject(with: Data(event.jsonLine().utf8))) != nil)
    }

    @Test("appendJSONLine appends to an existing buffer")
    func appending() throws {
        let first = try PixelEventDecoder.decode(Array("1.5,a=1".utf8))
        let second = try PixelEventDecoder.decode(Array("2.5,b=2".utf8))
        var buffer: [UInt8] = []
        first.appendJSONLine(to: &buffer)
        buffer.append(0x0A)
        second.appendJSONLine(to: &buffer)
        #expect(String(decoding: buffer, as: UTF8.self) == first.jsonLine() + "\n" + second.jsonLine())
    }
}
