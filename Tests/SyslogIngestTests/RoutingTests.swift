import SyslogIngest
import Testing

@Suite("IngestRules.route: the ingest contract")
struct RoutingTests {
    let nginxLine = "<158>Nov 22 12:38:13 vm pixel: 1795351093.220,e=pageview&u=https%3A%2F%2Fex.com%2F"

    @Test("the default rules accept nginx's line and return ranges into the datagram")
    func defaultRulesAcceptNginx() throws {
        let bytes = Array(self.nginxLine.utf8)
        guard case .accept(let program, let message) = route(bytes) else {
            Issue.record("not accepted: \(route(bytes))")
            return
        }
        #expect(program == 24..<29)
        #expect(message == 31..<bytes.count)
        #expect(Array(bytes[message]).text == "1795351093.220,e=pageview&u=https%3A%2F%2Fex.com%2F")
    }

    @Test("the default rules keep local3 at every severity and filter every other facility")
    func defaultFacility() {
        for facility in Facility.allCases {
            for severity in Severity.allCases {
                let pri = Priority(facility: facility, severity: severity).value
                let bytes = Array("<\(pri)>pixel: x".utf8)
                let decision = route(bytes)
                if facility == .local3 {
                    let selected = accepted(decision, in: bytes)
                    #expect(selected?.program.text == "pixel" && selected?.message.text == "x", "\(severity)")
                } else {
                    #expect(decision == .drop(.filtered), "\(facility).\(severity)")
                }
            }
        }
    }

    @Test("a configured facility list replaces the default")
    func configuredFacilities() throws {
        let rules = IngestRules(facilities: try FacilityFilter(parsing: "local4,daemon"))
        #expect(route("<158>pixel: x", rules) == .drop(.filtered))
        #expect(accepted(route("<166>pixel: x", rules), in: Array("<166>pixel: x".utf8))?.message.text == "x")
        #expect(accepted(route("<30>pixel: x", rules), in: Array("<30>pixel: x".utf8)) != nil)
    }

    @Test("oversize is decided first, on the raw length including trailing newlines")
    func oversizeFirst() {
        let rules = IngestRules(maxMessageBytes: 100)
        let prefix = Array("<158>pixel: ".utf8)
        let exact = prefix + Array(repeating: UInt8(ascii: "x"), count: 100 - prefix.count)
        #expect(accepted(route(exact, rules), in: exact)?.message.count == 100 - prefix.count)
        #expect(route(exact + [0x0A], rules) == .drop(.oversize))
        #expect(route(Array(repeating: 0xFF, count: 101), rules) == .drop(.oversize))
        #expect(route(Array(repeating: 0xFF, count: 100), rules) == .drop(.malformed))
        // Before the facility filter, too.
        #expect(route(Array("<13>".utf8) + Array(repeating: 0x41, count: 97), rules) == .drop(.oversize))
    }

    @Test("default maximum: 65535 bytes accepted, 65536 dropped as oversize")
    func defaultMaximum() {
        let prefix = Array("<158>pixel: ".utf8)
        let largest = prefix + Array(repeating: UInt8(ascii: "a"), count: 65535 - prefix.count)
        #expect(accepted(route(largest), in: largest)?.message.count == 65535 - prefix.count)
        #expect(route(largest + [UInt8(ascii: "a")]) == .drop(.oversize))
    }

    @Test(
        "rule order: malformed PRI, then facility, then format and program",
        arguments: [
            ("<999>pixel: x", DropReason.malformed),
            ("<13>1 garbage", DropReason.filtered),  // not local3: filtered before the body is looked at
            ("<13>", DropReason.filtered),
            ("<158>1 garbage", DropReason.malformed),
            ("<158>", DropReason.noProgram),
            ("<158>1 - - - - - - x", DropReason.noProgram),
            ("<158>pix$el: x", DropReason.badProgram),
            ("<158>1 - - pix$el - - - x", DropReason.badProgram),
        ]
    )
    func ruleOrder(input: String, reason: DropReason) {
        #expect(route(input) == .drop(reason))
    }

    @Test("program names: 1-64 bytes of [A-Za-z0-9_.:/-]")
    func programCharset() {
        let longest = String(repeating: "p", count: 64)
        #expect(accepted(route("<158>\(longest): x"), in: Array("<158>\(longest): x".utf8))?.program.text == longest)
        #expect(route("<158>\(longest)p: x") == .drop(.badProgram))
        for valid in ["a", "Z9", "my_app.v2", "a/b", "x-y", "A.b_C-d/E"] {
            #expect(ProgramPolicy.isValidProgram(Array(valid.utf8)), "\(valid)")
        }
        for invalid in ["", "a b", "a\tb", "é", "a$", "a\"", "a]", "a@b", "a\\b", String(repeating: "x", count: 65)] {
            #expect(!ProgramPolicy.isValidProgram(Array(invalid.utf8)), "\(invalid)")
        }
        // ':' is allowed by the policy; only RFC 5424 can carry it (in RFC 3164 it ends the TAG).
        #expect(route("<158>1 - - ns:pixel - - - x") != .drop(.badProgram))
    }

    /// A sender must not create lists where `pixeld consume` keeps its own keys: a list at a day's
    /// `pixeld:…` key or at a consumer's heartbeat made those commands fail with WRONGTYPE.
    @Test("programs whose key would fall in pixeld's own key space are dropped as bad_program")
    func reservedKeySpace() throws {
        for reserved in [
            "pixeld:key:2026-11-25", "pixeld:site:example.com:2026-11-25:pages", "pixel:processing:c1", "pixel:consumer:web-1",
            "pixel:guard:c1", "pixel:output:c1", "pixel:archive:c1", "pixel:dead", "ns:pixel:dead", "a:consumer",
        ] {
            #expect(route("<158>1 - - \(reserved) - - - x") == .drop(.badProgram), "\(reserved)")
            #expect(ProgramPolicy.isReserved(key: Array(reserved.utf8)), "\(reserved)")
        }
        for allowed in ["ns:pixel", "pixel:deadline", "processing:x", "pixeld", "pixel_dead", "x:pixeld:y"] {
            let line = "<158>1 - - \(allowed) - - - x"
            #expect(accepted(route(line), in: Array(line.utf8))?.program.text == allowed, "\(allowed)")
        }
        // The key prefix counts, also across the join.
        let prefixed = IngestRules(programs: try ProgramPolicy(keyPrefix: Array("pix".utf8)))
        #expect(route("<158>1 - - eld:x - - - x", prefixed) == .drop(.badProgram))
        #expect(route("<158>1 - - elx:x - - - x", prefixed) != .drop(.badProgram))
        let colonPrefix = IngestRules(programs: try ProgramPolicy(keyPrefix: Array("raw:".utf8)))
        #expect(route("<158>dead: x", colonPrefix) == .drop(.badProgram))
        #expect(route("<158>pixel: x", colonPrefix) != .drop(.badProgram))
        // An allow-list cannot let one in either.
        #expect(throws: SyslogIngestConfigError.self) { try ProgramPolicy(allowList: ["pixel", "pixel:dead"]) }
        #expect(throws: SyslogIngestConfigError.self) { try ProgramPolicy(keyPrefix: Array("raw:".utf8), allowList: ["consumer"]) }
    }

    @Test("an allow-list limits the programs; the key prefix does not change the ranges")
    func allowListAndPrefix() throws {
        let programs = try ProgramPolicy(keyPrefix: Array("raw:".utf8), allowList: ["pixel", "beacon", "a"])
        let rules = IngestRules(programs: programs)
        #expect(programs.keyPrefix == Array("raw:".utf8))
        #expect(route(self.nginxLine, rules) == route(self.nginxLine))
        #expect(accepted(route("<158>beacon: x", rules), in: Array("<158>beacon: x".utf8))?.program.text == "beacon")
        #expect(accepted(route("<158>a: x", rules), in: Array("<158>a: x".utf8))?.program.text == "a")
        for other in ["pixelx", "pixe", "b", "Pixel", "zzz", "0"] {
            #expect(route("<158>\(other): x", rules) == .drop(.badProgram), "\(other)")
            #expect(!programs.accepts(program: other))
        }
        #expect(programs.accepts(program: "pixel"))
        #expect(programs.allowList == ["pixel", "beacon", "a"])
    }

    @Test(
        "invalid program policies fail with one clear line",
        arguments: [
            (Array("raw key:".utf8), Set(["pixel"]), SyslogIngestConfigError.Code.invalidKeyPrefix),
            (Array("raw\n".utf8), nil, .invalidKeyPrefix),
            (Array("pixeld:".utf8), nil, .invalidKeyPrefix), (Array("ns:dead:".utf8), nil, .invalidKeyPrefix),
            (Array(repeating: UInt8(ascii: "k"), count: 257), nil, .invalidKeyPrefix),
            ([], Set<String>(), .emptyAllowList),
            ([], Set(["pixel", "bad name"]), .invalidProgramName),
            ([], Set([""]), .invalidProgramName),
            ([], Set([String(repeating: "x", count: 65)]), .invalidProgramName),
        ] as [([UInt8], Set<String>?, SyslogIngestConfigError.Code)]
    )
    func invalidPolicies(prefix: [UInt8], allowList: Set<String>?, code: SyslogIngestConfigError.Code) {
        do {
            _ = try ProgramPolicy(keyPrefix: prefix, allowList: allowList)
            Issue.record("accepted an invalid policy")
        } catch {
            #expect(error.code == code)
            #expect(!error.description.isEmpty && !error.description.contains("\n"))
        }
    }

    @Test("a key prefix of up to 256 printable bytes (UTF-8 too) is accepted")
    func validPrefixes() throws {
        _ = try ProgramPolicy(keyPrefix: Array(repeating: UInt8(ascii: "k"), count: 256))
        _ = try ProgramPolicy(keyPrefix: Array("logs:raw:é".utf8))
        _ = try ProgramPolicy(allowList: ["ns:pixel", "a/b"])
    }

    @Test("maximum message size validation")
    func maxMessageBytesValidation() throws {
        #expect(try IngestRules.validatedMaxMessageBytes(65535) == 65535)
        #expect(try IngestRules.validatedMaxMessageBytes(1) == 1)
        for bad in [0, -1, IngestRules.maxMessageBytesLimit + 1] {
            #expect(throws: SyslogIngestConfigError.self) { try IngestRules.validatedMaxMessageBytes(bad) }
        }
        #expect(IngestRules().maxMessageBytes == 65535)
        #expect(IngestRules().facilities == .default)
    }

    @Test("drop reasons are the metric labels")
    func dropReasonLabels() {
        #expect(
            DropReason.allCases.map(\.rawValue) == ["malformed", "filtered", "no_program", "bad_program", "oversize", "truncated"]
        )
        #expect(DropReason.noProgram.description == "no_program")
    }

    @Test("an empty buffer with no base address is malformed, not a crash")
    func emptyBuffer() {
        #expect(IngestRules().route(UnsafeRawBufferPointer(start: nil, count: 0)) == .drop(.malformed))
    }

    @Test("route reads only the buffer it is given: a slice of a larger buffer")
    func routeOnSlice() throws {
        let line = Array("<158>pixel: x".utf8)
        let surrounding = Array("<158>pixel: junk before|".utf8) + line + Array("|after".utf8)
        try surrounding.withUnsafeBytes { whole in
            let start = 24
            let slice = UnsafeRawBufferPointer(rebasing: whole[start..<start + line.count])
            let decision = IngestRules().route(slice)
            #expect(decision == .accept(program: 5..<10, message: 12..<13))
            let (_, message) = try #require(accepted(decision, in: line))
            #expect(message.text == "x")
        }
    }
}
