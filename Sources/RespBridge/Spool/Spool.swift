#if canImport(Glibc)
import Glibc
#endif
import PixeldConcurrency

/// A disk spool for batches that cannot reach Redis: append-only segment files of framed records,
/// replayed in order when Redis is back, and again on the next start after a crash or shutdown.
///
/// Record framing: `"PXS1"`, payload length (UInt32 LE), CRC-32 of the payload (UInt32 LE), payload.
/// Payload: writer instance id (UInt8 length + bytes), batch sequence (UInt64 LE), message count
/// (UInt32 LE), then per message: key length (UInt16 LE), key, value length (UInt32 LE), value.
/// A torn record at the end of the newest segment (a crash mid-write) fails its length or checksum
/// and is cut off at open; everything before it is kept.
///
/// Replay is at-least-once at the spool level (a segment is deleted only after all of its records were
/// committed) and exactly-once in Redis, because each record keeps its batch identity and the commit
/// script skips batches already applied.
///
/// One process at a time: opening takes an exclusive lock (`flock`) on the file `lock` in the directory,
/// held until the spool is deinitialised, so a second process on the same directory fails at once
/// instead of cutting off a record the first is writing or replaying records twice.
///
/// Used by the writer thread only.
public final class Spool {
    /// When appended records are forced to disk.
    public enum SyncPolicy: Sendable, Equatable {
        /// `fdatasync` after every record: nothing accepted is lost even on power loss.
        case always
        /// `fdatasync` when at least this many milliseconds passed since the last one.
        case interval(milliseconds: Int)
        /// Leave it to the kernel (survives a pixeld crash, not a machine crash).
        case never
    }

    /// A batch read back from the spool.
    public struct Record {
        /// The batch.
        public var batch: PushBatch
        /// The writer instance that created it.
        public var instanceID: String
        /// Its sequence number within that instance.
        public var sequence: UInt64
    }

    /// The directory holding the segment files.
    public let directory: String
    private let maxBytes: Int
    private let segmentBytes: Int
    private let sync: SyncPolicy
    private var segments: [Segment] = []
    private var writeFD: Int32 = -1
    /// The open lock file, whose `flock` keeps other processes out.
    private let lockFD: Int32
    private var lastSync: Int64 = 0
    /// Read position: index into `segments` is always 0; offset within it.
    private var readOffset = 0
    /// The number the next segment file gets: past every segment file in the directory (set-aside
    /// ones included) and every one this spool made, so that a file left behind (an `unlink` that
    /// failed) is never appended to, nor a set-aside file replaced.
    private var nextSegmentNumber: UInt64 = 1

    private struct Segment {
        var number: UInt64
        var path: String
        var size: Int
        var messages: Int
    }

    /// Bytes on disk.
    public private(set) var byteCount = 0
    /// Bytes of the records not yet replayed: what the size limit applies to. The replayed records of
    /// the first segment stay on disk until the whole segment is replayed, but they no longer count, so
    /// a spool filled to its limit takes new records as soon as its replay begins.
    private var unreplayedBytes: Int { byteCount - readOffset }
    /// Messages held (not yet replayed).
    public private(set) var messageCount = 0
    private var unreadableMessages = 0
    /// Bytes cut off at open after a record that was torn (a crash mid-write: the newest segment's
    /// tail) or damaged (anywhere): their messages cannot be counted, so the caller logs this.
    public private(set) var bytesCutAtOpen = 0
    /// Segment files that could not be read at open, renamed to `….spool.unreadable`: their messages
    /// cannot be counted, so the caller logs this.
    public private(set) var filesSetAsideAtOpen: [String] = []
    /// `true` when nothing waits for replay.
    public var isEmpty: Bool { messageCount == 0 }

    /// Opens (creating if needed) the spool in `directory` and checks the records already there.
    /// - Parameters:
    ///   - maxBytes: the most bytes of records not yet replayed the spool may hold;
    ///     ``append(_:instanceID:sequence:)`` refuses beyond. The disk may hold up to one segment more:
    ///     the replayed part of the first segment, deleted when the segment is done.
    ///   - segmentBytes: a new segment file starts after this many bytes.
    /// - Throws: ``SpoolError`` when the directory cannot be created or read, or is in use by another
    ///   process (``SpoolError/isInUse``).
    public init(directory: String, maxBytes: Int, sync: SyncPolicy, segmentBytes: Int = 16 << 20) throws(SpoolError) {
        self.directory = directory
        self.maxBytes = maxBytes
        self.segmentBytes = segmentBytes
        self.sync = sync
        if mkdir(directory, 0o700) != 0 && errno != EEXIST { throw SpoolError("mkdir", path: directory) }
        lockFD = try Self.lock(directory)
        // On failure deinit releases the lock: Swift runs it once every property is set (closing
        // the descriptor here as well would close it twice, the second time maybe another's).
        try scan()
    }

    /// Opens `directory/lock` and takes an exclusive lock on it without waiting.
    private static func lock(_ directory: String) throws(SpoolError) -> Int32 {
        let path = directory + "/lock"
        do {
            return try LockFile.acquire(path, mode: 0o600)
        } catch {
            if error.isHeldElsewhere { throw SpoolError.inUse(directory) }
            throw SpoolError(error.operation, path: path, errno: error.code)
        }
    }

    deinit {
        defer { close(lockFD) }
        if writeFD >= 0 {
            _ = fdatasync(writeFD)
            close(writeFD)
        }
    }

    /// Appends one batch as one record.
    /// - Returns: `false` when the spool is full (the caller counts the messages as `spool_full`).
    /// - Throws: ``SpoolError`` when writing fails.
    public func append(_ batch: PushBatch, instanceID: String, sequence: UInt64) throws(SpoolError) -> Bool {
        var payload: [UInt8] = []
        payload.reserveCapacity(batch.byteCount + batch.count * 6 + 32)
        let instance = Array(instanceID.utf8.prefix(255))
        payload.append(UInt8(instance.count))
        payload += instance
        payload.appendLittleEndian(sequence)
        payload.appendLittleEndian(UInt32(batch.count))
        for entry in batch.entries {
            payload.appendLittleEndian(UInt16(entry.keyLength))
            payload += batch.key(of: entry)
            payload.appendLittleEndian(UInt32(entry.valueLength))
            payload += batch.value(of: entry)
        }
        var record: [UInt8] = Array("PXS1".utf8)
        record.appendLittleEndian(UInt32(payload.count))
        record.appendLittleEndian(payload.withUnsafeBytes { CRC32.checksum($0) })
        record += payload
        guard unreplayedBytes + record.count <= maxBytes else { return false }

        if segments.isEmpty || segments[segments.count - 1].size >= segmentBytes || writeFD < 0 {
            try startSegment()
        }
        var written = 0
        while written < record.count {
            let result = record[written...].withUnsafeBytes { write(writeFD, $0.baseAddress, $0.count) }
            if result < 0 {
                if errno == EINTR { continue }
                let error = SpoolError("write", path: segments[segments.count - 1].path)
                // Cut off the partial record so the segment stays readable.
                _ = ftruncate(writeFD, off_t(segments[segments.count - 1].size))
                throw error
            }
            written += result
        }
        do {
            try syncIfDue()
        } catch {
            // Not on disk as promised: cut the record off again, so that messages counted as dropped
            // are not replayed (and pushed) later as well.
            _ = ftruncate(writeFD, off_t(segments[segments.count - 1].size))
            throw error
        }
        segments[segments.count - 1].size += record.count
        segments[segments.count - 1].messages += batch.count
        byteCount += record.count
        messageCount += batch.count
        return true
    }

    /// Forces everything appended so far to disk.
    public func flush() throws(SpoolError) {
        guard writeFD >= 0 else { return }
        if fdatasync(writeFD) != 0 { throw SpoolError("fdatasync", path: segments.last?.path ?? directory) }
        lastSync = MonotonicClock.nanoseconds()
    }

    /// How many reads of the oldest record may fail in a row (with the writer's backoff, ~10 s) before
    /// its segment is taken for unreadable (a bad sector) and set aside, so that the replay goes on.
    static let readAttempts = 20
    private var readFailures = 0
    /// The record ``peek()`` returned last: its segment, where it starts, its size and its messages,
    /// so that ``removeFirst()`` moves past it without reading it again.
    private var peeked: (segment: UInt64, offset: Int, size: Int, messages: Int)?

    /// The oldest record not yet replayed, or `nil`.
    /// - Throws: ``SpoolError`` when the record cannot be read now (the caller retries later); after
    ///   ``readAttempts`` failures in a row its segment is set aside (`….spool.unreadable`) instead,
    ///   and its messages counted as unreadable (``takeUnreadableMessages()``).
    public func peek() throws(SpoolError) -> Record? {
        peeked = nil
        while let segment = segments.first {
            if readOffset < segment.size {
                let record: (Record, Int)?
                do {
                    record = try readRecord(in: segment, at: readOffset)
                    readFailures = 0
                } catch {
                    readFailures += 1
                    guard readFailures >= Self.readAttempts else { throw error }
                    readFailures = 0
                    unreadableMessages += segment.messages
                    try dropFirstSegment(settingAside: true)
                    continue
                }
                if let (record, size) = record {
                    peeked = (segment.number, readOffset, size, record.batch.count)
                    return record
                }
            }
            // The first segment is exhausted (or its tail is unreadable, or the file is gone): on to
            // the next; what it still held is lost.
            unreadableMessages += segment.messages
            try dropFirstSegment()
        }
        return nil
    }

    /// Messages of segments that could not be read to their end (deleted from outside, or a damaged
    /// tail) since the last call; the caller counts them as lost.
    public func takeUnreadableMessages() -> Int {
        defer { unreadableMessages = 0 }
        return unreadableMessages
    }

    /// Marks the record returned by ``peek()`` as replayed, by what that read found, without reading
    /// it again: the caller has committed it, so a second read that failed now, or found the file
    /// gone or damaged, must not have it committed again or counted as unreadable. Deletes its
    /// segment once all are. Does nothing unless the last ``peek()`` returned a record, the oldest still.
    /// - Throws: ``SpoolError`` when the segment, all replayed, cannot be deleted (the record is marked
    ///   replayed all the same).
    public func removeFirst() throws(SpoolError) {
        guard let record = peeked, let segment = segments.first, segment.number == record.segment, readOffset == record.offset else {
            return
        }
        peeked = nil
        readOffset += record.size
        messageCount -= record.messages
        segments[0].messages -= record.messages
        if readOffset >= segments[0].size { try dropFirstSegment() }
    }

    /// Writes the read position into `DIR/replayed` (durably) when the first segment is partly
    /// replayed: the next start resumes there, instead of sending those records again (recognised as
    /// applied while their commit markers live, seven days) and counting them as recovered twice.
    ///
    /// The file names the record to resume at (segment number, offset, and the record's sequence and
    /// instance), so that a position that outlived its segment never matches another one's record.
    /// - Throws: ``SpoolError`` when the file cannot be written.
    public func saveReadPosition() throws(SpoolError) {
        let path = directory + "/replayed", temporary = path + ".tmp"
        guard readOffset > 0, let segment = segments.first, let (record, _) = try readRecord(in: segment, at: readOffset) else {
            unlink(path)
            return
        }
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw SpoolError("open", path: temporary) }
        let text = Array("\(segment.number) \(readOffset) \(record.sequence) \(record.instanceID)\n".utf8)
        let written = text.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        let synced = fsync(fd) == 0
        close(fd)
        guard written == text.count, synced, rename(temporary, path) == 0 else {
            unlink(temporary)
            throw SpoolError("write", path: path)
        }
        syncDirectory()
    }

    /// The position ``saveReadPosition()`` wrote, if any; the file is removed (``scan()`` uses it once).
    private func takeSavedReadPosition() -> (number: UInt64, offset: Int, sequence: UInt64, instanceID: String)? {
        let path = directory + "/replayed"
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer {
            close(fd)
            unlink(path)
        }
        var bytes = [UInt8](repeating: 0, count: 512)
        let count = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard count > 0, bytes[count - 1] == UInt8(ascii: "\n") else { return nil }
        let parts = String(decoding: bytes[..<(count - 1)], as: UTF8.self).split(separator: " ", maxSplits: 3)
        guard parts.count == 4, let number = UInt64(parts[0]), let offset = Int(parts[1]), let sequence = UInt64(parts[2]) else { return nil }
        return (number, offset, sequence, String(parts[3]))
    }

    // MARK: - Files

    private func startSegment() throws(SpoolError) {
        if writeFD >= 0 {
            _ = fdatasync(writeFD)
            close(writeFD)
            writeFD = -1
        }
        // O_EXCL: a new segment is a new file, never the rest of an old one.
        var number = nextSegmentNumber
        var path: String
        var fd: Int32
        repeat {
            path = Self.path(directory, number)
            fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0o600)
            if fd < 0 && errno == EEXIST { number += 1 } else { break }
        } while number - nextSegmentNumber < 1000
        guard fd >= 0 else { throw SpoolError("open", path: path) }
        nextSegmentNumber = number + 1
        writeFD = fd
        segments.append(Segment(number: number, path: path, size: 0, messages: 0))
        syncDirectory()  // the new file's directory entry durable too
    }

    private func syncDirectory() {
        let dirFD = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dirFD >= 0 {
            _ = fsync(dirFD)
            close(dirFD)
        }
    }

    /// Removes the first segment from the spool and deletes its file, or renames it to
    /// `….spool.unreadable` when `settingAside` (kept for a look by hand, never read again).
    private func dropFirstSegment(settingAside: Bool = false) throws(SpoolError) {
        let segment = segments.removeFirst()
        readOffset = 0
        byteCount -= segment.size
        messageCount -= segment.messages
        if segments.isEmpty && writeFD >= 0 {
            close(writeFD)
            writeFD = -1
        }
        unlink(directory + "/replayed")  // a position in that segment, if any: before the segment goes
        if settingAside && rename(segment.path, segment.path + Self.unreadableSuffix) == 0 { return }
        if unlink(segment.path) != 0 && errno != ENOENT { throw SpoolError("unlink", path: segment.path) }
    }

    /// Appended to a segment's name when it is set aside as unreadable.
    static let unreadableSuffix = ".unreadable"

    private func syncIfDue() throws(SpoolError) {
        switch sync {
        case .always: try flush()
        case .interval(let milliseconds):
            if MonotonicClock.nanoseconds() - lastSync >= Int64(milliseconds) * 1_000_000 { try flush() }
        case .never: break
        }
    }

    /// Finds existing segments, validates every record, cuts off a torn tail.
    private func scan() throws(SpoolError) {
        guard let dir = opendir(directory) else { throw SpoolError("opendir", path: directory) }
        var numbers: [UInt64] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            // `segment-N.spool`, or set aside as `segment-N.spool.unreadable` (numbered past, not read).
            let stem = name.hasSuffix(Self.unreadableSuffix) ? name.dropLast(Self.unreadableSuffix.count) : name[...]
            guard stem.hasPrefix("segment-"), stem.hasSuffix(".spool"),
                let number = UInt64(stem.dropFirst("segment-".count).dropLast(".spool".count))
            else { continue }
            nextSegmentNumber = max(nextSegmentNumber, number &+ 1)
            if stem.count == name.count { numbers.append(number) }
        }
        closedir(dir)
        // Where a shutdown stopped replaying: the first segment, at the start of the very record it names.
        let saved = takeSavedReadPosition()
        for number in numbers.sorted() {
            let path = Self.path(directory, number)
            var segment = Segment(number: number, path: path, size: 0, messages: 0)
            var info = stat()
            guard stat(path, &info) == 0 else { continue }
            let fileSize = Int(info.st_size)
            var offset = 0
            var resumeAt: Int?, replayedMessages = 0
            let resumes = segments.isEmpty && saved?.number == number
            do {
                while offset < fileSize, let (record, size) = try readRecord(in: Segment(number: number, path: path, size: fileSize, messages: 0), at: offset) {
                    if resumes, let saved {
                        if offset == saved.offset, record.sequence == saved.sequence, record.instanceID == saved.instanceID {
                            resumeAt = offset
                        }
                        if offset < saved.offset { replayedMessages += record.batch.count }
                    }
                    offset += size
                    segment.messages += record.batch.count
                }
            } catch {
                // Unreadable (EIO): set aside for a look by hand, so that ingest starts with the rest.
                if rename(path, path + Self.unreadableSuffix) != 0 { throw error }
                filesSetAsideAtOpen.append(path + Self.unreadableSuffix)
                continue
            }
            if let resumeAt {
                readOffset = resumeAt
                segment.messages -= replayedMessages
            }
            if offset < fileSize {
                // A torn or corrupt record: keep what precedes it.
                if truncate(path, off_t(offset)) != 0 { throw SpoolError("truncate", path: path) }
                bytesCutAtOpen += fileSize - offset
            }
            segment.size = offset
            if segment.size == 0 {
                unlink(path)
                continue
            }
            segments.append(segment)
            byteCount += segment.size
            messageCount += segment.messages
        }
    }

    /// Reads and checks the record at `offset`; `nil` when it is incomplete or fails its checksum.
    /// - Throws: ``SpoolError`` when the file cannot be opened or read (`EIO`, …): that may pass, and the
    ///   caller retries, where a `nil` has the segment's rest taken for damaged and deleted.
    private func readRecord(in segment: Segment, at offset: Int) throws(SpoolError) -> (Record, Int)? {
        let fd = open(segment.path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT { return nil }  // deleted from outside: nothing of it can be read
            throw SpoolError("open", path: segment.path)
        }
        defer { close(fd) }
        var header = [UInt8](repeating: 0, count: 12)
        guard try Self.readFully(fd, &header, at: offset, path: segment.path), header[0..<4].elementsEqual("PXS1".utf8) else { return nil }
        let length = Int(header.loadLittleEndian(UInt32.self, at: 4))
        let checksum = header.loadLittleEndian(UInt32.self, at: 8)
        guard length <= segment.size - offset - 12 else { return nil }
        var payload = [UInt8](repeating: 0, count: length)
        guard try Self.readFully(fd, &payload, at: offset + 12, path: segment.path),
            payload.withUnsafeBytes({ CRC32.checksum($0) }) == checksum,
            let record = Self.decode(payload)
        else { return nil }
        return (record, 12 + length)
    }

    private static func decode(_ payload: [UInt8]) -> Record? {
        var position = 0
        func take(_ count: Int) -> ArraySlice<UInt8>? {
            guard position + count <= payload.count else { return nil }
            defer { position += count }
            return payload[position..<position + count]
        }
        guard let instanceLength = take(1)?.first, let instance = take(Int(instanceLength)),
            let sequenceBytes = take(8), let countBytes = take(4)
        else { return nil }
        let sequence = Array(sequenceBytes).loadLittleEndian(UInt64.self, at: 0)
        let count = Int(Array(countBytes).loadLittleEndian(UInt32.self, at: 0))
        var batch = PushBatch()
        for _ in 0..<count {
            guard let keyLengthBytes = take(2) else { return nil }
            guard let key = take(Int(Array(keyLengthBytes).loadLittleEndian(UInt16.self, at: 0))),
                let valueLengthBytes = take(4),
                let value = take(Int(Array(valueLengthBytes).loadLittleEndian(UInt32.self, at: 0)))
            else { return nil }
            batch.append(key: Array(key), value: Array(value), acceptedAt: 0)
        }
        guard position == payload.count else { return nil }
        return Record(batch: batch, instanceID: String(decoding: instance, as: UTF8.self), sequence: sequence)
    }

    /// Fills `buffer` from `offset`: `false` when the file ends first (shorter than recorded: damaged).
    /// - Throws: ``SpoolError`` when a read fails.
    private static func readFully(_ fd: Int32, _ buffer: inout [UInt8], at offset: Int, path: String) throws(SpoolError) -> Bool {
        var done = 0
        while done < buffer.count {
            let result = buffer[done...].withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(offset + done)) }
            if result < 0 && errno == EINTR { continue }
            if result < 0 { throw SpoolError("read", path: path) }
            if result == 0 { return false }
            done += result
        }
        return true
    }

    private static func path(_ directory: String, _ number: UInt64) -> String {
        let digits = String(number)
        return "\(directory)/segment-\(String(repeating: "0", count: max(0, 16 - digits.count)))\(digits).spool"
    }
}

extension Array where Element == UInt8 {
    fileprivate mutating func appendLittleEndian<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
    }

    fileprivate func loadLittleEndian<T: FixedWidthInteger>(_ type: T.Type, at offset: Int) -> T {
        var value = T.zero
        for index in 0..<MemoryLayout<T>.size { value |= T(self[offset + index]) << (8 * index) }
        return value
    }
}
