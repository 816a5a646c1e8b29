/// Makes attacker-controlled text safe to store as a rollup dimension and to print: bounded in
/// length (cut on a UTF-8 boundary), control characters and DEL replaced by `?`, invalid UTF-8
/// repaired. Anything that reaches a breakdown (paths, sources, campaigns, event names) passes here.
public enum DimensionText {
    /// Longest path kept, in bytes.
    public static let pathLimit = 512
    /// Longest source, campaign value or event name kept, in bytes.
    public static let nameLimit = 128

    /// `text` without the whitespace at either end (`utm_source=newsletter%20`, `e=%20signup`), so
    /// that a stray space does not make a value of its own.
    public static func trimmed(_ text: String) -> String {
        var view = Substring(text)
        while let first = view.first, first.isWhitespace { view.removeFirst() }
        while let last = view.last, last.isWhitespace { view.removeLast() }
        return view.count == text.count ? text : String(view)
    }

    /// Cleans `text`.
    /// - Parameters:
    ///   - text: Any text.
    ///   - limit: The maximum length in bytes.
    public static func clean(_ text: String, limit: Int = nameLimit) -> String {
        ASCIIBytes.withBytes(text) { clean($0, 0..<$0.count, limit: limit) }
    }

    static func clean(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, limit: Int) -> String {
        var end = min(range.upperBound, range.lowerBound + limit)
        if end < range.upperBound {
            // Do not cut a UTF-8 sequence: step back over continuation bytes.
            while end > range.lowerBound && bytes[end] & 0xC0 == 0x80 { end -= 1 }
        }
        var needsCleaning = false
        for index in range.lowerBound..<end where bytes[index] < 0x20 || bytes[index] == 0x7F {
            needsCleaning = true
            break
        }
        if !needsCleaning {
            return String(decoding: bytes.extracting(range.lowerBound..<end), as: UTF8.self)
        }
        return String(unsafeUninitializedCapacity: end - range.lowerBound) { out in
            var written = 0
            for index in range.lowerBound..<end {
                let byte = bytes[index]
                out[written] = byte < 0x20 || byte == 0x7F ? UInt8(ascii: "?") : byte
                written += 1
            }
            return written
        }
    }
}
