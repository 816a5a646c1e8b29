@testable import PixelAnalytics
import PixeldTestSupport

/// Percent-encodes everything but unreserved characters, as `encodeURIComponent` does.
func percentEncode(_ text: String) -> String {
    var out = ""
    let hex: [Character] = Array("0123456789ABCDEF")
    for byte in text.utf8 {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."),
            UInt8(ascii: "~"):
            out.append(Character(Unicode.Scalar(byte)))
        default:
            out.append("%")
            out.append(hex[Int(byte >> 4)])
            out.append(hex[Int(byte & 0xF)])
        }
    }
    return out
}

/// JSON string escaping as nginx's `escape=json` does it.
func jsonEscape(_ text: String) -> String {
    var out = ""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if scalar.value < 0x20 {
                let hex: [Character] = Array("0123456789abcdef")
                out += "\\u00" + String(hex[Int(scalar.value >> 4)]) + String(hex[Int(scalar.value & 0xF)])
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
    }
    return out
}

/// `$msec` text for a time in milliseconds.
func msecText(_ milliseconds: Int) -> String {
    let fraction = milliseconds % 1000
    return "\(milliseconds / 1000)." + (fraction < 10 ? "00" : fraction < 100 ? "0" : "") + String(fraction)
}

/// One raw log line as nginx writes it with the recommended `pixel_json` format.
func nginxJSONLine(
    milliseconds: Int, args: [(String, String)], ip: String, ua: String, ref: String = "", dnt: String = "",
    gpc: String = "", country: String = ""
) -> String {
    let query = args.map { percentEncode($0.0) + "=" + percentEncode($0.1) }.joined(separator: "&")
    return "{\"ts\":\(msecText(milliseconds)),\"rid\":\"0123456789abcdef0123456789abcdef\",\"args\":\"\(jsonEscape(query))\","
        + "\"ip\":\"\(jsonEscape(ip))\",\"ua\":\"\(jsonEscape(ua))\",\"ref\":\"\(jsonEscape(ref))\","
        + "\"dnt\":\"\(dnt)\",\"gpc\":\"\(gpc)\",\"country\":\"\(country)\"}"
}

/// Known-truth traffic: every line with what it must become, and the exact numbers that follow.
struct Simulation {
    struct Truth: Equatable {
        var pageviews = 0
        var events = 0
        var visits = 0
        var bounces = 0
        var durationMilliseconds = 0
        var visitors: Set<Int> = []
    }

    struct DayKey: Hashable {
        var site: String
        var day: Day
    }

    let sites = ["alpha.example", "beta.example", "gamma.example"]
    /// The first simulated day (a few days before the real clock, so rollup TTLs are in the future).
    let day0: Day
    /// The consumer clock used for the time window.
    var now: Double { Double(day0.number + 2) * 86_400 + 60 }

    private(set) var lines: [(milliseconds: Int, line: String)] = []
    private(set) var truth: [DayKey: Truth] = [:]
    private(set) var drops: [DropReason: Int] = [:]
    /// Bot lines whose exact rule is not fixed by the test (random list examples): any bot reason.
    private(set) var anyBotDrops = 0
    /// Every IP address and user agent used, for the privacy scan.
    private(set) var ips: [String] = []
    private(set) var userAgents: Set<String> = []
    private(set) var visitorCount = 0
    private(set) var midnightVisits = 0

    static let hostileUserAgents = [
        "Mozilla/5.0 (X11; Linux x86_64) \"quoted\" \\back\\slash\\ AppleWebKit/537.36 Chrome/124.0 Safari/537.36",
        "Mozilla/5.0 (Windows NT 10.0; ünïcødé ✓ 🚀) Gecko/20100101 Firefox/125.0",
        "Mozilla/5.0 (Macintosh; tab\there; %s%n%x; '; DROP TABLE x; --) Safari/605.1.15",
    ]

    static let hostilePaths = [
        "/../../etc/passwd", "/<script>alert(1)</script>", "/%00%0d%0a", "/\u{1B}[2J\u{1B}[31mred", "/🚀/ünï",
        "/" + String(repeating: "long/", count: 200), "/a\"b\\c", "/search",
    ]

    static let hostileReferrers = [
        "https://evil.example/\u{1B}]0;pwned\u{7}", "https://" + String(repeating: "a", count: 300) + ".example/",
        "javascript:alert(1)", "https://www.google.com/search?q=%22quoted%22", "not a url at all",
        "https://xn--bcher-kva.example/", "https://news.ycombinator.com/item?id=1", "",
    ]

    init(seed: UInt64, humans: Int, day0: Day) {
        self.day0 = day0
        var random = SplitMix64(seed: seed)
        let start = day0.number * 86_400_000
        let end = start + 2 * 86_400_000
        for visitor in 0..<humans {
            let site = sites[visitor % sites.count]
            let ip = visitor % 4 == 0 ? "2001:db8:cafe::\(String(visitor, radix: 16))" : "203.0.\(113 + visitor / 250).\(visitor % 250 + 1)"
            var ua = browserUserAgents[Int.random(in: 0..<browserUserAgents.count, using: &random)]
            if visitor % 97 == 0 { ua = Self.hostileUserAgents[visitor % Self.hostileUserAgents.count] }
            ips.append(ip)
            userAgents.insert(ua)
            visitorCount += 1
            var time: Int
            if visitor % 10 == 0 {
                // Starts shortly before the first midnight, so the visit may cross it.
                time = start + 86_400_000 - Int.random(in: 60_000...1_700_000, using: &random)
            } else {
                time = Int.random(in: start..<(end - 3_600_000), using: &random)
            }
            let visitCount = Int.random(in: 1...3, using: &random)
            for _ in 0..<visitCount {
                guard time < end - 1000 else { break }
                let isBounce = Int.random(in: 0..<100, using: &random) < 35
                let hitCount = isBounce ? 1 : Int.random(in: 2...8, using: &random)
                var hits: [(Int, Bool)] = []
                for index in 0..<hitCount {
                    if index > 0 {
                        time += Int.random(in: 1_000...1_790_000, using: &random)
                    }
                    guard time < end - 1000 else { break }
                    let isEvent = index > 0 && Int.random(in: 0..<10, using: &random) == 0
                    hits.append((time, !isEvent))
                }
                guard !hits.isEmpty else { break }
                // Truth for the visit.
                let first = hits.first!.0
                let last = hits.last!.0
                let startDay = Day(number: first / 86_400_000)
                truth[DayKey(site: site, day: startDay), default: Truth()].visits += 1
                truth[DayKey(site: site, day: startDay), default: Truth()].durationMilliseconds += last - first
                if hits.count == 1 && hits[0].1 { truth[DayKey(site: site, day: startDay), default: Truth()].bounces += 1 }
                if Day(number: last / 86_400_000) != startDay { midnightVisits += 1 }
                let entryPath = Self.hostilePaths[Int.random(in: 0..<Self.hostilePaths.count, using: &random)]
                let referrer = Self.hostileReferrers[Int.random(in: 0..<Self.hostileReferrers.count, using: &random)]
                let width = ["390", "820", "1440", "", "abc"][Int.random(in: 0..<5, using: &random)]
                for (index, (milliseconds, isPageview)) in hits.enumerated() {
                    let key = DayKey(site: site, day: Day(number: milliseconds / 86_400_000))
                    if isPageview { truth[key, default: Truth()].pageviews += 1 } else { truth[key, default: Truth()].events += 1 }
                    truth[key, default: Truth()].visitors.insert(visitor)
                    let path = index == 0 ? entryPath : "/page/\(index)"
                    let host = visitor % 5 == 0 ? "www." + site : site
                    var args: [(String, String)] = [("u", "https://\(host)\(path)" + (index == 0 && visitor % 7 == 0 ? "?utm_source=newsletter&utm_medium=email&utm_campaign=launch" : ""))]
                    if !isPageview {
                        args.insert(("e", "signup"), at: 0)
                        args.append(("p", #"{"plan":"pro"}"#))
                    }
                    args.append(("r", index == 0 ? referrer : "https://\(site)/previous"))
                    if !width.isEmpty { args.append(("w", width)) }
                    lines.append((milliseconds, nginxJSONLine(milliseconds: milliseconds, args: args, ip: ip, ua: ua, country: ["DE", "us", "", "XX"][visitor % 4])))
                }
                time += Int.random(in: 1_801_000...20_000_000, using: &random)
            }
        }
        // Hits that must be dropped, each with its reason.
        func validURL() -> String { "https://\(sites[Int.random(in: 0..<sites.count, using: &random)])/x" }
        func randomTime() -> Int { Int.random(in: start..<end, using: &random) }
        func add(_ count: Int, _ reason: DropReason?, _ make: (Int) -> String) {
            for index in 0..<count {
                let milliseconds = randomTime()
                _ = index
                lines.append((milliseconds, make(milliseconds)))
                if let reason { drops[reason, default: 0] += 1 } else { anyBotDrops += 1 }
            }
        }
        let human = browserUserAgents[0]
        func botIP(_ index: Int) -> String { "198.51.100.\(index % 250 + 1)" }
        for index in 0..<250 { ips.append(botIP(index)) }
        add(120, .listedBot) { nginxJSONLine(milliseconds: $0, args: [("u", validURL())], ip: botIP($0), ua: "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)") }
        add(60, .headless) { nginxJSONLine(milliseconds: $0, args: [("u", validURL())], ip: botIP($0), ua: "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/124.0.0.0 Safari/537.36") }
        add(40, .emptyUserAgent) { nginxJSONLine(milliseconds: $0, args: [("u", validURL())], ip: botIP($0), ua: "") }
        add(40, .genericBot) { nginxJSONLine(milliseconds: $0, args: [("u", validURL())], ip: botIP($0), ua: "SomeInternalTool/3.1 (Linux)") }
        let examples = CrawlerInstances.text.split(separator: "\n").map(String.init)
        add(300, nil) { nginxJSONLine(milliseconds: $0, args: [("u", validURL())], ip: botIP($0), ua: examples[Int.random(in: 0..<examples.count, using: &random)]) }
        let dntUA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 DNTUser/1"
        let gpcUA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 GPCUser/1"
        userAgents.formUnion([dntUA, gpcUA])
        add(100, .doNotTrack) { nginxJSONLine(milliseconds: $0, args: [("u", validURL())], ip: "192.0.2.\($0 % 200 + 1)", ua: dntUA, dnt: "1") }
        add(50, .globalPrivacyControl) { nginxJSONLine(milliseconds: $0, args: [("u", validURL())], ip: "192.0.2.\($0 % 200 + 1)", ua: gpcUA, gpc: "1") }
        for index in 1...200 { ips.append("192.0.2.\(index)") }
        add(100, .unknownSite) { nginxJSONLine(milliseconds: $0, args: [("u", "https://unknown-\($0 % 7).example/")], ip: "192.0.2.1", ua: human) }
        add(30, .badURL) { nginxJSONLine(milliseconds: $0, args: [("u", ["javascript:alert(1)", "ftp://alpha.example/", "https://", "//alpha.example/x"][$0 % 4])], ip: "192.0.2.1", ua: human) }
        add(20, .missingURL) { nginxJSONLine(milliseconds: $0, args: [("e", "pageview")], ip: "192.0.2.1", ua: human) }
        add(15, .badEvent) { nginxJSONLine(milliseconds: $0, args: [("e", "\u{1}evil"), ("u", validURL())], ip: "192.0.2.1", ua: human) }
        // Outside the time window: placed at their own times, processed in order with the rest.
        for index in 0..<20 {
            let milliseconds = start - 3 * 86_400_000 - index * 1000
            lines.append((milliseconds, nginxJSONLine(milliseconds: milliseconds, args: [("u", validURL())], ip: "192.0.2.1", ua: human)))
            drops[.tooOld, default: 0] += 1
        }
        for index in 0..<20 {
            let milliseconds = Int(now * 1000) + 3_600_000 + index * 1000
            lines.append((milliseconds, nginxJSONLine(milliseconds: milliseconds, args: [("u", validURL())], ip: "192.0.2.1", ua: human)))
            drops[.inFuture, default: 0] += 1
        }
        lines.sort { $0.milliseconds < $1.milliseconds }
        userAgents.insert(human)
    }
}
