#if canImport(Glibc)
import Glibc
#endif

/// An error from a listener: the failing call, the errno and a message.
public struct SyslogIngestError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        /// A system call failed.
        public static let io = Code("io")
        /// The listener's configuration cannot work (bad address, path in the way).
        public static let configuration = Code("configuration")
        public var description: String { name }
    }

    /// What kind of failure.
    public var code: Code
    /// The failing call, e.g. `"bind udp://127.0.0.1:5514"`.
    public var operation: String
    /// The errno, when a system call failed.
    public var errno: Int32?
    /// A readable message.
    public var message: String

    /// Creates an error with a message.
    public init(code: Code, operation: String, message: String) {
        self.code = code
        self.operation = operation
        self.errno = nil
        self.message = message
    }

    /// Creates an error from an errno value.
    public init(code: Code, operation: String, errno: Int32) {
        self.code = code
        self.operation = operation
        self.errno = errno
        self.message = String(cString: strerror(errno))
    }

    public var description: String { "\(operation): \(message)" }
}
