#if canImport(Glibc)
import Glibc
#endif

/// Reads archive files back (plain `.jsonl`, or `.jsonl.gz` through `gzip -dc`), for `pixeld replay`.
public enum ArchiveReader {
    /// A file that cannot be read.
    public struct Failure: Error, Sendable, CustomStringConvertible {
        /// What failed.
        public var description: String
    }

    /// The complete lines of `path` (without their `\n`; a trailing partial line is ignored).
    /// - Throws: ``Failure`` when the file cannot be read or gzip fails.
    public static func lines(of path: String) throws(Failure) -> [[UInt8]] {
        let bytes = path.hasSuffix(".gz") ? try gunzip(path) : try read(path)
        var lines: [[UInt8]] = []
        var start = 0
        for index in bytes.indices where bytes[index] == UInt8(ascii: "\n") {
            if index > start { lines.append(Array(bytes[start..<index])) }
            start = index + 1
        }
        return lines
    }

    /// The raw bytes of `path`, as stored (compressed or not).
    /// - Throws: ``Failure`` when the file cannot be read.
    public static func bytes(of path: String) throws(Failure) -> [UInt8] { try read(path) }

    private static func read(_ path: String) throws(Failure) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw Failure(description: "open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        return try drain(fd, name: path)
    }

    private static func drain(_ fd: Int32, name: String) throws(Failure) -> [UInt8] {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count == 0 { break }
            if count < 0 {
                if errno == EINTR { continue }
                throw Failure(description: "read \(name): \(String(cString: strerror(errno)))")
            }
            bytes.append(contentsOf: chunk[0..<count])
        }
        return bytes
    }

    private static func gunzip(_ path: String) throws(Failure) -> [UInt8] {
        let candidates: [String] = ["/usr/bin/gzip", "/bin/gzip"]
        guard let gzip = candidates.first(where: { access($0, X_OK) == 0 }) else {
            throw Failure(description: "gzip not found (needed for \(path))")
        }
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { throw Failure(description: "pipe: \(String(cString: strerror(errno)))") }
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
        posix_spawn_file_actions_addclose(&actions, fds[1])
        let argv: [UnsafeMutablePointer<CChar>?] = [strdup(gzip), strdup("-dc"), strdup(path), nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, gzip, &actions, nil, argv, environ)
        close(fds[1])
        defer { close(fds[0]) }
        guard spawned == 0 else { throw Failure(description: "cannot start gzip for \(path)") }
        let bytes: [UInt8]
        do {
            bytes = try drain(fds[0], name: path)
        } catch {
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            throw error
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        guard status == 0 else { throw Failure(description: "gzip -dc \(path) failed (status \(status))") }
        return bytes
    }
}
