/// The one error type of `PixeldTestSupport`: a sentence saying what failed and, where useful,
/// what a process printed before it failed.
public struct TestSupportError: Error, CustomStringConvertible, Sendable {
    /// What failed, in one or more lines.
    public var message: String

    /// Creates an error.
    /// - Parameter message: what failed.
    public init(_ message: String) {
        self.message = message
    }

    public var description: String { message }
}
