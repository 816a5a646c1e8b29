import Foundation
@testable import PixelAnalytics
import PixeldTestSupport
import Testing

/// Reading archive files back line by line, plain and gzip-compressed: the same lines however they
/// fall across read chunks, and a limit that stops a read before the file is in memory.
@Suite struct ArchiveReaderTests {
    /// Lines of many lengths, some longer than a 64 KiB chunk, with empty lines and a trailing partial one.
    static func fixture() -> (text: String, lines: [String]) {
        var lines: [String] = []
        var length = 1
        for index in 0..<400 {
            lines.append(String(repeating: Character(UnicodeScalar(UInt8(97 + index % 26))), count: length))
            length = length * 7 % 150_001 + 1
        }
        let text = lines.map { $0 + "\n" }.joined(separator: "\n") + "partial line without its newline"
        return (text, lines)
    }

    @Test(arguments: [false, true])
    func linesAcrossChunksPlainAndCompressed(compressed: Bool) throws {
        let directory = try TempDirectory(prefix: "pixeld-archive-reader")
        let (text, expected) = Self.fixture()
        #expect(expected.contains { $0.utf8.count > 1 << 16 })
        var path = directory.path + "/2026-01-01.c1.jsonl"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        if compressed {
            let gzip = try ChildProcess(tool: "gzip", arguments: [path])
            #expect(try gzip.waitForExit(timeout: 30) == 0)
            path += ".gz"
        }
        #expect(try ArchiveReader.lines(of: path).map { String(decoding: $0, as: UTF8.self) } == expected)
        // Stopped after 3 lines: the error comes back, and no more lines are read.
        var seen = 0
        #expect(throws: ArchiveReader.Failure.self) {
            try ArchiveReader.forEachLine(of: path) { _ throws(ArchiveReader.Failure) in
                seen += 1
                if seen == 3 { throw ArchiveReader.Failure("enough") }
            }
        }
        #expect(seen == 3)
    }

    /// Whether a plain file is what a compression left behind: the compressed file ends with its
    /// lines. Compared a chunk at a time, across chunk boundaries, on line boundaries only.
    @Test func aCompressedFileEndsWithThePlainFilesLines() throws {
        let directory = try TempDirectory(prefix: "pixeld-archive-reader")
        let lines = (0..<20_000).map { "{\"ts\":1763805600.\($0),\"path\":\"/page/\($0 % 97)\"}\n" }
        let compressed = directory.path + "/2026-01-01.c1.jsonl"
        try lines.joined().write(toFile: compressed, atomically: true, encoding: .utf8)
        let gzip = try ChildProcess(tool: "gzip", arguments: [compressed])
        #expect(try gzip.waitForExit(timeout: 30) == 0)
        let plain = directory.path + "/plain.jsonl"
        let last = lines.suffix(7_000).joined()
        #expect(last.utf8.count > 3 << 16, "spans several chunks")
        let cases: [(String, Bool)] = [
            (lines.joined(), true), (last, true), ("", true),
            (String(last.dropFirst()), false),  // not from a line's start
            (last.replacingOccurrences(of: "/page/5\"", with: "/page/6\""), false),
            (last + "{\"late\":1}\n", false), (lines.joined() + lines[0], false),
        ]
        for (text, expected) in cases {
            try text.write(toFile: plain, atomically: true, encoding: .utf8)
            #expect(try ArchiveReader.endsWithLines(of: plain, compressed: compressed + ".gz") == expected, "\(text.utf8.count) bytes")
        }
    }

    /// gzip keeps only its stdin, stdout and stderr: not a descriptor this process has open without
    /// close-on-exec (nor, by the same closing, a socket another thread has not yet marked). The
    /// child is looked at while it is blocked writing into the pipe this read has not emptied.
    @Test func gzipInheritsNoOtherDescriptor() throws {
        let directory = try TempDirectory(prefix: "pixeld-archive-fds")
        let path = directory.path + "/2026-01-01.c1.jsonl"
        // ~4 MB once decompressed: far more than the pipe and one read chunk hold.
        try String(repeating: "{\"ts\":1767268800.000,\"path\":\"/\"}\n", count: 120_000)
            .write(toFile: path, atomically: true, encoding: .utf8)
        let compress = try ChildProcess(tool: "gzip", arguments: [path])
        #expect(try compress.waitForExit(timeout: 30) == 0)
        let probe = directory.path + "/not-for-gzip"
        let leaked = open(probe, O_WRONLY | O_CREAT, 0o600)  // no O_CLOEXEC
        try #require(leaked >= 0)
        defer { close(leaked) }
        var descriptors: [String: String]?
        try ArchiveReader.forEachLine(of: path + ".gz") { _ throws(ArchiveReader.Failure) in
            guard descriptors == nil else { return }
            let gzip = ArchiveWriterTests.childStatus(named: "gzip", withArgument: path + ".gz")
            let fds = "/proc/\(gzip?["Pid"] ?? "-")/fd"
            descriptors = [:]
            for fd in (try? FileManager.default.contentsOfDirectory(atPath: fds)) ?? [] {
                descriptors?[fd] = try? FileManager.default.destinationOfSymbolicLink(atPath: fds + "/" + fd)
            }
        }
        let seen = try #require(descriptors)
        #expect(!seen.isEmpty, "no gzip child found while reading")
        #expect(!seen.values.contains(probe), "gzip inherited \(probe): \(seen)")
        // Beyond 0–2, only what gzip opened itself: its input and the directory holding it.
        let own = [directory.path, path + ".gz"]
        #expect(seen.filter { Int($0.key)! >= 3 }.values.allSatisfy(own.contains), "\(seen)")
    }

    @Test func theRecordLimitStopsARead() throws {
        let directory = try TempDirectory(prefix: "pixeld-archive-limit")
        let line = "{\"ts\":1767268800.000,\"v\":1,\"status\":\"dropped\",\"site\":\"example.com\",\"event\":\"pageview\",\"path\":\"/\",\"reason\":\"bot_list\"}\n"
        try String(repeating: line, count: 50).write(toFile: directory.path + "/2026-01-01.c1.jsonl", atomically: true, encoding: .utf8)
        let day = Day("2026-01-01")!
        let all = try ArchiveReader.outcomes(directory: directory.path, days: [day], site: "example.com", maxRecords: 50)
        #expect(all.outcomes.count == 50 && all.unreadableLines == 0)
        let failure = #expect(throws: ArchiveReader.Failure.self) {
            _ = try ArchiveReader.outcomes(directory: directory.path, days: [day], site: "example.com", maxRecords: 49)
        }
        #expect(failure?.code == .tooManyRecords)
    }
}
