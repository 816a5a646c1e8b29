import Foundation
import PixelEvents
import Testing

/// Bytes of a fixture written with one character per byte: ASCII as itself, `\u{80}`…`\u{FF}` as
/// the raw byte (so `"caf\u{C3}\u{A9}"` is the UTF-8 of "café" and `"\u{FF}"` an invalid byte).
func rawBytes(_ text: String) -> [UInt8] {
    text.unicodeScalars.map { scalar in
        precondition(scalar.value < 0x100, "fixture characters must be single bytes")
        return UInt8(scalar.value)
    }
}

/// Shorthand for an ordered list of query args.
func qargs(_ pairs: KeyValuePairs<String, String>) -> [QueryArg] {
    pairs.map { QueryArg(name: $0.key, value: $0.value) }
}

/// Shorthand for ordered extra fields.
func fields(_ pairs: KeyValuePairs<String, String>) -> [PixelEvent.Field] {
    pairs.map { PixelEvent.Field(name: $0.key, value: $0.value) }
}

/// Parses `line` with Foundation's strict JSON parser and checks it says the same as `event`:
/// `ts` is the number, `args` groups repeated names into arrays, fields are strings.
func expectJSONMatches(_ line: String, _ event: PixelEvent, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(!line.contains("\n"), "jsonLine must be one line", sourceLocation: sourceLocation)
    guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)),
        let dictionary = object as? [String: Any]
    else {
        Issue.record("not a JSON object: \(line.debugDescription)", sourceLocation: sourceLocation)
        return
    }
    let ts = (dictionary["ts"] as? NSNumber)?.doubleValue
    #expect(ts == event.timestamp, sourceLocation: sourceLocation)
    guard let args = dictionary["args"] as? [String: Any] else {
        Issue.record("args is not an object: \(line.debugDescription)", sourceLocation: sourceLocation)
        return
    }
    var expectedArgs: [String: [String]] = [:]
    for arg in event.args {
        expectedArgs[arg.name, default: []].append(arg.value)
    }
    #expect(Set(args.keys) == Set(expectedArgs.keys), sourceLocation: sourceLocation)
    for (name, values) in expectedArgs {
        if values.count == 1 {
            #expect(args[name] as? String == values[0], sourceLocation: sourceLocation)
        } else {
            #expect(args[name] as? [String] == values, sourceLocation: sourceLocation)
        }
    }
    #expect(dictionary.count == 2 + event.fields.count, sourceLocation: sourceLocation)
    for field in event.fields {
        #expect(dictionary[field.name] as? String == field.value, sourceLocation: sourceLocation)
    }
}

/// SplitMix64: a tiny seeded generator so the robustness corpus is the same on every run.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64

    init(seed: UInt64) {
        state = seed
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
