// Shared by every fuzz target (compiled into each target's module).

/// Fails the fuzz run: libFuzzer reports the trap as a crash and saves the input as `crash-<sha1>`.
///
/// Used instead of `precondition` so the message is printed in `-O` builds too and names the broken property.
@inline(never)
func fuzzFail(_ message: @autoclosure () -> String, file: StaticString = #fileID, line: UInt = #line) -> Never {
    fatalError("FUZZ INVARIANT BROKEN: \(message())", file: file, line: line)
}

@inline(__always)
func fuzzCheck(
    _ condition: @autoclosure () -> Bool,
    _ message: @autoclosure () -> String,
    file: StaticString = #fileID,
    line: UInt = #line
) {
    if !condition() { fuzzFail(message(), file: file, line: line) }
}

/// Bytes as `3c 31 35 38 3e …` (at most `limit` bytes) for invariant messages.
func fuzzHex(_ bytes: some Collection<UInt8>, limit: Int = 96) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var text: [UInt8] = []
    for byte in bytes.prefix(limit) {
        if !text.isEmpty { text.append(0x20) }
        text.append(digits[Int(byte >> 4)])
        text.append(digits[Int(byte & 0xF)])
    }
    if bytes.count > limit { text.append(contentsOf: " …".utf8) }
    return String(decoding: text, as: UTF8.self)
}
