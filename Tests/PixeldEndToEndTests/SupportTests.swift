import Foundation
import PixeldTestSupport
import Testing

/// Proves the test support and deploy/nginx-syslog.conf on their own, without pixeld: a fake
/// syslog receiver (DatagramSink) stands where `pixeld ingest` would.
@Suite(
    "Test support and the nginx deploy file",
    .serialized,
    .enabled(if: TestEnvironment.canRun("redis-server", "redis-cli", "nginx", "curl"))
)
struct SupportTests {
    @Test("RedisServer: binary-safe values, redis-cli, unix socket, stop")
    func redisServerBasics() throws {
        let redis = try RedisServer.start()
        let value: [UInt8] = [0, 1, 13, 10, 0xFF, 0xC3, 0xA9, 32, 44]
        let connection = try redis.connect()
        #expect(try connection.command(bytes: [Array("LPUSH".utf8), Array("k".utf8), value]) == .integer(1))
        #expect(try redis.command(["LPUSH", "k", "text value"]) == .integer(2))
        #expect(try redis.lrangeRaw("k") == [Array("text value".utf8), value])
        #expect(try redis.llen("k") == 2)
        #expect(try redis.cli("LLEN", "k") == "2")
        #expect(try redis.cliLines(["LRANGE", "k", "0", "0"]) == ["text value"])
        #expect(try redis.command(["NOSUCHCOMMAND"]).isError)
        #expect(try RESPConnection(unixSocketPath: redis.unixSocketPath).command(["PING"]) == .simpleString("PONG"))
        #expect(redis.url == "redis://127.0.0.1:\(redis.port)/0")
        redis.stop()
        #expect(redis.pid == nil)
        #expect(throws: TestSupportError.self) { try redis.command(["PING"]) }
    }

    @Test("RedisServer: AOF survives SIGKILL and restart on the same port")
    func redisServerRestart() throws {
        let redis = try RedisServer.start(appendOnly: true, extraArgs: ["--appendfsync", "always"])
        let port = redis.port
        _ = try redis.command(["RPUSH", "pixel", "a", "b"])
        redis.kill()
        #expect(redis.pid == nil)
        try redis.restart()
        #expect(redis.port == port)
        #expect(try redis.lrange("pixel") == ["a", "b"])
    }

    @Test("ChildProcess drains large output without blocking the child")
    func childProcessLargeOutput() throws {
        let result = try ChildProcess.run("head", ["-c", "3000000", "/dev/zero"], timeout: 20)
        #expect(result.status == 0)
        #expect(result.stdout.utf8.count == 3_000_000)
    }

    @Test("Children start with an empty signal mask, so SIGTERM ends them at once")
    func childSeesSIGTERM() throws {
        let child = try ChildProcess(tool: "sleep", arguments: ["30"])
        let status = try String(contentsOfFile: "/proc/\(child.pid)/status", encoding: .utf8)
        #expect(status.contains("SigBlk:\t0000000000000000"))
        child.terminate()
        #expect(try child.waitForExit(timeout: 5) == 128 + 15)
    }

    /// Whether `pid` is a process whose parent is this test process (alive or a zombie not yet reaped).
    private static func isOurChild(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return false }
        // pid (comm) state ppid …: comm may hold spaces, so count from its closing parenthesis.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return fields.count > 1 && Int32(fields[1]) == getpid()
    }

    @Test("A ChildProcess dropped while its child runs stops the child")
    func droppedChildProcessStopsItsChild() throws {
        var pid: Int32 = 0
        do {
            let child = try ChildProcess(tool: "sleep", arguments: ["30"])
            pid = child.pid
            #expect(Self.isOurChild(pid))
        }
        // deinit stopped it and waited for the waiter thread to reap it.
        let gone = !Self.isOurChild(pid)
        #expect(gone, "sleep 30 (pid \(pid)) still runs after its ChildProcess was dropped")
        if !gone { _ = kill(pid, SIGKILL) }
    }

    @Test("A PixeldProcess dropped while pixeld runs stops it")
    func droppedPixeldProcessStopsPixeld() throws {
        var pid: Int32 = 0
        do {
            // Nobody listens on the Redis port: ingest starts, reports ready and waits for Redis.
            let redisPort = try PortAllocator.freeTCPPort()
            let ingest = try PixeldProcess.start([
                "ingest", "--udp", "127.0.0.1:\(try PortAllocator.freeUDPPort())", "--redis", "redis://127.0.0.1:\(redisPort)/0",
            ])
            pid = ingest.pid
            try ingest.waitForStderr(containing: "ingest ready")
            #expect(Self.isOurChild(pid))
        }
        let gone = !Self.isOurChild(pid)
        #expect(gone, "pixeld ingest (pid \(pid)) still runs after its PixeldProcess was dropped")
        if !gone { _ = kill(pid, SIGKILL) }
    }

    @Test("PixeldProcess finds the built pixeld next to the test binary")
    func pixeldBinaryIsFound() throws {
        let url = try PixeldProcess.binaryURL()
        if ProcessInfo.processInfo.environment["PIXELD_BIN"] == nil {
            #expect(url.lastPathComponent == "pixeld")
        }
        #expect(FileManager.default.isExecutableFile(atPath: url.path))
        let help = try PixeldProcess.start(["--help"])
        #expect(try help.waitForExit(timeout: 20) == 0)
        #expect(!help.stdoutText.isEmpty)
    }

    @Test("The deploy file's markers render as documented")
    func rendering() throws {
        let source = try String(contentsOf: TestEnvironment.deployNginxConf, encoding: .utf8)
        let udpOnly = try NginxServer.render(
            source,
            listen: "127.0.0.1:1234",
            syslogUDP: "127.0.0.1:4321",
            syslogUnix: nil,
            extraLogFile: "/tmp/x.log"
        )
        let active = udpOnly.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.hasPrefix("#") }
        #expect(active.contains("listen 127.0.0.1:1234;  # pixeld:listen"))
        #expect(active.contains { $0.hasPrefix("access_log syslog:server=127.0.0.1:4321,facility=local3,tag=pixel,") })
        #expect(!active.contains { $0.contains("server=unix:") })
        #expect(active.contains { $0.hasPrefix("access_log /tmp/x.log pixel;") })

        let unixOnly = try NginxServer.render(
            source,
            listen: "127.0.0.1:1234",
            syslogUDP: nil,
            syslogUnix: "/tmp/p/s.sock",
            extraLogFile: nil
        )
        let unixActive = unixOnly.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.hasPrefix("#") }
        #expect(unixActive.contains { $0.hasPrefix("access_log syslog:server=unix:/tmp/p/s.sock,facility=local3,tag=pixel,") })
        #expect(!unixActive.contains { $0.contains("syslog:server=127.0.0.1") })
        #expect(throws: TestSupportError.self) {
            try NginxServer.render("server { listen 80; }", listen: "x", syslogUDP: nil, syslogUnix: nil, extraLogFile: nil)
        }
    }

    @Test("nginx with the deploy file: uncacheable GIF, 404 elsewhere")
    func nginxHeaders() throws {
        let sink = try DatagramSink.udp()
        let nginx = try NginxServer.start(
            renderedFrom: TestEnvironment.deployNginxConf,
            httpPort: try PortAllocator.freeTCPPort(),
            syslogUDP: "127.0.0.1:\(sink.port)",
            syslogUnix: nil,
            extraLogFile: nil
        )
        let head = try ChildProcess.run(
            "curl",
            ["-s", "-D", "-", "-o", "/dev/null", "-H", "If-Modified-Since: Thu, 01 Jan 2037 00:00:00 GMT",
             nginx.pixelURL(query: "e=x")],
            timeout: 10
        ).stdout.lowercased()
        #expect(head.hasPrefix("http/1.1 200"))
        #expect(head.contains("content-type: image/gif"))
        #expect(head.contains("content-length: 43"))
        #expect(head.contains("cache-control: no-store, no-cache, must-revalidate, max-age=0"))
        #expect(head.contains("pragma: no-cache"))
        #expect(!head.contains("last-modified"))
        #expect(!head.contains("etag"))
        let other = try ChildProcess.run("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", nginx.baseURL + "/x"])
        #expect(other.stdout == "404")
        // Only the pixel hit went to syslog.
        #expect(sink.receive(count: 2, timeout: 1).count == 1)
    }

    /// The deploy file's `# pixeld:real-ip` line: off, a forwarded-for header is ignored (anyone can
    /// send one); on, requests from the trusted proxy (127.0.0.1 here) log the client's address.
    @Test("nginx with the deploy file: the visitor's address behind a trusted proxy", arguments: [false, true])
    func clientAddressBehindAProxy(trusted: Bool) throws {
        let sink = try DatagramSink.udp()
        let nginx = try NginxServer.startAnalytics(
            httpPort: try PortAllocator.freeTCPPort(), syslogUDP: "127.0.0.1:\(sink.port)", trustLoopbackProxy: trusted
        )
        defer { nginx.stop() }
        // The visitor; a visitor that sent a made-up address itself (the proxy appends the real one);
        // a visitor behind two proxies of yours (real_ip_recursive skips the trusted hops).
        let chains = ["203.0.113.7", "198.51.100.9, 203.0.113.8", "203.0.113.9, 127.0.0.1"]
        let (addresses, lines) = try loggedAddresses(nginx, sink, forwardedFor: chains)
        let expected = trusted ? ["203.0.113.7", "203.0.113.8", "203.0.113.9"] : ["127.0.0.1", "127.0.0.1", "127.0.0.1"]
        #expect(addresses == expected, "\(lines)")
    }

    /// The deploy file's `country` is empty until the operator passes the CDN's header: without one,
    /// any client could pick its country with a made-up `CF-IPCountry` (and skip `--geoip`).
    @Test("nginx with the deploy file: a client's CF-IPCountry is not logged by default")
    func countryHeaderIsNotTrustedByDefault() throws {
        let sink = try DatagramSink.udp()
        let nginx = try NginxServer.startAnalytics(httpPort: try PortAllocator.freeTCPPort(), syslogUDP: "127.0.0.1:\(sink.port)")
        defer { nginx.stop() }
        let status = try ChildProcess.run(
            "curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "CF-IPCountry: KP", nginx.pixelURL(query: "e=pageview")], timeout: 10
        ).stdout
        #expect(status == "200")
        let lines = sink.receive(count: 1, timeout: 5).map { text($0) }
        #expect(lines.count == 1 && lines[0].contains("\"country\":\"\"}"), "\(lines)")
    }

    /// One pixel hit per X-Forwarded-For chain to `nginx` (pixel_json to `sink`): the `ip` each logged,
    /// and the lines.
    private func loggedAddresses(_ nginx: NginxServer, _ sink: DatagramSink, forwardedFor chains: [String]) throws -> ([String], [String]) {
        for header in chains.map({ "X-Forwarded-For: " + $0 }) {
            let status = try ChildProcess.run(
                "curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", header, nginx.pixelURL(query: "e=pageview")], timeout: 10
            ).stdout
            #expect(status == "200")
        }
        let lines = sink.receive(count: chains.count, timeout: 5).map { text($0) }
        let addresses = lines.map { line in String(line.components(separatedBy: "\"ip\":\"").dropFirst().first?.prefix { $0 != "\"" } ?? "") }
        return (addresses, lines)
    }

    /// Two hops of the deploy file's recipe: visitor → CDN (edge 192.0.2.10, in a range given on the
    /// `# pixeld:real-ip-cdn` line) → the site's nginx on 127.0.0.1, which appends the edge, → the pixel
    /// server. Trusting only 127.0.0.1 logs the edge for every visitor; with the CDN's range the visitor.
    /// A visitor who bypasses the CDN and makes up a chain is still counted under its own address.
    @Test("nginx with the deploy file: the visitor's address behind a CDN and your proxy", arguments: [false, true])
    func clientAddressBehindACDNAndAProxy(trustingTheCDN: Bool) throws {
        let sink = try DatagramSink.udp()
        let nginx = try NginxServer.startAnalytics(
            httpPort: try PortAllocator.freeTCPPort(), syslogUDP: "127.0.0.1:\(sink.port)", trustLoopbackProxy: true,
            trustedCDNRange: trustingTheCDN ? "192.0.2.0/24" : nil
        )
        defer { nginx.stop() }
        let chains = ["203.0.113.7, 192.0.2.10", "198.51.100.9, 192.0.2.10, 203.0.113.8"]
        let (addresses, lines) = try loggedAddresses(nginx, sink, forwardedFor: chains)
        let expected = trustingTheCDN ? ["203.0.113.7", "203.0.113.8"] : ["192.0.2.10", "203.0.113.8"]
        #expect(addresses == expected, "\(lines)")
    }

    /// `deploy/nginx-site.conf` in the site's own server (here with an access log of its own, as
    /// Debian's nginx.conf gives every server) in front of the pixel server with its real-ip line:
    /// the pixel and the tracker come through, the visitor's address (127.0.0.2 here, not the site's
    /// 127.0.0.1) reaches pixeld also when the visitor sends a made-up X-Forwarded-For (the site's
    /// server appends what it sees), and the site's access log keeps nothing of either.
    @Test("nginx: the site's server with deploy/nginx-site.conf passes the pixel and tracker on, unlogged")
    func siteServerPassesThePixelOn() throws {
        let sink = try DatagramSink.udp()
        let tracker = "/* pixel.js */"
        let pixelServer = try NginxServer.startAnalytics(
            httpPort: try PortAllocator.freeTCPPort(), syslogUDP: "127.0.0.1:\(sink.port)",
            files: ["pixel.js": ("application/javascript", tracker)], trustLoopbackProxy: true
        )
        defer { pixelServer.stop() }
        let snippet = try String(contentsOf: TestEnvironment.packageRoot.appendingPathComponent("deploy/nginx-site.conf"), encoding: .utf8)
        let marked = snippet.components(separatedBy: "\n").filter { $0.hasSuffix("# pixeld:pixel-server") }
        #expect(marked == Array(repeating: "    proxy_pass http://127.0.0.1:8080;  # pixeld:pixel-server", count: 2))
        let logs = try TempDirectory(prefix: "pixeld-site-logs", permissions: 0o777)
        let siteLog = logs.appending("access.log").path
        let port = try PortAllocator.freeTCPPort()
        let site = try NginxServer.start(
            configuration: "server {\n    listen 127.0.0.1:\(port);\n    access_log \(siteLog);\n"
                + "    location / { return 200 'page'; }\n"
                + snippet.replacingOccurrences(of: "127.0.0.1:8080;  # pixeld:pixel-server", with: "127.0.0.1:\(pixelServer.httpPort);") + "}\n",
            httpPort: port
        )
        defer { site.stop() }
        let script = try ChildProcess.run("curl", ["-sf", site.baseURL + "/pixel.js"], timeout: 10).stdout
        #expect(script == tracker)
        let head = try ChildProcess.run(
            "curl", ["-s", "-D", "-", "-o", "/dev/null", "--interface", "127.0.0.2", "-A", "Mozilla/5.0 (X11; Linux x86_64) Firefox/125.0",
                     "-H", "X-Forwarded-For: 203.0.113.7", site.baseURL + "/pixel.gif?e=pageview&u=https%3A%2F%2Fexample.com%2F"],
            timeout: 10
        ).stdout.lowercased()
        #expect(head.hasPrefix("http/1.1 200") && head.contains("cache-control: no-store"), "\(head)")
        _ = try ChildProcess.run("curl", ["-sf", site.baseURL + "/"], timeout: 10)
        let lines = sink.receive(count: 1, timeout: 5).map { text($0) }
        #expect(lines.count == 1 && lines[0].contains("\"ip\":\"127.0.0.2\"") && lines[0].contains("Firefox/125.0"), "\(lines)")
        // The page was logged (the log works); the pixel and the tracker were not.
        let logged = (try? String(contentsOfFile: siteLog, encoding: .utf8)) ?? ""
        #expect(logged.contains("GET / ") && !logged.contains("pixel"), "\(logged)")
    }

    @Test("nginx sends one syslog datagram per hit, body byte-equal to its file log (UDP)")
    func nginxUDPLines() throws {
        let sink = try DatagramSink.udp()
        let logs = try TempDirectory(prefix: "pixeld-logs")
        let nginx = try NginxServer.start(
            renderedFrom: TestEnvironment.deployNginxConf,
            httpPort: try PortAllocator.freeTCPPort(),
            syslogUDP: "127.0.0.1:\(sink.port)",
            syslogUnix: nil,
            extraLogFile: logs.appending("pixel.log").path
        )
        try checkDatagrams(nginx: nginx, sink: sink, count: 200)
    }

    @Test("nginx sends one syslog datagram per hit, body byte-equal to its file log (unix socket)")
    func nginxUnixLines() throws {
        let directory = try TempDirectory(prefix: "pixeld-sock", permissions: 0o755)
        let sink = try DatagramSink.unix(path: directory.appending("sink.sock").path)
        let logs = try TempDirectory(prefix: "pixeld-logs")
        let nginx = try NginxServer.start(
            renderedFrom: TestEnvironment.deployNginxConf,
            httpPort: try PortAllocator.freeTCPPort(),
            syslogUDP: nil,
            syslogUnix: sink.path,
            extraLogFile: logs.appending("pixel.log").path
        )
        // The unix queue is short (net.unix.max_dgram_qlen): one request at a time so the sink,
        // which only reads after curl finishes, loses nothing.
        try checkDatagrams(nginx: nginx, sink: sink, count: 8, parallel: 1)
    }

    private func checkDatagrams(nginx: NginxServer, sink: DatagramSink, count: Int, parallel: Int = 8) throws {
        let queries = pixelQueries(count: count, tag: "sink")
        var received: [[UInt8]] = []
        let statuses = try fetchAll(queries.map { nginx.pixelURL(query: $0) }, parallel: parallel)
        #expect(statuses == Array(repeating: "200", count: count))
        received = sink.receive(count: count, timeout: 5)
        // Written in the log phase, possibly after curl has the response: wait for the lines.
        let fileLines = try nginx.extraLogLines(waitingFor: count)
        #expect(fileLines.count == count)
        #expect(received.count == count, "nginx error log:\n\(nginx.errorLog)")
        // "<158>Mmm dd hh:mm:ss HOST pixel: BODY": facility local3 (19 * 8) + severity info (6).
        let marker = Array(" pixel: ".utf8)
        let wrongPriority = received.first { !$0.starts(with: Array("<158>".utf8)) }
        #expect(wrongPriority == nil, "\(text(wrongPriority ?? []))")
        let bodies = received.map { datagram -> [UInt8] in
            guard let start = firstRange(of: marker, in: datagram) else { return [] }
            return Array(datagram[(start + marker.count)...])
        }
        #expect(bodies == fileLines)
        let logged = Set(fileLines.map { text($0).split(separator: ",", maxSplits: 1).last.map(String.init) ?? "" })
        #expect(logged == Set(queries))
    }

    private func firstRange(of needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        for index in 0...(haystack.count - needle.count) where haystack[index..<(index + needle.count)].elementsEqual(needle) {
            return index
        }
        return nil
    }
}
