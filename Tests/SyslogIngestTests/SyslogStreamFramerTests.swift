import SyslogIngest
import Testing

@Suite struct SyslogStreamFramerTests {
    /// RFC 6587 octet counting: the byte length, a space, the message.
    private func counted(_ message: String) -> String { "\(message.utf8.count) \(message)" }

    /// Feeds `stream` in chunks of `chunkSize` and collects the events.
    private func frames(_ stream: String, chunkSize: Int, max: Int = 1000) -> [String] {
        var framer = SyslogStreamFramer(maxMessageBytes: max)
        var out: [String] = []
        let bytes = Array(stream.utf8)
        var offset = 0
        while offset < bytes.count {
            let end = min(bytes.count, offset + chunkSize)
            bytes[offset..<end].withUnsafeBytes { framer.append($0) }
            offset = end
            while let event = framer.next() {
                switch event {
                case .message(let range): out.append(String(decoding: framer.bytes[range], as: UTF8.self))
                case .oversize: out.append("<oversize>")
                case .malformed: out.append("<malformed>")
                case .truncated: out.append("<truncated>")
                }
            }
        }
        return out
    }

    @Test(arguments: [1, 3, 7, 64, 4096])
    func octetCountingInAnyChunking(chunkSize: Int) {
        let messages = ["<158>pixel: a", "<158>pixel: bc", "<158>pixel: a\nb c"]
        let stream = messages.map(counted).joined()
        #expect(frames(stream, chunkSize: chunkSize) == ["<158>pixel: a", "<158>pixel: bc", "<158>pixel: a\nb c"])
    }

    @Test(arguments: [1, 5, 4096])
    func lineFeedFramingInAnyChunking(chunkSize: Int) {
        let stream = "<158>pixel: one\n<158>pixel: two\r\n\n<158>pixel: three\n"
        #expect(frames(stream, chunkSize: chunkSize) == ["<158>pixel: one", "<158>pixel: two\r", "<158>pixel: three"])
    }

    /// What `finish(endOfStream:)` makes of the bytes left when a connection closes.
    @Test(arguments: [
        ("<158>a: x\n<158>a: last", true, "<158>a: last"),
        ("<158>a: x\n<158>a: last", false, "<truncated>"),
        ("<158>a: x\n\r", true, nil),
        ("<158>a: x\n", true, nil),
        ("9 <158>a: x12 <158>a: l", true, "<truncated>"),
        ("9 <158>a: x", true, nil),
        ("GET /", true, nil),
    ] as [(String, Bool, String?)])
    func theBytesLeftAtTheEnd(stream: String, endOfStream: Bool, expected: String?) {
        var framer = SyslogStreamFramer(maxMessageBytes: 1000)
        Array(stream.utf8).withUnsafeBytes { framer.append($0) }
        while framer.next() != nil {}
        let last: String? = switch framer.finish(endOfStream: endOfStream) {
        case .message(let range): String(decoding: framer.bytes[range], as: UTF8.self)
        case .truncated: "<truncated>"
        case .oversize: "<oversize>"
        case .malformed: "<malformed>"
        case nil: nil
        }
        #expect(last == expected)
        #expect(framer.finish(endOfStream: endOfStream) == nil, "once")
    }

    /// After a large message, a connection's buffer goes back to a small one once everything in it
    /// has been framed, instead of holding the large capacity for the connection's lifetime.
    @Test func aLargeMessageDoesNotKeepItsBufferForever() {
        var framer = SyslogStreamFramer(maxMessageBytes: 1 << 20)
        let large = Array("<158>pixel: \(String(repeating: "x", count: 600_000))\n".utf8)
        large.withUnsafeBytes { framer.append($0) }
        #expect(framer.next().map { if case .message = $0 { true } else { false } } == true)
        #expect(framer.bytes.capacity >= 600_000)
        Array("<158>pixel: small\n".utf8).withUnsafeBytes { framer.append($0) }
        #expect(framer.bytes.capacity <= SyslogStreamFramer.retainedCapacity, "\(framer.bytes.capacity)")
        guard case .message(let range) = framer.next() else {
            Issue.record("no message")
            return
        }
        #expect(String(decoding: framer.bytes[range], as: UTF8.self) == "<158>pixel: small")
    }

    @Test func oversizeFramesAreSkippedWithoutLosingTheNext() {
        let big = String(repeating: "x", count: 50)
        #expect(frames(counted("<158>pixel: \(big)") + counted("<158>pixel: z"), chunkSize: 8, max: 40) == ["<oversize>", "<158>pixel: z"])
        #expect(frames("<158>pixel: \(big)\n<158>pixel: z\n", chunkSize: 8, max: 40) == ["<oversize>", "<158>pixel: z"])
    }

    @Test(arguments: ["GET / HTTP/1.1\r\n", "12x <158>pixel", "9999999999 <158>", "0 "])
    func garbageIsMalformedAndStopsTheStream(stream: String) {
        #expect(frames(stream + "11 <158>pixel: a", chunkSize: 4096) == ["<malformed>"])
    }

    /// A blank CRLF line is no message (it used to reach routing, and count as malformed).
    @Test(arguments: [1, 2, 4096])
    func blankCRLFLinesAreSkipped(chunkSize: Int) {
        #expect(frames("<158>a: x\r\n\r\n\r\n<158>a: y\r\n", chunkSize: chunkSize) == ["<158>a: x\r", "<158>a: y\r"])
    }
}

/// Regressions found by the fuzzer (Fuzz/): kept as ordinary tests.
@Suite struct SyslogStreamFramerFuzzRegressions {
    @Test func aLongRunOfEmptyLinesNeitherRecursesNorLosesTheNextMessage() {
        var framer = SyslogStreamFramer(maxMessageBytes: 65535)
        let stream = Array("<158>a: x\n".utf8) + Array(repeating: UInt8(ascii: "\n"), count: 200_000) + Array("<158>a: y\n".utf8)
        stream.withUnsafeBytes { framer.append($0) }
        var messages: [String] = []
        while let event = framer.next() {
            if case .message(let range) = event { messages.append(String(decoding: framer.bytes[range], as: UTF8.self)) }
        }
        #expect(messages == ["<158>a: x", "<158>a: y"])
    }

    @Test func aLineArrivingByteByByteIsFramedOnceWhole() {
        // Each read rescanned the whole partial line before; now the scan resumes where it stopped.
        // (The fuzzer's timeout on a 60 KB line fed in 1-byte reads was the symptom.)
        var framer = SyslogStreamFramer(maxMessageBytes: 65535)
        let line = Array("<158>pixel: ".utf8) + Array(repeating: UInt8(ascii: "x"), count: 60_000)
        var events: [SyslogStreamFramer.Event] = []
        for byte in line + [UInt8(ascii: "\n")] + Array("<158>pixel: next\n".utf8) {
            [byte].withUnsafeBytes { framer.append($0) }
            while let event = framer.next() { events.append(event) }
        }
        #expect(events.count == 2)
        if case .message(let range) = events.last {
            #expect(String(decoding: framer.bytes[range], as: UTF8.self) == "<158>pixel: next")
        }
        #expect(framer.pendingByteCount == 0)
    }
}
