public import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A child process whose stdout and stderr are captured, and which this process alone owns:
/// signals go to its PID only, and only while it has not been reaped.
///
/// Started with `posix_spawn` and a clean slate: empty signal mask and default signal
/// dispositions (the test runner's threads block SIGTERM and ignore SIGHUP/SIGPIPE, and a child
/// inherits both, so `Foundation.Process` children never see SIGTERM). Descriptors this target
/// opens are close-on-exec, so children inherit only 0–2 from it. Servers run in the foreground, not daemonized, so their PID is the one we started.
///
/// Dropping the last reference to a ChildProcess whose child still runs stops the child (SIGTERM,
/// then SIGKILL after 2 s): the waiter thread that reaps the child holds only the exit state, not
/// the object, so a forgotten child cannot outlive its owner.
public final class ChildProcess: @unchecked Sendable {
    // @unchecked Sendable: the exit state is only touched while its lock is held; the captures are locked.

    /// What was run, for error messages.
    public let commandLine: String
    /// Captured standard output.
    public let stdout: CapturedOutput
    /// Captured standard error.
    public let stderr: CapturedOutput
    /// The child's PID (valid for signals while ``isRunning``).
    public let pid: Int32

    private enum State {
        case running
        case exited(Int32)
    }

    /// What the waiter thread shares with the object: the child's state, under `lock`. A class of its
    /// own so that the thread does not keep the ChildProcess alive (see `deinit`).
    private final class ExitState: @unchecked Sendable {
        // @unchecked Sendable: `state` is only touched while `lock` is held.
        let lock = NSLock()
        var state = State.running
    }

    private let exitState = ExitState()

    /// Starts `executable` with `arguments`.
    /// - Parameters:
    ///   - executable: absolute location of the program.
    ///   - arguments: argv after argv[0].
    ///   - environment: variables added to (or replacing) this process's environment.
    ///   - workingDirectory: the child's working directory; this process's when `nil`.
    ///   - stdin: bytes written to the child's standard input, which is then closed; `/dev/null`
    ///     when `nil`.
    /// - Throws: ``TestSupportError`` when the program cannot be started.
    public init(
        executable: URL,
        arguments: [String],
        environment: [String: String] = [:],
        workingDirectory: URL? = nil,
        stdin: [UInt8]? = nil
    ) throws {
        Self.ignoreSIGPIPE
        let commandLine = ([executable.path] + arguments).map(Self.quote).joined(separator: " ")
        self.commandLine = commandLine

        var argvList = [executable.path] + arguments
        if let workingDirectory {
            // env(1) changes directory, then execs the program: same PID.
            argvList = ["/usr/bin/env", "-C", workingDirectory.path, "--"] + argvList
        }
        if let setpriv = Self.setpriv {
            // The child gets SIGTERM when the thread that spawned it dies; all spawns happen on one
            // thread that lives as long as the test process, so a crashed or killed test run
            // leaves no redis-server/nginx/pixeld behind. setpriv execs: same PID.
            argvList = [setpriv, "--pdeathsig", "TERM", "--"] + argvList
        }
        var variables = ProcessInfo.processInfo.environment
        variables.merge(environment) { _, new in new }
        let environmentList = variables.map { "\($0.key)=\($0.value)" }
        let feedsStdin = stdin != nil

        let finalArgv = argvList
        let spawned = SpawnThread.shared.run { () -> SpawnResult in
            Self.spawn(argv: finalArgv, environment: environmentList, feedsStdin: feedsStdin)
        }
        guard case .success(let pid, let outRead, let errRead, let inWrite) = spawned else {
            if case .failure(let message) = spawned {
                throw TestSupportError("cannot start \(commandLine): \(message)")
            }
            throw TestSupportError("cannot start \(commandLine)")
        }
        self.pid = pid
        self.stdout = CapturedOutput(readingDescriptor: outRead, name: "stdout")
        self.stderr = CapturedOutput(readingDescriptor: errRead, name: "stderr")
        let writeEnd = inWrite
        if let stdin {
            let writer = Thread {
                var offset = 0
                while offset < stdin.count {
                    let written = stdin.withUnsafeBytes { write(writeEnd, $0.baseAddress! + offset, $0.count - offset) }
                    if written < 0 && errno == EINTR { continue }
                    if written <= 0 { break }
                    offset += written
                }
                systemClose(writeEnd)
            }
            writer.start()
        } else {
            systemClose(writeEnd)
        }
        let waiter = Thread { [exitState] in Self.reap(pid: pid, exitState) }
        waiter.name = "pixeld-test-wait-\(pid)"
        waiter.start()
    }

    private enum SpawnResult: Sendable {
        case success(pid: Int32, stdoutRead: Int32, stderrRead: Int32, stdinWrite: Int32)
        case failure(String)
    }

    /// Creates the pipes and calls `posix_spawn`; runs on ``SpawnThread`` only, so no other spawn
    /// from this target can inherit these pipe ends between `pipe` and `fcntl(FD_CLOEXEC)`.
    private static func spawn(argv argvList: [String], environment: [String], feedsStdin: Bool) -> SpawnResult {
        var outPipe: [Int32] = [-1, -1]
        var errPipe: [Int32] = [-1, -1]
        var inPipe: [Int32] = [-1, -1]
        guard closeOnExecPipe(&outPipe), closeOnExecPipe(&errPipe), closeOnExecPipe(&inPipe) else {
            return .failure("pipe failed: errno \(errno)")
        }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if feedsStdin {
            posix_spawn_file_actions_adddup2(&actions, inPipe[0], 0)
        } else {
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        }
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var emptyMask = sigset_t()
        sigemptyset(&emptyMask)
        posix_spawnattr_setsigmask(&attributes, &emptyMask)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in 1..<32 where signal != SIGKILL && signal != SIGSTOP {
            sigaddset(&defaults, Int32(signal))
        }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv = argvList.map { strdup($0) } + [nil]
        let envp = environment.map { strdup($0) } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, argvList[0], &actions, &attributes, argv, envp)
        systemClose(outPipe[1])
        systemClose(errPipe[1])
        systemClose(inPipe[0])
        if result != 0 {
            [outPipe[0], errPipe[0], inPipe[1]].forEach(systemClose)
            return .failure("posix_spawn error \(result)")
        }
        return .success(pid: pid, stdoutRead: outPipe[0], stderrRead: errPipe[0], stdinWrite: inPipe[1])
    }

    /// `setpriv` (util-linux), when present: it sets the parent-death signal, then execs.
    private static let setpriv: String? = {
        #if os(Linux)
        return TestEnvironment.findTool("setpriv")?.path
        #else
        return nil
        #endif
    }()

    /// Waits for the child to exit without reaping it, records the status under the lock, then
    /// reaps it: while `state` is `.running` the PID cannot have been reused.
    private static func reap(pid: Int32, _ exitState: ExitState) {
        var info = siginfo_t()
        while waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) != 0 {
            if errno != EINTR { break }
        }
        var status: Int32 = 0
        exitState.lock.lock()
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let signal = status & 0x7f
        exitState.state = .exited(signal == 0 ? (status >> 8) & 0xff : 128 + signal)
        exitState.lock.unlock()
    }

    private static func closeOnExecPipe(_ fds: inout [Int32]) -> Bool {
        guard pipe(&fds) == 0 else { return false }
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        return true
    }

    private static let ignoreSIGPIPE: Void = {
        _ = signal(SIGPIPE, SIG_IGN)
    }()

    /// Starts `tool` (a program name looked up like ``TestEnvironment/requireTool(_:)``).
    /// - Throws: ``TestSupportError`` when the tool is missing or cannot be started.
    public convenience init(tool: String, arguments: [String], environment: [String: String] = [:]) throws {
        try self.init(executable: try TestEnvironment.requireTool(tool), arguments: arguments, environment: environment)
    }

    /// Whether the child has not exited yet.
    public var isRunning: Bool {
        exitState.lock.lock()
        defer { exitState.lock.unlock() }
        if case .running = exitState.state { return true }
        return false
    }

    /// Sends `signal` to the child's PID, only while it has not been reaped (so a reused PID is
    /// never hit).
    public func send(signal: Int32) {
        exitState.lock.lock()
        defer { exitState.lock.unlock() }
        guard case .running = exitState.state else { return }
        systemKill(pid, signal)
    }

    /// SIGTERM.
    public func terminate() { send(signal: SIGTERM) }

    /// SIGKILL.
    public func kill() { send(signal: SIGKILL) }

    /// Waits up to `timeout` seconds for the child to exit.
    /// - Returns: the exit status, or 128 + signal number when a signal ended it; `nil` on timeout.
    public func exitStatus(waitingUpTo timeout: TimeInterval) -> Int32? {
        var result: Int32?
        Poll.until(timeout: timeout, interval: 0.005) {
            exitState.lock.lock()
            defer { exitState.lock.unlock() }
            if case .exited(let status) = exitState.state { result = status }
            return result != nil
        }
        return result
    }

    /// Waits up to `timeout` seconds for the child to exit.
    /// - Returns: the exit status, or 128 + signal number when a signal ended it.
    /// - Throws: ``TestSupportError`` on timeout (the child is left running).
    @discardableResult
    public func waitForExit(timeout: TimeInterval) throws -> Int32 {
        guard let status = exitStatus(waitingUpTo: timeout) else {
            throw TestSupportError("\(commandLine) (pid \(pid)) still running after \(timeout) s\(tail)")
        }
        // Let the reader threads collect what the child wrote last.
        stdout.waitForEnd(timeout: 1)
        stderr.waitForEnd(timeout: 1)
        return status
    }

    /// SIGTERM, wait up to `timeout` seconds, then SIGKILL and wait again.
    /// - Returns: the exit status as ``exitStatus(waitingUpTo:)`` gives it, or `nil` if even SIGKILL
    ///   did not end it within 2 seconds.
    @discardableResult
    public func stop(timeout: TimeInterval = 5) -> Int32? {
        if let status = exitStatus(waitingUpTo: 0) { return status }
        terminate()
        if let status = exitStatus(waitingUpTo: timeout) { return status }
        kill()
        return exitStatus(waitingUpTo: 2)
    }

    /// The last lines of stdout and stderr, for error messages.
    public var tail: String {
        func last(_ output: CapturedOutput) -> String {
            output.text.split(separator: "\n", omittingEmptySubsequences: false).suffix(30).joined(separator: "\n")
        }
        return "\n--- stdout ---\n\(last(stdout))\n--- stderr ---\n\(last(stderr))"
    }

    /// Runs `tool` to completion.
    /// - Parameters:
    ///   - tool: a program name or absolute path.
    ///   - arguments: argv after argv[0].
    ///   - stdin: bytes for standard input, or `nil` for `/dev/null`.
    ///   - timeout: seconds before the child is killed and an error thrown.
    ///   - checkStatus: throw when the exit status is not 0.
    /// - Returns: the exit status and everything the child printed.
    /// - Throws: ``TestSupportError`` when the tool is missing, times out, or (with `checkStatus`)
    ///   exits non-zero.
    @discardableResult
    public static func run(
        _ tool: String,
        _ arguments: [String],
        stdin: [UInt8]? = nil,
        timeout: TimeInterval = 30,
        checkStatus: Bool = true
    ) throws -> (status: Int32, stdout: String, stderr: String) {
        let child = try ChildProcess(
            executable: try TestEnvironment.requireTool(tool),
            arguments: arguments,
            stdin: stdin
        )
        guard let status = child.exitStatus(waitingUpTo: timeout) else {
            child.kill()
            _ = child.exitStatus(waitingUpTo: 2)
            throw TestSupportError("\(child.commandLine) did not finish within \(timeout) s\(child.tail)")
        }
        child.stdout.waitForEnd(timeout: 2)
        child.stderr.waitForEnd(timeout: 2)
        if checkStatus && status != 0 {
            throw TestSupportError("\(child.commandLine) exited with \(status)\(child.tail)")
        }
        return (status, child.stdout.text, child.stderr.text)
    }

    private static func quote(_ argument: String) -> String {
        if !argument.isEmpty && argument.allSatisfy({ $0.isLetter || $0.isNumber || "-_./:=@,+%".contains($0) }) {
            return argument
        }
        return "'" + argument.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }

    deinit {
        // The waiter thread holds only `exitState`, so this runs as soon as the last owner lets go, and
        // the child may still run: stop it (the waiter still reaps it).
        if isRunning { stop(timeout: 2) }
    }
}
