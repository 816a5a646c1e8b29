import Foundation
import PixeldTestSupport

/// A running `redis-server` plus `pixeld ingest` listening where the test asked; stopped in reverse
/// order when released.
final class IngestPipeline {
    let redis: RedisServer
    let ingest: PixeldProcess
    let udpPort: Int
    let udp6Port: Int?
    let socketDirectory: TempDirectory
    let unixPath: String?

    /// Starts Redis, then `pixeld ingest --udp 127.0.0.1:P [--udp [::1]:P6] [--unix PATH]`, and waits
    /// for "ingest ready" on stderr.
    init(ipv6: Bool = false, unix: Bool = false, extraArguments: [String] = []) throws {
        redis = try RedisServer.start()
        udpPort = try PortAllocator.freeUDPPort()
        udp6Port = ipv6 ? try PortAllocator.freeUDPPort(ipv6: true) : nil
        // 0755 so nginx workers (user nobody when the tests run as root) can reach the socket.
        socketDirectory = try TempDirectory(prefix: "pixeld-sock", permissions: 0o755)
        unixPath = unix ? socketDirectory.appending("pixeld.sock").path : nil
        var arguments = ["ingest", "--udp", "127.0.0.1:\(udpPort)"]
        if let udp6Port { arguments += ["--udp", "[::1]:\(udp6Port)"] }
        if let unixPath { arguments += ["--unix", unixPath] }
        arguments += ["--redis", redis.url, "--facility", "local3", "--log-level", "debug"] + extraArguments
        ingest = try PixeldProcess.start(arguments)
        try ingest.waitForStderr(containing: "ingest ready", timeout: 15)
    }

    /// SIGTERM to ingest; its exit status.
    func stopIngest() throws -> Int32 {
        ingest.terminate()
        return try ingest.waitForExit(timeout: 10)
    }

    deinit {
        ingest.kill()
        _ = try? ingest.waitForExit(timeout: 5)
        redis.stop()
    }
}

/// Sends each URL once with curl, `parallel` at a time, and returns the HTTP status codes.
/// With `perSecond`, the requests go one at a time instead (`parallel` is then not used), at most
/// that many per second (curl's `--rate`, which applies to serial transfers only; curl 7.88 waits
/// 1000 / `perSecond` ms, rounded down, from the start of one transfer to the next).
func fetchAll(_ urls: [String], parallel: Int = 8, perSecond: Int? = nil, timeout: TimeInterval = 60) throws -> [String] {
    let config = urls.map { "url = \"\($0)\"\noutput = \"/dev/null\"\n" }.joined()
    let pacing = perSecond.map { ["--rate", "\($0)/s"] } ?? ["--parallel", "--parallel-max", String(parallel)]
    let result = try ChildProcess.run(
        "curl",
        ["--silent", "--show-error"] + pacing + [
            "--max-time", "20", "--write-out", "%{http_code}\\n", "--config", "-",
        ],
        stdin: Array(config.utf8),
        timeout: timeout
    )
    return result.stdout.split(separator: "\n").map(String.init)
}

/// The query strings of `count` distinct pixel hits.
func pixelQueries(count: Int, tag: String) -> [String] {
    (0..<count).map { index in
        "e=pageview&i=\(index)&t=\(tag)&w=\(1280 + index % 7)&u=https%3A%2F%2Fexample.com%2Fp%2F\(index)%3Fq%3D1"
    }
}

/// The args `pixeld consume` should print for a query from ``pixelQueries(count:tag:)``:
/// values percent-decoded.
func expectedArgs(index: Int, tag: String) -> [String: String] {
    [
        "e": "pageview",
        "i": String(index),
        "t": tag,
        "w": String(1280 + index % 7),
        "u": "https://example.com/p/\(index)?q=1",
    ]
}

/// One JSON line from `pixeld consume`, decoded loosely: `ts` as a number, `args` as strings.
struct ConsumedEvent {
    var ts: Double
    var args: [String: String]

    init(line: String) throws {
        guard let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
            throw TestSupportError("not a JSON object: \(line)")
        }
        guard let ts = (object["ts"] as? NSNumber)?.doubleValue else {
            throw TestSupportError("no numeric ts in: \(line)")
        }
        guard let args = object["args"] as? [String: Any] else {
            throw TestSupportError("no args object in: \(line)")
        }
        self.ts = ts
        self.args = args.mapValues { value in
            if let text = value as? String { return text }
            return String(describing: value)
        }
    }
}

/// Bytes as text for messages (each line is ASCII in these tests).
func text(_ bytes: [UInt8]) -> String {
    String(decoding: bytes, as: UTF8.self)
}

/// The `i=` argument of a logged pixel line (`$msec,e=…&i=N&…`).
func hitIndex(_ line: [UInt8]) -> String? {
    let query = text(line).split(separator: ",", maxSplits: 1).last ?? ""
    return query.split(separator: "&").first { $0.hasPrefix("i=") }.map { String($0.dropFirst(2)) }
}

/// Elements of `expected` not in `actual`, and of `actual` not in `expected`, counting repeats.
func multisetDifference(expected: [[UInt8]], actual: [[UInt8]]) -> (missing: [[UInt8]], unexpected: [[UInt8]]) {
    var counts: [[UInt8]: Int] = [:]
    for element in expected { counts[element, default: 0] += 1 }
    var unexpected: [[UInt8]] = []
    for element in actual {
        if let count = counts[element], count > 0 {
            counts[element] = count - 1
        } else {
            unexpected.append(element)
        }
    }
    let missing = expected.filter { element in
        guard let count = counts[element], count > 0 else { return false }
        counts[element] = count - 1
        return true
    }
    return (missing, unexpected)
}
