public import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A fresh directory under `/tmp`, removed (with its contents) when the value is deinitialized.
///
/// Paths are short (`/tmp/pixeld-XXXXXX`) so unix socket paths inside stay well under the 108-byte
/// `sun_path` limit. Set `PIXELD_KEEP_TEST_DIRS=1` to keep them for debugging.
public final class TempDirectory: @unchecked Sendable {
    // @unchecked Sendable: every stored property is immutable after init.

    /// The directory.
    public let url: URL

    /// The directory as a path string.
    public var path: String { url.path }

    /// Creates the directory.
    /// - Parameters:
    ///   - prefix: the name before the random suffix.
    ///   - permissions: mode to set after creation (`mkdtemp` makes it 0700); use `0o755` when an
    ///     unprivileged process (nginx workers run as `nobody` under root) must reach a socket inside.
    /// - Throws: ``TestSupportError`` when the directory cannot be created.
    public init(prefix: String = "pixeld", permissions: Int? = nil) throws {
        var template = Array("/tmp/\(prefix)-XXXXXX".utf8CString)
        let created = template.withUnsafeMutableBufferPointer { buffer in
            mkdtemp(buffer.baseAddress!)
        }
        guard created != nil else {
            throw TestSupportError("mkdtemp(/tmp/\(prefix)-XXXXXX) failed: errno \(errno)")
        }
        let path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        self.url = URL(fileURLWithPath: path, isDirectory: true)
        if let permissions {
            try FileManager.default.setAttributes([.posixPermissions: permissions], ofItemAtPath: path)
        }
    }

    /// `url` with `name` appended.
    public func appending(_ name: String) -> URL {
        url.appendingPathComponent(name)
    }

    deinit {
        if ProcessInfo.processInfo.environment["PIXELD_KEEP_TEST_DIRS"]?.isEmpty == false { return }
        try? FileManager.default.removeItem(at: url)
    }
}
