import Foundation
@testable import PixelAnalytics
import PixeldTestSupport
import Testing

/// The live feed's `PUBLISH` (`LiveUpdate`): the accepted hits' lines go out only on channels that
/// someone listens to, by name or by pattern, as the consumer finds out in its read before the ack;
/// the recent-visitors set is written either way.
@Suite struct LivePublishTests {
    static let keys = RollupKeys()

    static func hit(site: String, path: String, at seconds: Double) -> EnrichedHit {
        EnrichedHit(
            timestampText: String(seconds), timestamp: seconds, site: site, visitorID: "v-\(path)",
            event: HitProcessor.pageviewEvent, path: path, source: "(direct)", browser: "Chrome", os: "Linux",
            device: "desktop"
        )
    }

    @Test func publishesOnlyToListenedChannels() {
        let now = 1_763_805_600.0
        var live = LiveUpdate(keys: Self.keys, now: now)
        // The lines in two buffers (as the consumer keeps one per archive day), the last without `\n`.
        var buffers: [[UInt8]] = [[], []]
        for (site, path, buffer) in [("a.example", "/1", 0), ("b.example", "/2", 1), ("a.example", "/3", 1)] {
            let start = buffers[buffer].count
            buffers[buffer] += Array("line \(path)".utf8) + (path == "/3" ? [] : [UInt8(ascii: "\n")])
            live.add(Self.hit(site: site, path: path, at: now - 1), line: .init(buffer: buffer, range: start..<buffers[buffer].count))
        }
        let channels = ["a.example", "b.example"].map { Self.keys.liveChannel(site: $0) }
        #expect(live.channels == channels)
        func names(_ commands: [[[UInt8]]]) -> [String] {
            commands.map { $0.prefix(2).map { String(decoding: $0, as: UTF8.self) }.joined(separator: " ") }
        }
        let recent = ["a.example", "b.example"].flatMap { site in
            let key = Self.keys.recentVisitors(site: site)
            return ["ZADD \(key)", "ZREMRANGEBYSCORE \(key)", "EXPIRE \(key)"]
        }
        #expect(names(live.commands(lines: buffers)) == ["PUBLISH \(channels[0])", "PUBLISH \(channels[1])"] + recent)
        #expect(names(live.commands(listened: { $0 == channels[1] }, lines: buffers)) == ["PUBLISH \(channels[1])"] + recent)
        #expect(names(live.commands(listened: { _ in false }, lines: buffers)) == recent)
        // A site's lines, in order, one message.
        #expect(live.commands(lines: buffers)[0].last == Array("line /1\nline /3".utf8))
        #expect(live.commands(lines: buffers)[1].last == Array("line /2".utf8))
    }

    /// `pixeld consume` against a real Redis: a batch nobody listens to is counted (and its visitor
    /// is "recent") without a `PUBLISH`; once `redis-cli SUBSCRIBE`s one site's channel, a batch with
    /// hits of two sites is published on that channel only.
    @Test(.enabled(if: TestEnvironment.canRun("redis-server", "redis-cli")))
    func consumerPublishesOnlyWhileSomeoneListens() throws {
        let redis = try RedisServer.start()
        let consume = try PixeldProcess.start([
            "consume", "pixel", "--redis", redis.url, "--site", "example.com", "--site", "other.example",
            "--consumer-id", "live-test",
        ])
        defer { consume.terminate() }
        try consume.waitForStderr(containing: "consume ready")
        let channel = Self.keys.liveChannel(site: "example.com")
        let recent = Self.keys.recentVisitors(site: "example.com")
        let userAgent = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
        func line(_ url: String, ip: String) -> String {
            nginxJSONLine(
                milliseconds: Int(Date().timeIntervalSince1970 * 1000),
                args: [("e", "pageview"), ("u", url), ("w", "1280")], ip: ip, ua: userAgent
            )
        }

        try redis.cli("LPUSH", "pixel", line("https://example.com/unheard", ip: "192.0.2.1"))
        #expect(try Poll.until(timeout: 10) { try redis.command(["ZCARD", recent]).integer == 1 }, "\(consume.stderrText)")
        #expect(try redis.calls(of: "publish") == 0)

        let subscriber = try ChildProcess(
            tool: "redis-cli", arguments: ["-h", "127.0.0.1", "-p", String(redis.port), "--raw", "SUBSCRIBE", channel]
        )
        defer { subscriber.kill() }
        #expect(try Poll.until(timeout: 10) { try redis.command(["PUBSUB", "NUMSUB", channel]).array?.last?.integer == 1 })
        // One batch (one LPUSH) with a hit of each site: only example.com's channel is listened to.
        try redis.cli(
            "LPUSH", "pixel", line("https://other.example/elsewhere", ip: "192.0.2.3"), line("https://example.com/heard", ip: "192.0.2.2")
        )
        #expect(Poll.until(timeout: 10) { subscriber.stdout.text.contains(#""path":"/heard""#) }, "\(subscriber.stdout.text)")
        #expect(try Poll.until(timeout: 10) { try redis.command(["ZCARD", Self.keys.recentVisitors(site: "other.example")]).integer == 1 })
        #expect(try redis.command(["ZCARD", recent]).integer == 2)
        #expect(try redis.calls(of: "publish") == 1)
        #expect(!subscriber.stdout.text.contains("/unheard") && !subscriber.stdout.text.contains("/elsewhere"))
    }
}
