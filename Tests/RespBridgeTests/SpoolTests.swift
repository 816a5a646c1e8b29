import Foundation
@testable import RespBridge
import Testing

/// The process's file size limit (`RLIMIT_FSIZE`) lowered, and `SIGXFSZ` ignored so that a write past
/// it fails with `EFBIG` instead of killing the process, until ``restore()``: a disk that is full.
/// The limit is the whole test process's, so keep the window short.
struct LoweredFileSizeLimit {
    /// `RLIMIT_FSIZE` as `getrlimit`/`setrlimit` take it (Glibc imports the resource as an enum there).
    private static let resource = __rlimit_resource_t(RLIMIT_FSIZE.rawValue)
    private var saved = rlimit()
    private let previousHandler: (@convention(c) (Int32) -> Void)?

    /// Lowers the limit to `bytes`.
    init(bytes: Int) {
        getrlimit(Self.resource, &saved)
        previousHandler = signal(SIGXFSZ, SIG_IGN)
        var limited = saved
        limited.rlim_cur = rlim_t(bytes)
        setrlimit(Self.resource, &limited)
    }

    /// Puts the limit and the signal's handler back.
    func restore() {
        var saved = saved
        setrlimit(Self.resource, &saved)
        signal(SIGXFSZ, previousHandler)
    }
}

/// Serialized: one test lowers the process's file size limit for the length of one append (the
/// suites run one at a time under `./dev test`, `--no-parallel`, as the README runs them).
@Suite(.serialized) struct SpoolTests {
    private func directory() -> String {
        NSTemporaryDirectory() + "pixeld-spool-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    }

    private func batch(_ values: [String], key: String = "pixel") -> PushBatch {
        var batch = PushBatch()
        for value in values { batch.append(key: Array(key.utf8), value: Array(value.utf8), acceptedAt: 0) }
        return batch
    }

    /// The path of the one segment file in `path`.
    private func onlySegment(in path: String) throws -> String {
        path + "/" + (try #require(try FileManager.default.contentsOfDirectory(atPath: path).first { $0.hasPrefix("segment-") }))
    }

    /// Makes `segment` fail to read (`EISDIR`: its path a directory; on a real disk `EIO`) while `body` runs.
    private func unreadable(_ segment: String, while body: () throws -> Void) throws {
        try FileManager.default.moveItem(atPath: segment, toPath: segment + ".aside")
        try FileManager.default.createDirectory(atPath: segment, withIntermediateDirectories: false)
        try body()
        try FileManager.default.removeItem(atPath: segment)
        try FileManager.default.moveItem(atPath: segment + ".aside", toPath: segment)
    }

    private func values(_ record: Spool.Record?) -> [String] {
        guard let record else { return [] }
        return record.batch.entries.map { String(decoding: record.batch.value(of: $0), as: UTF8.self) }
    }

    @Test func recordsComeBackInOrderWithTheirIdentityAcrossReopen() throws {
        let path = directory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            let spool = try Spool(directory: path, maxBytes: 1 << 20, sync: .always, segmentBytes: 200)
            #expect(try spool.append(batch(["a", "b"]), instanceID: "w1", sequence: 7))
            #expect(try spool.append(batch(["c"], key: "other"), instanceID: "w1", sequence: 8))
            #expect(try spool.append(batch([String(repeating: "z", count: 300)]), instanceID: "w1", sequence: 9))
            #expect(spool.messageCount == 4)
        }
        let spool = try Spool(directory: path, maxBytes: 1 << 20, sync: .always, segmentBytes: 200)
        #expect(spool.messageCount == 4)
        let first = try spool.peek()
        #expect(values(first) == ["a", "b"])
        #expect(first?.instanceID == "w1")
        #expect(first?.sequence == 7)
        try spool.removeFirst()
        let second = try spool.peek()
        #expect(values(second) == ["c"])
        #expect(second.map { String(decoding: $0.batch.key(of: $0.batch.entries[0]), as: UTF8.self) } == "other")
        try spool.removeFirst()
        #expect(try spool.peek()?.sequence == 9)
        try spool.removeFirst()
        #expect(try spool.peek() == nil)
        #expect(spool.isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: path) == ["lock"], "replayed segments are deleted")
    }

    /// A replay stopped part-way resumes at the record it stopped at, once; a saved position that
    /// outlived its segment (the next outage numbers segments from 1 again) never matches another
    /// segment's record at the same offset, so nothing is skipped.
    @Test func aSavedReadPositionResumesOnlyAtTheRecordItNames() throws {
        let path = directory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            let spool = try Spool(directory: path, maxBytes: 1 << 20, sync: .always)
            for sequence in 1...3 { #expect(try spool.append(batch(["v\(sequence)"]), instanceID: "old", sequence: UInt64(sequence))) }
            _ = try spool.peek()
            try spool.removeFirst()
            try spool.saveReadPosition()
        }
        do {
            let spool = try Spool(directory: path, maxBytes: 1 << 20, sync: .always)
            #expect(spool.messageCount == 2)
            let next = try spool.peek()
            #expect(values(next) == ["v2"])
            // Used once: a crash now replays from the start (at least once, never less).
            #expect(!FileManager.default.fileExists(atPath: path + "/replayed"))
            try spool.saveReadPosition()  // the same position again
            #expect(FileManager.default.fileExists(atPath: path + "/replayed"))
            while try spool.peek() != nil { try spool.removeFirst() }
            #expect(!FileManager.default.fileExists(atPath: path + "/replayed"), "gone with its segment")
        }
        // A stale position naming segment 1 at the second record's offset, and a new segment 1 whose
        // records are the same size: another instance's, not resumed.
        do {
            let spool = try Spool(directory: path, maxBytes: 1 << 20, sync: .always)
            for sequence in 1...3 { #expect(try spool.append(batch(["n\(sequence)"]), instanceID: "new", sequence: UInt64(sequence))) }
        }
        let segment = try #require(try FileManager.default.contentsOfDirectory(atPath: path).first { $0.hasPrefix("segment-") })
        #expect(segment.hasSuffix("1.spool"), "\(segment)")
        let recordSize = (try FileManager.default.attributesOfItem(atPath: path + "/" + segment)[.size] as? Int ?? 0) / 3
        try "1 \(recordSize) 2 old\n".write(toFile: path + "/replayed", atomically: true, encoding: .utf8)
        let spool = try Spool(directory: path, maxBytes: 1 << 20, sync: .always)
        #expect(spool.messageCount == 3)
        let first = try spool.peek()
        #expect(values(first) == ["n1"])
        #expect(!FileManager.default.fileExists(atPath: path + "/replayed"))
    }

    @Test func aTornRecordAtTheTailIsCutOffAndTheRestKept() throws {
        let path = directory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            let spool = try Spool(directory: path, maxBytes: 1 << 20, sync: .always)
            #expect(try spool.append(batch(["kept-1", "kept-2"]), instanceID: "w", sequence: 1))
        }
        // Simulate a crash in the middle of writing the next record (in the segment: the directory
        // also holds the lock file, which an earlier version of this test could pick instead).
        let name = try #require(try FileManager.default.contentsOfDirectory(atPath: path).first { $0.hasPrefix("segment-") })
        let segment = path + "/" + name
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: segment))
        handle.seekToEndOfFile()
        handle.write(Data("PXS1".utf8) + Data([200, 0, 0, 0, 1, 2, 3, 4]) + Data("partial".utf8))
        try handle.close()
        let spool = try Spool(directory: path, maxBytes: 1 << 20, sync: .always)
        #expect(spool.messageCount == 2)
        #expect(spool.bytesCutAtOpen == 19, "the torn record's 12-byte header and 7 bytes, for the log")
        #expect(values(try spool.peek()) == ["kept-1", "kept-2"])
        // Appending after recovery works and reads back in order.
        #expect(try spool.append(batch(["after"]), instanceID: "w2", sequence: 1))
        try spool.removeFirst()
        #expect(values(try spool.peek()) == ["after"])
    }

    /// A read that fails (here: `EISDIR`, the segment's path a directory for a moment; on a real disk
    /// `EIO`) is an error to retry, not damage: the segment is kept, nothing is counted lost, and the
    /// records read back once the file reads again. Before, the segment was deleted and its messages
    /// counted as lost.
    @Test func aFailedReadIsRetriedNotTakenForDamage() throws {
        let path = directory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let spool = try Spool(directory: path, maxBytes: 1 << 20, sync: .always)
        #expect(try spool.append(batch(["x", "y"]), instanceID: "w", sequence: 1))
        try unreadable(try onlySegment(in: path)) {
            #expect(throws: SpoolError.self) { try spool.peek() }
            #expect(spool.takeUnreadableMessages() == 0)
            #expect(spool.messageCount == 2)
        }
        #expect(values(try spool.peek()) == ["x", "y"])
        try spool.removeFirst()
        #expect(try spool.peek() == nil)
    }

    /// A record is committed between ``Spool/peek()`` and ``Spool/removeFirst()``: whatever became of
    /// its file in between, it leaves the spool then, once, and is not counted lost as well. Before,
    /// `removeFirst` read the record again: with the segment deleted it did nothing, and the next
    /// `peek` counted the committed messages as unreadable (pushed and lost); with a read that failed
    /// it threw, and the record was committed again.
    @Test func removeFirstMovesPastThePeekedRecordWithoutReadingItAgain() throws {
        let path = directory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let spool = try Spool(directory: path, maxBytes: 1 << 20, sync: .always)
        #expect(try spool.append(batch(["a", "b"]), instanceID: "w", sequence: 1))
        #expect(values(try spool.peek()) == ["a", "b"])
        try FileManager.default.removeItem(atPath: try onlySegment(in: path))
        try spool.removeFirst()
        #expect(spool.isEmpty && spool.messageCount == 0)
        #expect(try spool.peek() == nil)
        #expect(spool.takeUnreadableMessages() == 0)

        // A read that fails after the peek (`EISDIR` here, `EIO` on a real disk): removeFirst does not
        // throw, and the next record is the second.
        #expect(try spool.append(batch(["c"]), instanceID: "w", sequence: 2))
        #expect(try spool.append(batch(["d"]), instanceID: "w", sequence: 3))
        #expect(values(try spool.peek()) == ["c"])
        try unreadable(try onlySegment(in: path)) {
            #expect(throws: Never.self) { try spool.removeFirst() }
            #expect(spool.messageCount == 1)
        }
        #expect(values(try spool.peek()) == ["d"])
        try spool.removeFirst()
        #expect(try spool.peek() == nil)
        #expect(spool.takeUnreadableMessages() == 0)
    }

    /// A read that keeps failing (a bad sector) neither stops the replay for good nor ingest's start:
    /// after ``Spool/readAttempts`` failures in a row the segment is set aside (`.unreadable`) and its
    /// messages counted, and the next segment replays; at open such a segment is set aside at once.
    @Test func aLastingReadErrorSetsTheSegmentAside() throws {
        let path = directory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let spool = try Spool(directory: path, maxBytes: 1 << 20, sync: .always, segmentBytes: 40)
        #expect(try spool.append(batch(["bad-1", "bad-2"]), instanceID: "w", sequence: 1))
        #expect(try spool.append(batch(["good"]), instanceID: "w", sequence: 2))
        let names = try FileManager.default.contentsOfDirectory(atPath: path).filter { $0.hasPrefix("segment-") }.sorted()
        try #require(names.count == 2)
        let first = path + "/" + names[0]
        try FileManager.default.moveItem(atPath: first, toPath: first + ".moved")
        try FileManager.default.createDirectory(atPath: first, withIntermediateDirectories: false)
        for _ in 1..<Spool.readAttempts {
            #expect(throws: SpoolError.self) { try spool.peek() }
        }
        #expect(values(try spool.peek()) == ["good"])
        #expect(spool.takeUnreadableMessages() == 2)
        #expect(FileManager.default.fileExists(atPath: first + ".unreadable"))

        // At open: the unreadable segment is set aside, and the rest is there.
        let other = directory()
        defer { try? FileManager.default.removeItem(atPath: other) }
        do {
            let writer = try Spool(directory: other, maxBytes: 1 << 20, sync: .always, segmentBytes: 40)
            #expect(try writer.append(batch(["bad"]), instanceID: "w", sequence: 1))
            #expect(try writer.append(batch(["kept"]), instanceID: "w", sequence: 2))
        }
        let segments = try FileManager.default.contentsOfDirectory(atPath: other).filter { $0.hasPrefix("segment-") }.sorted()
        try #require(segments.count == 2)
        try FileManager.default.removeItem(atPath: other + "/" + segments[0])
        try FileManager.default.createDirectory(atPath: other + "/" + segments[0], withIntermediateDirectories: false)
        let reopened = try Spool(directory: other, maxBytes: 1 << 20, sync: .always, segmentBytes: 40)
        #expect(reopened.filesSetAsideAtOpen == [other + "/" + segments[0] + ".unreadable"])
        #expect(values(try reopened.peek()) == ["kept"])
    }

    /// A disk that fills up mid-record (here the process's file size limit, `RLIMIT_FSIZE`: the first
    /// `write` stores part of the record, the next fails with `EFBIG`): the append fails, the partial
    /// record is cut off, and the records before it and after it (once there is room) read back whole.
    @Test func aWriteThatFailsMidRecordLeavesTheSpoolReadable() throws {
        let path = directory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let spool = try Spool(directory: path, maxBytes: 1 << 20, sync: .always)
        #expect(try spool.append(batch(["before"]), instanceID: "w", sequence: 1))
        let segment = try #require(try FileManager.default.contentsOfDirectory(atPath: path).first { $0.hasPrefix("segment-") })
        let size = { (try? FileManager.default.attributesOfItem(atPath: path + "/" + segment)[.size] as? Int) ?? -1 }
        let sizeBefore = size()
        let limit = LoweredFileSizeLimit(bytes: sizeBefore + 100)
        let failed: Bool
        do {
            _ = try spool.append(batch([String(repeating: "x", count: 4000)]), instanceID: "w", sequence: 2)
            failed = false
        } catch {
            failed = true
        }
        limit.restore()
        #expect(failed, "an append past the file size limit succeeded")
        #expect(size() == sizeBefore, "the partial record was not cut off")
        #expect(spool.messageCount == 1)
        #expect(try spool.append(batch(["after"]), instanceID: "w", sequence: 3))
        #expect(values(try spool.peek()) == ["before"])
        try spool.removeFirst()
        #expect(values(try spool.peek()) == ["after"])
    }

    /// A segment file the spool does not know of (one whose `unlink` failed after its replay, here
    /// written by hand after open) is never appended to: the next segment is a new file. Numbers go
    /// past set-aside segments too, which therefore stay as they were.
    @Test func aNewSegmentNeverReusesAFileLeftBehind() throws {
        let path = directory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let junk = Data(repeating: 0x2A, count: 40)
        let spool = try Spool(directory: path, maxBytes: 1 << 20, sync: .always)
        let leftBehind = path + "/segment-0000000000000001.spool"
        try junk.write(to: URL(fileURLWithPath: leftBehind))
        #expect(try spool.append(batch(["new"]), instanceID: "w", sequence: 1))
        #expect(values(try spool.peek()) == ["new"])
        try spool.removeFirst()
        #expect(try spool.peek() == nil)
        #expect(try Data(contentsOf: URL(fileURLWithPath: leftBehind)) == junk, "appended to the file left behind")

        let other = directory()
        defer { try? FileManager.default.removeItem(atPath: other) }
        try FileManager.default.createDirectory(atPath: other, withIntermediateDirectories: false)
        let setAside = other + "/segment-0000000000000004.spool.unreadable"
        try junk.write(to: URL(fileURLWithPath: setAside))
        let reopened = try Spool(directory: other, maxBytes: 1 << 20, sync: .always)
        #expect(try reopened.append(batch(["after"]), instanceID: "w", sequence: 1))
        let names = try FileManager.default.contentsOfDirectory(atPath: other).sorted()
        #expect(names == ["lock", "segment-0000000000000004.spool.unreadable", "segment-0000000000000005.spool"])
        #expect(values(try reopened.peek()) == ["after"])
    }

    @Test func aSpoolDirectoryIsUsedByOneSpoolAtATime() throws {
        let path = directory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            let first = try Spool(directory: path, maxBytes: 1 << 20, sync: .never)
            #expect {
                try Spool(directory: path, maxBytes: 1 << 20, sync: .never)
            } throws: { error in
                (error as? SpoolError)?.isInUse == true
            }
            withExtendedLifetime(first) {}
        }
        _ = try Spool(directory: path, maxBytes: 1 << 20, sync: .never)  // free again once the first is gone
    }

    @Test func aFullSpoolRefusesInsteadOfGrowing() throws {
        let path = directory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let spool = try Spool(directory: path, maxBytes: 100, sync: .never)
        #expect(try spool.append(batch(["small"]), instanceID: "w", sequence: 1))
        #expect(try spool.append(batch([String(repeating: "x", count: 200)]), instanceID: "w", sequence: 2) == false)
        #expect(spool.messageCount == 1)
    }

    @Test func binaryValuesSurviveByteForByte() throws {
        let path = directory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let spool = try Spool(directory: path, maxBytes: 1 << 20, sync: .never)
        var original = PushBatch()
        let value: [UInt8] = [0, 255, 10, 13, 0x50, 0x58, 0x53, 0x31]
        original.append(key: Array("k".utf8), value: value, acceptedAt: 0)
        #expect(try spool.append(original, instanceID: "w", sequence: 1))
        let record = try #require(try spool.peek())
        #expect(Array(record.batch.value(of: record.batch.entries[0])) == value)
    }
}
