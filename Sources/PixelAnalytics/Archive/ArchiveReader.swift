import CPixeldSystem

#if canImport(Glibc)
import Glibc
#endif

/// Reads archive files back (plain `.jsonl`, or `.jsonl.gz` through `gzip -dc`), for `pixeld replay`.
public enum ArchiveReader {
    /// A file that cannot be read, or a read that went too far or was refused.
    public struct Failure: Error, Sendable, CustomStringConvertible {
        /// What kind of failure.
        public struct Code: Hashable, Sendable, CustomStringConvertible {
            private let name: String
            private init(_ name: String) { self.name = name }
            /// A file could not be read (open, read, `gzip -dc`).
            public static let io = Code("io")
            /// The read went past its limit of lines
            /// (``ArchiveReader/outcomes(directory:days:site:maxRecords:)``): what was asked for is too large.
            public static let tooManyRecords = Code("tooManyRecords")
            /// A reader built on ``ArchiveReader`` refused the read: too many reads were waiting.
            public static let busy = Code("busy")
            /// A reader built on ``ArchiveReader`` refused the read: it is stopped.
            public static let stopped = Code("stopped")
            public var description: String { name }
        }

        /// What kind of failure.
        public var code: Code = .io
        /// What failed.
        public var description: String
    }

    /// The complete lines of `path` (without their `\n`; empty lines and a trailing partial line are
    /// ignored).
    /// - Throws: ``Failure`` when the file cannot be read or gzip fails.
    public static func lines(of path: String) throws(Failure) -> [[UInt8]] {
        var lines: [[UInt8]] = []
        try forEachLine(of: path) { line throws(Failure) in lines.append(Array(line)) }
        return lines
    }

    /// Calls `body` with each complete line of `path`, as ``lines(of:)`` finds them, reading 64 KiB
    /// at a time: memory holds a chunk and a line, not the file. `body` may throw to stop early (a
    /// `gzip -dc` still running is stopped).
    /// - Throws: ``Failure`` when the file cannot be read or gzip fails, or what `body` throws.
    public static func forEachLine(of path: String, _ body: (ArraySlice<UInt8>) throws(Failure) -> Void) throws(Failure) {
        if path.hasSuffix(".gz") {
            try gunzip(path) { fd throws(Failure) in try splitLines(fd, name: path, body) }
        } else {
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw Failure(description: "open \(path): \(String(cString: strerror(errno)))") }
            defer { close(fd) }
            try splitLines(fd, name: path, body)
        }
    }

    private static func splitLines(_ fd: Int32, name: String, _ body: (ArraySlice<UInt8>) throws(Failure) -> Void) throws(Failure) {
        var partial: [UInt8] = []  // the start of a line that goes on in the next chunk
        try forEachChunk(fd, name: name) { chunk throws(Failure) in
            var start = chunk.startIndex
            for index in chunk.indices where chunk[index] == UInt8(ascii: "\n") {
                if partial.isEmpty {
                    if index > start { try body(chunk[start..<index]) }
                } else {
                    partial += chunk[start..<index]
                    try body(partial[...])
                    partial.removeAll(keepingCapacity: true)
                }
                start = index + 1
            }
            partial += chunk[start...]
        }
    }

    /// Reads `fd` to its end, 64 KiB at a time.
    private static func forEachChunk(_ fd: Int32, name: String, _ body: (ArraySlice<UInt8>) throws(Failure) -> Void) throws(Failure) {
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count == 0 { return }
            if count < 0 {
                if errno == EINTR { continue }
                throw Failure(description: "read \(name): \(String(cString: strerror(errno)))")
            }
            try body(chunk[0..<count])
        }
    }

    /// Whether the lines of `plain` are the last lines of the compressed file `compressed`: its
    /// decompressed bytes end with `plain`'s bytes, after a line break or from the start. Read a chunk
    /// at a time, the compressed file twice (its length, then the comparison): memory holds a chunk,
    /// not the files, whose size only the dashboard's record limit otherwise bounds.
    /// - Parameters:
    ///   - plain: a plain `.jsonl` file.
    ///   - compressed: a `.jsonl.gz` file.
    /// - Returns: whether `compressed` ends with `plain`'s lines (an empty `plain` always does).
    /// - Throws: ``Failure`` when a file cannot be read or gzip fails.
    public static func endsWithLines(of plain: String, compressed: String) throws(Failure) -> Bool {
        let fd = open(plain, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw Failure(description: "open \(plain): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw Failure(description: "stat \(plain): \(String(cString: strerror(errno)))") }
        let plainCount = Int(info.st_size)
        var total = 0
        try gunzip(compressed) { out throws(Failure) in try forEachChunk(out, name: compressed) { total += $0.count } }
        guard total >= plainCount else { return false }
        let start = total - plainCount  // where `plain` must begin
        var same = true
        var offset = 0
        var expected = [UInt8](repeating: 0, count: 1 << 16)
        try gunzip(compressed) { out throws(Failure) in
            try forEachChunk(out, name: compressed) { chunk throws(Failure) in
                defer { offset += chunk.count }
                guard same else { return }
                if start > 0, (offset..<offset + chunk.count).contains(start - 1) {
                    same = chunk[chunk.startIndex + start - 1 - offset] == UInt8(ascii: "\n")
                }
                let from = max(offset, start)
                guard same, from < offset + chunk.count else { return }
                let part = chunk[(chunk.startIndex + from - offset)...]
                let read = expected.withUnsafeMutableBytes { pread(fd, $0.baseAddress, part.count, off_t(from - start)) }
                same = read == part.count && expected[..<part.count].elementsEqual(part)
            }
        }
        return same
    }

    /// The raw bytes of `path`, as stored (compressed or not).
    /// - Throws: ``Failure`` when the file cannot be read.
    public static func bytes(of path: String) throws(Failure) -> [UInt8] { try read(path) }

    private static func read(_ path: String) throws(Failure) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw Failure(description: "open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var bytes: [UInt8] = []
        try forEachChunk(fd, name: path) { chunk throws(Failure) in bytes += chunk }
        return bytes
    }

    /// Runs `gzip -dc path` and hands `read` the read end of its output.
    private static func gunzip(_ path: String, _ read: (Int32) throws(Failure) -> Void) throws(Failure) {
        guard Gzip.path != nil else { throw Failure(description: "gzip not found (needed for \(path))") }
        var fds: [Int32] = [-1, -1]
        // Both ends close-on-exec from the start (the child's stdout is a dup2, which clears it): a
        // process another thread spawns meanwhile (a second gzip, a server in tests) must not
        // inherit the write end, or this read would see no end of file until that process exits.
        guard cpixeld_pipe_cloexec(&fds) == 0 else { throw Failure(description: "pipe: \(String(cString: strerror(errno)))") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
        posix_spawn_file_actions_addclose(&actions, fds[1])
        let spawned = Gzip.spawn(["-dc", path], actions: &actions)
        close(fds[1])
        defer { close(fds[0]) }
        guard let pid = spawned else { throw Failure(description: "cannot start gzip for \(path)") }
        var status: Int32 = 0
        do {
            try read(fds[0])
        } catch {
            // It may be blocked writing what will not be read.
            kill(pid, SIGKILL)
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            throw error
        }
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        guard status == 0 else { throw Failure(description: "gzip -dc \(path) failed (status \(status))") }
    }
}
