import Foundation
import Hummingbird
import HummingbirdTesting
import PixelAnalytics
@testable import PixelDashboard
import PixeldTestSupport
import Synchronization
import Testing

/// The HTML pages (escaping, CSP, SVG) and the token / public-site access control.
@Suite(.serialized, .enabled(if: TestEnvironment.canRun("redis-server")))
struct PageAndAccessTests {
    @Test func sitePageEscapesHostilePathsAndHasTheChart() async throws {
        let fixture = try DashboardFixture.shared()
        let app = Application(router: try fixture.dashboard().router())
        try await app.test(.router) { client in
            let page = try await client.execute(uri: "/site?site=example.com&\(fixture.rangeQuery)", method: .get)
            #expect(page.status == .ok)
            let csp = page.headers[.contentSecurityPolicy] ?? ""
            #expect(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"))
            #expect(!csp.contains("unsafe-inline"))
            #expect(page.text.contains("&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;"))
            #expect(!page.text.contains("<script>document"))
            // The hostile campaign reached the page, as text in the UTM campaigns table, and nowhere as markup.
            let campaigns = page.text.components(separatedBy: "id=\"table-utm_campaigns\"").dropFirst().first?
                .components(separatedBy: "</table>").first ?? ""
            #expect(campaigns.contains(">&quot;&gt;&lt;img src=x onerror=alert(1)&gt;<"), "UTM campaigns table: \(campaigns)")
            #expect(!page.text.contains(DashboardFixture.hostileCampaign))
            #expect(!page.text.contains("<img"))
            #expect(page.text.contains("<svg class=\"chart\""))
            #expect(page.text.contains("id=\"stat-pageviews\""))
            #expect(page.text.contains("<div class=\"value\">\(DashboardFixture.expectedPageviews)</div>"))
            let list = try await client.execute(uri: "/", method: .get)
            #expect(list.status == .ok)
            #expect(list.text.contains("<svg class=\"spark\""))
            let script = try await client.execute(uri: "/assets/dashboard.js", method: .get)
            #expect(script.text.contains("textContent") && !script.text.contains("innerHTML"))
        }
    }

    @Test func privateSitesNeedTheToken() async throws {
        let fixture = try DashboardFixture.shared()
        let dashboard = try fixture.dashboard(token: DashboardFixture.token, publicSites: [DashboardFixture.site])
        let app = Application(router: dashboard.router())
        let privateStats = "/api/stats?site=secret.example&\(fixture.rangeQuery)"
        try await app.test(.router) { client in
            let status1 = try await client.execute(uri: privateStats, method: .get).status
            #expect(status1 == .unauthorized)
            let status2 = try await client.execute(uri: "/site?site=secret.example", method: .get).status
            #expect(status2 == .unauthorized)
            let status3 = try await client.execute(uri: "/api/live?site=secret.example", method: .get).status
            #expect(status3 == .unauthorized)
            let status4 = try await client.execute(uri: "/metrics", method: .get).status
            #expect(status4 == .unauthorized)
            let wrong = try await client.execute(uri: privateStats, method: .get, headers: [.authorization: "Bearer nope-nope-nope"])
            #expect(wrong.status == .unauthorized)
            let bearer = try await client.execute(
                uri: privateStats, method: .get, headers: [.authorization: "Bearer \(DashboardFixture.token)"]
            )
            #expect(bearer.status == .ok)
            #expect(bearer.json["pageviews"] as? Int == DashboardFixture.expectedPrivatePageviews)
            // The public site needs nothing; the site list hides the private one without the token.
            let status5 = try await client.execute(uri: "/api/stats?site=example.com", method: .get).status
            #expect(status5 == .ok)
            let sites = try await client.execute(uri: "/api/sites", method: .get)
            #expect((sites.json["sites"] as? [[String: Any]])?.compactMap { $0["site"] as? String } == ["example.com"])

            // Login form: a wrong token is a 401 page, the right one sets the cookie.
            let form: HTTPFields = [.contentType: "application/x-www-form-urlencoded"]
            let failed = try await client.execute(
                uri: "/login", method: .post, headers: form, body: ByteBuffer(string: "token=wrong-token&next=%2F")
            )
            #expect(failed.status == .unauthorized)
            let login = try await client.execute(
                uri: "/login", method: .post, headers: form,
                body: ByteBuffer(string: "token=\(DashboardFixture.token)&next=%2Fsite%3Fsite%3Dsecret.example")
            )
            #expect(login.status == .found)
            #expect(login.headers[.location] == "/site?site=secret.example")
            let setCookie = login.headers[.setCookie] ?? ""
            #expect(setCookie.contains("HttpOnly") && setCookie.contains("SameSite=Strict"))
            #expect(!setCookie.contains("Secure"), "plain HTTP: a Secure cookie would never come back")
            // Behind a TLS proxy that says so, the cookie is Secure.
            var proxied = form
            proxied[HTTPFields.Element.Name("X-Forwarded-Proto")!] = "https"
            let secure = try await client.execute(
                uri: "/login", method: .post, headers: proxied, body: ByteBuffer(string: "token=\(DashboardFixture.token)&next=%2F")
            )
            #expect((secure.headers[.setCookie] ?? "").contains("Secure"), "\(secure.headers)")
            let cookie = String(setCookie.split(separator: ";")[0])
            let withCookie = try await client.execute(uri: privateStats, method: .get, headers: [.cookie: cookie])
            #expect(withCookie.status == .ok)
            // An open redirect is refused.
            let evil = try await client.execute(
                uri: "/login", method: .post, headers: form,
                body: ByteBuffer(string: "token=\(DashboardFixture.token)&next=%2F%2Fevil.example")
            )
            #expect(evil.headers[.location] == "/")
            // A form too large says so (the 413 had an empty body).
            let large = try await client.execute(
                uri: "/login", method: .post, headers: form, body: ByteBuffer(string: "token=" + String(repeating: "a", count: 20_000))
            )
            #expect(large.status == .contentTooLarge)
            #expect(large.text.contains("the login form is limited to 16 KiB"), "\(large.text)")
        }
    }

    /// Wrong tokens are limited per client: after ten within a minute (login form, Bearer or cookie),
    /// every credential from that client — the right one too — gets `429` with `Retry-After` until the
    /// minute ends, while other clients and requests without a credential are answered as before. A
    /// wrong cookie is cleared. Served on 127.0.0.1 and asked with curl (see ``CurlServedDashboard``).
    @Test func wrongTokensAreThrottledPerClient() async throws {
        let fixture = try DashboardFixture.shared()
        let offset = Mutex(0.0)
        let dashboard = try fixture.dashboard(
            token: DashboardFixture.token, publicSites: [DashboardFixture.site], clock: { Double(time(nil)) + offset.withLock { $0 } }
        )
        try await CurlServedDashboard.serving(dashboard) { server in
            let privateStats = "/api/stats?site=secret.example&\(fixture.rangeQuery)"
            let right = "Authorization: Bearer \(DashboardFixture.token)"
            for _ in 0..<4 {
                #expect(try server.request("/login", from: "192.0.2.1", form: "token=guess-guess&next=%2F").status == 401)
            }
            for _ in 0..<3 {
                #expect(try server.request(privateStats, from: "192.0.2.1", ["Authorization: Bearer guess-guess"]).status == 401)
            }
            for _ in 0..<3 {
                let wrongCookie = try server.request(privateStats, from: "192.0.2.1", ["Cookie: \(TokenCheck.cookieName)=6775657373"])
                #expect(wrongCookie.status == 401)
                #expect(wrongCookie.headers.contains("max-age=0"), "\(wrongCookie.headers)")
            }
            let held = try server.request(privateStats, from: "192.0.2.1", [right])
            #expect(held.status == 429)
            let retryAfter = held.headers.split(separator: "\r\n").first { $0.hasPrefix("retry-after:") }
                .flatMap { Int($0.dropFirst("retry-after:".count).trimmingCharacters(in: .whitespaces)) }
            #expect((1...60).contains(retryAfter ?? 0), "\(held.headers)")
            #expect(try server.request("/login", from: "192.0.2.1", form: "token=\(DashboardFixture.token)&next=%2F").status == 429)
            #expect(try server.request(privateStats, from: "192.0.2.2", [right]).status == 200)
            let publicStats = "/api/stats?site=example.com&\(fixture.rangeQuery)"
            #expect(try server.request(publicStats, from: "192.0.2.1").status == 200)
            // A proxy's Basic credentials in front (nginx auth_basic passes them on) are no guesses.
            for _ in 0...CredentialThrottle.maximumFailures {
                #expect(try server.request(publicStats, from: "192.0.2.3", ["Authorization: Basic dXNlcjpwYXNz"]).status == 200)
            }
            offset.withLock { $0 = 61 }
            #expect(try server.request(privateStats, from: "192.0.2.1", [right]).status == 200)
        }
    }

    /// The router sends `POST /login/`, `//login` and `/login//` to the login form too (it skips
    /// empty path segments): a client held after ten wrong tokens gets `429` there as well, the right
    /// token too, and no further guess is answered; and the throttle treats them as the login form
    /// (an old cookie sent with it is not a wrong token).
    @Test func aHeldClientIsHeldOnEverySpellingOfTheLoginPath() async throws {
        let fixture = try DashboardFixture.shared()
        let dashboard = try fixture.dashboard(token: DashboardFixture.token, publicSites: [DashboardFixture.site])
        try await CurlServedDashboard.serving(dashboard) { server in
            for _ in 0..<CredentialThrottle.maximumFailures {
                #expect(try server.request("/login", from: "192.0.2.1", form: "token=guess-guess&next=%2F").status == 401)
            }
            for path in ["/login", "/login/", "//login", "/login//"] {
                for token in [DashboardFixture.token, "guess-guess"] {
                    let status = try server.request(path, from: "192.0.2.1", form: "token=\(token)&next=%2F").status
                    #expect(status == 429, "\(path) \(token)")
                }
            }
            // Another client logs in by any of them; a cookie left from an old token is replaced, not
            // counted as a wrong token and cleared after the new one.
            let login = try server.request(
                "//login", from: "192.0.2.2", ["Cookie: \(TokenCheck.cookieName)=6775657373"], form: "token=\(DashboardFixture.token)&next=%2F"
            )
            #expect(login.status == 302)
            #expect(login.headers.contains("set-cookie: \(TokenCheck.cookieName)=") && !login.headers.contains("max-age=0"), "\(login.headers)")
        }
    }

    /// A `POST` another site's page sends (its `Origin` is not the request's `Host`, or
    /// `Sec-Fetch-Site` is not `same-origin`/`none`) is refused with `403` before it counts: eleven
    /// such wrong-token posts to `/login` leave the client free to log in. The same headers from the
    /// dashboard's own page, or neither header (curl), are answered; `/logout` is guarded the same way.
    @Test func crossSitePostsAreRefusedAndNotCounted() async throws {
        let fixture = try DashboardFixture.shared()
        let dashboard = try fixture.dashboard(token: DashboardFixture.token, publicSites: [DashboardFixture.site])
        try await CurlServedDashboard.serving(dashboard) { server in
            let wrong = "token=guess-guess&next=%2F"
            let right = "token=\(DashboardFixture.token)&next=%2F"
            let crossSite = [
                ["Origin: http://evil.example"], ["Origin: http://127.0.0.1:\(server.port + 1)"], ["Origin: null"],
                ["Sec-Fetch-Site: cross-site"], ["Sec-Fetch-Site: same-site"],
                ["Origin: http://127.0.0.1:\(server.port)", "Sec-Fetch-Site: cross-site"],
            ]
            for index in 0...CredentialThrottle.maximumFailures {
                let headers = crossSite[index % crossSite.count]
                #expect(try server.request("/login", from: "192.0.2.1", headers, form: wrong).status == 403, "\(headers)")
            }
            for headers in crossSite {
                #expect(try server.request("/login", from: "192.0.2.1", headers, form: right).status == 403, "\(headers)")
                #expect(try server.request("/logout", from: "192.0.2.1", headers, form: "").status == 403, "\(headers)")
            }
            let sameOrigin = [
                [], ["Origin: http://127.0.0.1:\(server.port)"], ["Sec-Fetch-Site: same-origin"], ["Sec-Fetch-Site: none"],
                ["Origin: http://127.0.0.1:\(server.port)", "Sec-Fetch-Site: same-origin"],
                // What Chrome and Firefox send for the login form of a page with `Referrer-Policy: no-referrer`.
                ["Origin: null", "Sec-Fetch-Site: same-origin"],
            ]
            for headers in sameOrigin {
                #expect(try server.request("/login", from: "192.0.2.1", headers, form: right).status == 302, "\(headers)")
                let logout = try server.request("/logout", from: "192.0.2.1", headers, form: "")
                #expect(logout.status == 302 && logout.headers.contains("max-age=0"), "\(headers): \(logout.headers)")
            }
            // A wrong token from the dashboard's own page still counts.
            #expect(try server.request("/login", from: "192.0.2.1", ["Origin: http://127.0.0.1:\(server.port)"], form: wrong).status == 401)
        }
    }

    /// Without the token, a site that does not exist answers exactly as a private one does (`401`),
    /// on every endpoint that takes a site: the status cannot tell which private sites exist. With
    /// the token, an unknown site is a `404`.
    @Test func unknownSitesLookPrivateWithoutTheToken() async throws {
        let fixture = try DashboardFixture.shared()
        let dashboard = try fixture.dashboard(token: DashboardFixture.token, publicSites: [DashboardFixture.site])
        let endpoints = [
            "/api/stats?", "/api/timeseries?", "/api/breakdown?dimension=pages&", "/api/counts?", "/api/count?path=%2F&",
            "/api/realtime?", "/api/live?", "/site?",
        ]
        try await Application(router: dashboard.router()).test(.router) { client in
            for endpoint in endpoints {
                let secret = try await client.execute(uri: endpoint + "site=\(DashboardFixture.privateSite)", method: .get)
                let unknown = try await client.execute(uri: endpoint + "site=nope.example", method: .get)
                #expect(secret.status == .unauthorized, "\(endpoint) private: \(secret.text.prefix(200))")
                #expect(unknown.status == .unauthorized, "\(endpoint) unknown: \(unknown.text.prefix(200))")
                #expect(unknown.headers[.wwwAuthenticate] == secret.headers[.wwwAuthenticate], "\(endpoint)")
                // The login page names the page to go back to; everything else is the same text.
                if endpoint != "/site?" { #expect(unknown.text == secret.text, "\(endpoint)") }

                let known = try await client.execute(
                    uri: endpoint + "site=nope.example", method: .get, headers: [.authorization: "Bearer \(DashboardFixture.token)"]
                )
                #expect(known.status == .notFound, "\(endpoint) with the token: \(known.text.prefix(200))")
            }
        }
    }

    /// Without a token, the `Host` of a request must be an IP address, `localhost` or an
    /// `--allowed-host` name (any port): a page that rebinds its own name to 127.0.0.1 sends its name.
    @Test func hostCheck() {
        let check = HostCheck(allowedHosts: ["Stats.Example."])
        for allowed in [
            "127.0.0.1", "127.0.0.1:8088", "10.1.2.3:80", "[::1]", "[::1]:8088", "[2001:db8::1]:443", "localhost", "LOCALHOST:8088",
            "localhost.", "stats.example", "stats.example:8088", "STATS.EXAMPLE.:443",
            nil,  // no Host: HTTP/1.0 probes (a browser always sends one)
        ] {
            #expect(check.allows(allowed), "\(allowed)")
        }
        for refused in [
            "", "evil.example", "evil.example:8088", "127.0.0.1.evil.example", "localhost.evil.example", "sub.stats.example",
            "stats.example:", "stats.example:abc", "stats.example:8088:1", "::1", "[::1", "[::1]x", "[evil.example]", "127.1",
            "0x7f.0.0.1", "stats.example@evil.example",
        ] {
            #expect(!check.allows(refused), "\(refused)")
        }
        #expect(HostCheck.name("Stats.Example.") == "stats.example")
        #expect(HostCheck.name("a-b.example") == "a-b.example")
        for bad in ["", ".", "a..b", "-a.example", "a-.example", "a b", "a:8088", "*.example", "http://a", "a_b.example",
            String(repeating: "a", count: 64) + ".example"]
        {
            #expect(HostCheck.name(bad) == nil, "\(bad)")
        }
    }

    /// The client a live stream counts for: `X-Real-IP` only from a peer on this machine.
    @Test func liveClientAddress() {
        #expect(DashboardRequestContext.client(peer: "127.0.0.1", realIP: "198.51.100.7") == "198.51.100.7")
        #expect(DashboardRequestContext.client(peer: "::1", realIP: "2001:db8::1") == "2001:db8::1")
        #expect(DashboardRequestContext.client(peer: "::ffff:127.0.0.1", realIP: "198.51.100.7") == "198.51.100.7")
        #expect(DashboardRequestContext.client(peer: "203.0.113.5", realIP: "198.51.100.7") == "203.0.113.5")
        #expect(DashboardRequestContext.client(peer: "::ffff:203.0.113.5", realIP: "127.0.0.1") == "::ffff:203.0.113.5")
        #expect(DashboardRequestContext.client(peer: "127.0.0.1", realIP: nil) == "127.0.0.1")
        #expect(DashboardRequestContext.client(peer: "127.0.0.1", realIP: "") == "127.0.0.1")
        #expect(DashboardRequestContext.client(peer: "127.0.0.1", realIP: String(repeating: "1", count: 65)) == "127.0.0.1")
        #expect(DashboardRequestContext.client(peer: "", realIP: "198.51.100.7") == "")
    }

    @Test func escapingHelpers() {
        #expect(Escape.html("<a href='x'>\"&</a>") == "&lt;a href=&#39;x&#39;&gt;&quot;&amp;&lt;/a&gt;")
        #expect(Escape.json("</script>\u{2028}\"\\") == "\"\\u003C/script\\u003E\\u2028\\\"\\\\\"")
        #expect(Escape.csv("=HYPERLINK(\"x\")") == "\"'=HYPERLINK(\"\"x\"\")\"")
        #expect(Escape.csv("/a,b") == "\"/a,b\"")
        #expect(Dashboard.safeNext("//evil.example") == "/")
        #expect(Dashboard.safeNext("https://evil.example") == "/")
        #expect(Dashboard.safeNext("/site?site=a") == "/site?site=a")
        #expect(TokenCheck.equal("abc", "abc") && !TokenCheck.equal("abc", "abd") && !TokenCheck.equal("ab", "abc"))
        #expect(Dashboard.sseEvent("{\"a\":1}\nx") == "event: hit\ndata: {\"a\":1}\ndata: x\n\n")
        // A CRLF (one Character) ends a data line too: it cannot start an `event:` or `retry:` field.
        #expect(Dashboard.sseEvent("x\r\nretry: 1\revent: y") == "event: hit\ndata: x\ndata: \ndata: retry: 1\ndata: event: y\n\n")
    }

    /// The login form's body is decoded as the query is, as a browser's URLSearchParams reads it:
    /// `+` a space, `%HH` a byte, a `%` before anything but two hex digits kept (a sign is no digit:
    /// `%+4` is not the byte 0x04); a name read that is repeated is a `400` naming it.
    @Test func formFieldsDecodeAsBrowsersEncode() throws {
        let form = FormFields(encoded: "token=a+b%2Bc%+41%-0&next=%2Fsite%3Fsite%3Dexample.com")
        #expect(try form["token"] == "a b+c% 41%-0")
        #expect(try form["next"] == "/site?site=example.com")
        #expect(try form["missing"] == nil)
        let repeated = FormFields(encoded: "token=first&next=%2F&token=second")
        #expect(try repeated["next"] == "/")
        let error = #expect(throws: HTTPError.self) { try repeated["token"] }
        #expect(error?.status == .badRequest && error?.body == "token: given 2 times; give it once")
    }
}

@Suite struct CredentialThrottleTests {
    /// Failures are counted per client within a window from the first; when as many clients as the
    /// table holds have failed within their windows, a new client is held too, until the oldest
    /// window ends.
    @Test func holdsAClientAfterTenFailuresAndEveryoneWhenTheTableIsFull() {
        let now = Mutex(1_000.0)
        let throttle = CredentialThrottle(clock: { now.withLock { $0 } })
        for _ in 0..<(CredentialThrottle.maximumFailures - 1) { throttle.recordFailure("a") }
        #expect(throttle.heldSeconds("a") == nil)
        throttle.recordFailure("a")
        #expect(throttle.heldSeconds("a") == 60)
        now.withLock { $0 += 59.5 }
        #expect(throttle.heldSeconds("a") == 1)
        now.withLock { $0 += 1 }
        #expect(throttle.heldSeconds("a") == nil)

        for index in 0..<CredentialThrottle.maximumClients { throttle.recordFailure("client-\(index)") }
        #expect(throttle.heldSeconds("client-0") == nil, "one failure holds no one")
        now.withLock { $0 += 30 }
        #expect(throttle.heldSeconds("newcomer") == 30)
        now.withLock { $0 += 30 }
        #expect(throttle.heldSeconds("newcomer") == nil)
        throttle.recordFailure("newcomer")
        #expect(throttle.heldSeconds("client-1") == nil)
    }

    /// IPv6 clients count per /64 (one host usually holds a whole one); IPv4, loopback and mapped
    /// addresses as they are.
    @Test(arguments: [
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"), ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"), ("192.0.2.1", "192.0.2.1"), ("::1", "::1"),
        ("::ffff:192.0.2.1", "::ffff:192.0.2.1"), ("/run/nginx.sock", "/run/nginx.sock"), ("", ""),
    ])
    func clientsCountPerIPv6Network(address: String, bucket: String) {
        #expect(DashboardRequestContext.network(of: address) == bucket)
    }
}

/// A dashboard served on 127.0.0.1 and asked with curl, so that the peer is local and `X-Real-IP`
/// names the client (not HummingbirdTesting's live client: it connects to `localhost`, a name a fresh
/// root without /etc/hosts resolves through DNS, and the test hung there).
struct CurlServedDashboard {
    let port: Int

    /// Serves `dashboard`, with the routes `adding` puts on its router, while `body` runs.
    static func serving(
        _ dashboard: Dashboard, adding: (Router<DashboardRequestContext>) -> Void = { _ in },
        _ body: (CurlServedDashboard) async throws -> Void
    ) async throws {
        let served = CurlServedDashboard(port: try PortAllocator.freeTCPPort())
        let router = dashboard.router()
        adding(router)
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: served.port)))
        let server = Task { try await app.runService() }
        defer { server.cancel() }
        #expect(Poll.until(timeout: 10) { (try? served.request("/healthz", from: "192.0.2.9").status) == 200 }, "the server did not start")
        try await body(served)
    }

    /// One request from `client` (as `X-Real-IP`), a `POST` of `form` when given: the status, and the
    /// response's header lines (lowercased).
    func request(_ path: String, from client: String, _ headers: [String] = [], form: String? = nil) throws -> (status: Int, headers: String) {
        var arguments = ["-s", "-o", "/dev/null", "-D", "-", "-w", "%{http_code}", "--max-time", "10", "-H", "X-Real-IP: \(client)"]
        for header in headers { arguments += ["-H", header] }
        if let form { arguments += ["--data", form] }
        arguments.append("http://127.0.0.1:\(port)\(path)")
        let output = try ChildProcess.run("curl", arguments, timeout: 15, checkStatus: false).stdout
        return (Int(output.suffix(3)) ?? 0, output.lowercased())
    }
}
