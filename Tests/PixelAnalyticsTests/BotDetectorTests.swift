@testable import PixelAnalytics
import Testing

/// Real browser user agents (desktop, mobile, tablet, in-app) that must never count as bots.
let browserUserAgents: [String] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.67",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 13; SM-X200) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/24.0 Chrome/117.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 OPR/109.0.0.0",
    "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/124.0.6367.88 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) FxiOS/125.0 Mobile/15E148 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 6.1; WOW64; Trident/7.0; rv:11.0) like Gecko",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/459.0.0.36.108;FBDV/iPhone15,2;FBMD/iPhone;FBSN/iOS;FBSV/17.4;FBSS/3;FBID/phone;FBLC/en_US;FBOP/5]",
    "Mozilla/5.0 (Linux; Android 9; CUBOT_X19) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/100.0.4896.127 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 YaBrowser/24.4.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Vivaldi/6.7",
]

@Suite struct BotDetectorTests {
    @Test func everyShippedPatternCompiles() throws {
        let patterns = try CrawlerUserAgentList.compiled()
        #expect(patterns.count == CrawlerUserAgentList.patternText.split(separator: "\n").count)
        #expect(patterns.count > 1400)
    }

    @Test func everyExampleFromTheListIsABot() {
        let examples = CrawlerInstances.text.split(separator: "\n").map(String.init)
        #expect(examples.count > 1400)
        var missed: [String] = []
        for example in examples where BotDetector.standard.classify(userAgent: example) == nil {
            missed.append(example)
        }
        #expect(missed.isEmpty, "not detected: \(missed.prefix(10))")
    }

    @Test(arguments: browserUserAgents)
    func browsersAreNotBots(_ userAgent: String) {
        #expect(BotDetector.standard.classify(userAgent: userAgent) == nil)
    }

    @Test(arguments: [
        ("", DropReason.emptyUserAgent), ("-", .emptyUserAgent), ("   ", .emptyUserAgent),
        ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/124.0.0.0 Safari/537.36", .headless),
        ("Mozilla/5.0 (Unknown; Linux x86_64) AppleWebKit/538.1 (KHTML, like Gecko) PhantomJS/2.1.1 Safari/538.1", .headless),
        ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", .listedBot),
        ("curl/8.5.0", .listedBot),
        ("python-requests/2.31.0", .listedBot),
        ("Mozilla/5.0 (compatible; MyOwnCrawler/1.0)", .genericBot),
        ("Mozilla/5.0 (X11) SuperBot", .genericBot),
        ("SomeApp/1.0", .genericBot),
    ])
    func automatedClients(_ userAgent: String, _ reason: DropReason) {
        #expect(BotDetector.standard.classify(userAgent: userAgent)?.reason == reason)
    }

    @Test func oversizeUserAgentIsABotAndNearMissesAreNot() {
        let huge = "Mozilla/5.0 " + String(repeating: "a", count: 70_000)
        #expect(BotDetector.standard.classify(userAgent: huge)?.reason == .genericBot)
        let nearlyHuge = "Mozilla/5.0 (" + String(repeating: "Googlebo", count: 120) + ")"
        // Many near-misses of a listed literal: not a bot. (The automaton reads each byte once by
        // construction; no time is measured here: speed lives in the benchmarks.)
        #expect(BotDetector.standard.classify(userAgent: nearlyHuge) == nil)
    }

    @Test func ruleNamesComeFromTheRulesNotTheUserAgent() {
        let verdict = BotDetector.standard.classify(userAgent: "Mozilla/5.0 (compatible; Googlebot/2.1; secret-123)")
        #expect(verdict?.rule == "Googlebot\\/")
        #expect(!(verdict?.rule.contains("secret") ?? true))
    }
}

@Suite struct BotPatternTests {
    func matches(_ pattern: String, _ text: String) throws -> Bool {
        let compiled = try BotPattern(pattern)
        var text = text
        return text.withUTF8 { compiled.matches($0) }
    }

    @Test func subsetSemantics() throws {
        #expect(try matches("AdsBot-Google([^-]|$)", "AdsBot-Google"))
        #expect(try matches("AdsBot-Google([^-]|$)", "AdsBot-Google (+http://x)"))
        #expect(try !matches("AdsBot-Google([^-]|$)", "AdsBot-Google-Mobile"))
        #expect(try matches("^curl", "curl/8"))
        #expect(try !matches("^curl", "xcurl/8"))
        #expect(try matches("(^| )sentry\\/", "a sentry/1"))
        #expect(try matches("(^| )sentry\\/", "sentry/1"))
        #expect(try !matches("(^| )sentry\\/", "xsentry/1"))
        #expect(try matches("[wW]get", "Wget/1"))
        #expect(try matches("BlogTraffic\\/\\d\\.\\d+ Feed-Fetcher", "BlogTraffic/1.23 Feed-Fetcher"))
        #expect(try !matches("BlogTraffic\\/\\d\\.\\d+ Feed-Fetcher", "BlogTraffic/1. Feed-Fetcher"))
        #expect(try matches("Spider[\\s\\S]*spider\\.com", "Spider/1 (+spider.com)"))
        #expect(try matches("GoogleAssociationService$", "x GoogleAssociationService"))
        #expect(try !matches("GoogleAssociationService$", "GoogleAssociationService x"))
        #expect(try matches("Chirp|gotosocial", "gotosocial/1"))
        #expect(try matches("a.c", "abc"))
        #expect(try matches("colou?r", "color"))
    }

    @Test func unsupportedSyntaxIsRejected() {
        for pattern in ["a{2}", "(ab)+", "\\bword", "(abc", "abc)", "[abc", "*a", "\\1"] {
            #expect(throws: BotPattern.CompileError.self) { try BotPattern(pattern) }
        }
    }

    @Test func literalPrefilterIsTheLongestRequiredRun() throws {
        #expect(try BotPattern("Googlebot\\/").alternatives[0].literal == Array("googlebot/".utf8))
        #expect(try BotPattern("[wW]get").alternatives[0].literal == Array("wget".utf8))
        #expect(try BotPattern("ab\\d+cdef").alternatives[0].literal == Array("cdef".utf8))
    }

    @Test func automatonFindsAllLiterals() {
        let automaton = LiteralAutomaton([Array("he".utf8), Array("she".utf8), Array("his".utf8), Array("hers".utf8)])
        var found: Set<Int> = []
        var text = "uSHErs"
        text.withUTF8 { bytes in automaton.forEachMatch(in: bytes) { found.insert($0); return true } }
        #expect(found == [0, 1, 3])
    }
}
