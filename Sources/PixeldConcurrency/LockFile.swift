#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One process at a time on a resource: an exclusive `flock` on a lock file, taken without waiting
/// and held until its descriptor is closed (also when the process dies). Used by the spool
/// (`DIR/lock`), the consumer's archive (`DIR/.<id>.lock`) and its `--output` file (the file itself).
public enum LockFile {
    /// Why a lock was not taken.
    public struct Failure: Error, Sendable {
        /// The failing call: `"open"` or `"flock"`.
        public var operation: String
        /// Its `errno`.
        public var code: Int32
        /// Another process holds the lock.
        public var isHeldElsewhere: Bool { operation == "flock" && code == EWOULDBLOCK }
    }

    /// Opens (creating it with `mode`) the file at `path`, close-on-exec, and locks it.
    /// - Returns: The descriptor that holds the lock; close it to release it.
    /// - Throws: ``Failure``; ``Failure/isHeldElsewhere`` when another process holds the lock.
    public static func acquire(_ path: String, mode: UInt32) throws(Failure) -> Int32 {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, mode_t(mode))
        guard fd >= 0 else { throw Failure(operation: "open", code: errno) }
        do {
            try lock(fd)
        } catch {
            close(fd)
            throw error
        }
        return fd
    }

    /// Locks the file open at `fd` the same way (exclusive, without waiting), until `fd` is closed.
    /// - Throws: ``Failure``; ``Failure/isHeldElsewhere`` when another process holds the lock.
    public static func lock(_ fd: Int32) throws(Failure) {
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let code = errno
            if code == EINTR { continue }
            throw Failure(operation: "flock", code: code)
        }
    }
}
