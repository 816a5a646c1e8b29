#if canImport(Glibc)
import Glibc
#endif

/// The owner a unix socket file is given (`--unix-owner USER[:GROUP]`, names or numeric ids), so that
/// a web server running as another user can write to a socket with a mode such as 0660. Names are
/// looked up when the flag is parsed: an unknown one is a bad flag, found before anything is bound.
public struct UnixOwner: Sendable, Equatable {
    /// The user id; `nil` leaves the file's user unchanged.
    public var uid: UInt32?
    /// The group id; `nil` leaves the file's group unchanged.
    public var gid: UInt32?

    /// An owner by ids; `nil` leaves that part unchanged.
    public init(uid: UInt32?, gid: UInt32?) {
        self.uid = uid
        self.gid = gid
    }

    /// Parses `USER`, `USER:GROUP` or `:GROUP`, each a name or a number.
    /// - Throws: ``SyslogIngestError`` naming the unknown user or group.
    public init(parsing text: String) throws(SyslogIngestError) {
        let parts = text.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        if !parts[0].isEmpty { uid = try Self.id(parts[0], kind: "user") { getpwnam($0)?.pointee.pw_uid } }
        if parts.count > 1, !parts[1].isEmpty { gid = try Self.id(parts[1], kind: "group") { getgrnam($0)?.pointee.gr_gid } }
    }

    private static func id(_ text: String, kind: String, lookUp: (String) -> UInt32?) throws(SyslogIngestError) -> UInt32 {
        guard let id = UInt32(text) ?? lookUp(text) else {
            throw SyslogIngestError(code: .configuration, operation: "--unix-owner", message: "unknown \(kind) '\(text)'")
        }
        return id
    }
}
