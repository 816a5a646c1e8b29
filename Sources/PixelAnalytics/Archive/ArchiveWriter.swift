#if canImport(Glibc)
import Glibc
#endif
import PixeldConcurrency

/// The archive directory of one consumer: one JSON-lines file per UTC day
/// (`YYYY-MM-DD.<consumer>.jsonl`, see ``ArchiveRecord`` for the lines), compressed with gzip to
/// `….jsonl.gz` once the day is closed, and deleted after the retention period.
///
/// Writes are exactly-once when the caller stores ``append(_:now:)``'s returned lengths in Redis
/// together with its ack and passes them back to ``recover(acknowledged:)`` at start: bytes written
/// by a batch that was never acknowledged are cut off, and the batch is written again when it is
/// processed again.
///
/// A day closes `closeAfterSeconds` after it ends (the hit age limit plus a margin: no hit of a
/// closed day can still be accepted). A hit whose day is already closed goes to the file of the day
/// it was processed on, as does a drop of a hit outside the time window (the consumer passes its
/// ``HitOutcome/countingDay``): a day long past or far ahead gets no file.
///
/// Closing is crash-safe: gzip writes a temporary file, which is renamed into place before the
/// plain file is removed. gzip runs beside the consumer: ``maintain(now:)`` starts it and a later call
/// finishes the job, so that compressing a large day never holds a batch (and its heartbeat) up; a plain file found beside its `.gz` whose lines the `.gz` ends with is such
/// a leftover and is removed. Any other plain file beside its `.gz` is a day written again after it
/// closed (a clock stepped back, a larger `--max-age-hours`): its lines are added to the `.gz`.
///
/// Not thread-safe: used by the consumer thread only.
public final class ArchiveWriter {
    /// The directory.
    public let directory: String
    /// The consumer id part of the file names (`/` replaced).
    public let consumerID: String
    /// Days whose files are kept after the day ends.
    public let retentionDays: Int
    /// Seconds after a day's end at which it closes.
    public let closeAfterSeconds: Double
    private var descriptors: [Day: Int32] = [:]
    private var lengths: [Day: Int] = [:]
    /// The descriptor holding ``lockForConsumer()``'s lock, or -1.
    private var lockFD: Int32 = -1
    /// gzip runs in progress, by day.
    private var compressions: [Day: Compression] = [:]

    /// A gzip of a plain file into `temporary` (then renamed to `path.gz`), started by ``maintain(now:)``.
    private struct Compression {
        var pid: pid_t
        var output: Int32
        var temporary: String
        var path: String
        var name: String
        /// The plain file's size when gzip started: if it changed, the result is thrown away.
        var size: Int
    }

    /// An error with the failing call and path.
    public struct Failure: Error, Sendable, CustomStringConvertible {
        /// What failed.
        public var description: String
    }

    /// Opens (and creates, mode 0750) the directory.
    /// - Throws: ``Failure`` when the directory cannot be created or is not writable.
    public init(directory: String, consumerID: String, retentionDays: Int, closeAfterSeconds: Double) throws(Failure) {
        self.directory = directory.hasSuffix("/") && directory.count > 1 ? String(directory.dropLast()) : directory
        self.consumerID = String(consumerID.map { $0 == "/" ? "_" : $0 })
        self.retentionDays = retentionDays
        self.closeAfterSeconds = closeAfterSeconds
        if mkdir(self.directory, 0o750) != 0 && errno != EEXIST {
            throw Failure(description: "mkdir \(self.directory): \(String(cString: strerror(errno)))")
        }
        guard access(self.directory, W_OK | X_OK) == 0 else {
            throw Failure(description: "archive directory \(self.directory) is not writable")
        }
    }

    deinit {
        for fd in descriptors.values { close(fd) }
        if lockFD >= 0 { close(lockFD) }
        // Abandoned: the plain files stay, and the next run compresses them again.
        for compression in compressions.values {
            kill(compression.pid, SIGKILL)
            var status: Int32 = 0
            while waitpid(compression.pid, &status, 0) < 0 && errno == EINTR {}
            close(compression.output)
            unlink(compression.temporary)
        }
    }

    /// Takes this consumer's lock on the directory, `DIR/.<consumer>.lock` (an exclusive `flock`, held
    /// until the writer is gone), or fails at once: two runs with one consumer id must not write the
    /// same files. Redis alone does not keep them apart: a run stopped or stalled long enough for its
    /// heartbeat to lapse leaves its id to the next, and would write what it held when it goes on.
    /// - Throws: ``Failure`` naming the lock when another process holds it, or when it cannot be taken.
    public func lockForConsumer() throws(Failure) {
        guard lockFD < 0 else { return }
        let path = directory + "/." + consumerID + ".lock"
        do {
            lockFD = try LockFile.acquire(path, mode: 0o640)
        } catch where error.isHeldElsewhere {
            throw Failure(
                description: "another pixeld consume with id \(consumerID) is writing \(directory) (it holds \(path)); "
                    + "two consumers must not share an id"
            )
        } catch {
            throw Failure(description: "\(error.operation) \(path): \(String(cString: strerror(error.code)))")
        }
    }

    /// The plain file name of `day` (without directory).
    public func fileName(for day: Day) -> String { "\(day).\(consumerID).jsonl" }

    /// The day of a plain or compressed file of this consumer, or `nil` for other files.
    public func day(ofFile name: String) -> (day: Day, compressed: Bool)? {
        let plainSuffix = "." + consumerID + ".jsonl"
        for (suffix, compressed) in [(plainSuffix, false), (plainSuffix + ".gz", true)] where name.hasSuffix(suffix) {
            let stem = String(name.dropLast(suffix.count))
            if let day = Day(stem) { return (day, compressed) }
        }
        return nil
    }

    /// Whether `day` is closed at `now`.
    public func isClosed(_ day: Day, now: Double) -> Bool {
        now >= Double(day.number + 1) * 86_400 + closeAfterSeconds
    }

    /// Cuts every plain file of this consumer back to its acknowledged length (0 when none was
    /// recorded): what is beyond was written by a batch that was not acknowledged.
    ///
    /// With `keepingUnlisted`, a file without a recorded length is taken as it is instead of cut to
    /// nothing: for when Redis may have lost the lengths (a new, flushed or replaced Redis), as the
    /// file's contents were acknowledged to some Redis (at worst, a batch written just before a crash
    /// is kept and written again).
    /// - Parameters:
    ///   - acknowledged: file name → length, as stored with the acks.
    ///   - keepingUnlisted: keep files that have no recorded length.
    /// - Returns: the files taken as they are, with their lengths, for the caller to record.
    @discardableResult
    public func recover(acknowledged: [String: Int], keepingUnlisted: Bool = false) throws(Failure) -> [String: Int] {
        var adopted: [String: Int] = [:]
        for name in try list() {
            guard let (day, compressed) = day(ofFile: name), !compressed else { continue }
            let path = directory + "/" + name
            var info = stat()
            guard stat(path, &info) == 0 else { continue }
            guard let keep = acknowledged[name] ?? (keepingUnlisted ? nil : 0) else {
                adopted[name] = Int(info.st_size)
                lengths[day] = Int(info.st_size)
                continue
            }
            if Int(info.st_size) > keep {
                guard truncate(path, off_t(keep)) == 0 else {
                    throw Failure(description: "truncate \(path): \(String(cString: strerror(errno)))")
                }
            }
            lengths[day] = min(Int(info.st_size), keep)
        }
        return adopted
    }

    /// The day whose file receives a hit that counts on `day` (``HitOutcome/countingDay``) processed at `now`.
    public func targetDay(for day: Day, now: Double) -> Day {
        isClosed(day, now: now) ? Day(timestamp: now) : day
    }

    /// Appends each day's bytes to its file.
    /// - Parameters:
    ///   - batches: Day → complete lines to append.
    ///   - now: The clock (unused but for symmetry with ``maintain(now:)``; days are already targeted).
    /// - Returns: File name → its new length, to store with the ack.
    /// - Throws: ``Failure``; the files are then cut back to where this call started.
    public func append(_ batches: [Day: [UInt8]], now: Double) throws(Failure) -> [String: Int] {
        var result: [String: Int] = [:]
        var started: [(Day, Int)] = []
        do {
            for (day, bytes) in batches.sorted(by: { $0.key < $1.key }) where !bytes.isEmpty {
                let fd = try descriptor(for: day)
                let start = lengths[day] ?? 0
                started.append((day, start))
                try writeAll(fd, bytes, at: start, name: fileName(for: day))
                lengths[day] = start + bytes.count
                result[fileName(for: day)] = start + bytes.count
            }
        } catch {
            for (day, start) in started {
                if let fd = descriptors[day] { _ = ftruncate(fd, off_t(start)) }
                lengths[day] = start
            }
            throw error
        }
        return result
    }

    /// Compresses the plain files of closed days and deletes files older than the retention. gzip
    /// runs beside the caller: a call starts it, and a later call (once it has exited) puts the `.gz`
    /// into place and removes the plain file.
    /// - Returns: The plain file names that no longer exist (their acknowledged lengths can be
    ///   forgotten).
    @discardableResult
    public func maintain(now: Double) -> [String] {
        var gone = finishCompressions(waiting: false)
        guard let names = try? list() else { return gone }
        let existing = Set(names)
        let today = Day(timestamp: now)
        // Temporary files of a run that died while compressing (nothing will rename them) go first:
        // one may have the name (this process's id) a compression started below is about to use.
        let ours = Set(compressions.values.map(\.temporary))
        for name in names {
            if let range = name.firstRange(of: ".gz.tmp"), day(ofFile: String(name[..<range.lowerBound]))?.compressed == false,
                !ours.contains(directory + "/" + name)
            {
                unlink(directory + "/" + name)
            }
        }
        for name in names {
            guard let (day, compressed) = day(ofFile: name), compressions[day] == nil else { continue }
            let path = directory + "/" + name
            if day.number < today.number - retentionDays - 1 {
                if !compressed { closeDescriptor(day); gone.append(name) }
                unlink(path)
                continue
            }
            guard !compressed, isClosed(day, now: now) else { continue }
            closeDescriptor(day)
            // With a .gz already there: a leftover, or a day written again after it closed (above).
            if existing.contains(name + ".gz") && Self.isCompressedCopy(path) {
                unlink(path)
                gone.append(name)
            } else if let compression = startCompression(of: path, name: name, appendingTo: existing.contains(name + ".gz") ? path + ".gz" : nil) {
                compressions[day] = compression
            }
        }
        return gone
    }

    /// Finishes the gzip runs that have exited (all of them, waiting for each, with `waiting`): the
    /// `.gz` goes into place and the plain file is removed.
    /// - Parameter waiting: wait for the runs still going (tests; a stop that must leave no gzip).
    /// - Returns: The plain file names removed (their acknowledged lengths can be forgotten).
    @discardableResult
    public func finishCompressions(waiting: Bool) -> [String] {
        var gone: [String] = []
        for (day, compression) in compressions.sorted(by: { $0.key < $1.key }) {
            var status: Int32 = 0
            var reaped: pid_t
            repeat { reaped = waitpid(compression.pid, &status, waiting ? 0 : WNOHANG) } while reaped < 0 && errno == EINTR
            guard reaped != 0 else { continue }  // still running
            compressions[day] = nil
            // Written again meanwhile (a clock stepped back: the day is open again, or its size
            // changed): this result may lack lines, and the next maintenance starts over.
            var info = stat()
            let unchanged = descriptors[day] == nil && stat(compression.path, &info) == 0 && Int(info.st_size) == compression.size
            let done = reaped == compression.pid && status == 0 && unchanged && fsync(compression.output) == 0
            close(compression.output)
            guard done, rename(compression.temporary, compression.path + ".gz") == 0 else {
                unlink(compression.temporary)  // tried again at the next maintenance
                continue
            }
            unlink(compression.path)
            gone.append(compression.name)
        }
        return gone
    }

    private func closeDescriptor(_ day: Day) {
        if let fd = descriptors.removeValue(forKey: day) { close(fd) }
        lengths[day] = nil
    }

    private func descriptor(for day: Day) throws(Failure) -> Int32 {
        if let fd = descriptors[day] { return fd }
        let path = directory + "/" + fileName(for: day)
        let fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw Failure(description: "open \(path): \(String(cString: strerror(errno)))") }
        if lengths[day] == nil {
            var info = stat()
            fstat(fd, &info)
            lengths[day] = Int(info.st_size)
        }
        descriptors[day] = fd
        return fd
    }

    private func writeAll(_ fd: Int32, _ bytes: [UInt8], at offset: Int, name: String) throws(Failure) {
        var written = 0
        while written < bytes.count {
            let result = bytes.withUnsafeBytes { raw in
                pwrite(fd, raw.baseAddress! + written, raw.count - written, off_t(offset + written))
            }
            if result < 0 {
                if errno == EINTR { continue }
                throw Failure(description: "write \(directory)/\(name): \(String(cString: strerror(errno)))")
            }
            written += result
        }
    }

    /// Whether `path.gz` ends with the lines of `path`: then `path` is what a compression left
    /// behind (it renamed the `.gz` into place, then stopped before removing `path`).
    private static func isCompressedCopy(_ path: String) -> Bool {
        (try? ArchiveReader.endsWithLines(of: path, compressed: path + ".gz")) ?? false
    }

    /// Starts `gzip -n -c path > path.gz.tmp.PID` (this process's id: a gzip left running by a run
    /// that died cannot write into it); ``finishCompressions(waiting:)`` fsyncs it and renames it to
    /// `path.gz`. With `existing`, its bytes come first in the temporary file (then `path` is a second
    /// gzip member, which `gzip -d` reads as the continuation). `nil` when it could not start.
    private func startCompression(of path: String, name: String, appendingTo existing: String?) -> Compression? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        let temporary = path + ".gz.tmp.\(getpid())"
        let out = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o640)
        guard out >= 0 else { return nil }
        func abandon() -> Compression? {
            close(out)
            unlink(temporary)
            return nil
        }
        if let existing {
            guard let bytes = try? ArchiveReader.bytes(of: existing),
                bytes.withUnsafeBytes({ write(out, $0.baseAddress, $0.count) }) == bytes.count
            else { return abandon() }
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, out, 1)
        guard let pid = Gzip.spawn(["-n", "-c", path], actions: &actions) else { return abandon() }
        return Compression(pid: pid, output: out, temporary: temporary, path: path, name: name, size: Int(info.st_size))
    }

    private func list() throws(Failure) -> [String] {
        guard let handle = opendir(directory) else {
            throw Failure(description: "opendir \(directory): \(String(cString: strerror(errno)))")
        }
        defer { closedir(handle) }
        var names: [String] = []
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    /// The files (plain and compressed) of any consumer for `day` in `directory`, for replay and the
    /// dashboard's filtered views. A plain file that a compression left behind (the `.gz` beside it
    /// ends with its lines: it was renamed into place, and the plain file not yet removed) is left
    /// out, or its lines would be read twice; one written again after its day was compressed is not.
    public static func files(in directory: String, day: Day) -> [String] {
        guard let handle = opendir(directory) else { return [] }
        defer { closedir(handle) }
        var names: [String] = []
        let prefix = day.description + "."
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name.hasPrefix(prefix) && (name.hasSuffix(".jsonl") || name.hasSuffix(".jsonl.gz")) {
                names.append(directory + "/" + name)
            }
        }
        let present = Set(names)
        return names.filter { !(present.contains($0 + ".gz") && isCompressedCopy($0)) }.sorted()
    }
}
