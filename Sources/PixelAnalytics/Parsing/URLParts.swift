/// The parts of an absolute `http`/`https` URL that analytics needs, found without allocating:
/// byte ranges into the text that was parsed.
///
/// Lenient where browsers are (`HTTPS://Example.COM:443/a?b#c`), strict where it matters: the
/// scheme must be `http` or `https` followed by `://` and a non-empty host of host characters, and
/// the whole at most ``maxLength`` bytes.
struct URLParts {
    /// The longest URL parsed, in bytes: a longer page URL (`u`) is a ``DropReason/badURL``, a longer
    /// referrer (`r`) is no referrer: far beyond what a browser sends, and it keeps the work per hit bounded.
    static let maxLength = 8192

    /// The host without user info, port or a trailing dot (not yet lowercased).
    var host: Range<Int>
    /// From the first `/` after the host up to `?`, `#` or the end; may be empty.
    var path: Range<Int>
    /// After `?` up to `#` or the end; `nil` when there is no `?`.
    var query: Range<Int>?

    /// Parses `bytes` as an absolute http(s) URL.
    /// - Returns: `nil` when it is not one, or is longer than ``maxLength``.
    static func parse(_ bytes: UnsafeBufferPointer<UInt8>) -> URLParts? {
        var index = 0
        let count = bytes.count
        guard count <= maxLength else { return nil }
        // Leading spaces: tolerated as browsers do.
        while index < count && bytes[index] == 0x20 { index += 1 }
        guard matchesCaseless(bytes, at: index, "http") else { return nil }
        index += 4
        if index < count && (bytes[index] | 0x20) == UInt8(ascii: "s") { index += 1 }
        guard index + 3 <= count, bytes[index] == UInt8(ascii: ":"), bytes[index + 1] == UInt8(ascii: "/"),
            bytes[index + 2] == UInt8(ascii: "/")
        else { return nil }
        index += 3
        let authorityStart = index
        while index < count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "/") || byte == UInt8(ascii: "?") || byte == UInt8(ascii: "#") { break }
            index += 1
        }
        let authorityEnd = index
        var hostStart = authorityStart
        // User info: everything up to the last '@'.
        for position in authorityStart..<authorityEnd where bytes[position] == UInt8(ascii: "@") {
            hostStart = position + 1
        }
        var hostEnd = authorityEnd
        if hostStart < hostEnd && bytes[hostStart] == UInt8(ascii: "[") {
            // IPv6 literal: up to ']'.
            var position = hostStart
            while position < authorityEnd && bytes[position] != UInt8(ascii: "]") { position += 1 }
            guard position < authorityEnd else { return nil }
            hostEnd = position + 1
        } else {
            for position in hostStart..<authorityEnd where bytes[position] == UInt8(ascii: ":") {
                hostEnd = position
                break
            }
            while hostEnd > hostStart && bytes[hostEnd - 1] == UInt8(ascii: ".") { hostEnd -= 1 }
            for position in hostStart..<hostEnd where !isHostByte(bytes[position]) {
                return nil
            }
        }
        guard hostStart < hostEnd else { return nil }
        let pathStart = authorityEnd
        var pathEnd = pathStart
        while pathEnd < count && bytes[pathEnd] != UInt8(ascii: "?") && bytes[pathEnd] != UInt8(ascii: "#") {
            pathEnd += 1
        }
        var query: Range<Int>?
        if pathEnd < count && bytes[pathEnd] == UInt8(ascii: "?") {
            var queryEnd = pathEnd + 1
            while queryEnd < count && bytes[queryEnd] != UInt8(ascii: "#") { queryEnd += 1 }
            query = (pathEnd + 1)..<queryEnd
        }
        return URLParts(host: hostStart..<hostEnd, path: pathStart..<pathEnd, query: query)
    }

    @inline(__always)
    static func isHostByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"):
            return true
        default:
            // Internationalised names as raw UTF-8.
            return byte >= 0x80
        }
    }

    static func matchesCaseless(_ bytes: UnsafeBufferPointer<UInt8>, at index: Int, _ word: StaticString) -> Bool {
        let length = word.utf8CodeUnitCount
        guard index + length <= bytes.count else { return false }
        let start = word.utf8Start
        for offset in 0..<length where ASCIIBytes.lower(bytes[index + offset]) != start[offset] {
            return false
        }
        return true
    }

    /// The host lowercased, without a leading `www.`: the form sites are configured and compared in.
    static func normalizedHost(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) -> String {
        var start = range.lowerBound
        if range.count > 4 && matchesCaseless(bytes, at: start, "www.") { start += 4 }
        return String(unsafeUninitializedCapacity: range.upperBound - start) { out in
            var written = 0
            for index in start..<range.upperBound {
                out[written] = ASCIIBytes.lower(bytes[index])
                written += 1
            }
            return written
        }
    }
}

/// ASCII helpers over bytes.
enum ASCIIBytes {
    @inline(__always)
    static func lower(_ byte: UInt8) -> UInt8 {
        byte &- UInt8(ascii: "A") < 26 ? byte | 0x20 : byte
    }

    /// Runs `body` on the UTF-8 bytes of `text` without copying when the string is native.
    @inline(__always)
    static func withBytes<R>(_ text: String, _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
        var text = text
        return text.withUTF8(body)
    }

    /// Whether `haystack` contains `needle` (ASCII case-insensitively; `needle` must be lowercase).
    static func containsCaseless(_ haystack: UnsafeBufferPointer<UInt8>, _ needle: StaticString) -> Bool {
        let length = needle.utf8CodeUnitCount
        guard length > 0, haystack.count >= length else { return length == 0 }
        let pointer = needle.utf8Start
        let first = pointer[0]
        var index = 0
        let last = haystack.count - length
        while index <= last {
            if lower(haystack[index]) == first {
                var offset = 1
                while offset < length && lower(haystack[index + offset]) == pointer[offset] { offset += 1 }
                if offset == length { return true }
            }
            index += 1
        }
        return false
    }

    /// The first index of `needle` in `haystack` (exact bytes), or `nil`.
    static func firstIndex(of needle: StaticString, in haystack: UnsafeBufferPointer<UInt8>) -> Int? {
        let length = needle.utf8CodeUnitCount
        guard haystack.count >= length else { return nil }
        let pointer = needle.utf8Start
        var index = 0
        let last = haystack.count - length
        while index <= last {
            if haystack[index] == pointer[0] {
                var offset = 1
                while offset < length && haystack[index + offset] == pointer[offset] { offset += 1 }
                if offset == length { return index }
            }
            index += 1
        }
        return nil
    }

    /// Whether `haystack` contains `needle` exactly.
    @inline(__always)
    static func contains(_ haystack: UnsafeBufferPointer<UInt8>, _ needle: StaticString) -> Bool {
        firstIndex(of: needle, in: haystack) != nil
    }

    /// Whether `haystack` starts with `prefix` exactly.
    static func hasPrefix(_ haystack: UnsafeBufferPointer<UInt8>, _ prefix: StaticString) -> Bool {
        let length = prefix.utf8CodeUnitCount
        guard haystack.count >= length else { return false }
        let pointer = prefix.utf8Start
        for offset in 0..<length where haystack[offset] != pointer[offset] { return false }
        return true
    }
}
