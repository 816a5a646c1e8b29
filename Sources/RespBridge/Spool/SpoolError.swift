#if canImport(Glibc)
import Glibc
#endif

/// A spool failure: the call, the path and errno.
public struct SpoolError: Error, Sendable, CustomStringConvertible {
    /// The failing call, e.g. `"open"`, `"fdatasync"`.
    public var operation: String
    /// The file or directory.
    public var path: String
    /// A readable message.
    public var message: String
    /// The directory is locked by another process (another `pixeld ingest` uses it).
    public var isInUse = false

    init(_ operation: String, path: String, errno code: Int32 = errno) {
        self.operation = operation
        self.path = path
        self.message = String(cString: strerror(code))
    }

    init(_ operation: String, path: String, message: String) {
        self.operation = operation
        self.path = path
        self.message = message
    }

    /// The spool `directory` is locked by another process.
    static func inUse(_ directory: String) -> SpoolError {
        var error = SpoolError("flock", path: directory, message: "in use by another process")
        error.isInUse = true
        return error
    }

    public var description: String { "spool \(operation) \(path): \(message)" }
}
