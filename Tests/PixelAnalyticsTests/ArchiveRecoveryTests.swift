import Foundation
@testable import PixelAnalytics
import PixeldTestSupport
import Testing

/// `pixeld consume --archive` against a real Redis: one that loses its data between two runs (the
/// lengths the archive's exactly-once recovery cuts files back to are gone, and the files must be
/// kept), and two runs with one consumer id.
@Suite(.serialized, .enabled(if: TestEnvironment.canRun("redis-server")))
struct ArchiveRecoveryTests {
    @Test("a Redis that lost the acknowledged lengths (FLUSHALL) does not cost the archive its lines")
    func archiveSurvivesAFlushedRedis() throws {
        let redis = try RedisServer.start()
        let archive = try TempDirectory(prefix: "pixeld-archive-flush")
        let userAgent = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
        func push(_ path: String) throws {
            let line = nginxJSONLine(
                milliseconds: Int(Date().timeIntervalSince1970 * 1000), args: [("e", "pageview"), ("u", "https://example.com" + path)],
                ip: "192.0.2.7", ua: userAgent
            )
            _ = try redis.command(["LPUSH", "pixel", line])
        }
        func archivedLines() -> Int {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: archive.path)) ?? []
            return names.reduce(0) { $0 + ((try? ArchiveReader.lines(of: archive.appending($1).path).count) ?? 0) }
        }
        func consume() throws -> PixeldProcess {
            let process = try PixeldProcess.start([
                "consume", "pixel", "--redis", redis.url, "--site", "example.com", "--archive", archive.path, "--consumer-id", "keep", "--heartbeat-seconds", "3",
            ])
            try process.waitForStderr(containing: "consume ready")
            return process
        }
        let first = try consume()
        for path in ["/a", "/b", "/c"] { try push(path) }
        #expect(Poll.until(timeout: 20) { archivedLines() == 3 }, "\(first.stderrText)")
        first.terminate()
        #expect(try first.waitForExit(timeout: 10) == 0)

        _ = try redis.command(["FLUSHALL"])
        let second = try consume()
        defer { second.terminate() }
        try push("/d")
        #expect(Poll.until(timeout: 20) { archivedLines() == 4 }, "archive lines: \(archivedLines())\n\(second.stderrText)")
        #expect(second.stderrText.contains("archive files kept as they are"), "\(second.stderrText)")
    }

    /// A second `pixeld consume` with the id and archive of a running one fails at start, also when
    /// the first is stopped (SIGSTOP) long enough for its heartbeat to lapse — Redis would hand the
    /// id over then, and both would write the same archive files. Once the first has exited, the id
    /// is free again.
    @Test func aSecondRunWithTheSameIDCannotWriteTheArchive() throws {
        let redis = try RedisServer.start()
        let archive = try TempDirectory(prefix: "pixeld-archive-same-id")
        let arguments = [
            "consume", "pixel", "--redis", redis.url, "--site", "example.com", "--archive", archive.path, "--consumer-id", "same",
            "--heartbeat-seconds", "3",
        ]
        func push(_ path: String) throws {
            let line = nginxJSONLine(
                milliseconds: Int(Date().timeIntervalSince1970 * 1000), args: [("e", "pageview"), ("u", "https://example.com" + path)],
                ip: "192.0.2.8", ua: "Mozilla/5.0 (X11; Linux x86_64) Firefox/125.0"
            )
            _ = try redis.command(["LPUSH", "pixel", line])
        }
        func archivedLines() -> Int {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: archive.path)) ?? []
            return names.reduce(0) { $0 + ((try? ArchiveReader.lines(of: archive.appending($1).path).count) ?? 0) }
        }
        func refused(_ when: String) throws {
            let second = try PixeldProcess.start(arguments)
            #expect(try second.waitForExit(timeout: 10) == 1, "\(when): \(second.stderrText)")
            let errors = second.stderrText.split(separator: "\n").filter { $0.hasPrefix("Error: ") }
            #expect(
                errors == ["Error: --archive: another pixeld consume with id same is writing \(archive.path) (it holds \(archive.path)/.same.lock); two consumers must not share an id"],
                "\(when): \(second.stderrText)"
            )
        }
        let first = try PixeldProcess.start(arguments)
        try first.waitForStderr(containing: "consume ready")
        try push("/a")
        #expect(Poll.until(timeout: 20) { archivedLines() == 1 }, "\(first.stderrText)")
        try refused("while the first runs")

        kill(first.pid, SIGSTOP)
        #expect(Poll.until(timeout: 10) { (try? redis.command(["EXISTS", "pixel:consumer:same"]).integer) == 0 }, "the heartbeat did not lapse")
        try refused("while the first is stopped, its heartbeat lapsed")
        kill(first.pid, SIGCONT)
        first.terminate()
        _ = try first.waitForExit(timeout: 10)

        let third = try PixeldProcess.start(arguments)
        defer { third.terminate() }
        try third.waitForStderr(containing: "consume ready")
        try push("/b")
        #expect(Poll.until(timeout: 20) { archivedLines() == 2 }, "\(third.stderrText)")
    }
}

/// `pixeld consume --output FILE` against a real Redis: the file has one writer.
@Suite(.serialized, .enabled(if: TestEnvironment.canRun("redis-server")))
struct OutputFileLockTests {
    /// A second consumer on a running one's output file fails at start: under another id (it would
    /// append between the first one's batches, and each would cut the file back to its own length),
    /// and under the same id while the first is stopped past its heartbeat (Redis hands the id over).
    /// Devices are shared: two consumers may write /dev/null.
    @Test func aSecondConsumerCannotWriteTheSameOutputFile() throws {
        let redis = try RedisServer.start()
        let directory = try TempDirectory(prefix: "pixeld-output-lock")
        let file = directory.appending("events.jsonl").path
        func arguments(id: String, output: String = file) -> [String] {
            ["consume", "pixel", "--redis", redis.url, "--output", output, "--consumer-id", id, "--heartbeat-seconds", "3"]
        }
        func refused(_ id: String, _ when: String) throws {
            let second = try PixeldProcess.start(arguments(id: id))
            #expect(try second.waitForExit(timeout: 10) == 1, "\(when): \(second.stderrText)")
            let errors = second.stderrText.split(separator: "\n").filter { $0.hasPrefix("Error: ") }
            #expect(
                errors == ["Error: --output: another pixeld consume is writing \(file); each consumer needs a file of its own"],
                "\(when): \(second.stderrText)"
            )
        }
        let first = try PixeldProcess.start(arguments(id: "one"))
        try first.waitForStderr(containing: "consume ready")
        _ = try redis.command(["LPUSH", "pixel", "1763805600.001,e=pageview&u=%2Fa"])
        #expect(Poll.until(timeout: 20) { ((try? String(contentsOfFile: file, encoding: .utf8)) ?? "").contains("pageview") }, "\(first.stderrText)")
        var info = stat()
        #expect(stat(file, &info) == 0 && info.st_mode & 0o777 == 0o600, "events may hold raw lines: owner only")
        try refused("two", "another id")
        kill(first.pid, SIGSTOP)
        #expect(Poll.until(timeout: 10) { (try? redis.command(["EXISTS", "pixel:consumer:one"]).integer) == 0 }, "the heartbeat did not lapse")
        try refused("one", "the same id, the first stopped past its heartbeat")
        kill(first.pid, SIGCONT)

        let nullA = try PixeldProcess.start(arguments(id: "null-a", output: "/dev/null"))
        defer { nullA.terminate() }
        let nullB = try PixeldProcess.start(arguments(id: "null-b", output: "/dev/null"))
        defer { nullB.terminate() }
        try nullA.waitForStderr(containing: "consume ready")
        try nullB.waitForStderr(containing: "consume ready")

        first.terminate()
        _ = try first.waitForExit(timeout: 10)
        let third = try PixeldProcess.start(arguments(id: "two"))
        defer { third.terminate() }
        try third.waitForStderr(containing: "consume ready")
    }
}
