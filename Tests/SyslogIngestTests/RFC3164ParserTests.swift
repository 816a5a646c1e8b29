import SyslogIngest
import Testing

@Suite("RFC 3164 (lenient) parsing")
struct RFC3164ParserTests {
    @Test("captured datagrams parse to the expected message", arguments: Fixtures.rfc3164)
    func parsesCapture(_ capture: Capture) throws {
        let message = try SyslogParser.parse(capture.bytes)
        #expect(message == capture.expected)
    }

    @Test("route selects exactly the expected program and message bytes", arguments: Fixtures.rfc3164)
    func routesCapture(_ capture: Capture) throws {
        let selected = try #require(accepted(route(capture.bytes, permissiveRules), in: capture.bytes))
        #expect(selected.program.text == capture.expected.program.text)
        #expect(selected.message == capture.expected.message, "message: \(selected.message.text)")
    }

    /// One heuristic case: what the lenient parser makes of a header shape.
    struct Shape: Sendable, CustomTestStringConvertible {
        let input: String
        let program: String
        let message: String
        var hostname: String? = nil
        var timestamp: String? = nil
        var procID: String? = nil
        var testDescription: String { self.input.debugDescription }
    }

    @Test(
        "header heuristics",
        arguments: [
            // No header at all (Python SysLogHandler without a formatter): the first word is the TAG, up to SP
            // (rsyslog's reading; RFC 3164 §4.1.3 would stop at the `-` and key `pixel-js` as `pixel`).
            Shape(input: "<158>hello world", program: "hello", message: "world"),
            Shape(input: "<158>hello", program: "hello", message: ""),
            Shape(input: "<158>hello  world", program: "hello", message: " world"),
            Shape(input: "<158>pixel-js hello", program: "pixel-js", message: "hello"),
            Shape(input: "<158>hello,world", program: "hello,world", message: ""),
            // TAG ended by ':' or '[pid]': PROGRAM may hold any of the policy's characters.
            Shape(input: "<158>pixel:hello", program: "pixel", message: "hello"),
            Shape(input: "<158>pixel:  two", program: "pixel", message: " two"),
            Shape(input: "<158>pixel:", program: "pixel", message: ""),
            Shape(input: "<158>pixel.js: x", program: "pixel.js", message: "x"),
            Shape(input: "<158>pixel/v2-beta_1: x", program: "pixel/v2-beta_1", message: "x"),
            Shape(input: "<158>pixel[42]: msg", program: "pixel", message: "msg", procID: "42"),
            Shape(input: "<158>pixel[42]:msg", program: "pixel", message: "msg", procID: "42"),
            Shape(input: "<158>pixel[42] msg", program: "pixel", message: "msg", procID: "42"),
            Shape(input: "<158>pixel[4 2]: msg", program: "pixel", message: "[4 2]: msg"),
            Shape(input: "<158>pixel: a: b  c ", program: "pixel", message: "a: b  c "),
            // Timestamps: BSD (any month case, padded or single-digit day) and RFC 3339 as rsyslog forwards.
            Shape(
                input: "<158>Nov 22 12:38:13 vm pixel: x",
                program: "pixel",
                message: "x",
                hostname: "vm",
                timestamp: "Nov 22 12:38:13"
            ),
            Shape(
                input: "<158>Nov  2 12:38:13 vm pixel: x",
                program: "pixel",
                message: "x",
                hostname: "vm",
                timestamp: "Nov  2 12:38:13"
            ),
            Shape(
                input: "<158>Nov 2 12:38:13 vm pixel: x",
                program: "pixel",
                message: "x",
                hostname: "vm",
                timestamp: "Nov 2 12:38:13"
            ),
            Shape(
                input: "<158>nov 22 12:38:13 vm pixel: x",
                program: "pixel",
                message: "x",
                hostname: "vm",
                timestamp: "nov 22 12:38:13"
            ),
            Shape(
                input: "<158>2026-11-22T10:00:00.123456+01:00 web1 pixel: x",
                program: "pixel",
                message: "x",
                hostname: "web1",
                timestamp: "2026-11-22T10:00:00.123456+01:00"
            ),
            Shape(
                input: "<158>2026-11-22T10:00:00Z pixel: x",
                program: "pixel",
                message: "x",
                timestamp: "2026-11-22T10:00:00Z"
            ),
            // HOSTNAME only after a timestamp, only when followed by SP and a non-empty TAG (as syslog-ng decides).
            Shape(
                input: "<158>Nov 22 12:38:13 pixel: x",
                program: "pixel",
                message: "x",
                timestamp: "Nov 22 12:38:13"
            ),
            Shape(
                input: "<158>Nov 22 12:38:13 pixel[7]: x",
                program: "pixel",
                message: "x",
                timestamp: "Nov 22 12:38:13",
                procID: "7"
            ),
            Shape(
                input: "<158>Nov 22 12:38:13 hostonly",
                program: "hostonly",
                message: "",
                timestamp: "Nov 22 12:38:13"
            ),
            Shape(
                input: "<158>Nov 22 12:38:13 vm pixel:",
                program: "pixel",
                message: "",
                hostname: "vm",
                timestamp: "Nov 22 12:38:13"
            ),
            Shape(
                input: "<158>Nov 22 12:38:13 vm pixel hello world",
                program: "pixel",
                message: "hello world",
                hostname: "vm",
                timestamp: "Nov 22 12:38:13"
            ),
            // A TAG without a colon after a hostname (rsyslog's RSYSLOG_TraditionalForwardFormat of a
            // 5424 message): the whole word, not `pixel` for a `pixel-worker`.
            Shape(
                input: "<158>Nov 22 12:38:50 vm pixel-worker started",
                program: "pixel-worker",
                message: "started",
                hostname: "vm",
                timestamp: "Nov 22 12:38:50"
            ),
            // Timestamps with a year after the day, a fraction, or a space for the `T` (not the TAG `Nov`).
            Shape(
                input: "<158>Nov 22 2026 12:38:13 vm pixel: x",
                program: "pixel",
                message: "x",
                hostname: "vm",
                timestamp: "Nov 22 2026 12:38:13"
            ),
            Shape(
                input: "<158>Nov 22 12:38:13.123 vm pixel: x",
                program: "pixel",
                message: "x",
                hostname: "vm",
                timestamp: "Nov 22 12:38:13.123"
            ),
            Shape(
                input: "<158>Nov  2 2026 12:38:13.123456 pixel: x",
                program: "pixel",
                message: "x",
                timestamp: "Nov  2 2026 12:38:13.123456"
            ),
            Shape(
                input: "<158>2026-11-22 12:38:13,123 pixel: x",  // Python logging's %(asctime)s
                program: "pixel",
                message: "x",
                timestamp: "2026-11-22 12:38:13,123"
            ),
            Shape(
                input: "<158>2026-11-22 12:38:13.5+01:00 vm pixel: x",
                program: "pixel",
                message: "x",
                hostname: "vm",
                timestamp: "2026-11-22 12:38:13.5+01:00"
            ),
            Shape(
                input: "<158>2026-11-22 12:38:13 vm pixel: x",
                program: "pixel",
                message: "x",
                hostname: "vm",
                timestamp: "2026-11-22 12:38:13"
            ),
            // IPv6 addresses as HOSTNAME (rsyslog relaying a sender it knows only by address).
            Shape(
                input: "<158>Nov 22 12:38:13 2001:db8::5 pixel: x",
                program: "pixel",
                message: "x",
                hostname: "2001:db8::5",
                timestamp: "Nov 22 12:38:13"
            ),
            Shape(
                input: "<158>Nov 22 12:38:13 fe80::1%eth0 pixel: x",
                program: "pixel",
                message: "x",
                hostname: "fe80::1%eth0",
                timestamp: "Nov 22 12:38:13"
            ),
            Shape(
                input: "<158>Nov 22 12:38:13 ::1 pixel: x",
                program: "pixel",
                message: "x",
                hostname: "::1",
                timestamp: "Nov 22 12:38:13"
            ),
            Shape(
                input: "<158>Nov 22 12:38:13 ::ffff:192.0.2.1 pixel[9]: x",
                program: "pixel",
                message: "x",
                hostname: "::ffff:192.0.2.1",
                timestamp: "Nov 22 12:38:13",
                procID: "9"
            ),
            Shape(
                input: "<158>Nov 22 12:38:13 my-host.example.com pixel: x",
                program: "pixel",
                message: "x",
                hostname: "my-host.example.com",
                timestamp: "Nov 22 12:38:13"
            ),
            Shape(
                input: "<158>Nov 22 12:38:13 192.0.2.1 pixel: x",
                program: "pixel",
                message: "x",
                hostname: "192.0.2.1",
                timestamp: "Nov 22 12:38:13"
            ),
            Shape(
                input: "<158>Nov 22 12:38:13  vm  pixel: x",
                program: "pixel",
                message: "x",
                hostname: "vm",
                timestamp: "Nov 22 12:38:13"
            ),
            Shape(
                input: "<158>Nov 22 12:38:13 vm pixel: Nov 22 12:38:13 other: y",
                program: "pixel",
                message: "Nov 22 12:38:13 other: y",
                hostname: "vm",
                timestamp: "Nov 22 12:38:13"
            ),
            // Not a timestamp: the first word is the TAG.
            Shape(input: "<158>Nox 22 12:38:13 vm pixel: x", program: "Nox", message: "22 12:38:13 vm pixel: x"),
            Shape(input: "<158>Nov 22 12:38 vm pixel: x", program: "Nov", message: "22 12:38 vm pixel: x"),
            Shape(input: "<158>12:38:13 pixel: x", program: "12", message: "38:13 pixel: x"),
            // RFC 5424 only for VERSION 1 followed by SP.
            Shape(input: "<158>1pixel: x", program: "1pixel", message: "x"),
            Shape(input: "<158>2 - vm pixel - - - x", program: "2", message: "- vm pixel - - - x"),
        ]
    )
    func headerShape(_ shape: Shape) throws {
        let bytes = Array(shape.input.utf8)
        let message = try SyslogParser.parse(bytes)
        #expect(message.format == .rfc3164)
        #expect(message.program.text == shape.program)
        #expect(message.message.text == shape.message)
        #expect(message.hostname == shape.hostname)
        #expect(message.timestamp == shape.timestamp)
        #expect(message.procID == shape.procID)
        #expect(message.msgID == nil && message.structuredData.isEmpty)

        if ProgramPolicy.isValidProgram(message.program) {
            let selected = try #require(accepted(route(bytes, permissiveRules), in: bytes))
            #expect(selected.program == message.program && selected.message == message.message)
        } else {
            #expect(route(bytes, permissiveRules) == .drop(.badProgram))
        }
    }

    @Test("every byte of the message is kept: control bytes, NUL, invalid UTF-8, inner newlines")
    func binaryMessageIsByteExact() throws {
        let body: [UInt8] = [0x00, 0xFF, 0xFE, 0x01, 0x09, 0x20, 0x0A, 0x0D, 0x22, 0x5C, 0xC3, 0x28, 0x41]
        let bytes = Array("<158>Nov 22 12:38:13 vm pixel: ".utf8) + body
        #expect(try SyslogParser.parse(bytes).message == body)
        let selected = try #require(accepted(route(bytes), in: bytes))
        #expect(selected.program.text == "pixel")
        #expect(selected.message == body)
    }

    @Test(
        "trailing LF, CR and NUL are stripped before parsing, inner ones kept",
        arguments: [
            ("<158>pixel: x\n", "x"),
            ("<158>pixel: x\r\n", "x"),
            ("<158>pixel: x\0", "x"),
            ("<158>pixel: x\n\0\r\n\0", "x"),
            ("<158>pixel: a\nb\n", "a\nb"),
            ("<158>pixel: a\0b\0", "a\0b"),
            ("<158>pixel: x \n", "x "),
            ("<158>pixel: \n", ""),
        ]
    )
    func trailingTerminators(input: String, message: String) throws {
        let bytes = Array(input.utf8)
        #expect(try SyslogParser.parse(bytes).message.text == message)
        #expect(accepted(route(bytes), in: bytes)?.message.text == message)
    }

    @Test("a collection that is not contiguous parses the same as an array")
    func nonContiguousCollection() throws {
        let text = "<158>Nov 22 12:38:13 vm pixel: hello"
        let lazyBytes = text.utf8.lazy.map { $0 }
        #expect(try SyslogParser.parse(lazyBytes) == SyslogParser.parse(Array(text.utf8)))
    }
}
