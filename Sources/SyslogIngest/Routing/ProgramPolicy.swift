/// Which programs may become Redis keys, and the prefix put before them.
///
/// A program is accepted when it is 1–64 bytes of `[A-Za-z0-9_.:/-]`, its key is outside pixeld's own
/// key space (``isReserved(key:)``) and, if an allow-list is configured, it is in it. The key for an
/// accepted datagram is ``keyPrefix`` followed by the program bytes.
/// ``accepts(programBytes:)`` runs on the hot path and never allocates: the allow-list is kept as sorted byte
/// strings and searched by bisection.
public struct ProgramPolicy: Sendable {
    /// The longest program name accepted, in bytes.
    public static let maxProgramBytes = 64
    /// The longest key prefix accepted, in bytes.
    public static let maxKeyPrefixBytes = 256

    /// Bytes put before the program to form the Redis key; empty by default (key = program, e.g. `pixel`).
    public let keyPrefix: [UInt8]
    /// The configured allow-list, or `nil` when any valid program is accepted.
    public let allowList: Set<String>?

    /// The allow-list as UTF-8 byte strings in lexicographic order, for allocation-free bisection.
    private let sortedAllowList: [[UInt8]]?
    /// Whether ``keyPrefix`` holds a `:`, so that any key may fall in pixeld's own key space.
    private let keyPrefixHasColon: Bool

    /// Accepts every valid program name, without a key prefix.
    public init() {
        self.keyPrefix = []
        self.allowList = nil
        self.sortedAllowList = nil
        self.keyPrefixHasColon = false
    }

    /// Creates a policy.
    /// - Parameters:
    ///   - keyPrefix: Bytes put before the program to form the Redis key: at most 256 bytes, no space or
    ///     control byte (`0x00`–`0x20`, `0x7F`).
    ///   - allowList: When non-`nil`, only these programs are accepted; every entry must itself be a valid
    ///     program name, and the set must not be empty.
    /// - Throws: ``SyslogIngestConfigError`` naming the bad prefix or allow-list entry.
    public init(keyPrefix: [UInt8] = [], allowList: Set<String>? = nil) throws(SyslogIngestConfigError) {
        guard keyPrefix.count <= Self.maxKeyPrefixBytes,
            keyPrefix.allSatisfy({ $0 > ASCII.space && $0 != 0x7F })
        else {
            throw SyslogIngestConfigError(
                code: .invalidKeyPrefix,
                message: "invalid Redis key prefix \(String(decoding: keyPrefix, as: UTF8.self).debugDescription); "
                    + "expected at most \(Self.maxKeyPrefixBytes) bytes without spaces or control characters"
            )
        }
        // A prefix that puts every key in pixeld's own key space (`pixeld:`, `ns:dead:`) would drop
        // every message as bad_program.
        guard !Self.isReserved(key: keyPrefix + Array("x".utf8)) else {
            throw SyslogIngestConfigError(
                code: .invalidKeyPrefix,
                message: "Redis key prefix \(String(decoding: keyPrefix, as: UTF8.self).debugDescription) puts every list in pixeld's own keys "
                    + "(pixeld:…, or a list's :processing:, :consumer:, :guard:, :output:, :archive:, :dead keys); choose another"
            )
        }
        if let allowList {
            guard !allowList.isEmpty else {
                throw SyslogIngestConfigError(
                    code: .emptyAllowList,
                    message:
                        "the program allow-list is empty, so every message would be dropped; give at least one program"
                )
            }
            for name in allowList.sorted() where !Self.isValidProgram(Array(name.utf8)) {
                throw SyslogIngestConfigError(
                    code: .invalidProgramName,
                    message: "invalid program name \(name.debugDescription) in the allow-list; "
                        + "expected 1-\(Self.maxProgramBytes) bytes of A-Z a-z 0-9 _ . : / -"
                )
            }
            for name in allowList.sorted() where Self.isReserved(key: keyPrefix + Array(name.utf8)) {
                throw SyslogIngestConfigError(
                    code: .invalidProgramName,
                    message: "program name \(name.debugDescription) in the allow-list would write into pixeld's own keys "
                        + "(pixeld:…, or a list's :processing:, :consumer:, :guard:, :output:, :archive:, :dead keys)"
                )
            }
        }
        self.keyPrefix = keyPrefix
        self.keyPrefixHasColon = keyPrefix.contains(ASCII.colon)
        self.allowList = allowList
        self.sortedAllowList = allowList.map { $0.map { Array($0.utf8) }.sorted { $0.lexicographicallyPrecedes($1) } }
    }

    /// Whether `programBytes` may become a key: valid characters and length, then the allow-list if any.
    /// - Parameter programBytes: The program as it appears in the datagram.
    /// - Returns: `true` when the datagram should be accepted.
    public func accepts(programBytes: UnsafeRawBufferPointer) -> Bool {
        guard Self.isValidProgram(programBytes) else { return false }
        guard !isReserved(program: programBytes) else { return false }
        guard let sortedAllowList else { return true }
        var low = 0
        var high = sortedAllowList.count
        while low < high {
            let middle = (low + high) / 2
            switch Self.compare(sortedAllowList[middle], programBytes) {
            case 0: return true
            case ..<0: low = middle + 1
            default: high = middle
            }
        }
        return false
    }

    /// Whether `program` may become a key (convenience for configuration and tests).
    /// - Parameter program: The program name.
    /// - Returns: `true` when a datagram with this program would be accepted.
    public func accepts(program: String) -> Bool {
        Array(program.utf8).withUnsafeBytes { self.accepts(programBytes: $0) }
    }

    /// Whether `bytes` is 1–64 bytes of `[A-Za-z0-9_.:/-]`, the only program names that become keys.
    /// - Parameter bytes: The candidate program name.
    /// - Returns: `true` for a valid name.
    public static func isValidProgram(_ bytes: some Collection<UInt8>) -> Bool {
        guard !bytes.isEmpty, bytes.count <= Self.maxProgramBytes else { return false }
        return bytes.allSatisfy { byte in
            ASCII.isAlphanumeric(byte) || byte == ASCII.underscore || byte == ASCII.period
                || byte == ASCII.colon || byte == ASCII.slash || byte == ASCII.hyphen
        }
    }

    /// The start of the analytics keys that `pixeld consume` writes.
    private static let analyticsKeyPrefix = Array("pixeld:".utf8)
    /// The names after `<list>:` of a consumed list's own keys (`<list>:processing:<id>`, `<list>:dead`, …).
    private static let consumerSegments = ["processing", "consumer", "guard", "output", "archive", "dead"].map { Array($0.utf8) }

    /// Whether `key` lies in pixeld's own key space, where no sender may create a list: the analytics
    /// keys (`pixeld:…`) and the keys a consumer keeps beside its list (`<list>:processing:<id>`,
    /// `:consumer:`, `:guard:`, `:output:`, `:archive:`, `<list>:dead`). A list there would make those
    /// commands fail with `WRONGTYPE`, and the consumer stop making progress; such programs are
    /// dropped as `bad_program`. Only RFC 5424 can carry a `:` in a program (in RFC 3164 it ends the tag).
    /// - Parameter key: The key prefix followed by the program.
    public static func isReserved(key: [UInt8]) -> Bool {
        key.withUnsafeBytes { isReserved($0, UnsafeRawBufferPointer(start: nil, count: 0)) }
    }

    /// ``isReserved(key:)`` for ``keyPrefix`` followed by `program`; only a key with a `:` can be
    /// reserved, so every nginx tag without a prefix returns at the first check.
    private func isReserved(program: UnsafeRawBufferPointer) -> Bool {
        guard keyPrefixHasColon || program.contains(ASCII.colon) else { return false }
        return keyPrefix.withUnsafeBytes { Self.isReserved($0, program) }
    }

    /// ``isReserved(key:)`` for the key `first` followed by `second`, without joining them.
    private static func isReserved(_ first: UnsafeRawBufferPointer, _ second: UnsafeRawBufferPointer) -> Bool {
        let count = first.count + second.count
        func byte(_ index: Int) -> UInt8 { index < first.count ? first[index] : second[index - first.count] }
        func matches(_ word: [UInt8], at start: Int, length: Int) -> Bool {
            word.count == length && word.indices.allSatisfy { byte(start + $0) == word[$0] }
        }
        if count >= analyticsKeyPrefix.count, matches(analyticsKeyPrefix, at: 0, length: analyticsKeyPrefix.count) { return true }
        // Every `:`-separated segment but the first (the list's own name, or part of it).
        var segmentStart: Int?
        for index in 0...count where index == count || byte(index) == ASCII.colon {
            if let start = segmentStart, consumerSegments.contains(where: { matches($0, at: start, length: index - start) }) {
                return true
            }
            segmentStart = index + 1
        }
        return false
    }

    /// Lexicographic comparison of two byte strings: negative, zero or positive.
    private static func compare(_ lhs: [UInt8], _ rhs: UnsafeRawBufferPointer) -> Int {
        let common = min(lhs.count, rhs.count)
        for index in 0..<common where lhs[index] != rhs[index] {
            return lhs[index] < rhs[index] ? -1 : 1
        }
        return lhs.count - rhs.count
    }
}
