import SyslogIngest
import Testing

@Suite("Malformed input is rejected by reason, never a crash")
struct MalformedInputTests {
    /// A datagram that must be dropped, the reason `route` must give and the code `parse` must throw.
    struct Bad: Sendable, CustomTestStringConvertible {
        let name: String
        let bytes: [UInt8]
        let reason: DropReason
        let code: SyslogParseError.Code

        init(_ name: String, _ bytes: [UInt8], _ reason: DropReason, _ code: SyslogParseError.Code) {
            self.name = name
            self.bytes = bytes
            self.reason = reason
            self.code = code
        }

        init(_ name: String, _ text: String, _ reason: DropReason, _ code: SyslogParseError.Code) {
            self.init(name, Array(text.utf8), reason, code)
        }

        var testDescription: String { self.name }
    }

    static let cases: [Bad] = [
        Bad("empty", [], .malformed, .empty),
        Bad("only terminators", "\n\r\0\n", .malformed, .empty),
        Bad("pure binary", [0xFF, 0xFE, 0x00, 0x01, 0x80, 0x3C, 0x3E, 0x9F], .malformed, .missingPriority),
        Bad("no PRI", "Nov 22 12:38:13 vm pixel: x", .malformed, .missingPriority),
        Bad("leading space before PRI", " <158>pixel: x", .malformed, .missingPriority),
        Bad("PRI 999", "<999>pixel: x", .malformed, .badPriority),
        Bad("PRI 192", "<192>pixel: x", .malformed, .badPriority),
        Bad("empty PRI", "<>pixel: x", .malformed, .badPriority),
        Bad("four-digit PRI", "<1234>pixel: x", .malformed, .badPriority),
        Bad("negative PRI", "<-1>pixel: x", .malformed, .badPriority),
        Bad("non-digit PRI", "<15a>pixel: x", .malformed, .badPriority),
        Bad("unclosed PRI", "<158", .malformed, .badPriority),
        Bad("lone <", "<", .malformed, .badPriority),
        Bad(
            "unterminated structured data",
            #"<158>1 - vm pixel - - [x@1 a="b"#,
            .malformed,
            .unterminatedStructuredData
        ),
        Bad(
            "unterminated SD after escaped quote",
            #"<158>1 - vm pixel - - [x@1 a="b\"] m"#,
            .malformed,
            .unterminatedStructuredData
        ),
        Bad("RFC 5424 without SD", "<158>1 2026-11-22T12:38:22Z vm pixel - -", .malformed, .badHeader),
        Bad("RFC 5424 bad timestamp", "<158>1 yesterday vm pixel - - - x", .malformed, .badTimestamp),
        Bad("PRI only", "<158>", .noProgram, .noProgram),
        Bad("PRI only, Python NUL", "<158>\0", .noProgram, .noProgram),
        Bad("PRI and spaces", "<158>   ", .noProgram, .noProgram),
        Bad("NILVALUE APP-NAME", "<158>1 2026-11-22T12:38:22Z vm - - - - hello", .noProgram, .noProgram),
        Bad("empty TAG before colon", "<158>: hello", .noProgram, .noProgram),
        Bad("empty TAG before pid", "<158>[12]: hello", .noProgram, .noProgram),
        Bad("timestamp only", "<158>Nov 22 12:38:13", .noProgram, .noProgram),
        Bad("timestamp, then punctuation", "<158>Nov 22 12:38:13 !!", .noProgram, .noProgram),
        // A HOSTNAME is not the TAG (it used to be: these were keyed `vm`).
        Bad("hostname, then punctuation", "<158>Nov 22 12:38:13 vm !!", .noProgram, .noProgram),
        Bad("hostname, then a kernel line", "<158>Nov 22 12:38:13 vm [12345.6] eth0 up", .noProgram, .noProgram),
    ]

    @Test("rejected by reason", arguments: Self.cases)
    func rejected(_ bad: Bad) {
        #expect(route(bad.bytes, permissiveRules) == .drop(bad.reason))
        #expect(route(bad.bytes) == .drop(bad.reason))
        do {
            let message = try SyslogParser.parse(bad.bytes)
            Issue.record("parsed: \(message)")
        } catch {
            #expect(error.code == bad.code, "\(error)")
        }
    }

    @Test("a 64 KiB + 1 datagram is oversize, whatever it contains")
    func oversize() {
        let valid = Array("<158>pixel: ".utf8)
        let big = valid + Array(repeating: UInt8(ascii: "x"), count: 65536 + 1 - valid.count)
        #expect(big.count == 65537)
        #expect(route(big) == .drop(.oversize))
        #expect(route(Array(repeating: 0, count: 65537)) == .drop(.oversize))
        // The full parser has no size limit; the size rule belongs to routing.
        #expect(throws: Never.self) { try SyslogParser.parse(big) }
    }

    @Test("parse errors describe themselves in one line")
    func errorDescription() {
        let error = SyslogParseError(code: .badPriority, offset: 1)
        #expect(error.description == "syslog parse error: badPriority at byte 1")
        #expect(SyslogParseError.Code.unterminatedStructuredData.description == "unterminatedStructuredData")
    }
}
