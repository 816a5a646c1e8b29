import Foundation
@testable import PixelAnalytics
import PixeldTestSupport
import Testing

/// The analytics pipeline with real processes: nginx with the `pixel_json` format and `pixel.js` in
/// headless Chromium → `pixeld ingest` → Redis → `pixeld consume --site` → `pixeld report`; a consumer
/// SIGKILLed mid-stream gives the same report as an uninterrupted one; `pixeld replay` of the archive
/// gives the same report as the live run; and no Redis key or archive file holds an IP address or a
/// user agent.
@Suite(.serialized, .enabled(if: TestEnvironment.canRun("redis-server", "nginx", "chromium")))
struct AnalyticsEndToEndTests {
    static let browserUA =
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 PixeldE2E/1"

    /// `pixeld report --json` as a dictionary.
    static func report(_ redis: RedisServer, site: String, from: Day, to: Day) throws -> [String: Any] {
        let process = try PixeldProcess.start([
            "report", "--redis", redis.url, "--site", site, "--from", from.description, "--to", to.description, "--json",
        ])
        let status = try process.waitForExit(timeout: 30)
        guard status == 0, let object = try JSONSerialization.jsonObject(with: Data(process.stdoutText.utf8)) as? [String: Any] else {
            throw TestSupportError("pixeld report failed (\(status)): \(process.stdoutText) \(process.stderrText)")
        }
        return object
    }

    /// The JSON report with `visitors` set aside (compared separately where ids differ).
    static func canonical(_ report: [String: Any]) throws -> String {
        String(decoding: try JSONSerialization.data(withJSONObject: report, options: [.sortedKeys]), as: UTF8.self)
    }

    @Test func browserPageviewShowsUpInReport() throws {
        let redis = try RedisServer.start()
        let udpPort = try PortAllocator.freeUDPPort()
        let ingest = try PixeldProcess.start(["ingest", "--udp", "127.0.0.1:\(udpPort)", "--redis", redis.url])
        defer { ingest.terminate() }
        try ingest.waitForStderr(containing: "ingest ready")
        let archive = try TempDirectory(prefix: "pixeld-archive")
        let consume = try PixeldProcess.start([
            "consume", "pixel", "--redis", redis.url, "--site", "localhost", "--archive", archive.path,
            "--consumer-id", "e2e", "--respect-dnt",
        ])
        defer { consume.terminate() }
        try consume.waitForStderr(containing: "consume ready")

        // nginx: the deploy file with the JSON format switched on, plus a test page and the tracker.
        let tracker = try String(contentsOf: TestEnvironment.packageRoot.appendingPathComponent("deploy/pixel.js"), encoding: .utf8)
        // After the page's own pageview: an anchor, a search box's replaceState (the same page, not
        // counted), then an SPA navigation (a new page).
        let page = """
            <!doctype html><html><head><title>t</title><script src="/pixel.js"></script></head><body>hello<script>
            location.hash = 'a';
            setTimeout(function () {
              history.replaceState(null, '', '?q=x#a');
              history.pushState(null, '', '/next.html');
            }, 200);
            </script></body></html>
            """
        let httpPort = try PortAllocator.freeTCPPort()
        let nginx = try NginxServer.startAnalytics(
            httpPort: httpPort, syslogUDP: "127.0.0.1:\(udpPort)",
            files: ["pixel.js": ("application/javascript", tracker), "test.html": ("text/html", page)]
        )
        defer { nginx.stop() }

        let profile = try TempDirectory(prefix: "pixeld-chromium")
        try ChildProcess.run(
            "chromium",
            [
                "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--user-data-dir=\(profile.path)",
                "--user-agent=\(Self.browserUA)", "--virtual-time-budget=5000", "--dump-dom",
                "http://localhost:\(httpPort)/test.html",
            ],
            timeout: 90
        )
        let today = Day(timestamp: Date().timeIntervalSince1970)
        var report: [String: Any] = [:]
        let arrived = try Poll.until(timeout: 30, interval: 0.25) {
            report = try Self.report(redis, site: "localhost", from: today.previous, to: today)
            return (report["pageviews"] as? Int ?? 0) >= 2
        }
        #expect(arrived, "report: \(report)\nconsume: \(consume.stderrText)\nnginx: \(nginx.errorLog)")
        // Chromium has exited: whatever else it sent arrives within a second.
        Thread.sleep(forTimeInterval: 1.5)
        report = try Self.report(redis, site: "localhost", from: today.previous, to: today)
        #expect(report["pageviews"] as? Int == 2, "\(report)")
        #expect(report["visitors"] as? Int == 1)
        #expect(report["visits"] as? Int == 1)
        let pages = (report["pages"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }.sorted()
        #expect(pages == ["/next.html", "/test.html"], "\(report)")
        let browsers = report["browsers"] as? [[String: Any]]
        #expect(browsers?.first?["name"] as? String == "Chrome")

        // The text report is readable.
        let text = try PixeldProcess.start(["report", "--redis", redis.url, "--site", "localhost", "--from", today.previous.description])
        _ = try text.waitForExit(timeout: 30)
        #expect(text.stdoutText.contains("Pageviews"))
        #expect(text.stdoutText.contains("/test.html"))

        try Self.expectNoPersonalData(redis: redis, archive: archive.path, needles: ["127.0.0.1", "::1", Self.browserUA, "PixeldE2E"])
    }

    /// Two consumers on one list share visit state: a batch of second hits is taken by one consumer
    /// while the batch of the same visitors' first hits is still with the other. Each ack is
    /// conditional on the visit version its states were read at, so a batch that read the states
    /// before the other consumer's ack wrote them is refused and handled again: every visitor has
    /// one visit of two pageviews a minute apart, whichever consumer handles which hit — also when
    /// every 5th of the consumers' ack replies, or take replies, is lost after Redis ran the command.
    @Test(arguments: [ReplyLosingProxy.Replies?.none, .acks, .arrays])
    func twoConsumersContinueEachVisitOnce(losing replies: ReplyLosingProxy.Replies?) throws {
        let redis = try RedisServer.start()
        let proxy = try replies.map { try ReplyLosingProxy(upstreamPort: redis.port, dropEvery: 5, replies: $0) }
        defer { proxy?.close() }
        let now = Int(Date().timeIntervalSince1970 * 1000)
        let visitors = 640, block = 32
        // An hour ago, moved back to end before midnight should the 12 minutes of hits cross it
        // (a visit across midnight continues under the next day's id only in arrival order).
        let dayMilliseconds = 86_400_000, span = visitors * 1000 + 60_000
        var start = now - 3_600_000
        let midnight = (start / dayMilliseconds + 1) * dayMilliseconds
        if start + span >= midnight { start = midnight - span - 1000 }
        var lines: [String] = []
        for first in stride(from: 0, to: visitors, by: block) {
            // The first hits of a block of visitors, then their second hits: one batch each.
            for second in [false, true] {
                for visitor in first..<first + block {
                    let milliseconds = start + visitor * 1000 + (second ? 60_000 : 0)
                    lines.append(
                        nginxJSONLine(
                            milliseconds: milliseconds, args: [("u", "https://alpha.example/\(second ? "next" : "start")")],
                            ip: "203.0.113.\(visitor % 250 + 1)", ua: "Mozilla/5.0 (X11; Linux x86_64) Firefox/125.0 V\(visitor)"
                        )
                    )
                }
            }
        }
        let consumers = try ["c1", "c2"].map { id in
            try PixeldProcess.start([
                "consume", "pixel", "--redis", proxy?.url ?? redis.url, "--output", "/dev/null", "--consumer-id", id,
                "--batch-size", String(block), "--site", "alpha.example", "--log-level", "debug",
            ])
        }
        // Both waiting before the first event arrives, so that both take part from the start.
        let waiting = try Poll.until(timeout: 30, interval: 0.01) {
            try redis.keys("pixel:consumer:*").count == 2
        }
        #expect(waiting, "\(consumers.map(\.stderrText))")
        let connection = try redis.connect(timeout: 30)
        _ = try connection.command(bytes: [Array("LPUSH".utf8), Array("pixel".utf8)] + lines.map { Array($0.utf8) })
        let drained = try Poll.until(timeout: 120, interval: 0.05) {
            try redis.llen("pixel") == 0 && redis.keys("pixel:processing:*").allSatisfy { (try? redis.llen($0)) == 0 }
        }
        for consumer in consumers { consumer.terminate() }
        for consumer in consumers { _ = try consumer.waitForExit(timeout: 10) }
        #expect(drained, "\(consumers.map(\.stderrText))")
        let today = Day(timestamp: Double(now) / 1000)  // (the report spans yesterday and today)
        let report = try Self.report(redis, site: "alpha.example", from: today.previous, to: today)
        #expect(report["pageviews"] as? Int == 2 * visitors)
        #expect(report["visits"] as? Int == visitors, "\(report)")
        #expect(report["bounces"] as? Int == 0, "\(report)")
        #expect((report["total_duration_s"] as? NSNumber)?.doubleValue == Double(60 * visitors), "\(report)")
        // At least one ack was refused and its batch redone (else this tested nothing); with lost
        // replies, the reconnects change the timing, and that the proxy lost some is what counts.
        if let proxy {
            #expect(proxy.droppedReplies > 0, "the proxy never withheld a reply")
        } else {
            let refused = consumers.map { $0.stderrText.components(separatedBy: "ack refused").count - 1 }.reduce(0, +)
            #expect(refused > 0, "no ack was refused: the consumers never raced")
        }
    }

    /// Traffic of the last day, inside the consumer's time window: a simulation from yesterday
    /// and its lines from 20 h back to an hour ago.
    static func lastDay(seed: UInt64, humans: Int) -> (today: Day, simulation: Simulation, lines: [String]) {
        let now = Date().timeIntervalSince1970
        let today = Day(timestamp: now)
        let simulation = Simulation(seed: seed, humans: humans, day0: today.previous)
        let lines = simulation.lines.filter {
            let seconds = Double($0.milliseconds) / 1000
            return seconds > now - 20 * 3600 && seconds < now - 3600
        }.map(\.line)
        return (today, simulation, lines)
    }

    /// `lines` pushed to the list `pixel`, 200 per `LPUSH`.
    static func push(_ lines: [String], to redis: RedisServer) throws {
        let connection = try redis.connect(timeout: 30)
        for chunk in stride(from: 0, to: lines.count, by: 200) {
            let values = lines[chunk..<min(chunk + 200, lines.count)].map { Array($0.utf8) }
            _ = try connection.command(bytes: [Array("LPUSH".utf8), Array("pixel".utf8)] + values)
        }
    }

    /// Whether `pixel` and every processing list are empty.
    static func drained(_ redis: RedisServer) throws -> Bool {
        try redis.llen("pixel") == 0 && redis.keys("pixel:processing:*").allSatisfy { (try? redis.llen($0)) == 0 }
    }

    /// A Redis over `maxmemory` refuses every other write (ingest's `LPUSH`), but `pixeld consume
    /// --site … --archive …` drains it all the same — creating the day's visitor key, recording the
    /// archive's first lengths, applying every batch's rollups and visits — and its report counts
    /// what a Redis with room counts. (Every ack used to be a `MULTI`, which Redis 7 refuses whole
    /// while it is full: nothing drained until someone raised `maxmemory`.)
    @Test func aConsumerDrainsARedisOverMaxmemory() throws {
        let (today, simulation, lines) = Self.lastDay(seed: 11, humans: 150)
        #expect(lines.count > 200)
        var counts: [[String]] = []
        for full in [false, true] {
            let redis = try RedisServer.start()
            let archive = try TempDirectory(prefix: "pixeld-archive-oom")
            try Self.push(lines, to: redis)
            if full {
                let info = try redis.command(["INFO", "memory"]).string ?? ""
                let used = try #require(info.split(whereSeparator: \.isNewline).first { $0.hasPrefix("used_memory:") }.flatMap { Int($0.dropFirst(12)) })
                _ = try redis.command(["CONFIG", "SET", "maxmemory", "\(used - 100_000)"])
                let refused = try redis.command(["LPUSH", "probe", "x"])
                #expect(refused.isError && refused.description.contains("OOM"), "\(refused)")
            }
            let consumer = try PixeldProcess.start(
                ["consume", "pixel", "--redis", redis.url, "--archive", archive.path, "--consumer-id", "c1", "--batch-size", "64"]
                    + simulation.sites.flatMap { ["--site", $0] }
            )
            #expect(try Poll.until(timeout: 120, interval: 0.1) { try Self.drained(redis) }, "full: \(full): \(consumer.stderrText)")
            if full { #expect(try redis.command(["LPUSH", "probe", "x"]).isError, "Redis had room again: the test proves nothing") }
            consumer.terminate()
            #expect(try consumer.waitForExit(timeout: 10) == 0)
            counts.append(
                try simulation.sites.map { site in
                    let report = try Self.report(redis, site: site, from: today.previous, to: today)
                    return "\(site): \(report["pageviews"] ?? "-") pageviews, \(report["visits"] ?? "-") visits, \(report["bounces"] ?? "-") bounces"
                }
            )
        }
        #expect(counts[1] == counts[0])
        #expect(!(counts[0].first ?? "").contains(" 0 pageviews"), "\(counts[0])")
    }

    /// One consumer run uninterrupted gives the live report; the same traffic gives the same report
    /// and one archive line per hit when the consumer is SIGKILLed again and again, and when every
    /// 4th of its acks' or takes' replies is lost after Redis applied the command; and `pixeld replay`
    /// of the live archive into the killed run's Redis gives the live report again.
    @Test func killedConsumerLostRepliesAndReplayGiveTheLiveReport() throws {
        let (today, simulation, lines) = Self.lastDay(seed: 7, humans: 400)
        #expect(lines.count > 500)
        let sites = simulation.sites.flatMap { ["--site", $0] }

        func push(_ redis: RedisServer) throws { try Self.push(lines, to: redis) }
        func drained(_ redis: RedisServer) throws -> Bool { try Self.drained(redis) }
        func consume(_ url: String, _ archive: TempDirectory) throws -> PixeldProcess {
            try PixeldProcess.start(
                // (A restart after SIGKILL waits for the dead run's heartbeat: 3 s instead of 15.)
                ["consume", "pixel", "--redis", url, "--archive", archive.path, "--consumer-id", "c1", "--batch-size", "64", "--heartbeat-seconds", "3"] + sites
            )
        }

        // Uninterrupted run.
        let live = try RedisServer.start()
        let liveArchive = try TempDirectory(prefix: "pixeld-archive-live")
        try push(live)
        let first = try consume(live.url, liveArchive)
        #expect(try Poll.until(timeout: 120, interval: 0.1) { try drained(live) }, "\(first.stderrText)")
        first.terminate()
        _ = try first.waitForExit(timeout: 10)
        let expected = try Self.report(live, site: simulation.sites[0], from: today.previous, to: today)
        #expect((expected["pageviews"] as? Int ?? 0) > 100)

        /// A Redis with the live run's daily keys, so that visitor ids (and so the HyperLogLogs) are
        /// the same, and the traffic pushed.
        func copyOfLive() throws -> RedisServer {
            let redis = try RedisServer.start()
            for key in try live.keys("pixeld:key:*") {
                let value = try live.connect().command(["GET", key]).bytes ?? []
                _ = try redis.connect().command(bytes: [Array("SET".utf8), Array(key.utf8), value, Array("EX".utf8), Array("172800".utf8)])
            }
            try push(redis)
            return redis
        }
        /// Every site's report from `redis` is the live one, and the archive has one line per hit.
        func expectTheLiveResult(_ redis: RedisServer, _ archive: TempDirectory, _ run: String) throws {
            for site in simulation.sites {
                let a = try Self.report(live, site: site, from: today.previous, to: today)
                let b = try Self.report(redis, site: site, from: today.previous, to: today)
                #expect(try Self.canonical(a) == Self.canonical(b), "\(run) changed the report of \(site)")
            }
            let archived = try FileManager.default.contentsOfDirectory(atPath: archive.path)
                .filter { $0.hasSuffix(".jsonl") }
                .map { try String(contentsOfFile: archive.appending($0).path, encoding: .utf8).split(separator: "\n").count }
                .reduce(0, +)
            #expect(archived == lines.count, "\(run): \(archived) archive lines for \(lines.count) hits")
        }

        // Killed run.
        let killed = try copyOfLive()
        let killedArchive = try TempDirectory(prefix: "pixeld-archive-killed")
        var kills = 0
        while try !drained(killed) && kills < 6 {
            let consumer = try consume(killed.url, killedArchive)
            let before = try killed.llen("pixel")
            _ = Poll.until(timeout: 30, interval: 0.005) { ((try? killed.llen("pixel")) ?? 0) < before - 100 || ((try? drained(killed)) ?? true) }
            consumer.kill()  // SIGKILL, mid-batch as likely as not
            _ = try consumer.waitForExit(timeout: 10)
            kills += 1
        }
        let last = try consume(killed.url, killedArchive)
        #expect(try Poll.until(timeout: 120, interval: 0.1) { try drained(killed) })
        last.terminate()
        _ = try last.waitForExit(timeout: 10)
        #expect(kills >= 2)
        try expectTheLiveResult(killed, killedArchive, "a killed consumer")

        // Runs that lose replies: acks (and the reads pipelined ahead of them), then takes.
        for replies in [ReplyLosingProxy.Replies.acks, .arrays] {
            let redis = try copyOfLive()
            let archive = try TempDirectory(prefix: "pixeld-archive-lost")
            let proxy = try ReplyLosingProxy(upstreamPort: redis.port, dropEvery: 4, replies: replies)
            defer { proxy.close() }
            let consumer = try consume(proxy.url, archive)
            #expect(try Poll.until(timeout: 120, interval: 0.1) { try drained(redis) }, "\(consumer.stderrText)")
            consumer.terminate()
            #expect(try consumer.waitForExit(timeout: 10) == 0)
            #expect(proxy.droppedReplies >= 3, "\(replies): the proxy withheld only \(proxy.droppedReplies) replies")
            try expectTheLiveResult(redis, archive, "losing \(replies) replies")
        }

        // Replay of the live archive into a Redis without rollups gives the live report. That Redis
        // holds only the live run's daily visitor keys (pixeld:key:*, copied with their TTLs), as a
        // Redis whose rollups were lost would; the replay itself reads the visitor ids from the
        // archive (it passes without these keys too). A replay that wrote nothing leaves every
        // report there empty, so it cannot pass.
        let replayed = try RedisServer.start()
        let source = try live.connect(timeout: 30)
        let target = try replayed.connect(timeout: 30)
        let dailyKeys = try live.keys("pixeld:key:*")
        #expect(!dailyKeys.isEmpty, "the live run wrote no daily visitor key")
        for key in dailyKeys {
            let dump = try #require(try source.command(["DUMP", key]).bytes, "DUMP \(key)")
            let ttl = try #require(try source.command(["PTTL", key]).integer, "PTTL \(key)")
            let restored = try target.command(bytes: [Array("RESTORE".utf8), Array(key.utf8), Array(String(max(ttl, 0)).utf8), dump])
            #expect(restored == .simpleString("OK"), "RESTORE \(key): \(restored)")
        }
        #expect(try replayed.keys().sorted() == dailyKeys.sorted())
        for site in simulation.sites {
            let empty = try Self.report(replayed, site: site, from: today.previous, to: today)
            #expect(empty["pageviews"] as? Int == 0, "\(site) has pageviews before the replay: \(empty["pageviews"] ?? "none")")
        }
        let replay = try PixeldProcess.start([
            "replay", "--redis", replayed.url, "--archive", liveArchive.path, "--from", today.previous.description, "--to",
            today.description,
        ])
        #expect(try replay.waitForExit(timeout: 60) == 0, "\(replay.stderrText)")
        for site in simulation.sites {
            let liveReport = try Self.report(live, site: site, from: today.previous, to: today)
            let replayedReport = try Self.report(replayed, site: site, from: today.previous, to: today)
            #expect(try Self.canonical(replayedReport) == Self.canonical(liveReport), "the replay did not rebuild the live report of \(site)")
        }
        // A wrong --archive, or a range without archive files, touches no rollup; days without files in
        // a range that has some keep theirs.
        let reports = try simulation.sites.map { try Self.canonical(Self.report(live, site: $0, from: today.previous, to: today)) }
        for (arguments, message) in [
            (["--archive", liveArchive.path + "-missing", "--from", today.previous.description, "--to", today.description], "--archive: cannot read"),
            (["--archive", liveArchive.path, "--from", "2001-01-01", "--to", "2001-01-31"], "no archive files for 2001-01-01 … 2001-01-31"),
        ] {
            let refused = try PixeldProcess.start(["replay", "--redis", live.url] + arguments)
            #expect(try refused.waitForExit(timeout: 60) == 1, "\(arguments)")
            #expect(refused.stderrText.hasPrefix("Error: " + message), "\(refused.stderrText)")
        }
        let wider = try PixeldProcess.start([
            "replay", "--redis", live.url, "--archive", liveArchive.path, "--from", Day(number: today.number - 5).description, "--to",
            today.description,
        ])
        #expect(try wider.waitForExit(timeout: 60) == 0, "\(wider.stderrText)")
        #expect(wider.stdoutText.contains("day(s), their rollups left as they were"), "\(wider.stdoutText)")
        let reportsAfter = try simulation.sites.map { try Self.canonical(Self.report(live, site: $0, from: today.previous, to: today)) }
        #expect(reportsAfter == reports, "a refused or wider replay changed the reports")

        try Self.expectNoPersonalData(
            redis: live, archive: liveArchive.path, needles: simulation.ips + Array(simulation.userAgents)
        )
    }

    /// Checks every Redis key (name and value) and every archive file for the needles.
    static func expectNoPersonalData(redis: RedisServer, archive: String, needles: [String]) throws {
        var lines: [[UInt8]] = []
        for name in try FileManager.default.contentsOfDirectory(atPath: archive) {
            lines.append(contentsOf: try ArchiveReader.lines(of: archive + "/" + name))
        }
        try PersonalData.expectNone(of: needles, in: redis, archive: lines)
    }
}
