/// Where a visit came from: a named source for well-known hosts (and Android apps), the referrer's
/// host (or app package) otherwise, `(direct)` for no referrer or an internal one; a campaign's
/// `utm_source` (or `ref`) wins.
public enum SourceClassifier {
    /// The source of visits without a referrer, or referred from the site itself.
    public static let direct = "(direct)"

    /// Well-known referrer hosts (normalized: lowercase, no `www.`) and their names; a host also
    /// matches as a subdomain (`m.facebook.com` → Facebook) and any `google.<tld>` is Google.
    static let knownHosts: [String: String] = [
        "google.com": "Google", "news.google.com": "Google News", "bing.com": "Bing", "duckduckgo.com": "DuckDuckGo",
        "search.yahoo.com": "Yahoo", "yahoo.com": "Yahoo", "yandex.ru": "Yandex", "yandex.com": "Yandex",
        "baidu.com": "Baidu", "ecosia.org": "Ecosia", "search.brave.com": "Brave Search", "startpage.com": "Startpage",
        "qwant.com": "Qwant", "kagi.com": "Kagi", "t.co": "Twitter", "twitter.com": "Twitter", "x.com": "Twitter",
        "facebook.com": "Facebook", "fb.com": "Facebook", "instagram.com": "Instagram", "reddit.com": "Reddit",
        "news.ycombinator.com": "Hacker News", "github.com": "GitHub", "gitlab.com": "GitLab",
        "linkedin.com": "LinkedIn", "lnkd.in": "LinkedIn", "youtube.com": "YouTube", "pinterest.com": "Pinterest",
        "lobste.rs": "Lobsters", "wikipedia.org": "Wikipedia", "t.me": "Telegram", "telegram.org": "Telegram",
        "stackoverflow.com": "Stack Overflow", "medium.com": "Medium", "bsky.app": "Bluesky",
        "chatgpt.com": "ChatGPT", "perplexity.ai": "Perplexity", "mail.google.com": "Gmail",
    ]

    /// Android apps by package, as Chrome on Android reports them (`android-app://PACKAGE/`: the Google
    /// app and Discover, Gmail, the social apps' in-app browsers), mapped to the same names as their hosts.
    static let knownApps: [String: String] = [
        "com.google.android.googlequicksearchbox": "Google", "com.google.android.gm": "Gmail",
        "com.google.android.youtube": "YouTube", "com.twitter.android": "Twitter", "com.facebook.katana": "Facebook",
        "com.facebook.orca": "Facebook", "com.instagram.android": "Instagram", "com.reddit.frontpage": "Reddit",
        "com.linkedin.android": "LinkedIn", "org.telegram.messenger": "Telegram", "com.pinterest": "Pinterest",
        "com.slack": "Slack", "com.Slack": "Slack", "com.microsoft.office.outlook": "Outlook",
    ]

    /// Campaign source aliases (`utm_source=twitter`) mapped to the same names as referrers.
    static let knownAliases: [String: String] = [
        "google": "Google", "bing": "Bing", "duckduckgo": "DuckDuckGo", "twitter": "Twitter", "x": "Twitter",
        "facebook": "Facebook", "fb": "Facebook", "reddit": "Reddit", "hackernews": "Hacker News",
        "hacker news": "Hacker News", "hn": "Hacker News", "github": "GitHub", "linkedin": "LinkedIn",
        "newsletter": "Newsletter", "youtube": "YouTube", "instagram": "Instagram", "mastodon": "Mastodon",
    ]

    /// The source of a hit.
    /// - Parameters:
    ///   - referrer: The document referrer (`r`), `nil`/empty when none; one that is not an http(s) URL
    ///     of at most 8 KiB counts as none.
    ///   - site: The hit's normalized site (self-referrals become ``direct``).
    ///   - campaignSource: `utm_source` or `ref` from the page URL, when present.
    public static func source(referrer: String?, site: String, campaignSource: String?) -> String {
        if let campaignSource {
            let cleaned = DimensionText.clean(DimensionText.trimmed(campaignSource))
            if !cleaned.isEmpty { return knownAliases[cleaned.lowercased()] ?? cleaned }
        }
        guard let referrer, !referrer.isEmpty, referrer != "-" else { return direct }
        if referrer.hasPrefix(androidAppScheme) { return name(forAndroidApp: referrer.dropFirst(androidAppScheme.count)) }
        return ASCIIBytes.withBytes(referrer) { bytes in
            guard let parts = URLParts.parse(bytes) else { return direct }
            let host = URLParts.normalizedHost(bytes, parts.host)
            if host == site || isSubdomain(host, of: site) { return direct }
            return name(forHost: host)
        }
    }

    /// The name of a normalized referrer host: a well-known name, or the host itself (capped). A
    /// "host" longer than a DNS name can be (``maxHostBytes``) is only text: it is not looked up.
    public static func name(forHost host: String) -> String {
        guard host.utf8.count <= maxHostBytes else { return DimensionText.clean(host) }
        if let name = knownHosts[host] { return name }
        // Subdomains: m.facebook.com, old.reddit.com, l.instagram.com, en.wikipedia.org…
        for suffix in ParentDomains(of: host) {
            if let name = knownHosts[String(suffix)] { return name }
        }
        // google.de, google.co.uk, scholar.google.com.au, yandex.com.tr, cn.bing.com, …
        for (label, name) in countrySearchEngines where isCountryDomain(host, of: label) { return name }
        return DimensionText.clean(host)
    }

    /// Search engines with a domain per country.
    static let countrySearchEngines = [("google", "Google"), ("bing", "Bing"), ("yandex", "Yandex")]

    /// Whether `host` is `label` under a top-level domain (`google.de`), `co.`/`com.` and a country code
    /// (`google.co.uk`, `google.com.au`), or a subdomain of one (`scholar.google.de`). Not any host that
    /// merely contains the label: `google.example.com` (a company's wiki) and `www.google.evil.net`
    /// (referrer spam) are not Google.
    static func isCountryDomain(_ host: String, of label: String) -> Bool {
        var labels = host.split(separator: ".", omittingEmptySubsequences: false)
        guard let top = labels.popLast(), top.count >= 2, top.count <= 3, top.allSatisfy({ $0 >= "a" && $0 <= "z" }) else {
            return false
        }
        if labels.last == Substring(label) { return true }
        guard top.count == 2, let second = labels.popLast(), second == "co" || second == "com" else { return false }
        return labels.last == Substring(label)
    }

    /// The longest DNS name, in bytes (RFC 1035: 255 octets on the wire, 253 characters written).
    static let maxHostBytes = 253

    /// The most labels of a ``knownHosts`` key (`news.google.com`: 3): a longer parent domain cannot be one.
    static let knownHostLabels = knownHosts.keys.map { $0.utf8.count { $0 == UInt8(ascii: ".") } + 1 }.max() ?? 1

    /// The parent domains of a host that a ``knownHosts`` key can be, longest first: `a.b.m.facebook.com`
    /// → `m.facebook.com`, `facebook.com`, `com`. Only those of at most ``knownHostLabels`` labels, so
    /// that a host of many labels costs as few lookups as one of three (each lookup copies and hashes
    /// its suffix). Builds nothing: the suffixes share the host's storage.
    struct ParentDomains: Sequence, IteratorProtocol {
        private var pending: Substring?

        /// The parent domains of `host` of at most `labels` labels.
        init(of host: String, labels: Int = knownHostLabels) {
            // From the end: after the `labels`-th dot from the right (or the first, with fewer).
            var end = host.endIndex
            var start: String.Index?
            for _ in 0..<labels {
                guard let dot = host[..<end].lastIndex(of: ".") else { break }
                start = host.index(after: dot)
                end = dot
            }
            pending = start.map { host[$0...] }
        }

        mutating func next() -> Substring? {
            guard let current = pending else { return nil }
            pending = current.firstIndex(of: ".").map { current[current.index(after: $0)...] }
            return current
        }
    }

    private static let androidAppScheme = "android-app://"

    /// The name of an app referrer (`android-app://` removed): a well-known name, or the package.
    static func name(forAndroidApp rest: Substring) -> String {
        let package = String(rest.prefix { $0 != "/" })
        guard !package.isEmpty else { return direct }
        return knownApps[package] ?? DimensionText.clean(package)
    }

    /// Whether `host` ends with `.` + `site` (compared as bytes, without building that string).
    static func isSubdomain(_ host: String, of site: String) -> Bool {
        let host = host.utf8, site = site.utf8
        guard host.count > site.count else { return false }
        let dot = host.index(host.endIndex, offsetBy: -site.count - 1)
        return host[dot] == UInt8(ascii: ".") && host[host.index(after: dot)...].elementsEqual(site)
    }

}
