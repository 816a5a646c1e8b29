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

    /// The built `pixeld` alone in a new directory (no `pixeld-ingest` beside it): a hard link, so
    /// that no file is open for writing while other tests spawn processes (a child that inherits such
    /// a descriptor makes `exec` of the file fail with ETXTBSY); a copy across file systems.
    static func loneCopy() throws -> (directory: TempDirectory, pixeld: URL) {
        let directory = try TempDirectory(prefix: "pixeld-alone")
        let copy = directory.appending("pixeld")
        let built = try PixeldProcess.binaryURL()
        do {
            try FileManager.default.linkItem(at: built, to: copy)
        } catch {
            try FileManager.default.copyItem(at: built, to: copy)
        }
        return (directory, copy)
    }

    /// One RFC 3164 datagram of facility local3, program `pixel`, to 127.0.0.1:`port`, sent by `logger`.
    static func sendLocal3(_ message: String, toUDP port: Int) throws {
        try ChildProcess.run(
            "logger", ["--rfc3164", "-d", "-n", "127.0.0.1", "-P", String(port), "-p", "local3.info", "-t", "pixel", "--", message],
            timeout: 10
        )
    }

    /// What `arguments` print on stderr, after checking that they fail at start with `status` and
    /// print exactly one line (no usage text after it).
    static func startFailure(
        _ executable: URL, _ arguments: [String], environment: [String: String] = [:], status expected: Int32 = 64
    ) throws -> String {
        let process = try ChildProcess(executable: executable, arguments: arguments, environment: environment)
        let status = try process.waitForExit(timeout: 20)
        #expect(status == expected, "\(arguments): exit \(status)")
        let lines = process.stderr.text.split(separator: "\n")
        #expect(lines.count == 1, "\(arguments): \(lines.count) lines on stderr: \(process.stderr.text)")
        return lines.first.map(String.init) ?? ""
    }

    @Test("pixeld ingest becomes pixeld-ingest in the same process and pushes what it receives")
    func ingestRunsTheLeanProgram() throws {
        let redis = try RedisServer.start()
        let port = try PortAllocator.freeUDPPort()
        let ingest = try PixeldProcess.start(["ingest", "--udp", "127.0.0.1:\(port)", "--redis", redis.url])
        defer { ingest.terminate() }
        try ingest.waitForStderr(containing: "ingest ready")
        #expect(try Self.executable(of: ingest.pid).hasSuffix("/pixeld-ingest"))
        try Self.sendLocal3("1763805600.001,e=pageview", toUDP: port)
        #expect(try redis.waitForLength("pixel", atLeast: 1, timeout: 10) == 1)
        #expect(try redis.lrange("pixel") == ["1763805600.001,e=pageview"])
    }

    @Test("without pixeld-ingest next to it, pixeld runs ingest itself")
    func withoutTheLeanProgramPixeldIngestsItself() throws {
        let redis = try RedisServer.start()
        let port = try PortAllocator.freeUDPPort()
        let (alone, copy) = try Self.loneCopy()
        defer { withExtendedLifetime(alone) {} }
        let ingest = try ChildProcess(executable: copy, arguments: ["ingest", "--udp", "127.0.0.1:\(port)", "--redis", redis.url])
        defer { ingest.terminate() }
        #expect(Poll.until(timeout: 20) { ingest.stderr.text.contains("ingest ready") }, "\(ingest.tail)")
        #expect(try Self.executable(of: ingest.pid) == copy.path)
        try Self.sendLocal3("in process", toUDP: port)
        #expect(try redis.waitForLength("pixel", atLeast: 1, timeout: 10) == 1)
    }

    @Test("a bad flag fails at start with the same one clear line, from either program")
    func badFlagsFailTheSameWay() throws {
        let (alone, copy) = try Self.loneCopy()
        defer { withExtendedLifetime(alone) {} }
        let cases = [
            ["ingest", "--buffer-bytes", "1"], ["ingest", "--no-such-flag"], ["ingest", "--shutdown-timeout", "-1"],
            // Found at start, not when binding (which exited 1).
            ["ingest", "--udp", "example.invalid:5514"], ["ingest", "--unix-owner", "no-such-user-x", "--unix", "/tmp/pixeld-never.sock"],
            // The error names the flag (before, the parsers' own text did not).
            ["ingest", "--facility", "local9"], ["ingest", "--program", "bad prog"], ["ingest", "--key-prefix", "a b"],
        ]
        for arguments in cases {
            let lean = try Self.startFailure(try PixeldProcess.binaryURL(), arguments)
            #expect(lean.hasPrefix("Error: ") && lean.contains(arguments[1]), "\(lean)")
            #expect(try Self.startFailure(copy, arguments) == lean)
        }
    }

    @Test("a first argument that names no command says so and lists the commands")
    func unknownCommandNamesTheCommands() throws {
        let binary = try PixeldProcess.binaryURL()
        for word in ["bogus", "ingset"] {
            #expect(
                try Self.startFailure(binary, [word])
                    == "Error: unknown command '\(word)'; the commands are ingest, consume, report, replay, serve (see pixeld --help)"
            )
        }
        // A flag, or a known command with a bad argument, keeps ArgumentParser's own message.
        #expect(try Self.startFailure(binary, ["--bogus"]) == "Error: Unknown option '--bogus'")
        #expect(try Self.startFailure(binary, ["consume"]) == "Error: Missing expected argument '<program>'")
    }

    /// ArgumentParser takes an argument that begins with '-' for a flag, so `--program -x` said
    /// "Missing value for '--program <name>'" although a value was there; the line now says how to
    /// give it. A value truly missing keeps the plain message.
    @Test("a flag value that begins with '-' gets a hint: --flag=-value")
    func dashValuesGetAHint() throws {
        let (alone, copy) = try Self.loneCopy()
        defer { withExtendedLifetime(alone) {} }
        let cases: [([String], String)] = [
            (["ingest", "--program", "-x"], "Error: Missing value for '--program <name>' (a value that begins with '-' is written --program=-x)"),
            (["ingest", "--unix", "-sock"], "Error: Missing value for '--unix <path>' (a value that begins with '-' is written --unix=-sock)"),
            // A repeatable flag whose first use has its value.
            (["ingest", "--udp", "127.0.0.1:9", "--udp", "-x"], "Error: Missing value for '--udp <host:port>' (a value that begins with '-' is written --udp=-x)"),
            (["ingest", "--program"], "Error: Missing value for '--program <name>'"),
            (["ingest", "--program", "--udp", "127.0.0.1:9"], "Error: Missing value for '--program <name>'"),
        ]
        for (arguments, expected) in cases {
            #expect(try Self.startFailure(try PixeldProcess.binaryURL(), arguments) == expected)
            #expect(try Self.startFailure(copy, arguments) == expected)
        }
    }

    @Test("flags that would change nothing fail at start, naming what they need; a bad --redis never shows its password")
    func uselessFlagsAndPasswordsAtStart() throws {
        let binary = try PixeldProcess.binaryURL()
        let cases: [([String], [String: String], String)] = [
            (
                ["ingest", "--spool-sync", "never", "--spool-max-bytes", "2000000"], [:],
                "Error: --spool-max-bytes, --spool-sync (flag or PIXELD_* variable) need --spool DIR: without it nothing is spooled"
            ),
            (
                ["ingest"], ["PIXELD_UNIX_MODE": "0600"],
                "Error: --unix-mode (flag or PIXELD_* variable) needs --unix PATH: they apply to unix sockets only"
            ),
            (
                ["ingest", "--when-full", "drop-oldest"], [:],
                "Error: --when-full drop-oldest (flag or PIXELD_* variable) needs --max-list-length N: without a limit no list is ever full"
            ),
            (
                ["serve", "--public-site", "example.com"], [:],
                "Error: --public-site (flag or PIXELD_* variable) needs --token (or PIXELD_TOKEN): without a token every site is public"
            ),
            (
                ["serve", "--listen", "nosuch.invalid:8088"], [:],
                "Error: --listen 'nosuch.invalid:8088': the host must be a numeric IPv4 or IPv6 address, or localhost (expected HOST:PORT or [IPV6]:PORT)"
            ),
            (
                ["report", "--site", "example.com", "--redis", "redis://:s3cret@127.0.0.1:x"], [:],
                "Error: --redis: bad port in 'redis://:***@127.0.0.1:x'"
            ),
            (
                ["consume", "pixel"], ["PIXELD_REDIS": "unix:///tmp/r.sock?db=x&password=s3cret"],
                "Error: --redis: db must be a number in 'unix:///tmp/r.sock?db=x&password=***'"
            ),
        ]
        for (arguments, environment, expected) in cases {
            let line = try Self.startFailure(binary, arguments, environment: environment)
            #expect(line == expected, "\(arguments) \(environment)")
        }
        // The same flags with what they need get past these checks (the port 1 bind then fails, status 1).
        let spooled = try Self.startFailure(
            binary, ["ingest", "--udp", "127.0.0.1:1", "--spool", "/nonexistent/spool", "--spool-sync", "never"], status: 1
        )
        #expect(spooled.hasPrefix("Error: ") && spooled.contains("/nonexistent/spool"), "\(spooled)")
    }

    @Test("consume: analytics flags without a site, --output/--archive without a fixed --consumer-id, and --output with --archive fail at start")
    func consumeRefusesFlagsItWouldIgnoreOrMisuse() throws {
        let binary = try PixeldProcess.binaryURL()
        let withoutSite = try Self.startFailure(binary, ["consume", "pixel", "--archive", "/tmp/a", "--respect-dnt", "--consumer-id", "c"])
        #expect(withoutSite == "Error: --archive, --respect-dnt (flag or PIXELD_* variable) need at least one --site (or PIXELD_SITE): without one, consume prints the raw events", "\(withoutSite)")
        // The same from the environment only (a PIXELD_SITE misspelt, say): not raw events with IPs.
        let fromEnvironment = try Self.startFailure(
            binary, ["consume", "pixel"], environment: ["PIXELD_ARCHIVE": "/tmp/a", "PIXELD_CONSUMER_ID": "c", "PIXELD_SITES": "example.com"]
        )
        #expect(fromEnvironment.hasPrefix("Error: --archive (flag or PIXELD_* variable) needs at least one --site"), "\(fromEnvironment)")
        let noSite = try Self.startFailure(binary, ["report"])
        #expect(noSite == "Error: --site is required (or PIXELD_SITE naming one site)", "\(noSite)")
        let twoSites = try Self.startFailure(binary, ["report"], environment: ["PIXELD_SITE": "a.example b.example"])
        #expect(twoSites == "Error: --site is required: PIXELD_SITE names 2 sites, and a report is of one", "\(twoSites)")
        let twoFlags = try Self.startFailure(binary, ["report", "--site", "a.example", "--site", "b.example"])
        #expect(twoFlags == "Error: --site is given 2 times, and a report is of one site", "\(twoFlags)")
        // Its usage shows one --site, required (not ArgumentParser's `[--site <host> ...]` for the array).
        let help = try ChildProcess.run(binary.path, ["report", "--help"]).stdout
        #expect(help.contains("USAGE: pixeld report [--redis <url>] [--log-level <level>] --site <host> [--from <day>]"), "\(help)")
        // consume's PROGRAM: a key ingest could make, outside pixeld's own key space.
        let ownKey = try Self.startFailure(binary, ["consume", "pixeld:foo"])
        #expect(ownKey.hasPrefix("Error: PROGRAM 'pixeld:foo' is in pixeld's own key space"), "\(ownKey)")
        let processing = try Self.startFailure(binary, ["consume", "pixel:processing:c1"])
        #expect(processing.hasPrefix("Error: PROGRAM 'pixel:processing:c1' is in pixeld's own key space"), "\(processing)")
        let spaced = try Self.startFailure(binary, ["consume", "bad name"])
        #expect(spaced.hasPrefix("Error: PROGRAM 'bad name' has a space or control character"), "\(spaced)")
        let emptyToken = try Self.startFailure(binary, ["serve", "--listen", "127.0.0.1:1"], environment: ["PIXELD_TOKEN": ""])
        #expect(emptyToken.hasPrefix("Error: PIXELD_TOKEN is set but empty"), "\(emptyToken)")
        let streams = try Self.startFailure(binary, ["serve", "--listen", "127.0.0.1:1", "--live-streams-per-client", "0"])
        #expect(streams == "Error: --live-streams-per-client: '0' must be a whole number in 1…256", "\(streams)")
        let badSwitch = try Self.startFailure(binary, ["consume", "pixel", "--site", "example.com"], environment: ["PIXELD_RESPECT_DNT": "maybe"])
        #expect(badSwitch == "Error: PIXELD_RESPECT_DNT='maybe' (--respect-dnt) must be 1, true, yes, on, 0, false, no or off", "\(badSwitch)")
        for files in [["--output", "/tmp/events.jsonl"], ["--site", "example.com", "--archive", "/tmp/a"]] {
            let line = try Self.startFailure(binary, ["consume", "pixel"] + files)
            #expect(line.hasPrefix("Error: --output and --archive need a fixed --consumer-id"), "\(files): \(line)")
        }
        // With an archive, --output would be created and never written.
        let both = try Self.startFailure(
            binary, ["consume", "pixel", "--site", "example.com", "--archive", "/tmp/a", "--consumer-id", "c"], environment: ["PIXELD_OUTPUT": "/tmp/o"]
        )
        #expect(both == "Error: --output and --archive (flag or PIXELD_* variable) cannot be combined: with --archive the JSON lines go to the archive's day files", "\(both)")
    }

    @Test("serve: --retention-days (or PIXELD_RETENTION_DAYS) is checked as consume's, before anything starts")
    func serveChecksTheRetention() throws {
        let binary = try PixeldProcess.binaryURL()
        let flag = try Self.startFailure(binary, ["serve", "--listen", "127.0.0.1:1", "--retention-days", "0"])
        #expect(flag == "Error: --retention-days: '0' must be a whole number in 1…36500", "\(flag)")
        let variable = try Self.startFailure(binary, ["serve", "--listen", "127.0.0.1:1"], environment: ["PIXELD_RETENTION_DAYS": "36501"])
        #expect(variable == "Error: --retention-days: '36501' must be a whole number in 1…36500", "\(variable)")
    }

    @Test("serve: --allowed-host (or PIXELD_ALLOWED_HOST) takes host names, and not with a token, checked before anything starts")
    func serveChecksTheAllowedHosts() throws {
        let binary = try PixeldProcess.binaryURL()
        let port = try Self.startFailure(binary, ["serve", "--listen", "127.0.0.1:1", "--allowed-host", "stats.example:8088"])
        #expect(port == "Error: --allowed-host: 'stats.example:8088' is not a host name (letters, digits, hyphens and dots; no port)", "\(port)")
        let variable = try Self.startFailure(
            binary, ["serve", "--listen", "127.0.0.1:1"], environment: ["PIXELD_ALLOWED_HOST": "stats.example *.example"]
        )
        #expect(variable == "Error: --allowed-host: '*.example' is not a host name (letters, digits, hyphens and dots; no port)", "\(variable)")
        // A port given alone is not a host name either.
        let number = try Self.startFailure(binary, ["serve", "--listen", "127.0.0.1:1", "--allowed-host", "8080"])
        #expect(number == "Error: --allowed-host: '8080' is not a host name (letters, digits, hyphens and dots; no port)", "\(number)")
        // An IPv4 address (always answered) is still taken, as before.
        let address = try ChildProcess(
            executable: binary, arguments: ["serve", "--listen", "127.0.0.1:\(try PortAllocator.freeTCPPort())", "--allowed-host", "192.168.1.10", "--redis", "redis://127.0.0.1:1/0"]
        )
        defer { address.stop(timeout: 5) }
        let started = Poll.until(timeout: 20, interval: 0.05) { address.stderr.text.contains("serve ready") || !address.isRunning }
        #expect(started && address.isRunning, "\(address.stderr.text)")
        let withToken = try Self.startFailure(
            binary, ["serve", "--listen", "127.0.0.1:1", "--allowed-host", "stats.example"], environment: ["PIXELD_TOKEN": "0123456789"]
        )
        #expect(
            withToken == "Error: --allowed-host (flag or PIXELD_* variable) has no effect with a token: the Host check guards only "
                + "a dashboard without --token",
            "\(withToken)"
        )
    }

    @Test("a failure at run time is one line too, with status 1: a UDP port already taken, a report without Redis")
    func aRuntimeFailureIsOneLine() throws {
        let holder = try DatagramSink.udp()
        let taken = try Self.startFailure(
            try PixeldProcess.binaryURL(), ["ingest", "--udp", "127.0.0.1:\(holder.port)"], status: 1
        )
        #expect(taken.hasPrefix("Error: cannot listen on udp://127.0.0.1:\(holder.port)"), "\(taken)")
        let closedPort = try PortAllocator.freeTCPPort()
        let report = try Self.startFailure(
            try PixeldProcess.binaryURL(), ["report", "--site", "example.com", "--redis", "redis://127.0.0.1:\(closedPort)/0"], status: 1
        )
        #expect(report.hasPrefix("Error: cannot read the rollups from Redis"), "\(report)")
        // PIXELD_SITE stands for --site when it names one site (consume's and serve's variable).
        let fromEnvironment = try Self.startFailure(
            try PixeldProcess.binaryURL(), ["report", "--redis", "redis://127.0.0.1:\(closedPort)/0"],
            environment: ["PIXELD_SITE": "example.com"], status: 1
        )
        #expect(fromEnvironment.hasPrefix("Error: cannot read the rollups from Redis"), "\(fromEnvironment)")
        // A Redis that answers with an error (a password missing) is the same failure to read.
        let locked = try RedisServer.start()
        _ = try locked.command(["CONFIG", "SET", "requirepass", "report-test-password"])
        let noPassword = try Self.startFailure(try PixeldProcess.binaryURL(), ["report", "--site", "example.com", "--redis", locked.url], status: 1)
        #expect(noPassword.hasPrefix("Error: cannot read the rollups from Redis: HGETALL: NOAUTH"), "\(noPassword)")
        // replay reads its archive, then says what failed where: not hiredis' bare words.
        let archive = try TempDirectory(prefix: "pixeld-replay")
        let line = #"{"ts":1795563062.367,"v":1,"status":"ok","site":"example.com","event":"pageview","path":"/","vid":"0d7180e6dcbec50521c29ca69e19af15","source":"Google","browser":"Chrome","os":"Linux","device":"desktop"}"#
        try (line + "\n").write(toFile: archive.path + "/2026-11-24.c1.jsonl", atomically: true, encoding: .utf8)
        let replay = try Self.startFailure(
            try PixeldProcess.binaryURL(),
            ["replay", "--archive", archive.path, "--from", "2026-11-24", "--to", "2026-11-24", "--redis", "redis://127.0.0.1:\(closedPort)/0"],
            status: 1
        )
        #expect(replay.hasPrefix("Error: cannot rebuild the rollups in Redis: redisConnect"), "\(replay)")
        let backwards = try Self.startFailure(
            try PixeldProcess.binaryURL(), ["replay", "--archive", archive.path, "--from", "2026-11-25", "--to", "2026-11-24"]
        )
        #expect(backwards == "Error: --from must not be after --to", "\(backwards)")
        withExtendedLifetime(holder) {}
    }

    @Test("report: hits dropped before a site was known are listed, and a site without rollups gets a hint on stderr")
    func reportShowsSiteLessDropsAndHintsAtAMistypedSite() throws {
        let redis = try RedisServer.start()
        let today = Self.utcDay(Date())
        _ = try redis.command(["HSET", "pixeld:drops:\(today)", "unknown_site", "2", "missing_url", "1", "bot_list", "5"])  // bot_list: sites' own
        let mistyped = try PixeldProcess.start(["report", "--redis", redis.url, "--site", "exmaple.com"])
        #expect(try mistyped.waitForExit(timeout: 30) == 0)
        #expect(mistyped.stdoutText.contains("\nDropped before a site was known (hits of any site): missing_url 1, unknown_site 2\n"), "\(mistyped.stdoutText)")
        #expect(mistyped.stdoutText.contains("  Bounce rate      –\n"), "\(mistyped.stdoutText)")
        #expect(mistyped.stderrText.contains("pixeld report: no rollups for exmaple.com in this range; is it a name given to consume --site?"), "\(mistyped.stderrText)")
        _ = try redis.command(["HSET", "pixeld:site:example.com:\(today):totals", "pageviews", "3", "visits", "2", "bounces", "1"])
        let known = try PixeldProcess.start(["report", "--redis", redis.url, "--site", "example.com", "--json"])
        #expect(try known.waitForExit(timeout: 30) == 0)
        #expect(known.stdoutText.contains("\"pageviews\":3"), "\(known.stdoutText)")
        #expect(!known.stdoutText.contains("unknown_site"), "the JSON report is the site's alone")
        #expect(!known.stderrText.contains("no rollups"), "\(known.stderrText)")
    }

    static func utcDay(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd"
        return formatter.string(from: date)
    }

    @Test("a second pixeld ingest on the same --spool or --unix path fails at start with one line; the first goes on")
    func aSecondIngestOnTheSameSpoolOrSocketFails() throws {
        let redis = try RedisServer.start()
        let directory = try TempDirectory(prefix: "pixeld-twice")
        let spool = directory.appending("spool").path
        let socket = directory.appending("pixeld.sock").path
        let first = try PixeldProcess.start(["ingest", "--unix", socket, "--spool", spool, "--redis", redis.url])
        defer { first.terminate() }
        try first.waitForStderr(containing: "ingest ready")
        let port = try PortAllocator.freeUDPPort()
        let sameSpool = try Self.startFailure(
            try PixeldProcess.binaryURL(), ["ingest", "--udp", "127.0.0.1:\(port)", "--spool", spool, "--redis", redis.url], status: 1
        )
        #expect(sameSpool == "Error: spool directory \(spool) is in use by another pixeld ingest")
        let sameSocket = try Self.startFailure(try PixeldProcess.binaryURL(), ["ingest", "--unix", socket, "--redis", redis.url], status: 1)
        #expect(sameSocket.hasPrefix("Error: cannot listen on") && sameSocket.hasSuffix("bind \(socket): in use by another process (another pixeld ingest?)"), "\(sameSocket)")
        #expect(FileManager.default.fileExists(atPath: socket))
        try ChildProcess.run("logger", ["--rfc3164", "-d", "-u", socket, "-p", "local3.info", "-t", "pixel", "--", "still here"], timeout: 10)
        #expect(try redis.waitForLength("pixel", atLeast: 1, timeout: 10) == 1)
        #expect(try redis.lrange("pixel") == ["still here"])
        #expect(first.isRunning)
    }

    @Test("serve on a port already taken: one line naming the errno's text")
    func serveOnATakenPort() throws {
        let redis = try RedisServer.start()
        // A listening socket of our own on a free port.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        let port = bindToLoopback(fd)
        try #require(port != nil && listen(fd, 1) == 0)
        let holder = (fd: fd, port: port!)
        // With Redis down too, the live feed (started once bound) adds no line of its own.
        let down = "redis://127.0.0.1:\(try PortAllocator.freeTCPPort())/0"
        for url in [redis.url, down] {
            let line = try Self.startFailure(
                try PixeldProcess.binaryURL(), ["serve", "--listen", "127.0.0.1:\(holder.port)", "--redis", url], status: 1
            )
            #expect(line == "Error: serve (127.0.0.1:\(holder.port)): bind: Address already in use", "\(url): \(line)")
        }
        // consume's --metrics is bound before "analytics on" is logged.
        let metrics = try Self.startFailure(
            try PixeldProcess.binaryURL(),
            ["consume", "pixel", "--site", "example.com", "--metrics", "127.0.0.1:\(holder.port)", "--redis", redis.url], status: 1
        )
        #expect(metrics.hasPrefix("Error: cannot serve --metrics"), "\(metrics)")
    }

    @Test("a pixeld-ingest that is pixeld itself runs ingest once, not an endless exec loop")
    func aSiblingThatIsPixeldDoesNotLoop() throws {
        let (alone, copy) = try Self.loneCopy()
        defer { withExtendedLifetime(alone) {} }
        try FileManager.default.createSymbolicLink(at: alone.appending("pixeld-ingest"), withDestinationURL: copy)
        let first = try Self.startFailure(copy, ["ingest", "--buffer-bytes", "1"])
        #expect(first.hasPrefix("Error: --buffer-bytes"), "\(first)")
    }
}
