import Foundation
@testable import PixelAnalytics
import PixeldTestSupport
import Testing

/// `pixeld replay` rebuilds only what its archive can rebuild: all of a site it holds accepted hits of,
/// the drop counts of a site it holds drops of alone, and the all-sites drop count. Another site's
/// rollups (another consumer's archive, say) stay as they are.
@Suite(.serialized, .enabled(if: TestEnvironment.canRun("redis-server")))
struct ReplayScopeTests {
    @Test func replayRebuildsOnlyWhatItsArchiveHolds() throws {
        let redis = try RedisServer.start()
        let archive = try TempDirectory(prefix: "pixeld-replay-scope")
        let day = Day(number: Day(timestamp: Date().timeIntervalSince1970).number - 2)
        let noon = Double(day.number * 86_400 + 43_200)
        func hit(_ seconds: Double, _ path: String, _ vid: String) -> String {
            "{\"ts\":\(noon + seconds),\"v\":1,\"status\":\"ok\",\"site\":\"a.example\",\"event\":\"pageview\",\"path\":\"\(path)\",\"vid\":\"\(vid)\",\"source\":\"(direct)\",\"browser\":\"Firefox\",\"os\":\"Linux\",\"device\":\"desktop\"}"
        }
        let lines = [
            hit(0, "/", String(repeating: "1", count: 32)),
            hit(60, "/blog/", String(repeating: "1", count: 32)),
            hit(120, "/", String(repeating: "2", count: 32)),
            "{\"ts\":\(noon + 180),\"v\":1,\"status\":\"dropped\",\"site\":\"a.example\",\"event\":\"pageview\",\"path\":\"/x\",\"reason\":\"bot_list\",\"rule\":\"curl\"}",
            // c.example: only a drop here (its accepted hits are in another consumer's archive).
            "{\"ts\":\(noon + 240),\"v\":1,\"status\":\"dropped\",\"site\":\"c.example\",\"event\":\"pageview\",\"path\":\"/\",\"reason\":\"bot_list\",\"rule\":\"curl\"}",
        ]
        try (lines.joined(separator: "\n") + "\n").write(toFile: archive.path + "/\(day).c1.jsonl", atomically: true, encoding: .utf8)
        let base = "pixeld:site:a.example:\(day):"
        _ = try redis.command(["HSET", base + "totals", "pageviews", "99"])  // stale: rebuilt
        _ = try redis.command(["HSET", "pixeld:site:b.example:\(day):totals", "pageviews", "5"])  // another archive's
        _ = try redis.command(["HSET", "pixeld:site:c.example:\(day):totals", "pageviews", "8"])  // kept
        _ = try redis.command(["HSET", "pixeld:site:c.example:\(day):drops", "bot_list", "9"])  // rebuilt
        _ = try redis.command(["HSET", "pixeld:drops:\(day)", "bot_list", "7", "unknown_site", "4"])  // rebuilt

        // The archive and the retention from the consumer's variables.
        func replay() throws {
            let process = try PixeldProcess.start(
                ["replay", "--redis", redis.url, "--from", day.description, "--to", day.description],
                environment: ["PIXELD_ARCHIVE": archive.path, "PIXELD_RETENTION_DAYS": "3"]
            )
            #expect(try process.waitForExit(timeout: 30) == 0, "\(process.stderrText)")
            #expect(process.stdoutText.contains("sites rebuilt: a.example"), "\(process.stdoutText)")
        }
        try replay()
        #expect(try redis.command(["HGET", base + "totals", "pageviews"]).string == "3")
        #expect(try redis.command(["HGET", base + "totals", "visits"]).string == "2")
        #expect(try redis.command(["HGET", base + "drops", "bot_list"]).string == "1")
        // Expires 3 days after the day ends (PIXELD_RETENTION_DAYS), not 400.
        let ttl = try redis.command(["TTL", base + "totals"]).integer ?? -1
        #expect(ttl > 0 && ttl <= 4 * 86_400, "TTL \(ttl)")
        #expect(try redis.command(["HGET", "pixeld:site:b.example:\(day):totals", "pageviews"]).string == "5", "another site's rollups were deleted")
        #expect(try redis.command(["HGET", "pixeld:site:c.example:\(day):totals", "pageviews"]).string == "8", "a drops-only site lost its totals")
        #expect(try redis.command(["HGETALL", "pixeld:site:c.example:\(day):drops"]).array?.compactMap(\.string) == ["bot_list", "1"])
        #expect(try redis.command(["HGETALL", "pixeld:drops:\(day)"]).array?.compactMap(\.string) == ["bot_list", "2"])
        #expect(try redis.command(["TTL", "pixeld:drops:\(day)"]).integer ?? -1 > 0)

        // Idempotent: the same again.
        try replay()
        #expect(try redis.command(["HGETALL", "pixeld:drops:\(day)"]).array?.compactMap(\.string) == ["bot_list", "2"])
        #expect(try redis.command(["HGET", base + "totals", "pageviews"]).string == "3")
        #expect(try redis.command(["HGET", "pixeld:site:b.example:\(day):totals", "pageviews"]).string == "5")
        #expect(try redis.command(["HGET", "pixeld:site:c.example:\(day):totals", "pageviews"]).string == "8")
    }

    /// A hit whose day is closed (three days old: a `too_old` drop) goes to the file of the day it is
    /// processed on, and its drop counts there: live, and in a replay of that day, which reads that
    /// day's files (before, live counted it on its own day, which a replay of that day then lost).
    @Test func aDropArchivedInALaterDaysFileCountsOnThatDay() throws {
        let redis = try RedisServer.start()
        let archive = try TempDirectory(prefix: "pixeld-replay-too-old")
        let now = Int(Date().timeIntervalSince1970 * 1000)
        let userAgent = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
        for milliseconds in [now - 3 * 86_400_000, now] {
            let line = nginxJSONLine(milliseconds: milliseconds, args: [("e", "pageview"), ("u", "https://example.com/")], ip: "192.0.2.7", ua: userAgent)
            _ = try redis.command(["LPUSH", "pixel", line])
        }
        let consume = try PixeldProcess.start([
            "consume", "pixel", "--redis", redis.url, "--site", "example.com", "--archive", archive.path, "--consumer-id", "c1", "--heartbeat-seconds", "3",
        ])
        // Both lines in one file: the day they were processed on (read from the file: midnight may pass).
        var file: String?
        #expect(Poll.until(timeout: 20) {
            // The day files (not the consumer's lock, `.c1.lock`).
            let names = ((try? FileManager.default.contentsOfDirectory(atPath: archive.path)) ?? []).filter { !$0.hasPrefix(".") }
            file = names.first { $0.hasSuffix(".c1.jsonl") }
            return names.count == 1 && file.map { ((try? ArchiveReader.lines(of: archive.appending($0).path).count) ?? 0) == 2 } == true
        }, "\(consume.stderrText)")
        consume.terminate()
        #expect(try consume.waitForExit(timeout: 10) == 0)
        let today = try #require(file.flatMap { Day(String($0.prefix(10))) }), old = Day(number: Day(timestamp: Double(now) / 1000).number - 3)
        func drops() throws -> [[String]] {
            try ["pixeld:drops:\(today)", "pixeld:site:example.com:\(today):drops", "pixeld:drops:\(old)"].map {
                try redis.command(["HGETALL", $0]).array?.compactMap(\.string) ?? []
            }
        }
        let live = try drops()
        #expect(live == [["too_old", "1"], ["too_old", "1"], []], "live: \(live)")
        let replay = try PixeldProcess.start(
            ["replay", "--redis", redis.url, "--from", today.description, "--to", today.description], environment: ["PIXELD_ARCHIVE": archive.path]
        )
        #expect(try replay.waitForExit(timeout: 30) == 0, "\(replay.stderrText)")
        #expect(try drops() == live, "replayed")
        #expect(try redis.command(["HGET", "pixeld:site:example.com:\(today):totals", "pageviews"]).string == "1")
    }

    /// A backend whose clock is far off (1970, 2099): its hits' drops count on the day they are
    /// processed on and their lines go to that day's file; no file of 1970 or 2099 is opened (2099's
    /// would never close, and held a descriptor). The report from the archive and a replay of that
    /// day count the drops as live does.
    @Test func dropsOutsideTheTimeWindowAreFiledAndCountedOnTheDayTheyAreProcessed() throws {
        let redis = try RedisServer.start()
        let archive = try TempDirectory(prefix: "pixeld-clock-far-off")
        let userAgent = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
        for milliseconds in [1_000, 4_070_908_800_000, Int(Date().timeIntervalSince1970 * 1000)] {
            let line = nginxJSONLine(milliseconds: milliseconds, args: [("e", "pageview"), ("u", "https://example.com/")], ip: "192.0.2.7", ua: userAgent)
            _ = try redis.command(["LPUSH", "pixel", line])
        }
        let consume = try PixeldProcess.start([
            "consume", "pixel", "--redis", redis.url, "--site", "example.com", "--archive", archive.path, "--consumer-id", "c1", "--heartbeat-seconds", "3",
        ])
        // The three lines in one file: the day they were processed on.
        var names: [String] = []
        #expect(Poll.until(timeout: 20) {
            names = ((try? FileManager.default.contentsOfDirectory(atPath: archive.path)) ?? []).filter { !$0.hasPrefix(".") }
            return names.count == 1 && ((try? ArchiveReader.lines(of: archive.appending(names[0]).path).count) ?? 0) == 3
        }, "files \(names); \(consume.stderrText)")
        consume.terminate()
        #expect(try consume.waitForExit(timeout: 10) == 0)
        let today = try #require(names.first.flatMap { Day(String($0.prefix(10))) })
        func drops() throws -> [[String: Int]] {
            try ["pixeld:drops:\(today)", "pixeld:site:example.com:\(today):drops"].map { key in
                let items = try redis.command(["HGETALL", key]).array?.compactMap(\.string) ?? []
                return Dictionary(uniqueKeysWithValues: stride(from: 0, to: items.count, by: 2).map { (items[$0], Int(items[$0 + 1]) ?? 0) })
            }
        }
        let live = try drops()
        #expect(live == [["too_old": 1, "in_future": 1], ["too_old": 1, "in_future": 1]], "live: \(live)")
        for key in ["pixeld:drops:\(today)", "pixeld:site:example.com:\(today):drops"] {
            #expect(try redis.command(["EXPIRETIME", key]).integer == Int64(RollupConfiguration().expireAt(today)), "\(key)")
        }
        let keys = try redis.keys()
        #expect(!keys.contains { $0.contains("1970-") || $0.contains("2099-") }, "\(keys)")
        let report = ArchiveReport(site: "example.com", from: today, to: today)
        let records = try ArchiveReader.outcomes(directory: archive.path, days: report.readDays, site: "example.com", maxRecords: 100)
        #expect(report.report(records.outcomes).drops == live[1], "from the archive")
        let replay = try PixeldProcess.start(
            ["replay", "--redis", redis.url, "--from", today.description, "--to", today.description], environment: ["PIXELD_ARCHIVE": archive.path]
        )
        #expect(try replay.waitForExit(timeout: 30) == 0, "\(replay.stderrText)")
        #expect(try drops() == live, "replayed")
    }

    /// Two days of `perDay` hits of `a.example` in an archive, their live pageviews set to 99 (so
    /// that "as it was" and "rebuilt" can be told apart), and helpers to replay and look.
    private struct TwoArchivedDays {
        let redis: RedisServer
        let archive: TempDirectory
        let days: [Day]
        let perDay = 15_000

        init(prefix: String) throws {
            redis = try RedisServer.start()
            archive = try TempDirectory(prefix: prefix)
            let today = Day(timestamp: Date().timeIntervalSince1970).number
            days = [Day(number: today - 3), Day(number: today - 2)]
            for day in days {
                let noon = Double(day.number * 86_400 + 43_200)
                var text = ""
                for index in 0..<perDay {
                    let vid = String(repeating: "0", count: 28) + String(format: "%04x", index % 3_000)
                    text += "{\"ts\":\(noon + Double(index) * 0.5),\"v\":1,\"status\":\"ok\",\"site\":\"a.example\",\"event\":\"pageview\",\"path\":\"/p\(index % 50)\",\"vid\":\"\(vid)\",\"source\":\"(direct)\",\"browser\":\"Firefox\",\"os\":\"Linux\",\"device\":\"desktop\"}\n"
                }
                try text.write(toFile: archive.path + "/\(day).c1.jsonl", atomically: true, encoding: .utf8)
                _ = try redis.command(["HSET", "pixeld:site:a.example:\(day):totals", "pageviews", "99"])
            }
        }

        func replay() throws -> PixeldProcess {
            try PixeldProcess.start(["replay", "--redis", redis.url, "--archive", archive.path, "--from", "\(days[0])", "--to", "\(days[1])"])
        }

        /// The replay's own keys (`pixeld:replay:…`).
        func stagingKeys() throws -> [String] {
            try redis.command(["SCAN", "0", "MATCH", "pixeld:replay:*", "COUNT", "100000"]).array?[1].array?.compactMap(\.string) ?? []
        }

        func pageviews() throws -> [String] {
            try days.map { try redis.command(["HGET", "pixeld:site:a.example:\($0):totals", "pageviews"]).string ?? "none" }
        }
    }

    /// Interrupted (SIGTERM while it counts), a replay leaves each day's rollups whole — as they
    /// were, or rebuilt; never emptied or half counted — removes its staging keys and says so
    /// (before, it deleted the whole range first and then counted, and died of the signal: days at
    /// 0 or partial, no message). Run again, it rebuilds every day.
    @Test func anInterruptedReplayLeavesEachDayAsItWasOrRebuilt() throws {
        let setup = try TwoArchivedDays(prefix: "pixeld-replay-interrupted")
        let interrupted = try setup.replay()
        // Keys of its own in Redis: it is counting. Its writes held for a second, the signal
        // certainly comes before it is done (on any machine).
        try #require(Poll.until(timeout: 30, interval: 0.005) { try !setup.stagingKeys().isEmpty }, "\(interrupted.stderrText)")
        _ = try setup.redis.command(["CLIENT", "PAUSE", "1000", "WRITE"])
        interrupted.terminate()
        let status = try interrupted.waitForExit(timeout: 30)
        let after = try setup.pageviews()
        #expect(after.allSatisfy { $0 == "99" || $0 == "\(setup.perDay)" }, "after SIGTERM: \(after), exit \(status): \(interrupted.stderrText)")
        #expect(status == 1 && interrupted.stderrText.contains("interrupted (SIGTERM)"), "exit \(status): \(interrupted.stderrText)")
        #expect(try setup.stagingKeys().isEmpty, "staging keys left behind")
        let again = try setup.replay()
        #expect(try again.waitForExit(timeout: 60) == 0, "\(again.stderrText)")
        #expect(try setup.pageviews() == ["\(setup.perDay)", "\(setup.perDay)"])
        #expect(try setup.stagingKeys().isEmpty)
    }

    /// A staging that was discarded never replaces a day: each day's swap runs only while the
    /// staging's marker exists, which a cleanup deletes first — so a swap whose reply was lost, and
    /// which reaches Redis after the replay gave up and discarded its keys, does nothing. Here the
    /// staging is deleted from under the replay while it counts (the later batches then write an
    /// incomplete one): the days stay as they were and the replay says its staging is gone. Without
    /// the marker, the incomplete counts replaced the days.
    @Test func aDiscardedStagingNeverReplacesADay() throws {
        let setup = try TwoArchivedDays(prefix: "pixeld-replay-discarded")
        let replay = try setup.replay()
        var keys: [String] = []
        try #require(Poll.until(timeout: 30, interval: 0.002) { keys = try setup.stagingKeys(); return !keys.isEmpty }, "\(replay.stderrText)")
        _ = try setup.redis.command(["DEL"] + keys)
        let status = try replay.waitForExit(timeout: 60)
        #expect(try setup.pageviews() == ["99", "99"], "exit \(status): \(replay.stderrText)")
        #expect(status == 1 && replay.stderrText.contains("staging keys are gone"), "exit \(status): \(replay.stderrText)")
        #expect(try setup.stagingKeys().isEmpty, "staging keys left behind")
    }
}
