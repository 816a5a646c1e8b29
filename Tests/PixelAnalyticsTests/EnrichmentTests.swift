@testable import PixelAnalytics
import Testing

@Suite struct EnrichmentTests {
    @Test(arguments: [
        (nil, nil, "(direct)"), ("", nil, "(direct)"),
        ("https://www.google.com/", nil, "Google"), ("https://www.google.co.uk/search?q=x", nil, "Google"),
        ("https://news.ycombinator.com/item?id=1", nil, "Hacker News"), ("https://t.co/abc", nil, "Twitter"),
        ("https://x.com/someone", nil, "Twitter"), ("https://m.facebook.com/", nil, "Facebook"),
        ("https://old.reddit.com/r/swift", nil, "Reddit"), ("https://github.com/apple/swift", nil, "GitHub"),
        ("https://duckduckgo.com/", nil, "DuckDuckGo"), ("https://www.bing.com/search", nil, "Bing"),
        ("https://www.example.com/other-page", nil, "(direct)"), ("https://docs.example.com/", nil, "(direct)"),
        ("https://a.b.example.com/", nil, "(direct)"), ("https://notexample.com/", nil, "notexample.com"),
        ("https://example.com.evil.net/", nil, "example.com.evil.net"),
        ("https://www.someblog.net/post", nil, "someblog.net"), ("android-app://com.x", nil, "com.x"),
        ("android-app://com.google.android.googlequicksearchbox/", nil, "Google"), ("android-app://com.google.android.gm/", nil, "Gmail"),
        ("android-app://", nil, "(direct)"),
        ("https://www.google.com/", "newsletter", "Newsletter"), (nil, "twitter", "Twitter"),
        (nil, "Spring Sale", "Spring Sale"),
        // Country domains of search engines, and hosts that only contain their name.
        ("https://www.google.de/", nil, "Google"), ("https://scholar.google.com.au/", nil, "Google"),
        ("https://yandex.com.tr/", nil, "Yandex"), ("https://cn.bing.com/", nil, "Bing"),
        ("https://google.mycompany.com/wiki", nil, "google.mycompany.com"), ("https://www.google.evil.net/", nil, "google.evil.net"),
        ("https://bing.example.org/", nil, "bing.example.org"), ("https://googled.de/", nil, "googled.de"),
        ("https://google.co.evil/", nil, "google.co.evil"),
    ] as [(String?, String?, String)])
    func sources(_ referrer: String?, _ campaign: String?, _ expected: String) {
        #expect(SourceClassifier.source(referrer: referrer, site: "example.com", campaignSource: campaign) == expected)
    }

    /// A referrer host of thousands of labels (`r` comes from the visitor) costs a few lookups, not
    /// one per label: each copied and hashed its suffix, ~16 MB of work for an 8 KB host. A "host"
    /// longer than a DNS name is only text, and a referrer longer than 8 KiB is none (as `u`'s limit).
    @Test func hostileReferrerHostsAreBounded() {
        let hostile = String(repeating: "a.", count: 4090) + "facebook.com"
        #expect(hostile.utf8.count == 8192)
        #expect(Array(SourceClassifier.ParentDomains(of: hostile)) == ["a.facebook.com", "facebook.com", "com"])
        #expect(SourceClassifier.name(forHost: hostile) == String(repeating: "a.", count: 64))
        // Through the referrer: up to 8 KiB classified (as text), beyond it no referrer.
        let referrer = "http://" + hostile.dropFirst(8) + "/"
        #expect(referrer.utf8.count == 8192)
        #expect(SourceClassifier.source(referrer: referrer, site: "example.com", campaignSource: nil) == String(repeating: "a.", count: 64))
        #expect(SourceClassifier.source(referrer: referrer + "x", site: "example.com", campaignSource: nil) == "(direct)")
        // The longest a host can be (253 bytes, 122 labels) is looked up: 3 parent domains, not 121.
        let longest = String(repeating: "a.", count: 119) + "mm.facebook.com"
        #expect(longest.utf8.count == 253 && SourceClassifier.name(forHost: longest) == "Facebook")
        #expect(Array(SourceClassifier.ParentDomains(of: longest)).count == SourceClassifier.knownHostLabels)
        #expect(SourceClassifier.knownHostLabels <= 4)
        #expect(SourceClassifier.name(forHost: String(repeating: "x", count: 243) + ".google.de") == "Google")
        #expect(SourceClassifier.name(forHost: String(repeating: "x", count: 244) + ".google.de") == String(repeating: "x", count: 128))
    }

    @Test func campaigns() {
        let campaign = Campaign(query: "a=1&utm_source=news%20letter&utm_medium=email&utm_campaign=spring+sale&ref=x")
        #expect(campaign == Campaign(source: "news letter", medium: "email", name: "spring sale"))
        #expect(Campaign(query: "ref=producthunt").source == "producthunt")
        #expect(Campaign(query: "utm_source=&x=1") == Campaign())
        #expect(Campaign(query: "utm_source=%1B%5B2J") == Campaign(source: "?[2J"))
        // A stray space makes no value of its own (the source was trimmed, utm_sources was not).
        #expect(Campaign(query: "utm_source=newsletter%20&utm_medium=+email&utm_campaign=%09spring") == Campaign(source: "newsletter", medium: "email", name: "spring"))
        #expect(Campaign(query: "utm_source=%20%20&ref=x") == Campaign(source: "x"))
    }

    @Test(arguments: [
        (0, "Chrome", "Windows", "desktop"), (1, "Edge", "Windows", "desktop"), (2, "Firefox", "Windows", "desktop"),
        (3, "Safari", "macOS", "desktop"), (4, "Safari", "iOS", "mobile"), (5, "Safari", "iOS", "tablet"),
        (6, "Chrome", "Android", "mobile"), (7, "Chrome", "Android", "tablet"), (8, "Samsung Internet", "Android", "mobile"),
        (9, "Chrome", "Linux", "desktop"), (11, "Opera", "Windows", "desktop"), (12, "Chrome", "ChromeOS", "desktop"),
        (13, "Chrome", "iOS", "mobile"), (14, "Firefox", "iOS", "mobile"), (15, "Internet Explorer", "Windows", "desktop"),
        (16, "Facebook", "iOS", "mobile"),
    ])
    func families(_ index: Int, _ browser: String, _ os: String, _ device: String) {
        let families = UserAgentClassifier.classify(userAgent: browserUserAgents[index], screenWidth: nil)
        #expect(families == .init(browser: browser, os: os, device: device))
    }

    @Test func screenWidthRefinesDesktop() {
        let mac = browserUserAgents[3]
        #expect(UserAgentClassifier.classify(userAgent: mac, screenWidth: 820).device == "tablet")
        // iPadOS asks for desktop sites as a Mac: its screen tells, up to the 12.9" iPad Pro's 1024.
        for width in [744, 820, 1024] {
            let families = UserAgentClassifier.classify(userAgent: mac, screenWidth: width)
            #expect(families.os == "iOS" && families.device == "tablet", "\(width): \(families)")
        }
        #expect(UserAgentClassifier.classify(userAgent: mac, screenWidth: 1280).os == "macOS")
        // An iPhone asking for desktop sites: the same user agent, a phone's width.
        #expect(UserAgentClassifier.classify(userAgent: mac, screenWidth: 390) == .init(browser: "Safari", os: "iOS", device: "mobile"))
        #expect(UserAgentClassifier.classify(userAgent: mac, screenWidth: 1440).device == "desktop")
        #expect(UserAgentClassifier.classify(userAgent: nil, screenWidth: 390).device == "mobile")
        #expect(UserAgentClassifier.classify(userAgent: nil, screenWidth: nil).device == "(unknown)")
    }

    @Test func props() {
        let pairs = EventProperties.parse(#"{"plan":"pro","seats":3,"trial":false,"note":"a\"b\u00e9"}"#)
        #expect(pairs?.map(\.name) == ["plan", "seats", "trial", "note"])
        #expect(pairs?.map(\.value) == ["pro", "3", "false", "a\"bé"])
        #expect(EventProperties.json(pairs!) == #"{"plan":"pro","seats":"3","trial":"false","note":"a\"bé"}"#)
        for bad in [#"{"a":{"b":1}}"#, #"{"a":[1]}"#, "[1]", #"{"a":1"#, #"{"a":1,"a":2}"#, "nope", #"{"a":1} x"#] {
            #expect(EventProperties.parse(bad) == nil, "\(bad)")
        }
        #expect(EventProperties.parse("{}")?.isEmpty == true)
    }

    @Test func countries() {
        #expect(HitProcessor.country("de") == "DE")
        #expect(HitProcessor.country("XX") == nil)
        #expect(HitProcessor.country("T1") == "T1")
        #expect(HitProcessor.country("") == nil)
        #expect(HitProcessor.country("DEU") == nil)
        #expect(HitProcessor.country("\u{1B}[") == nil)
    }
}
