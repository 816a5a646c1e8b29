public import Foundation

/// The built `pixeld` executable running as a child of the test process, with stdout and stderr
/// captured (read on background threads, so it never blocks on a full pipe).
///
/// The binary is found by ``binaryURL()``: `PIXELD_BIN` if set, else `pixeld` beside the running
/// test executable (`swift test` puts `pixeldPackageTests.xctest` and `pixeld` in the same
/// `.build/<triple>/debug` directory, whatever `--scratch-path` says), else
/// `<package>/.build/debug/pixeld`.
///
/// Dropping the last reference stops a child that still runs (SIGTERM, then SIGKILL after 2 s):
/// keep the value alive as long as the process should run.
public final class PixeldProcess: @unchecked Sendable {
    // @unchecked Sendable: the only stored property is a ChildProcess, itself thread-safe.
    private let child: ChildProcess

    /// The underlying child process (PID, raw captures, signals).
    public var process: ChildProcess { child }
    /// The PID.
    public var pid: Int32 { child.pid }
    /// Whether it still runs.
    public var isRunning: Bool { child.isRunning }
    /// Everything written to stdout so far.
    public var stdoutText: String { child.stdout.text }
    /// Everything written to stderr so far.
    public var stderrText: String { child.stderr.text }

    private init(child: ChildProcess) {
        self.child = child
    }

    /// Where the `pixeld` executable is; see the type's documentation for the search order.
    /// - Throws: ``TestSupportError`` listing the places looked at when none has it.
    public static func binaryURL() throws -> URL {
        let fileManager = FileManager.default
        var candidates: [String] = []
        if let explicit = ProcessInfo.processInfo.environment["PIXELD_BIN"], !explicit.isEmpty {
            guard fileManager.isExecutableFile(atPath: explicit) else {
                throw TestSupportError("PIXELD_BIN=\(explicit) is not an executable file")
            }
            return URL(fileURLWithPath: explicit)
        }
        var executables: [URL] = []
        if let main = Bundle.main.executableURL { executables.append(main) }
        if let selfExe = try? fileManager.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            executables.append(URL(fileURLWithPath: selfExe))
        }
        if let argv0 = CommandLine.arguments.first, argv0.contains("/") {
            executables.append(URL(fileURLWithPath: argv0))
        }
        for executable in executables {
            // Linux: .build/<triple>/debug/pixeldPackageTests.xctest is the binary itself.
            // Darwin: .build/debug/pixeldPackageTests.xctest/Contents/MacOS/pixeldPackageTests.
            var directory = executable.deletingLastPathComponent()
            for _ in 0..<4 {
                candidates.append(directory.appendingPathComponent("pixeld").path)
                if directory.lastPathComponent.hasSuffix(".xctest") {
                    candidates.append(directory.deletingLastPathComponent().appendingPathComponent("pixeld").path)
                    break
                }
                directory = directory.deletingLastPathComponent()
            }
        }
        candidates.append(TestEnvironment.packageRoot.appendingPathComponent(".build/debug/pixeld").path)
        for candidate in candidates {
            var isDirectory: ObjCBool = false
            if fileManager.fileExists(atPath: candidate, isDirectory: &isDirectory), !isDirectory.boolValue,
                fileManager.isExecutableFile(atPath: candidate)
            {
                return URL(fileURLWithPath: candidate)
            }
        }
        throw TestSupportError(
            "pixeld executable not found (set PIXELD_BIN or run `swift build` first); looked at:\n"
                + candidates.joined(separator: "\n")
        )
    }

    /// Starts `pixeld ARGUMENTS…`.
    /// - Parameters:
    ///   - arguments: e.g. `["ingest", "--udp", "127.0.0.1:\(port)", "--redis", redis.url]`.
    ///   - environment: variables added to this process's environment.
    ///   - openFileLimit: when set, the process starts with this soft and hard `RLIMIT_NOFILE`
    ///     (`prlimit --nofile=N:N`, which execs pixeld in its own process: the pid is pixeld's).
    ///   - fileSizeLimit: when set, the process starts with this soft and hard `RLIMIT_FSIZE`, in
    ///     bytes (`prlimit --fsize=N:N`, as `ulimit -f` or systemd's `LimitFSIZE=`): a write past it
    ///     raises SIGXFSZ, or fails with `EFBIG` where that is ignored.
    /// - Throws: ``TestSupportError`` when the binary is not found or does not start.
    public static func start(
        _ arguments: [String], environment: [String: String] = [:], openFileLimit: Int? = nil, fileSizeLimit: Int? = nil
    ) throws -> PixeldProcess {
        let binary = try binaryURL()
        let limits = [openFileLimit.map { "--nofile=\($0):\($0)" }, fileSizeLimit.map { "--fsize=\($0):\($0)" }].compactMap { $0 }
        guard !limits.isEmpty else {
            return PixeldProcess(child: try ChildProcess(executable: binary, arguments: arguments, environment: environment))
        }
        return PixeldProcess(
            child: try ChildProcess(tool: "prlimit", arguments: limits + ["--", binary.path] + arguments, environment: environment)
        )
    }

    /// Waits until stderr contains `text` (e.g. `"ingest ready"`).
    /// - Throws: ``TestSupportError`` with the output so far when the timeout passes or the process
    ///   exits first.
    public func waitForStderr(containing text: String, timeout: TimeInterval = 10) throws {
        var exited = false
        let found = Poll.until(timeout: timeout, interval: 0.01) {
            if child.stderr.text.contains(text) { return true }
            exited = !child.isRunning
            return exited
        }
        if found && !exited { return }
        // One last look: the text may have arrived just before exit.
        child.stderr.waitForEnd(timeout: exited ? 1 : 0)
        if child.stderr.text.contains(text) { return }
        let state = exited ? "exited with \(child.exitStatus(waitingUpTo: 0).map(String.init) ?? "?")" : "still running"
        throw TestSupportError("\(child.commandLine): no \"\(text)\" on stderr within \(timeout) s (\(state))\(child.tail)")
    }

    /// The complete lines written to stdout so far.
    public func stdoutLines() -> [String] {
        child.stdout.lines
    }

    /// Waits until stdout has at least `count` complete lines and returns all of them.
    /// - Throws: ``TestSupportError`` with the output so far when the timeout passes first.
    @discardableResult
    public func waitForStdoutLines(count: Int, timeout: TimeInterval = 10) throws -> [String] {
        var lines: [String] = []
        let done = Poll.until(timeout: timeout, interval: 0.01) {
            lines = child.stdout.lines
            return lines.count >= count || !child.isRunning
        }
        lines = child.stdout.lines
        if done && lines.count >= count { return lines }
        throw TestSupportError(
            "\(child.commandLine): \(lines.count) of \(count) stdout lines within \(timeout) s"
                + (child.isRunning ? "" : " (exited)") + child.tail
        )
    }

    /// SIGTERM.
    public func terminate() { child.terminate() }

    /// SIGKILL.
    public func kill() { child.kill() }

    /// Waits for exit.
    /// - Returns: the exit status, or 128 + signal number when a signal ended it.
    /// - Throws: ``TestSupportError`` when it still runs after `timeout` seconds.
    @discardableResult
    public func waitForExit(timeout: TimeInterval = 10) throws -> Int32 {
        try child.waitForExit(timeout: timeout)
    }

    deinit {
        // A pixeld dropped while it runs (a test that threw before its own stop, or forgot it) is
        // stopped: SIGTERM, then SIGKILL after 2 s. Returns at once when it has exited.
        child.stop(timeout: 2)
    }
}
