import Foundation
@testable import PixelAnalytics
import PixeldTestSupport
import Testing

@Suite struct ArchiveWriterTests {
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
        #expect(restarted.maintain(now: day.next.startTimestamp + 3600).isEmpty)
        #expect(restarted.maintain(now: later) == [name])
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        #expect(files == [name + ".gz"])
        #expect(try ArchiveReader.lines(of: directory.appending(name + ".gz").path) == [Array("{\"a\":1}".utf8), Array("{\"c\":3}".utf8)])
        #expect(ArchiveWriter.files(in: directory.path, day: day) == [directory.appending(name + ".gz").path])

        // A day written again after it closed (a clock stepped back): its new lines join the .gz.
        _ = try restarted.append([day: Array("{\"e\":5}\n".utf8)], now: later)
        #expect(restarted.maintain(now: later) == [name])
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
            #expect(restarted.maintain(now: later) == [name])
            #expect(try ArchiveReader.lines(of: directory.appending(name + ".gz").path).count == 3)
        }

        // Deleted after the retention period.
        restarted.maintain(now: Double(day.number + 6) * 86_400)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).isEmpty)
    }
}
