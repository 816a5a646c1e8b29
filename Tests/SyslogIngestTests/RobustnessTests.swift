import PixeldTestSupport
import SyslogIngest
import Testing

@Suite("Randomised robustness")
struct RobustnessTests {
    static let seed: UInt64 = 0x5049_5845_4C44  // "PIXELD"
    static let iterations = 200_000

    /// Bytes that steer the parsers into their branches.
    static let interesting: [UInt8] =
        Array("<>[]\"\\ :=-1T.Z+0123456789NovJan\n\r\0".utf8) + [0xEF, 0xBB, 0xBF, 0xFF, 0x80]

    /// A random datagram: pure noise, a mutated capture, or a capture prefix plus structural bytes.
    static func datagram(_ rng: inout SplitMix64) -> [UInt8] {
        let seeds = Fixtures.all
        switch rng.next() % 4 {
        case 0:
            let count = Int(rng.next() % 160)
            return (0..<count).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        case 1:
            var bytes = seeds[Int(rng.next() % UInt64(seeds.count))].bytes
            for _ in 0...(rng.next() % 6) where !bytes.isEmpty {
                let position = Int(rng.next() % UInt64(bytes.count))
                switch rng.next() % 4 {
                case 0: bytes[position] = UInt8(truncatingIfNeeded: rng.next())
                case 1: bytes[position] = Self.interesting[Int(rng.next() % UInt64(Self.interesting.count))]
                case 2: bytes.remove(at: position)
                default: bytes.insert(Self.interesting[Int(rng.next() % UInt64(Self.interesting.count))], at: position)
                }
            }
            return bytes
        case 2:
            let bytes = seeds[Int(rng.next() % UInt64(seeds.count))].bytes
            return Array(bytes.prefix(Int(rng.next() % UInt64(bytes.count + 1))))
        default:
            var bytes = Array("<158>".utf8)
            if rng.next() % 2 == 0 { bytes += Array("1 ".utf8) }
            for _ in 0..<(rng.next() % 40) {
                bytes.append(Self.interesting[Int(rng.next() % UInt64(Self.interesting.count))])
            }
            return bytes
        }
    }

    @Test(
        "200k random and mutated datagrams: no crash, and route always agrees with parse",
        .timeLimit(.minutes(3))
    )
    func routeAgreesWithParse() {
        var rng = SplitMix64(seed: Self.seed)
        var outcomes: [String: Int] = [:]
        for index in 0..<Self.iterations {
            let bytes = Self.datagram(&rng)
            let decision = route(bytes, permissiveRules)
            let outcome: String
            let agrees: Bool
            do {
                let message = try SyslogParser.parse(bytes)
                if !ProgramPolicy.isValidProgram(message.program) {
                    outcome = "bad_program"
                    agrees = decision == .drop(.badProgram)
                } else if case .accept(let program, let body) = decision {
                    outcome = "accept"
                    agrees =
                        !program.isEmpty && body.lowerBound >= program.upperBound && body.upperBound <= bytes.count
                        && Array(bytes[program]) == message.program && Array(bytes[body]) == message.message
                } else {
                    outcome = "accept"
                    agrees = false
                }
            } catch {
                let expected: DropReason = error.code == .noProgram ? .noProgram : .malformed
                outcome = expected.rawValue
                agrees = decision == .drop(expected) && error.offset >= 0 && error.offset <= bytes.count
            }
            outcomes[outcome, default: 0] += 1
            guard agrees else {
                let parsed = Result { () throws(SyslogParseError) in try SyslogParser.parse(bytes) }
                Issue.record("seed \(Self.seed) index \(index): route \(decision), parse \(parsed); bytes \(bytes)")
                return
            }
        }
        // Every outcome is exercised, so the agreement above is not vacuous.
        for outcome in ["accept", "bad_program", "no_program", "malformed"] {
            #expect(outcomes[outcome, default: 0] > 1000, "\(outcome): \(outcomes)")
        }
    }

    @Test("random datagrams under the default rules and a tiny size limit never crash route")
    func defaultRulesNeverCrash() {
        var rng = SplitMix64(seed: Self.seed &+ 1)
        let rules = [IngestRules(), IngestRules(maxMessageBytes: 40)]
        var decisions = Set<String>()
        for _ in 0..<50_000 {
            let bytes = Self.datagram(&rng)
            for rule in rules {
                let decision = route(bytes, rule)
                switch decision {
                case .accept(let program, let message):
                    #expect(!program.isEmpty && program.upperBound <= bytes.count && message.upperBound <= bytes.count)
                    decisions.insert("accept")
                case .drop(let reason):
                    decisions.insert(reason.rawValue)
                }
            }
        }
        #expect(decisions == ["accept", "malformed", "filtered", "no_program", "bad_program", "oversize"])
    }
}
