import Foundation
import Hummingbird
import Logging
import PixelAnalytics
@testable import PixelDashboard
import PixeldTestSupport
import RespBridge
import Testing

/// `pixeld serve` as a real process: the live feed end to end (nginx → ingest → Redis → consume →
/// PUBLISH → serve → SSE client) and the dashboard in headless Chromium.
///
/// These run the server as its own process rather than in-process: a browser or an SSE client
/// against an in-process server shares the test's two cooperative threads with it.
@Suite(.serialized, .enabled(if: TestEnvironment.canRun("redis-server", "nginx", "curl")))
struct LiveFeedTests {
    static let userAgent =
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 PixeldLive/1"

    /// With Redis gone the stream still opens (it gets hits once the feed subscribes again), but says
    /// so in a comment instead of looking like a healthy, quiet feed.
    @Test func aStreamOpenedWhileTheFeedHasLostRedisSaysSo() throws {
        let redis = try RedisServer.start()
        let serve = try ServeProcess.start(redis: redis)
        defer { serve.process.terminate() }
        func firstLines() throws -> String {
            let curl = try ChildProcess(
                executable: try TestEnvironment.requireTool("curl"), arguments: ["-sN", "--max-time", "2", serve.url("/api/live?site=example.com")]
            )
            _ = try curl.waitForExit(timeout: 10)
            return curl.stdout.text
        }
        #expect(try Poll.until(timeout: 10) { (try redis.command(["PUBSUB", "NUMPAT"]).integer ?? 0) >= 1 })
        let healthy = try firstLines()
        #expect(healthy.hasPrefix("retry: 2000\n: connected\n\n") && !healthy.contains("not subscribed"), "\(healthy)")
        redis.stop()
        var lost = ""
        let said = try Poll.until(timeout: 10, interval: 0.2) {
            lost = try firstLines()
            return lost.contains(": the live feed is not subscribed to Redis now")
        }
        #expect(said, "\(lost)")
        #expect(lost.hasPrefix("retry: 2000\n: connected\n\n"))
    }

    @Test func sseDeliversANginxHitWithinOneSecond() throws {
        let redis = try RedisServer.start()
        let udpPort = try PortAllocator.freeUDPPort()
        let ingest = try PixeldProcess.start(["ingest", "--udp", "127.0.0.1:\(udpPort)", "--redis", redis.url])
        defer { ingest.terminate() }
        try ingest.waitForStderr(containing: "ingest ready")
        let consume = try PixeldProcess.start([
            "consume", "pixel", "--redis", redis.url, "--site", "example.com", "--site", "other.example",
            "--consumer-id", "live",
        ])
        defer { consume.terminate() }
        try consume.waitForStderr(containing: "consume ready")
        let serve = try ServeProcess.start(redis: redis)
        defer { serve.process.terminate() }
        let nginx = try NginxServer.startAnalytics(httpPort: try PortAllocator.freeTCPPort(), syslogUDP: "127.0.0.1:\(udpPort)")
        defer { nginx.stop() }

        // The feed's PSUBSCRIBE is up, and the SSE client has its stream open.
        #expect(try Poll.until(timeout: 10) { (try redis.command(["PUBSUB", "NUMPAT"]).integer ?? 0) >= 1 })
        let curl = try ChildProcess(
            executable: try TestEnvironment.requireTool("curl"),
            arguments: ["-sN", "--max-time", "20", serve.url("/api/live?site=example.com")]
        )
        defer { curl.kill() }
        #expect(Poll.until(timeout: 10) { curl.stdout.text.contains(": connected") }, "\(curl.tail)")

        // Another site's hit first: it must not appear on example.com's stream.
        try Self.fire(nginx, url: "https://other.example/elsewhere")
        let served = try Self.fire(nginx, url: "https://example.com/live-test?utm_source=newsletter")
        var arrived: Date?
        Poll.until(timeout: 3, interval: 0.002) {
            guard curl.stdout.text.contains("/live-test") else { return false }
            arrived = Date()
            return true
        }
        let latency = try #require(arrived, "no event on the SSE stream\n\(curl.tail)\n\(consume.stderrText)").timeIntervalSince(served)
        #expect(latency < 1, "nginx served the pixel → SSE event: \(latency) s")
        let stream = curl.stdout.text
        #expect(stream.contains("event: hit\n"))
        #expect(stream.contains(#""path":"/live-test""#))
        #expect(stream.contains(#""utm_source":"newsletter""#))
        #expect(!stream.contains("/elsewhere"))
        // Anonymised: neither the address nor the user agent is published.
        #expect(!stream.contains("127.0.0.1") && !stream.contains("PixeldLive"))
        #expect(!stream.contains(#""vid""#), "a visitor id on the live feed: \(stream)")

        // The "visitors in the last 5 minutes" figure counts the visitor once, per site.
        try Self.fire(nginx, url: "https://example.com/second")
        #expect(Poll.until(timeout: 3) { curl.stdout.text.contains("/second") })
        let realtime = try serve.get("/api/realtime?site=example.com")
        #expect(realtime.contains(#""visitors":1"#), "\(realtime)")
    }

    /// `pixeld serve` behind nginx with `deploy/nginx-dashboard.conf`, as the README deploys it: pages
    /// come through, and a live event passes nginx at once. (nginx 1.22 passed it on at once also
    /// without the feed's `X-Accel-Buffering: no`; the header keeps it so under proxy settings the
    /// test does not know.)
    @Test func liveFeedThroughTheDeployedProxy() throws {
        let redis = try RedisServer.start()
        let serve = try ServeProcess.start(redis: redis)
        defer { serve.process.terminate() }
        let snippet = try String(
            contentsOf: TestEnvironment.packageRoot.appendingPathComponent("deploy/nginx-dashboard.conf"), encoding: .utf8
        )
        let marked = snippet.components(separatedBy: "\n").filter { $0.hasSuffix("# pixeld:serve") }
        #expect(marked == ["    proxy_pass http://127.0.0.1:8088;  # pixeld:serve"])
        let port = try PortAllocator.freeTCPPort()
        let nginx = try NginxServer.start(
            configuration: "server {\n    listen 127.0.0.1:\(port);\n"
                + snippet.replacingOccurrences(of: "127.0.0.1:8088;  # pixeld:serve", with: "127.0.0.1:\(serve.port);") + "}\n",
            httpPort: port
        )
        defer { nginx.stop() }
        let page = try ChildProcess.run("curl", ["-sf", nginx.baseURL + "/"], timeout: 10).stdout
        #expect(page.contains("<html"), "\(page.prefix(500))")

        #expect(try Poll.until(timeout: 10) { (try redis.command(["PUBSUB", "NUMPAT"]).integer ?? 0) >= 1 })
        let curl = try ChildProcess(
            executable: try TestEnvironment.requireTool("curl"),
            arguments: ["-sN", "--max-time", "20", nginx.baseURL + "/api/live?site=example.com"]
        )
        defer { curl.kill() }
        #expect(Poll.until(timeout: 10) { curl.stdout.text.contains(": connected") }, "\(curl.tail)\n\(nginx.errorLog)")
        let line = #"{"ts":1,"site":"example.com","path":"/through-nginx"}"#
        #expect(try redis.command(["PUBLISH", "pixeld:live:example.com", line]).integer == 1)
        #expect(Poll.until(timeout: 3) { curl.stdout.text.contains("/through-nginx") }, "\(curl.tail)\n\(nginx.errorLog)")
    }

    /// With `--token`, a `--public-site`'s feed gives a viewer without the token only the minute,
    /// event, path and source of each hit; with the token (`Authorization: Bearer`), the whole line
    /// without the visitor ids.
    @Test func aPublicSitesFeedIsMinimalWithoutTheToken() throws {
        let redis = try RedisServer.start()
        let token = "live-token-0123456789"
        let serve = try ServeProcess.start(redis: redis, extra: ["--token", token, "--public-site", "example.com"])
        defer { serve.process.terminate() }
        #expect(try Poll.until(timeout: 10) { (try redis.command(["PUBSUB", "NUMPAT"]).integer ?? 0) >= 1 })
        let live = serve.url("/api/live?site=example.com")
        let curl = try TestEnvironment.requireTool("curl")
        let anyone = try ChildProcess(executable: curl, arguments: ["-sN", "--max-time", "20", live])
        defer { anyone.kill() }
        let owner = try ChildProcess(executable: curl, arguments: ["-sN", "--max-time", "20", "-H", "Authorization: Bearer \(token)", live])
        defer { owner.kill() }
        for client in [anyone, owner] { #expect(Poll.until(timeout: 10) { client.stdout.text.contains(": connected") }, "\(client.tail)") }

        let line = ArchiveRecord.line(
            .accepted(
                EnrichedHit(
                    timestampText: "1795362198.810", timestamp: 1_795_362_198.81, site: "example.com",
                    visitorID: String(repeating: "a", count: 32), event: "pageview", path: "/public-feed", source: "Google",
                    campaign: Campaign(source: "google", medium: "cpc"), browser: "Firefox", os: "Linux", device: "desktop",
                    country: "DE"
                )
            )
        )
        #expect(try redis.command(["PUBLISH", "pixeld:live:example.com", line]).integer == 1)
        for client in [anyone, owner] { #expect(Poll.until(timeout: 3) { client.stdout.text.contains("/public-feed") }, "\(client.tail)") }
        #expect(anyone.stdout.text.contains(#"data: {"ts":1795362180,"event":"pageview","path":"/public-feed","source":"Google"}"#), "\(anyone.tail)")
        for detail in ["Firefox", "DE", "cpc", "1795362198", #""vid""#] {
            #expect(!anyone.stdout.text.contains(detail), "\(detail) on the public feed: \(anyone.tail)")
        }
        #expect(owner.stdout.text.contains("data: " + ArchiveRecord.withoutVisitorIDs(line[...])), "\(owner.tail)")
    }

    /// Without `--token`, a request for a host name other than `localhost` and the `--allowed-host`
    /// ones (here from PIXELD_ALLOWED_HOST) is a `421` with one line naming the flag, as a browser
    /// sends it for a page that rebound its own name to 127.0.0.1; with a token any name is served.
    @Test func withoutATokenOnlyAllowedHostNamesAreServed() throws {
        let redis = try RedisServer.start()
        let unguarded = try ServeProcess.start(redis: redis, environment: ["PIXELD_ALLOWED_HOST": "stats.example other.example"])
        defer { unguarded.process.terminate() }
        /// The status and body of `GET path` sent with `Host: host`.
        func get(_ serve: ServeProcess, _ path: String, host: String?) throws -> (status: String, body: String) {
            let header = host.map { ["-H", "Host: \($0)"] } ?? []
            let output = try ChildProcess.run(
                "curl", ["-s", "--max-time", "5", "-w", "\n%{http_code}"] + header + [serve.url(path)], timeout: 10, checkStatus: false
            ).stdout
            let lines = output.split(separator: "\n", omittingEmptySubsequences: false)
            return (String(lines.last ?? ""), lines.dropLast().joined(separator: "\n"))
        }
        for host in ["evil.example", "evil.example:\(unguarded.port)", "127.0.0.1.evil.example"] {
            for path in ["/", "/api/sites", "/healthz", "/api/live?site=example.com"] {
                let refused = try get(unguarded, path, host: host)
                #expect(refused.status == "421", "\(host) \(path): \(refused)")
                #expect(
                    refused.body == "this host name is not served: without --token, pixeld serve answers only requests for an IP "
                        + "address, localhost or a name given with --allowed-host (PIXELD_ALLOWED_HOST)\n",
                    "\(host) \(path)"
                )
            }
        }
        for host in [nil, "localhost:\(unguarded.port)", "[::1]:\(unguarded.port)", "STATS.example:\(unguarded.port)", "other.example"] {
            let served = try get(unguarded, "/api/sites", host: host)
            #expect(served.status == "200", "\(host ?? "127.0.0.1"): \(served)")
        }
        let guarded = try ServeProcess.start(redis: redis, extra: ["--token", "host-token-0123456789"])
        defer { guarded.process.terminate() }
        let anyName = try get(guarded, "/api/sites", host: "evil.example")
        #expect(anyName.status == "200", "with a token: \(anyName)")
    }

    /// One client address gets at most `--live-streams-per-client` streams (2 here); past them it gets
    /// the `503` the whole feed's limit gives, naming this limit. Another address is a client of its
    /// own, and a stream that ends gives its slot back (the server sees that at its next write, an event).
    @Test func oneClientAddressCannotTakeEveryLiveStream() throws {
        let redis = try RedisServer.start()
        let serve = try ServeProcess.start(redis: redis, extra: ["--live-streams-per-client", "2"])
        defer { serve.process.terminate() }
        #expect(try Poll.until(timeout: 10) { (try redis.command(["PUBSUB", "NUMPAT"]).integer ?? 0) >= 1 })
        let live = serve.url("/api/live?site=example.com")
        func stream(from address: String) throws -> ChildProcess {
            try ChildProcess(
                executable: try TestEnvironment.requireTool("curl"), arguments: ["-sN", "--max-time", "30", "--interface", address, live]
            )
        }
        /// A request from `address` that gives up after a second: the status, and what came before it.
        func attempt(from address: String) throws -> (status: String, body: String) {
            let output = try ChildProcess.run(
                "curl", ["-sN", "--max-time", "1", "--interface", address, "-w", "\n%{http_code}", live], timeout: 10, checkStatus: false
            ).stdout
            let status = output.split(separator: "\n").last.map(String.init) ?? ""
            return (status, output)
        }
        let streams = [try stream(from: "127.0.0.1"), try stream(from: "127.0.0.1")]
        defer { streams.forEach { $0.kill() } }
        for client in streams { #expect(Poll.until(timeout: 10) { client.stdout.text.contains(": connected") }, "\(client.tail)") }

        let third = try attempt(from: "127.0.0.1")
        #expect(third.status == "503", "\(third.body)")
        #expect(third.body.contains("too many live streams from this client address (at most 2)"), "\(third.body)")
        let other = try stream(from: "127.0.0.2")
        defer { other.kill() }
        #expect(Poll.until(timeout: 10) { other.stdout.text.contains(": connected") }, "another address: \(other.tail)")
        // A proxy on this machine names its clients in X-Real-IP (deploy/nginx-dashboard.conf): each is
        // a client of its own, and each has its own limit.
        let proxied = try ChildProcess(
            executable: try TestEnvironment.requireTool("curl"),
            arguments: ["-sN", "--max-time", "30", "--interface", "127.0.0.1", "-H", "X-Real-IP: 198.51.100.7", live]
        )
        defer { proxied.kill() }
        #expect(Poll.until(timeout: 10) { proxied.stdout.text.contains(": connected") }, "a proxied client: \(proxied.tail)")
        // IPv6 clients count by their /64: two addresses of one take its two slots, a third is refused.
        let sameNetwork = try ["2001:db8:1:2::a", "2001:db8:1:2::b"].map { address in
            try ChildProcess(
                executable: try TestEnvironment.requireTool("curl"),
                arguments: ["-sN", "--max-time", "30", "--interface", "127.0.0.1", "-H", "X-Real-IP: \(address)", live]
            )
        }
        defer { sameNetwork.forEach { $0.kill() } }
        for client in sameNetwork { #expect(Poll.until(timeout: 10) { client.stdout.text.contains(": connected") }, "\(client.tail)") }
        let thirdOfNetwork = try ChildProcess.run(
            "curl", ["-sN", "--max-time", "1", "--interface", "127.0.0.1", "-H", "X-Real-IP: 2001:db8:1:2::c", "-w", "\n%{http_code}", live],
            timeout: 10, checkStatus: false
        ).stdout
        #expect(thirdOfNetwork.hasSuffix("\n503"), "\(thirdOfNetwork)")

        streams[0].kill()
        _ = streams[0].exitStatus(waitingUpTo: 5)
        var again: (status: String, body: String)?
        for index in 0..<10 {
            _ = try redis.command(["PUBLISH", "pixeld:live:example.com", #"{"ts":\#(index),"path":"/slot"}"#])
            let next = try attempt(from: "127.0.0.1")
            again = next
            if next.status == "200" { break }
            usleep(200_000)
        }
        #expect(again?.status == "200" && again?.body.contains(": connected") == true, "the ended stream's slot: \(again?.body ?? "")")
    }

    /// A live client that stops reading does not hold `pixeld serve` at shutdown. It subscribes over a
    /// raw socket with a small receive buffer and reads nothing after `: connected`; the feed then
    /// publishes far more than the kernel's and the server's buffers hold, until the server's send
    /// queue to the client is full (`tx_queue` in /proc/net/tcp stays put) and one more megabyte
    /// leaves the stream's write waiting for room that never comes. SIGTERM must still end the server
    /// within seconds (the systemd unit's TimeoutStopSec is 10 s; before, it waited forever).
    @Test func aClientThatStopsReadingDoesNotHoldShutdown() throws {
        let redis = try RedisServer.start()
        let serve = try ServeProcess.start(redis: redis)
        defer { serve.process.kill() }
        #expect(try Poll.until(timeout: 10) { (try redis.command(["PUBSUB", "NUMPAT"]).integer ?? 0) >= 1 })
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var bufferSize: Int32 = 4096
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bufferSize, socklen_t(MemoryLayout<Int32>.size))
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        try #require(connectToLoopback(fd, port: serve.port))
        let request = "GET /api/live?site=example.com HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        try #require(send(fd, request, request.utf8.count, 0) == request.utf8.count)
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 512)
        while !String(decoding: received, as: UTF8.self).contains(": connected") {
            let count = recv(fd, &chunk, chunk.count, 0)
            try #require(count > 0, "the stream did not open: \(String(decoding: received, as: UTF8.self))")
            received += chunk.prefix(count)
        }
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        let ends = String(format: "0100007F:%04X 0100007F:%04X", serve.port, Int(UInt16(bigEndian: address.sin_port)))
        /// The bytes the server's socket to this client holds unsent.
        func unsent() throws -> Int {
            let table = try ChildProcess.run("cat", ["/proc/net/tcp"], timeout: 10).stdout
            let fields = table.split(separator: "\n").first { $0.contains(ends) }?.split(separator: " ") ?? []
            return fields.count > 4 ? Int(fields[4].prefix { $0 != ":" }, radix: 16) ?? 0 : 0
        }
        // 1 MB a message (500 events of 2 kB).
        let event = #"{"ts":1,"path":"/"# + String(repeating: "x", count: 2000) + #""}"#
        let message = Array(repeating: event, count: 500).joined(separator: "\n")
        func publish(megabytes: Int) throws {
            for _ in 0..<megabytes { #expect(try redis.command(["PUBLISH", "pixeld:live:example.com", message]).integer == 1) }
        }
        try publish(megabytes: 16)
        var last = -1
        let full = try Poll.until(timeout: 20, interval: 0.3) {
            let now = try unsent()
            defer { last = now }
            return now > 0 && now == last
        }
        try #require(full, "the server's send queue to the client did not fill up (\(last) bytes)")
        try publish(megabytes: 1)
        usleep(500_000)

        let stopping = Date()
        serve.process.terminate()
        // Within 5 s: serve's own cut-off (its services cancelled after 8 s) must not be what ends it.
        let status = serve.process.process.exitStatus(waitingUpTo: 5)
        #expect(status == 0, "pixeld serve still ran \(Date().timeIntervalSince(stopping)) s after SIGTERM\n\(serve.process.stderrText.suffix(2000))")
    }

    /// Requests the pixel through nginx as a browser would; returns when nginx has answered.
    @discardableResult
    static func fire(_ nginx: NginxServer, url: String) throws -> Date {
        let query = "e=pageview&u=" + (url.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? url) + "&w=1280"
        try ChildProcess.run("curl", ["-sf", "-o", "/dev/null", "-A", userAgent, nginx.pixelURL(query: query)], timeout: 10)
        return Date()
    }
}

@Suite(.serialized, .enabled(if: TestEnvironment.canRun("redis-server", "chromium")))
struct BrowserTests {
    /// Runs Chromium headless with `arguments` plus `url`; returns its stdout.
    static func chromium(_ arguments: [String], url: String) throws -> String {
        let profile = try TempDirectory(prefix: "pixeld-chromium")
        let result = try ChildProcess.run(
            "chromium",
            [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--user-data-dir=\(profile.path)",
            ] + arguments + [url],
            timeout: 90, checkStatus: false
        )
        return result.stdout
    }

    /// The login form as a browser submits it: Chromium loads the real login page (with a script,
    /// served from this origin, that types the token and submits), posts it, follows the redirect
    /// with the cookie, and ends on the site list with its log-out button. A check that refused the
    /// browser's own post (as one did: Chrome sends `Origin: null` under `Referrer-Policy:
    /// no-referrer`) leaves it on "cross-site request refused".
    @Test func theLoginFormLogsInInChromium() async throws {
        let fixture = try DashboardFixture.shared()
        let dashboard = try fixture.dashboard(token: DashboardFixture.token)
        try await CurlServedDashboard.serving(dashboard, adding: { router in
            router.get("/test-login") { _, _ in
                Dashboard.html(Pages.login(failed: false, next: "/").replacingOccurrences(
                    of: "</body>", with: "<script src=\"/test-login.js\"></script></body>"))
            }
            router.get("/test-login.js") { _, _ in
                Dashboard.response(
                    "document.querySelector('input[name=token]').value = '\(DashboardFixture.token)'; document.forms[0].submit();\n",
                    type: "text/javascript; charset=utf-8")
            }
        }) { server in
            let dom = try Self.chromium(["--dump-dom", "--virtual-time-budget=10000"], url: "http://127.0.0.1:\(server.port)/test-login")
            #expect(!dom.contains("cross-site request refused"), "\(dom.prefix(2000))")
            #expect(dom.contains("action=\"/logout\""), "not logged in: \(dom.prefix(2000))")
        }
    }

    @Test func dashboardInChromium() throws {
        let fixture = try DashboardFixture.shared()
        let serve = try ServeProcess.start(redis: fixture.redis, extra: ["--archive", fixture.archive.path])
        defer { serve.process.terminate() }
        let url = serve.url("/site?site=example.com&\(fixture.rangeQuery)")
        let dom = try Self.chromium(["--dump-dom"], url: url)
        #expect(dom.contains("id=\"stat-pageviews\""), "\(dom.prefix(2000))")
        #expect(dom.contains("<div class=\"value\">\(DashboardFixture.expectedPageviews)</div>"))
        #expect(dom.contains("<svg class=\"chart\""))
        #expect(dom.contains("<path class=\"line\""))
        // The hostile path is text in the DOM, not an element, and did not run.
        #expect(dom.contains("&lt;script&gt;document.title='pwned'&lt;/script&gt;"))
        #expect(!dom.contains("<title>pwned</title>"))
        #expect(dom.contains("<title>example.com · pixeld</title>"))
        // Rows are links that filter; the filtered page says so and counts only the matching hits.
        #expect(dom.contains("&amp;filter=pages%3A%2Fblog%2F\">/blog/</a>"))
        let filtered = try Self.chromium(["--dump-dom"], url: url + "&filter=pages%3A%2Fblog%2F")
        #expect(filtered.contains("id=\"filter\""), "\(filtered.prefix(2000))")
        #expect(filtered.contains("<div class=\"value\">2</div>"))

        // Kept after the run as the test's artifact; with PIXELD_SCREENSHOT_DIR also copied there
        // (`make screenshots` writes docs/dashboard.png this way).
        let artifacts = FileManager.default.temporaryDirectory.appendingPathComponent("pixeld-test-artifacts")
        try FileManager.default.createDirectory(at: artifacts, withIntermediateDirectories: true)
        let pages = [("dashboard.png", "/site?site=example.com&\(fixture.rangeQuery)", "1280,1600"), ("sites.png", "/", "1280,400")]
        for (name, path, size) in pages {
            let screenshot = artifacts.appendingPathComponent(name).path
            try? FileManager.default.removeItem(atPath: screenshot)
            _ = try Self.chromium(
                ["--screenshot=\(screenshot)", "--window-size=\(size)", "--hide-scrollbars"], url: serve.url(path)
            )
            let bytes = (try? FileManager.default.attributesOfItem(atPath: screenshot)[.size] as? Int) ?? 0
            #expect(bytes > 10_000, "screenshot at \(screenshot)")
            if let keep = ProcessInfo.processInfo.environment["PIXELD_SCREENSHOT_DIR"], !keep.isEmpty {
                try? FileManager.default.removeItem(atPath: keep + "/" + name)
                try FileManager.default.copyItem(atPath: screenshot, toPath: keep + "/" + name)
            }
            print("dashboard screenshot: \(screenshot)")
        }
    }
}

/// `pixeld serve` on a free loopback port.
struct ServeProcess {
    let process: PixeldProcess
    let port: Int

    static func start(redis: RedisServer, extra: [String] = [], environment: [String: String] = [:]) throws -> ServeProcess {
        let port = try PortAllocator.freeTCPPort()
        let process = try PixeldProcess.start(
            ["serve", "--redis", redis.url, "--listen", "127.0.0.1:\(port)"] + extra, environment: environment
        )
        try process.waitForStderr(containing: "serve ready", timeout: 20)
        return ServeProcess(process: process, port: port)
    }

    func url(_ path: String) -> String { "http://127.0.0.1:\(port)\(path)" }

    /// The body of a GET (curl, failing on HTTP errors).
    func get(_ path: String) throws -> String {
        try ChildProcess.run("curl", ["-sf", url(path)], timeout: 10).stdout
    }
}

/// The feed's subscription against a real Redis, in process.
@Suite(.enabled(if: TestEnvironment.canRun("redis-server")))
struct LiveFeedQuietTests {
    /// The subscription's read ends after a quiet spell (a minute; 200 ms here): the feed subscribes
    /// again at once, not after a growing back-off. A hit every 250 ms — each one after a quiet
    /// spell — must find it subscribed (Redis's `PUBLISH` reply counts the receivers) and arrive.
    @Test func aQuietSubscriptionIsRenewedAtOnce() async throws {
        let redis = try RedisServer.start()
        let feed = LiveFeed(
            configuration: try RedisConfiguration(url: redis.url), keys: RollupKeys(), quietMilliseconds: 200, logger: Logger(label: "test")
        )
        feed.start()
        let stream = try feed.subscribe(site: "example.com", client: "test", detail: .full)
        #expect(Poll.until(timeout: 5) { feed.isSubscribed })
        var published: [String] = []
        for index in 0..<8 {
            try await Task.sleep(for: .milliseconds(250))
            let line = #"{"ts":\#(index),"path":"/after-quiet"}"#
            if (try redis.command(["PUBLISH", "pixeld:live:example.com", line]).integer ?? 0) >= 1 { published.append(line) }
        }
        #expect(published.count >= 6, "\(published.count) of 8 hits found the feed subscribed")
        try await Task.sleep(for: .milliseconds(300))
        await feed.stop()
        #expect(await elements(of: stream) == published)
    }
}
