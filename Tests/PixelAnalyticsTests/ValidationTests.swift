@testable import PixelAnalytics
import PixelEvents
import Testing

@Suite struct ValidationTests {
    let validator = HitValidator(sites: try! SiteList(["example.com", "Blog.Example.org"]))

    @Test func siteListNormalizes() throws {
        let list = try SiteList(["www.Example.com", "https://shop.example.net:8443/x", "example.com."])
        #expect(list.names == ["example.com", "shop.example.net"])
        #expect(throws: SiteListError.self) { try SiteList(["not a host"]) }
        #expect(throws: SiteListError.self) { try SiteList([""]) }
    }

    /// Browsers send an internationalised host in its ASCII form: `--site bücher.de` must accept
    /// `https://xn--bcher-kva.de/`. RFC 3492's own samples and the common German ones.
    @Test func internationalisedSiteNamesTakeTheFormBrowsersSend() throws {
        let list = try SiteList(["Bücher.de", "www.münchen.example", "例え.テスト"])
        #expect(list.names == ["xn--bcher-kva.de", "xn--mnchen-3ya.example", "xn--r8jz45g.xn--zckzah"])
        #expect(list.contains("xn--bcher-kva.de"))
        #expect(Punycode.encode("ü") == "tda")
        #expect(Punycode.encode("bücher") == "bcher-kva")
        // RFC 3492 7.1 (L), Japanese: "3年B組金八先生" → "3B-ww4c5e180e575a65lsy2b".
        #expect(Punycode.encode("3年b組金八先生") == "3b-ww4c5e180e575a65lsy2b")
        #expect(Punycode.asciiHost("example.com") == "example.com")
    }

    @Test(arguments: [
        ("https://example.com/", "example.com", "/", ""),
        ("http://WWW.Example.COM:8080/a/b?utm_source=x#frag", "example.com", "/a/b", "utm_source=x"),
        ("https://user:pw@example.com", "example.com", "/", ""),
        ("https://example.com.?q", "example.com", "/", "q"),
        ("https://blog.example.org/post#x", "blog.example.org", "/post", ""),
    ])
    func acceptedPages(_ url: String, _ site: String, _ path: String, _ query: String) throws {
        let page = try validator.checkPage(url).get()
        #expect(page.site == site)
        #expect(page.path == path)
        #expect(page.query == query)
    }

    @Test(arguments: [
        (nil, DropReason.missingURL), ("", .missingURL), ("-", .missingURL),
        ("ftp://example.com/", .badURL), ("javascript:alert(1)", .badURL), ("/relative", .badURL),
        ("https://", .badURL), ("https://exa mple.com/", .badURL), ("https://[::1/", .badURL),
        ("https://evil.example/", .unknownSite), ("https://example.com.evil.net/", .unknownSite),
        ("https://sub.example.com/", .unknownSite),
        ("https://example.com/" + String(repeating: "a", count: 8173), .badURL),  // 8,193 bytes: over the limit
    ] as [(String?, DropReason)])
    func rejectedPages(_ url: String?, _ reason: DropReason) {
        #expect(throws: DropReasonError(reason)) { try validator.checkPage(url).get() }
    }

    @Test func hostilePathsAreCleanedAndCapped() throws {
        #expect(try validator.checkPage("https://example.com/" + String(repeating: "a", count: 8172)).get().site == "example.com")
        let page = try validator.checkPage("https://example.com/a\u{1B}[31m\u{7}b" + String(repeating: "é", count: 600)).get()
        #expect(!page.path.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F })
        #expect(page.path.utf8.count <= DimensionText.pathLimit)
        #expect(page.path.hasPrefix("/a?[31m?b"))
    }

    @Test func timeWindow() {
        let now = 1_700_000_000.0
        #expect(validator.checkTime(now - 86_399, now: now) == nil)
        #expect(validator.checkTime(now - 86_401, now: now) == .tooOld)
        #expect(validator.checkTime(now + 599, now: now) == nil)
        #expect(validator.checkTime(now + 601, now: now) == .inFuture)
        #expect(validator.checkTime(0, now: nil) == nil)
    }

    @Test func days() {
        #expect(Day(timestamp: 0).description == "1970-01-01")
        #expect(Day(timestamp: 1_763_805_600.5).description == "2025-11-22")
        #expect(Day(timestamp: -1).description == "1969-12-31")
        #expect(Day("2024-02-29")?.description == "2024-02-29")
        #expect(Day("2023-02-29") == nil)
        #expect(Day("2024-13-01") == nil)
        #expect(Day("2024-1-01") == nil)
        for number in stride(from: -800_000, through: 800_000, by: 997) {
            let day = Day(number: number)
            #expect(Day(day.description) == day || day.civil.year < 0 || day.civil.year > 9999)
        }
        #expect(RollupBatch.hour(Day("2025-11-22")!.startTimestamp + 3 * 3600 + 59) == "03")
    }
}

@Suite struct EventNameTests {
    /// `pixeld(' signup')` and `pixeld('signup')` are one event; a name of spaces alone is `bad_event`.
    @Test func eventNamesAreTrimmed() throws {
        let processor = HitProcessor(validator: HitValidator(sites: try SiteList(["example.com"])))
        let agent = "Mozilla%2F5.0%20(X11%3B%20Linux%20x86_64)%20AppleWebKit%2F537.36%20(KHTML%2C%20like%20Gecko)%20Chrome%2F124.0%20Safari%2F537.36"
        func outcome(_ name: String) throws -> HitOutcome {
            let line = "1700000000.000,e=\(name)&u=https%3A%2F%2Fexample.com%2F&ua=\(agent)"
            return try processor.process(try PixelEventDecoder.decode(Array(line.utf8)), now: nil, keys: DailyKeys())
        }
        for name in ["signup", "%20signup", "signup%20%20", "%09signup%20"] {
            guard case .accepted(let hit) = try outcome(name) else {
                Issue.record("\(name) not accepted: \(try outcome(name))")
                continue
            }
            #expect(hit.event == "signup", "\(name)")
        }
        guard case .dropped(let drop) = try outcome("%20%20") else {
            Issue.record("a name of spaces was accepted")
            return
        }
        #expect(drop.reason == .badEvent)
    }
}

@Suite struct HostileTimestampTests {
    @Test func hugeTimestampsDoNotTrap() throws {
        let processor = HitProcessor(validator: HitValidator(sites: try SiteList(["example.com"])))
        for text in ["99999999999999999999999999999999", "0", "1e3"] {
            guard let event = try? PixelEventDecoder.decode(Array("\(text),u=https%3A%2F%2Fexample.com%2F".utf8)) else { continue }
            let live = try processor.process(event, now: 1_700_000_000, keys: DailyKeys())
            if case .accepted = live { Issue.record("\(text) accepted") }
            // Replay has no clock: the hit is counted, and nothing traps while rolling it up.
            var batch = RollupBatch(configuration: RollupConfiguration())
            batch.add(try processor.process(event, now: nil, keys: DailyKeys()))
            #expect(!batch.arguments(states: []).isEmpty)
        }
        #expect(Day(timestamp: .infinity).description == "9999-12-31")
        #expect(Day(timestamp: -.infinity).description == "0000-01-01")
    }
}
