import PixelEvents
import Testing

/// ``PixelEventLineEncoder`` must write exactly what `decode(value).appendJSONLine(to:)` writes, and
/// fail exactly where and how `decode` fails.
@Suite("PixelEventLineEncoder: byte-identical to decode + appendJSONLine")
struct LineEncoderTests {
    private static func reference(_ value: [UInt8]) -> Result<[UInt8], PixelDecodeError> {
        do throws(PixelDecodeError) {
            var line: [UInt8] = Array("prefix|".utf8)
            try PixelEventDecoder.decode(value).appendJSONLine(to: &line)
            return .success(line)
        } catch {
            return .failure(error)
        }
    }

    private static func encoded(_ value: [UInt8], with encoder: inout PixelEventLineEncoder) -> Result<[UInt8], PixelDecodeError> {
        do throws(PixelDecodeError) {
            var line: [UInt8] = Array("prefix|".utf8)
            try encoder.appendJSONLine(of: value, to: &line)
            return .success(line)
        } catch {
            return .failure(error)
        }
    }

    @Test(arguments: [
        "1763805600.001,e=pageview&u=https%3A%2F%2Fexample.com%2Fa%3Fb%3Dc&w=1280",
        "0001.50,k=1&k=2&x=&=v&k=3&flag&&e=a+b",
        "1379183721.115,k=1&k=2&%E2%9C%93=%zz+x",
        "1379183721.115,n=%C3%A9t%C3%A9&bad=%C3%28&lone=%FF&q=\\x22quoted\\x22&b=\\x5C",
        "1379183721.115,-",
        "1379183721.115,",
        "1.5,a=1&b=2&c=3&d=4&e=5&f=6&g=7&h=8&i=9&j=10&k=11&l=12&m=13&n=14&o=15&p=16",
        "1.5,a=1&b=2&c=3&d=4&e=5&f=6&g=7&h=8&i=9&j=10&k=11&l=12&m=13&n=14&o=15&p=16&a=17",
        "1.5,ctl=%00%01%1F%22%5C&nl=%0A\r\n",
        "\u{FEFF}1.5,a=1",
        "12345678901234567890.123,a=1",
        "x1.5,a=1", "1.5", "", "\n", "1.,a=1",
        #"{"ts":1.5,"args":"a=1&a=2","ua":"x"}"#,
    ])
    func examples(_ text: String) {
        let value = Array(text.utf8)
        var encoder = PixelEventLineEncoder()
        #expect(Self.encoded(value, with: &encoder) == Self.reference(value))
    }

    @Test("every nginx fixture, both shapes")
    func fixtures() {
        var encoder = PixelEventLineEncoder()
        for hit in NginxFixtures.hits {
            for value in [rawBytes(hit.classic), rawBytes(hit.json)] {
                #expect(Self.encoded(value, with: &encoder) == Self.reference(value), "\(hit.name)")
            }
        }
    }

    @Test("100 000 seeded random and mutated values, one encoder reused", .timeLimit(.minutes(2)))
    func randomInputs() {
        var generator = SeededGenerator(seed: 0x5EED_1234_ABCD_0002)
        var encoder = PixelEventLineEncoder()
        var mismatches = 0
        for round in 0..<100_000 {
            let input = RobustnessTests.makeInput(round: round, using: &generator)
            if Self.encoded(input, with: &encoder) != Self.reference(input) {
                mismatches += 1
                if mismatches <= 3 { Issue.record("differs for \(input)") }
            }
        }
        #expect(mismatches == 0)
    }

    @Test func aValueOverTheLimitIsRejectedUnread() {
        var encoder = PixelEventLineEncoder()
        var line: [UInt8] = []
        #expect(throws: PixelDecodeError.self) { try encoder.appendJSONLine(of: Array("1.5,a=1".utf8), to: &line, maxBytes: 3) }
        #expect(line.isEmpty)
    }
}
