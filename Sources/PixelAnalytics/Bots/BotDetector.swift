/// Tells automated clients from browsers by their user agent, the way isbot and Plausible do:
///
/// 1. Empty (or `-`) user agent → ``DropReason/emptyUserAgent``.
/// 2. Headless or instrumented browsers (`HeadlessChrome`, PhantomJS, Puppeteer, Playwright,
///    Selenium, Lighthouse…) → ``DropReason/headless``.
/// 3. Any of the ~1,500 patterns of the public crawler-user-agents list → ``DropReason/listedBot``.
/// 4. Generic automation words (`bot` but not the CUBOT phone brand, `crawl`, `spider`, `curl`,
///    `python`, `http://`…), user agents longer than 1 KiB, and anything that does not start like a
///    browser's (`Mozilla/` or `Opera/`) → ``DropReason/genericBot``.
///
/// All literals of all rules run through one Aho–Corasick scan; a list pattern is evaluated only
/// when its longest literal occurs, so classifying a browser's user agent costs one pass over its
/// bytes. Building the detector compiles the list (a few milliseconds): share one instance,
/// e.g. ``standard``.
public struct BotDetector: Sendable {
    /// What a user agent is, when it is not a browser.
    public struct Verdict: Sendable, Equatable {
        /// The drop reason.
        public var reason: DropReason
        /// The rule that matched: a list pattern, a generic word or a short description. Taken
        /// from the rules, never from the user agent, so it is safe to store.
        public var rule: String
    }

    /// A detector with the shipped list, built on first use.
    public static let standard: BotDetector = {
        do {
            return try BotDetector()
        } catch {
            fatalError("the shipped crawler list does not compile: \(error)")
        }
    }()

    /// The release of the crawler-user-agents data compiled in.
    public static var listVersion: String { CrawlerUserAgentList.dataVersion }

    /// User agents longer than this are treated as automated.
    public static let maxUserAgentBytes = 1024

    /// Headless and instrumented browsers, lowercase substrings.
    static let headlessWords: [String] = [
        "headless", "phantomjs", "slimerjs", "puppeteer", "playwright", "selenium", "webdriver", "htmlunit",
        "jsdom", "lighthouse", "pagespeed", "gtmetrix", "cypress", "splash",
    ]

    /// Generic automation words, lowercase substrings (after isbot's generic rules).
    static let genericWords: [String] = [
        "bot", "crawl", "spider", "slurp", "scrape", "scrapy", "archiver", "fetcher", "http://", "https://",
        "curl", "wget", "python", "java/", "libwww", "perl/", "php/", "ruby", "go-http-client", "okhttp",
        "httpclient", "http-client", "node-fetch", "axios", "undici", "aiohttp", "httpx", "postman", "insomnia",
        "monitor", "uptime", "pingdom", "validator", "feedfetcher", "rss", "scanner", "nutch", "heritrix",
    ]

    private enum Rule: Sendable {
        case listAlternative(pattern: Int, alternative: Int)
        case headless(Int)
        case generic(Int)
    }

    private let patterns: [BotPattern]
    private let rules: [Rule]
    private let automaton: LiteralAutomaton
    /// List alternatives without a usable literal: checked on every user agent.
    private let unfiltered: [(pattern: Int, alternative: Int)]

    /// Builds a detector from the shipped list and rules.
    /// - Throws: `BotPattern.CompileError` (internal) when the list holds an unsupported pattern.
    public init() throws {
        try self.init(listPatterns: CrawlerUserAgentList.compiled())
    }

    init(listPatterns: [BotPattern]) {
        var literals: [[UInt8]] = []
        var rules: [Rule] = []
        var unfiltered: [(Int, Int)] = []
        for (patternIndex, pattern) in listPatterns.enumerated() {
            for (alternativeIndex, alternative) in pattern.alternatives.enumerated() {
                if alternative.literal.count >= 2 {
                    literals.append(alternative.literal)
                    rules.append(.listAlternative(pattern: patternIndex, alternative: alternativeIndex))
                } else {
                    unfiltered.append((patternIndex, alternativeIndex))
                }
            }
        }
        for (index, word) in Self.headlessWords.enumerated() {
            literals.append(Array(word.utf8))
            rules.append(.headless(index))
        }
        for (index, word) in Self.genericWords.enumerated() {
            literals.append(Array(word.utf8))
            rules.append(.generic(index))
        }
        self.patterns = listPatterns
        self.rules = rules
        self.unfiltered = unfiltered
        self.automaton = LiteralAutomaton(literals)
    }

    /// The number of list patterns compiled in.
    public var listPatternCount: Int { patterns.count }

    /// Classifies a user agent.
    /// - Parameter userAgent: The `User-Agent` header as logged (`""` or `-` when absent).
    /// - Returns: `nil` for a browser, else why it is not one.
    public func classify(userAgent: String) -> Verdict? {
        ASCIIBytes.withBytes(userAgent) { classify(bytes: $0) }
    }

    /// ``classify(userAgent:)`` over UTF-8 bytes.
    public func classify(bytes: UnsafeBufferPointer<UInt8>) -> Verdict? {
        var start = 0
        var end = bytes.count
        while start < end && (bytes[start] == 0x20 || bytes[start] == 0x09) { start += 1 }
        while end > start && (bytes[end - 1] == 0x20 || bytes[end - 1] == 0x09) { end -= 1 }
        let text = bytes.extracting(start..<end)
        if text.isEmpty || (text.count == 1 && text[0] == UInt8(ascii: "-")) {
            return Verdict(reason: .emptyUserAgent, rule: "empty user agent")
        }
        if text.count > Self.maxUserAgentBytes {
            return Verdict(reason: .genericBot, rule: "user agent longer than \(Self.maxUserAgentBytes) bytes")
        }
        var headless: Int?
        var listed: Int?
        var generic: Int?
        automaton.forEachMatch(in: text) { ruleIndex in
            switch rules[ruleIndex] {
            case .headless(let index):
                headless = index
                return false
            case .listAlternative(let pattern, let alternative):
                if listed == nil || pattern < listed!, patterns[pattern].alternatives[alternative].matches(text) {
                    listed = pattern
                }
            case .generic(let index):
                if generic == nil, !(Self.genericWords[index] == "bot" && Self.onlyCubot(text)) {
                    generic = index
                }
            }
            return true
        }
        if let headless {
            return Verdict(reason: .headless, rule: Self.headlessWords[headless])
        }
        if listed == nil {
            for (pattern, alternative) in unfiltered where patterns[pattern].alternatives[alternative].matches(text) {
                listed = pattern
                break
            }
        }
        if let listed {
            return Verdict(reason: .listedBot, rule: patterns[listed].source)
        }
        if let generic {
            return Verdict(reason: .genericBot, rule: Self.genericWords[generic])
        }
        if !ASCIIBytes.hasPrefix(text, "Mozilla/") && !ASCIIBytes.hasPrefix(text, "Opera/") {
            return Verdict(reason: .genericBot, rule: "not a browser user agent")
        }
        return nil
    }

    /// Whether every `bot` in `text` is part of `cubot` (a phone brand: `CUBOT_X19`).
    private static func onlyCubot(_ text: UnsafeBufferPointer<UInt8>) -> Bool {
        var index = 0
        while index + 3 <= text.count {
            if ASCIIBytes.lower(text[index]) == UInt8(ascii: "b"), ASCIIBytes.lower(text[index + 1]) == UInt8(ascii: "o"),
                ASCIIBytes.lower(text[index + 2]) == UInt8(ascii: "t")
            {
                let cu = index >= 2 && ASCIIBytes.lower(text[index - 2]) == UInt8(ascii: "c")
                    && ASCIIBytes.lower(text[index - 1]) == UInt8(ascii: "u")
                if !cu { return false }
            }
            index += 1
        }
        return true
    }
}
