public import PixelEvents

/// Turns one decoded pixel hit into an ``HitOutcome``: validate → drop bots → respect privacy
/// signals (optional) → anonymise → enrich. Pure: no I/O, no clock (the caller passes `now`), no
/// randomness (the daily keys are passed in).
///
/// Checks run in this order and the first that fails names the drop reason: page URL
/// (`missing_url`, `bad_url`, `unknown_site`), time window (`too_old`, `in_future`), event name
/// (`bad_event`), user agent (`bot_empty_ua`, `bot_headless`, `bot_list`, `bot_generic`), then with
/// ``respectPrivacySignals`` `dnt` and `gpc`. A drop of a hit outside the time window counts on the
/// day it is processed on (``DroppedHit/countedOn``), not on its own.
///
/// Inputs read from the event: query arguments `u` (page URL; falls back to the `ref` field, the
/// pixel request's `Referer`, for `<noscript>` images), `e`, `r`, `w`, `p`; log fields `ip`, `ua`,
/// `dnt`, `gpc`, `country`. The IP address and user agent are used for bot detection, families,
/// the visitor id and (the address, with ``geoIP``) the country, and go nowhere else.
public struct HitProcessor: Sendable {
    /// The event name of a pageview (`e` absent or empty).
    public static let pageviewEvent = "pageview"
    /// Longest custom event name, in bytes.
    public static let maxEventNameBytes = 64

    /// Site list and time window.
    public var validator: HitValidator
    /// The bot rules.
    public var detector: BotDetector
    /// Drop hits sent with `DNT: 1` or `Sec-GPC: 1` (`--respect-dnt`).
    public var respectPrivacySignals: Bool
    /// A visit ends after this many seconds without a hit (30 minutes).
    public var sessionIdleSeconds: Double
    /// Country lookups for hits without a CDN country header (`--geoip FILE`).
    public var geoIP: GeoIPDatabase?
    /// Verdicts and families of recent user agents (memory only).
    private let userAgents = UserAgentCache()

    /// Creates a processor.
    /// - Parameters:
    ///   - validator: Site list and time window.
    ///   - detector: The bot rules; ``BotDetector/standard`` by default.
    ///   - respectPrivacySignals: Drop `DNT`/`Sec-GPC` hits.
    ///   - sessionIdleSeconds: The visit timeout.
    ///   - geoIP: A MaxMind country database for hits without a CDN country header.
    public init(
        validator: HitValidator, detector: BotDetector = .standard, respectPrivacySignals: Bool = false,
        sessionIdleSeconds: Double = 1800, geoIP: GeoIPDatabase? = nil
    ) {
        self.validator = validator
        self.detector = detector
        self.respectPrivacySignals = respectPrivacySignals
        self.sessionIdleSeconds = sessionIdleSeconds
        self.geoIP = geoIP
    }

    /// The daily key a hit needed was not passed in: fetch ``DailyKeys/daysNeeded(for:sessionIdleSeconds:)``
    /// first. The batch should be retried, not acked.
    public struct MissingKey: Error, Sendable, CustomStringConvertible {
        /// The day whose key is missing.
        public var day: Day
        public var description: String { "the visitor key of \(day) was not loaded" }
    }

    /// Processes one hit.
    /// - Parameters:
    ///   - event: The decoded hit.
    ///   - now: The consumer's clock (seconds since the epoch), `nil` to skip the time window.
    ///   - keys: The daily keys of the hit's day (required when the hit has an IP and user agent)
    ///     and of the day before (optional; used within the session timeout after midnight).
    /// - Throws: ``MissingKey`` when the key of the hit's day is not in `keys`.
    public func process(_ event: PixelEvent, now: Double?, keys: DailyKeys) throws(MissingKey) -> HitOutcome {
        var pageURL = event.firstValue(of: "u")
        if pageURL?.isEmpty ?? true, let referer = event.field("ref"), !referer.isEmpty { pageURL = referer }
        func drop(_ reason: DropReason, site: String? = nil, rule: String? = nil, name: String? = nil, path: String? = nil)
            -> HitOutcome
        {
            .dropped(
                DroppedHit(
                    timestampText: event.timestampText, timestamp: event.timestamp, reason: reason, site: site, rule: rule,
                    event: name, path: path, countedOn: countedOn(event.timestamp, now: now)
                )
            )
        }
        let page: HitValidator.Page
        switch validator.checkPage(pageURL) {
        case .success(let valid):
            page = valid
        case .failure(let error):
            var host: String?
            if error.reason == .unknownSite, let pageURL {
                host = ASCIIBytes.withBytes(pageURL) { bytes in
                    URLParts.parse(bytes).map { DimensionText.clean(URLParts.normalizedHost(bytes, $0.host)) }
                }
            }
            return drop(error.reason, site: host)
        }
        let rawName = event.firstValue(of: "e") ?? ""
        // Trimmed: `pixeld(' signup')` is `signup`; all spaces is `bad_event`, not a pageview.
        let name = rawName.isEmpty ? Self.pageviewEvent : DimensionText.trimmed(rawName)
        if let reason = validator.checkTime(event.timestamp, now: now) {
            return drop(reason, site: page.site, name: DimensionText.clean(name), path: page.path)
        }
        guard Self.isValidEventName(name) else {
            return drop(.badEvent, site: page.site, path: page.path)
        }
        let userAgent = event.field("ua")
        var agentFamilies: UserAgentClassifier.Families?
        if let userAgent {
            let entry: UserAgentCache.Entry
            if let known = userAgents.entry(for: userAgent) {
                entry = known
            } else {
                let verdict = detector.classify(userAgent: userAgent)
                entry = .init(
                    verdict: verdict,
                    families: verdict == nil ? UserAgentClassifier.classify(userAgent: userAgent) : .init(browser: "", os: "", device: "")
                )
                userAgents.remember(entry, for: userAgent)
            }
            if let verdict = entry.verdict {
                return drop(verdict.reason, site: page.site, rule: verdict.rule, name: name, path: page.path)
            }
            agentFamilies = entry.families
        }
        if respectPrivacySignals {
            if event.field("dnt") == "1" { return drop(.doNotTrack, site: page.site, name: name, path: page.path) }
            if event.field("gpc") == "1" { return drop(.globalPrivacyControl, site: page.site, name: name, path: page.path) }
        }
        // Anonymise.
        var visitorID: String?
        var previousVisitorID: String?
        if let userAgent, let ip = event.field("ip"), !ip.isEmpty {
            let day = Day(timestamp: event.timestamp)
            guard let key = keys[day] else { throw MissingKey(day: day) }
            visitorID = VisitorID.make(key: key, site: page.site, ip: ip, userAgent: userAgent)
            if event.timestamp - day.startTimestamp < sessionIdleSeconds, let previous = keys[day.previous] {
                previousVisitorID = VisitorID.make(key: previous, site: page.site, ip: ip, userAgent: userAgent)
            }
        }
        // Enrich.
        let campaign = Campaign(query: page.query)
        let source = SourceClassifier.source(
            referrer: event.firstValue(of: "r"), site: page.site, campaignSource: campaign.source
        )
        let width = event.firstValue(of: "w").flatMap { Int($0) }.flatMap { (1...100_000).contains($0) ? $0 : nil }
        let families = agentFamilies.map { UserAgentClassifier.refine($0, screenWidth: width) }
            ?? UserAgentClassifier.classify(userAgent: nil, screenWidth: width)
        var props: String?
        if let text = event.firstValue(of: "p"), !text.isEmpty, let pairs = EventProperties.parse(text), !pairs.isEmpty {
            props = EventProperties.json(pairs)
        }
        let hit = EnrichedHit(
            timestampText: event.timestampText, timestamp: event.timestamp, site: page.site, visitorID: visitorID,
            previousVisitorID: previousVisitorID, event: name, path: page.path, source: source, campaign: campaign,
            browser: families.browser, os: families.os, device: families.device,
            country: Self.country(event.field("country")) ?? event.field("ip").flatMap { geoIP?.country(ip: $0) },
            props: props
        )
        // `consume`: the hit moves into the outcome; a copy would retain each of its strings.
        return .accepted(consume hit)
    }

    /// The day a drop of a hit at `timestamp` counts on, when not its own (``DroppedHit/countedOn``):
    /// outside the time window, whatever the reason it was dropped for (`too_old`, `in_future`, or an
    /// earlier check's), the day it is processed on. A day long past would lose the count at once (its
    /// keys expire when written), a day far ahead would keep keys, and an open archive file, for years.
    func countedOn(_ timestamp: Double, now: Double?) -> Day? {
        guard let now, validator.checkTime(timestamp, now: now) != nil else { return nil }
        return Day(timestamp: now)
    }

    /// A two-letter country code from a CDN header (`CF-IPCountry`, …), uppercased; `nil` for
    /// empty, `-`, `XX` (unknown) or anything not two ASCII letters or digits (`T1` is Tor).
    public static func country(_ value: String?) -> String? {
        guard let value, value.utf8.count == 2 else { return nil }
        func upper(_ byte: UInt8) -> UInt8? {
            let upper = byte &- UInt8(ascii: "a") < 26 ? byte - 32 : byte
            return upper &- UInt8(ascii: "A") < 26 || upper &- UInt8(ascii: "0") < 10 ? upper : nil
        }
        guard let first = upper(value.utf8.first!), let second = upper(value.utf8.last!) else { return nil }
        if first == UInt8(ascii: "X") && second == UInt8(ascii: "X") { return nil }
        // Two ASCII bytes: a small string, stored inline (no allocation, unlike going through an array).
        return String(unsafeUninitializedCapacity: 2) { out in
            out[0] = first
            out[1] = second
            return 2
        }
    }

    static func isValidEventName(_ name: String) -> Bool {
        guard name.utf8.count <= maxEventNameBytes else { return false }
        var sawVisible = false
        for byte in name.utf8 {
            if byte < 0x20 || byte == 0x7F { return false }
            if byte != 0x20 { sawVisible = true }
        }
        return sawVisible
    }
}
