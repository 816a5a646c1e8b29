import Foundation
import PixeldTestSupport
import Testing

/// `pixeld ingest` runs the `pixeld-ingest` program built next to `pixeld` (same process, same
/// arguments), which links neither Foundation nor SwiftNIO nor swift-crypto, so the daemon's resident
/// set is a fraction of `pixeld`'s; flags and errors are the same as `pixeld ingest`'s.
@Suite(.serialized, .enabled(if: TestEnvironment.canRun("redis-server", "logger")))
struct IngestProgramTests {
    /// The program a process runs now.
    static func executable(of pid: Int32) throws -> String {
        try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/exe")
    }

    @Test("pixeld ingest becomes pixeld-ingest in the same process and pushes what it receives")
    func ingestRunsTheLeanProgram() throws {
        let redis = try RedisServer.start()
        let port = try PortAllocator.freeUDPPort()
        let ingest = try PixeldProcess.start(["ingest", "--udp", "127.0.0.1:\(port)", "--redis", redis.url])
        defer { ingest.terminate() }
        try ingest.waitForStderr(containing: "ingest ready")
        #expect(try Self.executable(of: ingest.pid).hasSuffix("/pixeld-ingest"))
        try ChildProcess.run(
            "logger", ["--rfc3164", "-d", "-n", "127.0.0.1", "-P", String(port), "-p", "local3.info", "-t", "pixel", "--", "1763805600.001,e=pageview"],
            timeout: 10
        )
        #expect(try redis.waitForLength("pixel", atLeast: 1, timeout: 10) == 1)
        #expect(try redis.lrange("pixel") == ["1763805600.001,e=pageview"])
    }

    @Test("without pixeld-ingest next to it, pixeld runs ingest itself")
    func withoutTheLeanProgramPixeldIngestsItself() throws {
        let redis = try RedisServer.start()
        let port = try PortAllocator.freeUDPPort()
        let alone = try TempDirectory(prefix: "pixeld-alone")
        let copy = alone.appending("pixeld")
        try FileManager.default.copyItem(at: try PixeldProcess.binaryURL(), to: copy)
        let ingest = try ChildProcess(executable: copy, arguments: ["ingest", "--udp", "127.0.0.1:\(port)", "--redis", redis.url])
        defer { ingest.terminate() }
        #expect(Poll.until(timeout: 20) { ingest.stderr.text.contains("ingest ready") }, "\(ingest.tail)")
        #expect(try Self.executable(of: ingest.pid) == copy.path)
        try ChildProcess.run(
            "logger", ["--rfc3164", "-d", "-n", "127.0.0.1", "-P", String(port), "-p", "local3.info", "-t", "pixel", "--", "in process"],
            timeout: 10
        )
        #expect(try redis.waitForLength("pixel", atLeast: 1, timeout: 10) == 1)
    }

    @Test("a bad flag fails at start with one clear line, from either program")
    func badFlagsFailTheSameWay() throws {
        for arguments in [["ingest", "--buffer-bytes", "1"], ["ingest", "--no-such-flag"]] {
            let process = try PixeldProcess.start(arguments)
            let status = try process.waitForExit(timeout: 10)
            #expect(status == 64, "\(arguments): exit \(status)")
            let first = process.stderrText.split(separator: "\n").first.map(String.init) ?? ""
            #expect(first.hasPrefix("Error: "), "\(first)")
            #expect(first.contains(arguments[1]), "\(first)")
        }
    }
}
