/// Undoing nginx's default access-log escaping (`escape=default`).
///
/// With the default escaping nginx writes `"`, `\`, bytes below 0x20 and bytes from 0x7F up as
/// `\xHH` (for example `\x22`, `\xC3\xA9`), and an empty variable as `-`. Because a literal
/// backslash is itself written as `\x5C`, every `\x` followed by two hex digits is an escape.
enum NginxEscapes {
    /// Returns the unescaped bytes, or `nil` when `bytes` contains no `\xHH` (use them as they are).
    static func unescapeDefault(_ bytes: UnsafeBufferPointer<UInt8>) -> [UInt8]? {
        let count = bytes.count
        var index = bytes.firstIndex(of: ASCII.backslash, from: 0, to: count)
        guard index < count else {
            return nil
        }
        var output: [UInt8] = []
        output.reserveCapacity(count)
        output.append(contentsOf: bytes.slice(0..<index))
        while index < count {
            let byte = bytes[index]
            if byte == ASCII.backslash, index + 3 < count,
                bytes[index + 1] == UInt8(ascii: "x"),
                let high = ASCII.hexValue(bytes[index + 2]), let low = ASCII.hexValue(bytes[index + 3])
            {
                output.append(high << 4 | low)
                index += 4
            } else {
                output.append(byte)
                index += 1
            }
        }
        return output
    }
}
