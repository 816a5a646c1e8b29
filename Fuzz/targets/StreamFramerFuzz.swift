// Fuzz target `stream-framer`: SyslogStreamFramer (RFC 6587) on a hostile TCP byte stream.
//
// Built against a module `SyslogIngest` made of Sources/SyslogIngest/Listening/SyslogStreamFramer.swift alone
// (Fuzz/build.sh), so it can use only the public API.
//
// Input layout: byte 0 and byte 1 configure the run, the rest is the stream.
//   byte 0, bits 0-2: maxMessageBytes = [1, 2, 5, 16, 64, 300, 4096, 65535][bits]
//   byte 1, bits 0-1: chunk sizes: 0 → 1 byte, 1 → 1…8, 2 → 1…300, 3 → 1…70000 (xorshift seeded by bytes 0-1);
//                     streams longer than 512 bytes use at least mode 2: a line fed in tiny chunks is rescanned
//                     from its start on every append (quadratic), which would only slow the fuzzer down
//
// Checked on every input:
//  1. the events for the chunked stream, for the whole stream in one append, and from an independent
//     whole-stream reference framer are identical (messages compared by length and FNV-1a hash of their bytes);
//  2. every .message range lies inside `bytes`, is non-empty and at most maxMessageBytes long;
//  3. progress: every non-nil event other than .malformed strictly lowers pendingByteCount, a drain loop
//     returns at most pendingByteCount + 1 events, and after .malformed next() stays nil;
//  4. bounded memory: after draining, pendingByteCount <= maxMessageBytes + 10 (9 length digits + SP), and
//     after append `bytes.count` <= 65536 + 2 * (maxMessageBytes + 10) + chunk.
// Swift's checked Array subscripts trap on any index out of bounds.
//
// Streams past 64 KiB (the buffer compaction in append()) cost too much per input to fuzz at a useful rate, so
// LLVMFuzzerInitialize runs the same checks once, at start-up, on long streams built from the seed lines.

import SyslogIngest

@_cdecl("LLVMFuzzerInitialize")
public func streamFramerFuzzInitialize(_ argc: UnsafeMutablePointer<CInt>?, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>?) -> CInt {
    StreamFramerFuzz.checkLongStreams()
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func streamFramerFuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard size >= 2, let data else { return 0 }
    StreamFramerFuzz.check(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

enum StreamFramerFuzz {
    static let maxMessageBytesChoices = [1, 2, 5, 16, 64, 300, 4096, 65535]
    static let chunkLimits = [1, 8, 300, 70000]

    enum Event: Equatable, CustomStringConvertible {
        case message(count: Int, hash: UInt64)
        case oversize
        case malformed

        static func message(_ bytes: some Sequence<UInt8>) -> Event {
            var count = 0
            var hash: UInt64 = 0xCBF2_9CE4_8422_2325
            for byte in bytes {
                hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3
                count += 1
            }
            return .message(count: count, hash: hash)
        }

        var description: String {
            switch self {
            case .message(let count, let hash): "message(\(count) bytes, fnv \(String(hash, radix: 16)))"
            case .oversize: "oversize"
            case .malformed: "malformed"
            }
        }
    }

    static func check(_ input: UnsafeRawBufferPointer) {
        let config0 = input[0]
        let config1 = input[1]
        let stream = Array(input[2...])
        var chunkMode = Int(config1 & 3)
        if stream.count > 512 { chunkMode = max(chunkMode, 2) }
        check(stream, maxMessageBytes: maxMessageBytesChoices[Int(config0 & 7)], chunkLimit: chunkLimits[chunkMode],
            seed: UInt64(config0) << 8 | UInt64(config1))
    }

    static func check(_ stream: [UInt8], maxMessageBytes: Int, chunkLimit: Int, seed: UInt64) {
        let expected = referenceEvents(stream, maxMessageBytes: maxMessageBytes)
        let whole = frame(stream, maxMessageBytes: maxMessageBytes, chunkSizes: { stream.count })
        fuzzCheck(whole == expected, "one append: \(whole) but reference \(expected) (max \(maxMessageBytes))")
        var random = Xorshift(seed: seed)
        let chunked = frame(stream, maxMessageBytes: maxMessageBytes, chunkSizes: { 1 + random.next(below: chunkLimit) })
        fuzzCheck(chunked == expected, "chunked (limit \(chunkLimit)): \(chunked) but reference \(expected) (max \(maxMessageBytes))")
    }

    /// 100 KB streams (buffer compactions past 64 KiB), line-framed and octet-counted, through the same checks.
    static func checkLongStreams() {
        let lines = [
            "<158>Nov 22 12:38:13 vm pixel: 1795351093.220,e=pageview&u=https%3A%2F%2Fex.com%2F",
            #"<158>1 2026-11-22T12:38:22.942276+00:00 vm pixel - - [timeQuality tzKnown="1" isSynced="0"] hello 5424"#,
            "<158>pixel: hello from python",
            "<158>" + String(repeating: "x", count: 5000),
        ].map { Array($0.utf8) }
        var lineFramed: [UInt8] = []
        var octetCounted: [UInt8] = []
        var random = Xorshift(seed: 42)
        while lineFramed.count < 100_000 {
            let line = lines[random.next(below: lines.count)]
            lineFramed += line + (random.next(below: 8) == 0 ? [0x0A, 0x0A] : [0x0A])
            octetCounted += Array("\(line.count) ".utf8) + line
        }
        for stream in [lineFramed, octetCounted] {
            for maxMessageBytes in [100, 65535] {
                for (index, chunkLimit) in [300, 4096].enumerated() {
                    check(stream, maxMessageBytes: maxMessageBytes, chunkLimit: chunkLimit, seed: UInt64(index + 1))
                }
            }
        }
    }

    /// Feeds `stream` to a framer in chunks and drains it after every append, checking the invariants.
    static func frame(_ stream: [UInt8], maxMessageBytes: Int, chunkSizes: () -> Int) -> [Event] {
        var framer = SyslogStreamFramer(maxMessageBytes: maxMessageBytes)
        var events: [Event] = []
        var offset = 0
        var failed = false
        while offset < stream.count && !failed {
            let count = min(chunkSizes(), stream.count - offset)
            stream.withUnsafeBytes { framer.append(UnsafeRawBufferPointer(rebasing: $0[offset..<offset + count])) }
            offset += count
            let bufferLimit = 65536 + 2 * (maxMessageBytes + 10) + count
            fuzzCheck(framer.bytes.count <= bufferLimit, "buffer holds \(framer.bytes.count) bytes, more than \(bufferLimit)")

            let pendingAtStart = framer.pendingByteCount
            var drained = 0
            while true {
                let pendingBefore = framer.pendingByteCount
                guard let event = framer.next() else { break }
                drained += 1
                fuzzCheck(drained <= pendingAtStart + 1, "next() returned \(drained) events for \(pendingAtStart) pending bytes")
                switch event {
                case .message(let range):
                    fuzzCheck(range.lowerBound >= 0 && range.upperBound <= framer.bytes.count, "message range \(range) outside 0..<\(framer.bytes.count)")
                    fuzzCheck(!range.isEmpty && range.count <= maxMessageBytes, "message of \(range.count) bytes (max \(maxMessageBytes))")
                    events.append(.message(framer.bytes[range]))
                    fuzzCheck(framer.pendingByteCount < pendingBefore, "message without progress: pending \(pendingBefore) → \(framer.pendingByteCount)")
                case .oversize:
                    events.append(.oversize)
                    fuzzCheck(framer.pendingByteCount < pendingBefore, "oversize without progress: pending \(pendingBefore) → \(framer.pendingByteCount)")
                case .truncated:
                    fuzzCheck(false, "next() returned .truncated (only finish(endOfStream:) does)")
                case .malformed:
                    events.append(.malformed)
                    failed = true
                    fuzzCheck(framer.next() == nil, "next() after .malformed is not nil")
                }
                if failed { break }
            }
            if !failed {
                fuzzCheck(framer.pendingByteCount <= maxMessageBytes + 10, "\(framer.pendingByteCount) bytes pending after draining (max \(maxMessageBytes))")
            }
        }
        return events
    }

    /// RFC 6587 over the whole stream at once, written from the framer's documentation, not its code.
    static func referenceEvents(_ stream: [UInt8], maxMessageBytes: Int) -> [Event] {
        guard let first = stream.first else { return [] }
        var events: [Event] = []
        var position = 0
        if first >= 0x30 && first <= 0x39 {
            // Octet counting: LEN (1-9 digits, > 0) SP MSG.
            while position < stream.count {
                var index = position
                var length = 0
                while index < stream.count, stream[index] != 0x20 {
                    guard stream[index] >= 0x30, stream[index] <= 0x39, index - position < 9 else {
                        return events + [.malformed]
                    }
                    length = length * 10 + Int(stream[index] - 0x30)
                    index += 1
                }
                guard index < stream.count else { return events }  // length field incomplete
                guard index > position, length > 0 else { return events + [.malformed] }
                let body = index + 1
                if length > maxMessageBytes {
                    events.append(.oversize)
                    position = body + length
                } else {
                    guard stream.count - body >= length else { return events }
                    events.append(.message(stream[body..<body + length]))
                    position = body + length
                }
            }
            return events
        }
        guard first == UInt8(ascii: "<") else { return [.malformed] }
        // Non-transparent framing: lines ending in LF; empty lines (and lone-CR ones) skipped; longer than the
        // maximum → oversize.
        while position < stream.count {
            guard let newline = stream[position...].firstIndex(of: 0x0A) else {
                if stream.count - position > maxMessageBytes { events.append(.oversize) }
                return events
            }
            let line = position..<newline
            position = newline + 1
            if line.count > maxMessageBytes {
                events.append(.oversize)
            } else if !line.isEmpty && !(line.count == 1 && stream[line.lowerBound] == 0x0D) {
                events.append(.message(stream[line]))
            }
        }
        return events
    }
}

struct Xorshift {
    var state: UInt64

    init(seed: UInt64) { state = seed &* 0x9E37_79B9_7F4A_7C15 | 1 }

    mutating func next(below bound: Int) -> Int {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return Int(state % UInt64(bound))
    }
}
