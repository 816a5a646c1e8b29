// Fuzz target `syslog-route`: SyslogParser.parse(_:) and IngestRules.route(_:) on one hostile datagram.
//
// Built against a module `SyslogIngest` made of Sources/SyslogIngest/{Model,Parsing,Routing} (Fuzz/build.sh), so
// it can use only the public API. The input is the datagram exactly as received, so the seed corpus is real lines.
//
// Checked on every input, for four rule sets (all facilities; the default local3-only; an allow-list with a
// key prefix and a 48-byte limit; a 1-byte limit):
//  1. route() returns exactly what parse() implies: oversize (raw length) → malformed (no valid PRI, checked
//     by an independent PRI reader) → filtered (facility) → no_program / malformed (parse error code) →
//     bad_program (1–64 bytes of [A-Za-z0-9_.:/-], allow-list) → accept with the same program and message
//     bytes as parse(); accepted ranges lie inside the buffer, program before message, message runs to the
//     end of the content (trailing \n \r \0 stripped).
//  2. parse() invariants: program never empty, message is a suffix of the content, PRI agrees with the
//     independent reader, format is RFC 5424 exactly when "1 " follows the PRI, RFC 5424 header limits,
//     error offsets inside the datagram.
//  3. parse() is the same through the non-contiguous Collection path and with "\n", "\r\n" or "\0" appended.
// ASan (reads straight from libFuzzer's exact-size buffer) catches any read outside the datagram.

import SyslogIngest

@_cdecl("LLVMFuzzerTestOneInput")
public func syslogRouteFuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let datagram = UnsafeRawBufferPointer(start: size == 0 ? nil : data, count: size)
    SyslogRouteFuzz.check(datagram)
    return 0
}

enum SyslogRouteFuzz {
    struct RuleSet: Sendable {
        let name: String
        let rules: IngestRules
        let allowList: Set<String>?
    }

    static let ruleSets: [RuleSet] = [
        RuleSet(name: "all facilities", rules: IngestRules(facilities: .all), allowList: nil),
        RuleSet(name: "default (local3)", rules: IngestRules(), allowList: nil),
        RuleSet(
            name: "allow-list, prefix, 48 bytes",
            rules: IngestRules(
                facilities: FacilityFilter([.kern, .user, .local3, .local7]),
                programs: try! ProgramPolicy(
                    keyPrefix: Array("pixel:".utf8),
                    allowList: ["pixel", "su", "evntslog", "a", "pixel.err", "x/y:z-_"]
                ),
                maxMessageBytes: 48
            ),
            allowList: ["pixel", "su", "evntslog", "a", "pixel.err", "x/y:z-_"]
        ),
        RuleSet(name: "1-byte limit", rules: IngestRules(facilities: .all, maxMessageBytes: 1), allowList: nil),
    ]

    enum Expected: Equatable {
        case drop(DropReason)
        case accept(program: [UInt8], message: [UInt8])
    }

    static func check(_ datagram: UnsafeRawBufferPointer) {
        let parsed = Result { () throws(SyslogParseError) in try SyslogParser.parse(datagram) }
        let reference = ReferencePRI(datagram)
        checkParse(parsed, datagram, reference)
        for ruleSet in ruleSets {
            checkRoute(ruleSet, parsed, datagram, reference)
        }
        checkParseVariants(parsed, datagram)
    }

    // MARK: - parse()

    static func checkParse(
        _ parsed: Result<SyslogMessage, SyslogParseError>,
        _ datagram: UnsafeRawBufferPointer,
        _ reference: ReferencePRI
    ) {
        switch parsed {
        case .failure(let error):
            fuzzCheck(error.offset >= 0 && error.offset <= datagram.count, "parse error offset \(error.offset) outside 0...\(datagram.count): \(error)")
            let isPRIError = error.code == .empty || error.code == .missingPriority || error.code == .badPriority
            fuzzCheck(
                isPRIError == (reference.value == nil),
                "parse error \(error) but the reference PRI reader says \(reference.value.map(String.init) ?? "invalid PRI")"
            )
            if error.code == .empty {
                fuzzCheck(reference.contentEnd == 0, "parse says empty but \(reference.contentEnd) content bytes remain")
            }
        case .success(let message):
            fuzzCheck(reference.value == message.priority.value, "parse PRI \(message.priority.value) but reference PRI \(String(describing: reference.value))")
            fuzzCheck(!message.program.isEmpty, "parse() returned an empty program")
            let content = datagram[0..<reference.contentEnd]
            fuzzCheck(message.message.count <= content.count && content.suffix(message.message.count).elementsEqual(message.message),
                "message is not a suffix of the content: message=\(fuzzHex(message.message))")
            let isVersionOne = reference.afterPRI + 1 < reference.contentEnd
                && datagram[reference.afterPRI] == 0x31 && datagram[reference.afterPRI + 1] == 0x20
            fuzzCheck((message.format == .rfc5424) == isVersionOne, "format \(message.format) but isVersionOne=\(isVersionOne)")
            if message.format == .rfc5424 {
                fuzzCheck(message.program.count <= 48 && message.program.allSatisfy { $0 >= 33 && $0 <= 126 }, "RFC 5424 APP-NAME not 1-48 PRINTUSASCII: \(fuzzHex(message.program))")
                fuzzCheck(message.program != [0x2D], "RFC 5424 NILVALUE APP-NAME returned as a program")
                fuzzCheck((message.hostname?.utf8.count ?? 0) <= 255, "RFC 5424 HOSTNAME longer than 255")
                fuzzCheck((message.procID?.utf8.count ?? 0) <= 128, "RFC 5424 PROCID longer than 128")
                fuzzCheck((message.msgID?.utf8.count ?? 0) <= 32, "RFC 5424 MSGID longer than 32")
                for element in message.structuredData {
                    fuzzCheck(!element.id.isEmpty && element.id.utf8.count <= 32, "SD-ID not 1-32 bytes: \(element.id.debugDescription)")
                    for parameter in element.parameters {
                        fuzzCheck(!parameter.name.isEmpty && parameter.name.utf8.count <= 32, "PARAM-NAME not 1-32 bytes: \(parameter.name.debugDescription)")
                    }
                }
            } else {
                fuzzCheck(message.structuredData.isEmpty && message.msgID == nil, "RFC 3164 message with SD or MSGID")
            }
        }
    }

    /// parse() through the copying Collection path, and with trailing bytes parse() must strip.
    static func checkParseVariants(_ parsed: Result<SyslogMessage, SyslogParseError>, _ datagram: UnsafeRawBufferPointer) {
        let generic = Result { () throws(SyslogParseError) in try SyslogParser.parse(datagram.lazy.map { $0 }) }
        fuzzCheck(generic == parsed, "parse(Collection) differs from parse(UnsafeRawBufferPointer): \(generic) vs \(parsed)")

        let suffixes: [[UInt8]] = [[0x0A], [0x0D, 0x0A], [0x00]]
        let suffix = suffixes[datagram.count % suffixes.count]
        let extended = Array(datagram) + suffix
        let extendedParsed = extended.withUnsafeBytes { buffer in
            Result { () throws(SyslogParseError) in try SyslogParser.parse(buffer) }
        }
        fuzzCheck(extendedParsed == parsed, "appending \(fuzzHex(suffix)) changed parse(): \(extendedParsed) vs \(parsed)")
    }

    // MARK: - route()

    static func checkRoute(
        _ ruleSet: RuleSet,
        _ parsed: Result<SyslogMessage, SyslogParseError>,
        _ datagram: UnsafeRawBufferPointer,
        _ reference: ReferencePRI
    ) {
        let rules = ruleSet.rules
        let expected: Expected
        if datagram.count > rules.maxMessageBytes {
            expected = .drop(.oversize)
        } else if let value = reference.value {
            let facility = Facility(rawValue: UInt8(value >> 3))!
            if !rules.facilities.allows(facility) {
                expected = .drop(.filtered)
            } else {
                switch parsed {
                case .failure(let error):
                    expected = .drop(error.code == .noProgram ? .noProgram : .malformed)
                case .success(let message):
                    if referenceIsValidProgram(message.program)
                        && (ruleSet.allowList?.contains(String(decoding: message.program, as: UTF8.self)) ?? true)
                    {
                        expected = .accept(program: message.program, message: message.message)
                    } else {
                        expected = .drop(.badProgram)
                    }
                }
            }
        } else {
            expected = .drop(.malformed)
        }

        let decision = rules.route(datagram)
        let actual: Expected
        switch decision {
        case .drop(let reason):
            actual = .drop(reason)
        case .accept(let program, let message):
            fuzzCheck(program.lowerBound >= 0 && program.upperBound <= datagram.count
                && message.lowerBound >= 0 && message.upperBound <= datagram.count,
                "[\(ruleSet.name)] accepted ranges \(program) / \(message) outside 0..<\(datagram.count)")
            fuzzCheck(!program.isEmpty, "[\(ruleSet.name)] accepted an empty program range")
            fuzzCheck(program.upperBound <= message.lowerBound, "[\(ruleSet.name)] program \(program) not before message \(message)")
            fuzzCheck(message.upperBound == reference.contentEnd, "[\(ruleSet.name)] message \(message) does not end at the content end \(reference.contentEnd)")
            actual = .accept(program: Array(datagram[program]), message: Array(datagram[message]))
        }
        fuzzCheck(actual == expected, "[\(ruleSet.name)] route() = \(describe(actual)) but parse() implies \(describe(expected)); parse: \(parsed)")
    }

    static func describe(_ value: Expected) -> String {
        switch value {
        case .drop(let reason): "drop(\(reason))"
        case .accept(let program, let message): "accept(program: \(fuzzHex(program)), message: \(fuzzHex(message)))"
        }
    }

    /// 1–64 bytes of `[A-Za-z0-9_.:/-]`, written independently of ProgramPolicy.
    static func referenceIsValidProgram(_ bytes: [UInt8]) -> Bool {
        guard (1...64).contains(bytes.count) else { return false }
        for byte in bytes {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: ":"),
                UInt8(ascii: "/"), UInt8(ascii: "-"):
                continue
            default:
                return false
            }
        }
        return true
    }
}

/// An independent reader of the framing rules: trailing `\n` `\r` `\0` stripped, then `<` 1–3 digits `>`, 0…191.
struct ReferencePRI {
    var contentEnd: Int
    var value: Int?
    /// Offset just after `>` (0 when the PRI is invalid).
    var afterPRI = 0

    init(_ datagram: UnsafeRawBufferPointer) {
        var end = datagram.count
        while end > 0, [0x0A, 0x0D, 0x00].contains(datagram[end - 1]) { end -= 1 }
        contentEnd = end
        value = nil
        guard end > 0, datagram[0] == UInt8(ascii: "<") else { return }
        var index = 1
        var number = 0
        while index < end, index <= 3, datagram[index] >= 0x30, datagram[index] <= 0x39 {
            number = number * 10 + Int(datagram[index] - 0x30)
            index += 1
        }
        guard index > 1, index < end, datagram[index] == UInt8(ascii: ">"), number <= 191 else { return }
        value = number
        afterPRI = index + 1
    }
}
