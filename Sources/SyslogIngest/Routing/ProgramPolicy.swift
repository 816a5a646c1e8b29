/// Which programs may become Redis keys, and the prefix put before them.
///
/// A program is accepted when it is 1–64 bytes of `[A-Za-z0-9_.:/-]` and, if an allow-list is configured,
/// in it. The key for an accepted datagram is ``keyPrefix`` followed by the program bytes.
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

    /// Accepts every valid program name, without a key prefix.
    public init() {
        self.keyPrefix = []
        self.allowList = nil
        self.sortedAllowList = nil
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
        }
        self.keyPrefix = keyPrefix
        self.allowList = allowList
        self.sortedAllowList = allowList.map { $0.map { Array($0.utf8) }.sorted { $0.lexicographicallyPrecedes($1) } }
    }

    /// Whether `programBytes` may become a key: valid characters and length, then the allow-list if any.
    /// - Parameter programBytes: The program as it appears in the datagram.
    /// - Returns: `true` when the datagram should be accepted.
    public func accepts(programBytes: UnsafeRawBufferPointer) -> Bool {
        guard Self.isValidProgram(programBytes) else { return false }
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

    /// Lexicographic comparison of two byte strings: negative, zero or positive.
    private static func compare(_ lhs: [UInt8], _ rhs: UnsafeRawBufferPointer) -> Int {
        let common = min(lhs.count, rhs.count)
        for index in 0..<common where lhs[index] != rhs[index] {
            return lhs[index] < rhs[index] ? -1 : 1
        }
        return lhs.count - rhs.count
    }
}
