import SyslogIngest
import Testing

@Suite("RFC 5424 (strict) parsing")
struct RFC5424ParserTests {
    @Test("captured datagrams and the RFC 6.5 examples parse to the expected message", arguments: Fixtures.rfc5424)
    func parsesCapture(_ capture: Capture) throws {
        let message = try SyslogParser.parse(capture.bytes)
        #expect(message == capture.expected)
    }

    @Test("route selects exactly the expected program and message bytes", arguments: Fixtures.rfc5424)
    func routesCapture(_ capture: Capture) throws {
        let selected = try #require(accepted(route(capture.bytes, permissiveRules), in: capture.bytes))
        #expect(selected.program == capture.expected.program)
        #expect(selected.message == capture.expected.message, "message: \(selected.message.text)")
    }

    @Test("RFC 5424 example 1: the BOM is removed, PRI 34 is auth.crit, so the default rules filter it")
    func bomAndFacility() throws {
        let capture = Fixtures.rfc5424Examples[0]
        #expect(capture.bytes.contains(0xEF))
        let message = try SyslogParser.parse(capture.bytes)
        #expect(message.priority == Priority(facility: .auth, severity: .critical))
        #expect(message.message.first == UInt8(ascii: "'"))
        #expect(route(capture.bytes) == .drop(.filtered))
    }

    @Test(
        "BOM handling: only one leading BOM is removed; a BOM elsewhere is kept",
        arguments: [
            ("<158>1 - vm pixel - - - \u{FEFF}\u{FEFF}x", "\u{FEFF}x"),
            ("<158>1 - vm pixel - - - x\u{FEFF}", "x\u{FEFF}"),
            ("<158>1 - vm pixel - - - \u{FEFF}", ""),
            ("<158>1 - vm pixel - - -  \u{FEFF}x", " \u{FEFF}x"),
            ("<158>1 - vm pixel - - - ", ""),
            ("<158>1 - vm pixel - - -", ""),
        ]
    )
    func byteOrderMark(input: String, message: String) throws {
        let bytes = Array(input.utf8)
        #expect(try SyslogParser.parse(bytes).message.text == message)
        #expect(accepted(route(bytes), in: bytes)?.message.text == message)
    }

    @Test("structured data values are unescaped; a backslash before any other byte is kept")
    func structuredDataEscapes() throws {
        let input =
            #"<158>1 - - pixel - - [a@1 q="x\"y" b="x\\" c="x\]y" d="\n" e="" f="[no]t escaped" g="é"][b@2] msg"#
        let message = try SyslogParser.parse(Array(input.utf8))
        #expect(
            message.structuredData == [
                StructuredDataElement(
                    id: "a@1",
                    parameters: [
                        .init(name: "q", value: #"x"y"#), .init(name: "b", value: #"x\"#),
                        .init(name: "c", value: "x]y"), .init(name: "d", value: #"\n"#), .init(name: "e", value: ""),
                        .init(name: "f", value: "[no]t escaped"), .init(name: "g", value: "é"),
                    ]
                ),
                StructuredDataElement(id: "b@2"),
            ]
        )
        #expect(message.message.text == "msg")
        #expect(message.hostname == nil && message.timestamp == nil)
    }

    /// A strictly invalid RFC 5424 datagram and the error it must produce.
    struct Invalid: Sendable, CustomTestStringConvertible {
        let input: String
        let code: SyslogParseError.Code
        var testDescription: String { self.input.debugDescription }
    }

    @Test(
        "strict grammar: bad headers and structured data are rejected with a code, and route says malformed",
        arguments: [
            Invalid(input: "<158>1 ", code: .badTimestamp),
            Invalid(input: "<158>1 2026-11-22 vm pixel - - - x", code: .badTimestamp),
            Invalid(input: "<158>1 2026-11-22T12:38:22 vm pixel - - - x", code: .badTimestamp),
            Invalid(input: "<158>1 2026-11-22T12:38:22.1234567890Z vm pixel - - - x", code: .badTimestamp),
            Invalid(input: "<158>1 2026-11-22T12:38:22+0100 vm pixel - - - x", code: .badTimestamp),
            Invalid(input: "<158>1 Nov 22 12:38:22 vm pixel - - - x", code: .badTimestamp),
            Invalid(input: "<158>1 - vm", code: .badHeader),
            Invalid(input: "<158>1 - vm pixel - -", code: .badHeader),
            Invalid(input: "<158>1 -  vm pixel - - - x", code: .badHeader),
            Invalid(input: "<158>1 - vm " + String(repeating: "a", count: 49) + " - - - x", code: .badHeader),
            Invalid(input: "<158>1 - vm pixel - " + String(repeating: "m", count: 33) + " - x", code: .badHeader),
            Invalid(input: "<158>1 - " + String(repeating: "h", count: 256) + " pixel - - - x", code: .badHeader),
            Invalid(input: "<158>1 - vm pix\u{7F}el - - - x", code: .badHeader),
            Invalid(input: "<158>1 - vm pixél - - - x", code: .badHeader),
            Invalid(input: "<158>1 - vm pixel - - ", code: .unterminatedStructuredData),
            Invalid(input: "<158>1 - vm pixel - - x", code: .badStructuredData),
            Invalid(input: "<158>1 - vm pixel - - -x", code: .badStructuredData),
            Invalid(input: "<158>1 - vm pixel - - [x@1 a=\"b\"]x", code: .badStructuredData),
            Invalid(input: "<158>1 - vm pixel - - [x@1 a=b] x", code: .badStructuredData),
            Invalid(input: "<158>1 - vm pixel - - [] x", code: .badStructuredData),
            Invalid(input: "<158>1 - vm pixel - - [x@1  a=\"b\"] x", code: .badStructuredData),
            Invalid(input: "<158>1 - vm pixel - - [x@1 =\"b\"] x", code: .badStructuredData),
            Invalid(input: "<158>1 - vm pixel - - [x@1 a=\"b\" ] x", code: .badStructuredData),
            Invalid(
                input: "<158>1 - vm pixel - - [" + String(repeating: "s", count: 33) + "] x",
                code: .badStructuredData
            ),
            Invalid(input: "<158>1 - vm pixel - - [x@1", code: .unterminatedStructuredData),
            Invalid(input: "<158>1 - vm pixel - - [x@1 a", code: .unterminatedStructuredData),
            Invalid(input: "<158>1 - vm pixel - - [x@1 a=", code: .unterminatedStructuredData),
            Invalid(input: "<158>1 - vm pixel - - [x@1 a=\"b", code: .unterminatedStructuredData),
            Invalid(input: "<158>1 - vm pixel - - [x@1 a=\"b\"", code: .unterminatedStructuredData),
            Invalid(input: #"<158>1 - vm pixel - - [x@1 a="b\"] msg"#, code: .unterminatedStructuredData),
            Invalid(input: #"<158>1 - vm pixel - - [x@1 a="b\"#, code: .unterminatedStructuredData),
            // A NILVALUE APP-NAME is reported only when the rest is well-formed.
            Invalid(input: "<158>1 - vm - - - [x@1 a=\"b", code: .unterminatedStructuredData),
            Invalid(input: "<158>1 - vm - - - - x", code: .noProgram),
            Invalid(input: "<158>1 - - - - - -", code: .noProgram),
        ]
    )
    func rejectsInvalid(_ invalid: Invalid) {
        let bytes = Array(invalid.input.utf8)
        #expect(throws: SyslogParseError.self) { try SyslogParser.parse(bytes) }
        do {
            _ = try SyslogParser.parse(bytes)
        } catch {
            #expect(error.code == invalid.code, "\(error)")
            #expect(error.offset >= 0 && error.offset <= bytes.count)
        }
        #expect(route(bytes, permissiveRules) == .drop(invalid.code == .noProgram ? .noProgram : .malformed))
    }

    @Test("an APP-NAME may use every character of the program policy, up to 48 bytes")
    func appNameCharacters() throws {
        for appName in ["my:app", "a/b.c-d_e", String(repeating: "x", count: 48)] {
            let bytes = Array("<158>1 - - \(appName) - - - body".utf8)
            let selected = try #require(accepted(route(bytes), in: bytes))
            #expect(selected.program.text == appName)
            #expect(selected.message.text == "body")
        }
        let weird = Array("<158>1 - - app!name - - - body".utf8)
        #expect(try SyslogParser.parse(weird).program.text == "app!name")
        #expect(route(weird) == .drop(.badProgram))
    }

    /// What RFC 5424 allows, and what senders write beyond it and rsyslog takes: nanoseconds (Go's
    /// `time.RFC3339Nano`) and a lowercase `t`/`z` (these used to be dropped as malformed).
    @Test("timestamp forms RFC 5424 allows, and nanoseconds and lowercase as senders write them")
    func timestampForms() throws {
        for timestamp in [
            "2026-11-22T12:38:22Z", "2026-11-22T12:38:22.1Z", "2026-11-22T12:38:22.123456-07:00",
            "2026-11-22T12:38:22+14:00", "2026-11-22T12:38:22.942276123Z", "2026-11-22t12:38:22.1234567z",
        ] {
            let message = try SyslogParser.parse(Array("<158>1 \(timestamp) vm pixel - - - x".utf8))
            #expect(message.timestamp == timestamp)
            #expect(message.format == .rfc5424)
        }
    }
}
