import Foundation
@testable import PixelAnalytics
import PixeldTestSupport
import Testing

@Suite struct ArchiveWriterTests {
    /// The `/proc/PID/status` fields of a running child of this process called `name` with `argument`
    /// on its command line (other tests' children run too).
    static func childStatus(named name: String, withArgument argument: String) -> [String: String]? {
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] where Int32(entry) != nil {
            guard let arguments = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline"),
                arguments.split(separator: 0).contains(where: { $0.elementsEqual(argument.utf8) }),
                let text = try? String(contentsOfFile: "/proc/\(entry)/status", encoding: .utf8)
            else { continue }
            var fields: [String: String] = [:]
            for line in text.split(separator: "\n") {
                let parts = line.split(separator: ":", maxSplits: 1)
                if parts.count == 2 { fields[String(parts[0])] = parts[1].trimmingCharacters(in: .whitespaces) }
            }
            if fields["Name"] == name, fields["PPid"] == String(getpid()) { return fields }
        }
        return nil
    }

    /// A maintenance, and the compressions it started finished.
    static func maintained(_ writer: ArchiveWriter, now: Double) -> [String] {
        writer.maintain(now: now) + writer.finishCompressions(waiting: true)
    }

    /// gzip runs beside the consumer: the maintenance that starts it returns at once, the plain file
    /// in place; a later one puts the `.gz` there. A plain file that grew meanwhile (a closed day
    /// written again) is compressed again rather than lost; temporary files of a run that died while
    /// compressing are removed, other consumers' left alone.
    @Test func compressionRunsBesideTheConsumer() throws {
        let directory = try TempDirectory(prefix: "pixeld-archive-test")
        let day = Day("2025-11-20")!
        let writer = try ArchiveWriter(directory: directory.path, consumerID: "c1", retentionDays: 3, closeAfterSeconds: 3600)
        let name = writer.fileName(for: day)
        let plain = directory.appending(name).path
        // ~40 MB of lines: gzip takes a while.
        let line = Array("{\"ts\":1763805600.001,\"v\":1,\"status\":\"ok\",\"site\":\"example.com\",\"path\":\"/".utf8)
        var bytes: [UInt8] = []
        for index in 0..<400_000 { bytes += line + Array("\(index)\"}\n".utf8) }
        _ = try writer.append([day: bytes], now: day.startTimestamp)
        let stray = directory.appending("\(name).gz.tmp.999999").path, old = directory.appending("\(name).gz.tmp").path
        let others = directory.appending("\(day).x.c1.jsonl.gz.tmp.1").path
        for path in [stray, old, others] { #expect(FileManager.default.createFile(atPath: path, contents: Data("x".utf8))) }

        let later = day.next.startTimestamp + 7200
        _ = signal(SIGPIPE, SIG_IGN)  // as pixeld does (and the test runner, once a ChildProcess has run)
        let fileSizeHandler = signal(SIGXFSZ, SIG_IGN)  // as pixeld does too
        defer { signal(SIGXFSZ, fileSizeHandler) }
        #expect(writer.maintain(now: later).isEmpty)
        #expect(FileManager.default.fileExists(atPath: plain), "the plain file stays until gzip is done")
        // gzip inherits no ignored signal — SIGPIPE: it would outlive a stop; SIGXFSZ: gzip would
        // fail with EFBIG past a file size limit, not die — nor blocked signals.
        // (Looked for a little while: posix_spawn returns once the child's exec has let go of this
        // process's memory, which is before the kernel gives it its new name and arguments.)
        var found: [String: String]?
        for _ in 0..<200 where found == nil {
            found = Self.childStatus(named: "gzip", withArgument: plain)
            if found == nil { usleep(10_000) }
        }
        let gzip = try #require(found, "no gzip child running")
        // (Signals 1…31; the test runner may ignore real-time ones, which glibc keeps for itself.)
        #expect(UInt64(gzip["SigIgn"] ?? "", radix: 16).map { $0 & 0x7fff_ffff } == 0, "\(gzip)")
        #expect(UInt64(gzip["SigBlk"] ?? "", radix: 16) == 0, "\(gzip)")
        #expect(!FileManager.default.fileExists(atPath: stray) && !FileManager.default.fileExists(atPath: old))
        #expect(FileManager.default.fileExists(atPath: others), "another consumer's temporary file")
        // The day written again while gzip runs: that result is thrown away, the next one kept.
        let extra = Array("{\"late\":1}\n".utf8)
        let fd = open(plain, O_WRONLY | O_APPEND)
        #expect(fd >= 0 && write(fd, extra, extra.count) == extra.count)
        close(fd)
        #expect(writer.finishCompressions(waiting: true).isEmpty)
        #expect(FileManager.default.fileExists(atPath: plain) && !FileManager.default.fileExists(atPath: plain + ".gz"))
        #expect(Self.maintained(writer, now: later) == [name])
        #expect(!FileManager.default.fileExists(atPath: plain))
        let lines = try ArchiveReader.lines(of: plain + ".gz")
        #expect(lines.count == 400_001 && lines.last.map(Array.init) == Array(extra.dropLast()))
        #expect(Array(lines[123_456]) == line + Array("123456\"}".utf8))
    }

    @Test func exactlyOnceCloseAndRetention() throws {
        let directory = try TempDirectory(prefix: "pixeld-archive-test")
        let day = Day("2025-11-20")!
        let now = day.startTimestamp + 3600
        let writer = try ArchiveWriter(directory: directory.path, consumerID: "host/1", retentionDays: 3, closeAfterSeconds: 25 * 3600)
        let name = writer.fileName(for: day)
        #expect(name == "2025-11-20.host_1.jsonl")

        // Acknowledged batch, then an unacknowledged one that a restart must cut off.
        var acked = try writer.append([day: Array("{\"a\":1}\n".utf8)], now: now)
        #expect(acked == [name: 8])
        _ = try writer.append([day: Array("{\"b\":2}\n".utf8)], now: now)
        let restarted = try ArchiveWriter(directory: directory.path, consumerID: "host/1", retentionDays: 3, closeAfterSeconds: 25 * 3600)
        try restarted.recover(acknowledged: acked)
        #expect(try ArchiveReader.lines(of: directory.appending(name).path) == [Array("{\"a\":1}".utf8)])
        acked = try restarted.append([day: Array("{\"c\":3}\n".utf8)], now: now)
        #expect(acked == [name: 16])

        // Redis lost the lengths (a flushed or new Redis): the files are kept as they are.
        _ = try restarted.append([day: Array("{\"d\":4}\n".utf8)], now: now)
        let afterLoss = try ArchiveWriter(directory: directory.path, consumerID: "host/1", retentionDays: 3, closeAfterSeconds: 25 * 3600)
        #expect(try afterLoss.recover(acknowledged: [:], keepingUnlisted: true) == [name: 24])
        #expect(try ArchiveReader.lines(of: directory.appending(name).path).count == 3)
        // A hash from before the field that marks it as kept (an upgrade): files it lists are still
        // cut back to their lengths.
        #expect(try afterLoss.recover(acknowledged: acked, keepingUnlisted: true).isEmpty)
        #expect(try ArchiveReader.lines(of: directory.appending(name).path).count == 2)

        // A day is closed 25 h after it ends; hits of a closed day go to the processing day's file.
        #expect(restarted.targetDay(for: day, now: now) == day)
        let later = day.next.next.startTimestamp + 3600
        #expect(restarted.targetDay(for: day, now: later) == day.next.next)
        #expect(Self.maintained(restarted, now: day.next.startTimestamp + 3600).isEmpty)
        #expect(Self.maintained(restarted, now: later) == [name])
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        #expect(files == [name + ".gz"])
        #expect(try ArchiveReader.lines(of: directory.appending(name + ".gz").path) == [Array("{\"a\":1}".utf8), Array("{\"c\":3}".utf8)])
        #expect(ArchiveWriter.files(in: directory.path, day: day) == [directory.appending(name + ".gz").path])

        // A day written again after it closed (a clock stepped back): its new lines join the .gz.
        _ = try restarted.append([day: Array("{\"e\":5}\n".utf8)], now: later)
        #expect(Self.maintained(restarted, now: later) == [name])
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path) == [name + ".gz"])
        #expect(
            try ArchiveReader.lines(of: directory.appending(name + ".gz").path)
                == [Array("{\"a\":1}".utf8), Array("{\"c\":3}".utf8), Array("{\"e\":5}".utf8)]
        )
        // A plain file a compression left behind (lines the .gz ends with: all of a first
        // compression's, or the reopened day's new ones) is only removed.
        // Until then, replay and the filtered views read its lines once, from the .gz; a plain file
        // with lines the .gz lacks (written after the compression) is read too.
        let leftover = directory.appending(name).path
        let compressed = directory.appending(name + ".gz").path
        #expect(FileManager.default.createFile(atPath: leftover, contents: Data("{\"f\":6}\n".utf8)))
        #expect(ArchiveWriter.files(in: directory.path, day: day) == [leftover, compressed])
        for contents in ["{\"a\":1}\n{\"c\":3}\n{\"e\":5}\n", "{\"e\":5}\n"] {
            #expect(FileManager.default.createFile(atPath: leftover, contents: Data(contents.utf8)))
            #expect(ArchiveWriter.files(in: directory.path, day: day) == [compressed], "\(contents)")
            #expect(Self.maintained(restarted, now: later) == [name])
            #expect(try ArchiveReader.lines(of: directory.appending(name + ".gz").path).count == 3)
        }

        // Deleted after the retention period.
        restarted.maintain(now: Double(day.number + 6) * 86_400)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).isEmpty)
    }
}
