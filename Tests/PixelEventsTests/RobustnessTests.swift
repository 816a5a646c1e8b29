import Foundation
import PixelEvents
import Testing

@Suite("Random input never crashes")
struct RobustnessTests {
    /// Bytes that steer random inputs into every branch of both readers.
    static let interesting: [UInt8] =
        Array("{}[]\",:\\/ux0123456789.eE+-&=%%Aaf tnr\u{7F}".utf8) + [
            0x00, 0x0A, 0x0D, 0x1F, 0x80, 0xBF, 0xC3, 0xA9, 0xE2, 0xED, 0xF0, 0xFF,
        ]

    static let seeds: [[UInt8]] =
        NginxFixtures.hits.flatMap { [rawBytes($0.json), rawBytes($0.classic)] } + [
            Array(#"{"ts":"1.5","u":"\ud83d\ude00\u00e9\x22\q","n":-1e3,"t":true,"z":null}"#.utf8),
            Array("1379183721.115,k=1&k=2&%E2%9C%93=%zz+x".utf8),
        ]

    @Test("100 000 seeded random and mutated values", .timeLimit(.minutes(2)))
    func randomInputs() throws {
        var generator = SeededGenerator(seed: 0x5EED_1234_ABCD_0001)
        let knownReasons: Set<PixelDecodeError.Reason> = [
            .empty, .tooLarge, .unknownShape, .badTimestamp, .missingTimestamp, .badJSON,
        ]
        var decoded = 0
        var failures: [PixelDecodeError.Reason: Int] = [:]
        for round in 0..<100_000 {
            let input = Self.makeInput(round: round, using: &generator)
            do {
                let event = try PixelEventDecoder.decode(input)
                decoded += 1
                let line = event.jsonLine()
                // Strict parse of every success; cheap enough, and the point of the test.
                guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                    object["ts"] is NSNumber, object["args"] is [String: Any]
                else {
                    Issue.record("invalid JSON for input \(input): \(line.debugDescription)")
                    return
                }
            } catch {
                #expect(knownReasons.contains(error.reason))
                #expect(!error.description.contains("\n"))
                failures[error.reason, default: 0] += 1
            }
        }
        // The corpus must exercise both outcomes, and most failure kinds.
        #expect(decoded > 10_000)
        #expect(failures.count >= 5, "\(failures)")
    }

    static func makeInput(round: Int, using generator: inout SeededGenerator) -> [UInt8] {
        switch round % 4 {
        case 0:
            // Uniform random bytes.
            let count = Int.random(in: 0...96, using: &generator)
            return (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
        case 1:
            // Random strings over an alphabet of syntax bytes.
            let count = Int.random(in: 0...96, using: &generator)
            var bytes = (0..<count).map { _ in interesting.randomElement(using: &generator)! }
            if Bool.random(using: &generator) {
                bytes.insert(contentsOf: Array("{\"ts\":1.5,".utf8), at: 0)
            } else {
                bytes.insert(contentsOf: Array("1.5,".utf8), at: 0)
            }
            return bytes
        default:
            // Real lines with a few random edits.
            var bytes = seeds.randomElement(using: &generator)!
            for _ in 0..<Int.random(in: 1...4, using: &generator) {
                let byte =
                    Bool.random(using: &generator)
                    ? interesting.randomElement(using: &generator)! : UInt8.random(in: 0...255, using: &generator)
                let position = Int.random(in: 0...bytes.count, using: &generator)
                switch Int.random(in: 0..<3, using: &generator) {
                case 0 where position < bytes.count: bytes[position] = byte
                case 1 where position < bytes.count: bytes.remove(at: position)
                default: bytes.insert(byte, at: position)
                }
            }
            return bytes
        }
    }
}
