public import Foundation

/// Facts about the machine the tests run on: CI or not, where the external tools are, and where
/// the package lives.
///
/// Suites that need an external program are gated with
/// `.enabled(if: TestEnvironment.canRun("redis-server", "redis-cli"))`. On a developer machine a
/// missing tool skips the suite; under CI (`CI` set and non-empty) ``canRun(_:)`` is always `true`,
/// so the suite runs and ``requireTool(_:)`` fails it with an install hint: CI never passes on
/// "no tests ran".
public enum TestEnvironment {
    /// `true` when the environment variable `CI` is set and non-empty.
    public static var isCI: Bool {
        guard let value = ProcessInfo.processInfo.environment["CI"] else { return false }
        return !value.isEmpty
    }

    /// Directories searched after `PATH`: nginx lives in `/usr/sbin`, which a non-root `PATH` lacks.
    public static let extraToolDirectories = ["/usr/local/sbin", "/usr/sbin", "/sbin"]

    /// The Debian package that provides each tool the suites use.
    public static let debianPackages: [String: String] = [
        "redis-server": "redis-server",
        "redis-cli": "redis-tools",
        "nginx": "nginx",
        "logger": "bsdutils",
        "jq": "jq",
        "curl": "curl",
    ]

    /// The root of the pixeld package (the directory holding `Package.swift`), derived from this
    /// source file's path.
    public static var packageRoot: URL {
        URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent()  // Support
            .deletingLastPathComponent()  // Tests
            .deletingLastPathComponent()
    }

    /// `deploy/nginx-syslog.conf` in the package.
    public static var deployNginxConf: URL {
        packageRoot.appendingPathComponent("deploy/nginx-syslog.conf")
    }

    /// The executable `name` found on `PATH` or in ``extraToolDirectories``, or `nil`.
    /// - Parameter name: a bare program name such as `"redis-server"`, or an absolute path.
    public static func findTool(_ name: String) -> URL? {
        let fileManager = FileManager.default
        if name.contains("/") {
            return fileManager.isExecutableFile(atPath: name) ? URL(fileURLWithPath: name) : nil
        }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        let directories = path.split(separator: ":").map(String.init) + extraToolDirectories
        for directory in directories where !directory.isEmpty {
            let candidate = (directory as NSString).appendingPathComponent(name)
            if fileManager.isExecutableFile(atPath: candidate) {
                return URL(fileURLWithPath: candidate)
            }
        }
        return nil
    }

    /// The executable `name`, or an error saying how to install it.
    ///
    /// Under CI the error is meant to fail the test; elsewhere suites should already have been
    /// skipped by ``canRun(_:)``.
    /// - Parameter name: a bare program name such as `"nginx"`.
    /// - Returns: the absolute location of the program.
    /// - Throws: ``TestSupportError`` when the program is not found.
    @discardableResult
    public static func requireTool(_ name: String) throws -> URL {
        if let url = findTool(name) { return url }
        let package = debianPackages[name] ?? name
        let hint = "install it with `make deps` or `apt-get install -y \(package)`"
        if isCI {
            throw TestSupportError("\(name) not found on PATH or in /usr/sbin, /sbin, and CI is set: \(hint)")
        }
        throw TestSupportError("\(name) not found on PATH or in /usr/sbin, /sbin: \(hint)")
    }

    /// Whether a suite needing `tools` should run: `true` under CI (so a missing tool fails the
    /// suite instead of skipping it), otherwise `true` only when every tool is found.
    /// - Parameter tools: bare program names.
    public static func canRun(_ tools: String...) -> Bool {
        canRun(tools)
    }

    /// Array form of ``canRun(_:)-(String...)``.
    public static func canRun(_ tools: [String]) -> Bool {
        isCI || tools.allSatisfy { findTool($0) != nil }
    }
}
