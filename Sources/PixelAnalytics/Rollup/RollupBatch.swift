/// Settings of the rollups.
public struct RollupConfiguration: Sendable {
    /// The key layout.
    public var keys: RollupKeys
    /// Days a day's rollups are kept after it ends (`--retention-days`).
    public var retentionDays: Int
    /// Distinct values kept per breakdown and day before the rest go to `(other)`.
    public var breakdownCap: Int
    /// A visit ends after this many seconds without a hit.
    public var sessionIdleSeconds: Int
    /// Seconds a visit's state is kept in Redis after its last hit was processed. Longer than the
    /// timeout so that a consumer that falls behind (or stops for a while) still finds it.
    public var sessionStateTTLSeconds: Int
    /// The prefix of visit state keys; ``RollupKeys/visitPrefix`` unless a replay isolates its own.
    public var visitPrefix: String

    /// Creates settings.
    /// - Parameters:
    ///   - keys: The key layout.
    ///   - retentionDays: Days to keep rollups after the day ends; 400 by default.
    ///   - breakdownCap: Distinct values per breakdown and day; 1000 by default.
    ///   - sessionIdleSeconds: The visit timeout; 30 minutes.
    ///   - sessionStateTTLSeconds: How long visit state outlives its last hit; 6 hours.
    public init(
        keys: RollupKeys = RollupKeys(), retentionDays: Int = 400, breakdownCap: Int = 1000,
        sessionIdleSeconds: Int = 1800, sessionStateTTLSeconds: Int = 21_600
    ) {
        self.keys = keys
        self.retentionDays = retentionDays
        self.breakdownCap = breakdownCap
        self.sessionIdleSeconds = sessionIdleSeconds
        self.sessionStateTTLSeconds = sessionStateTTLSeconds
        self.visitPrefix = keys.visitPrefix
    }

    /// The unix time at which the rollups of `day` expire.
    public func expireAt(_ day: Day) -> Int {
        (day.number + 1 + retentionDays) * 86_400
    }
}

/// Collects one batch's outcomes into the single `EVALSHA` of ``RollupScript`` that the consumer
/// runs in its ack.
///
/// Counters that do not depend on visit state (pageviews, pages, browsers, OS, devices,
/// countries, hours, custom events, drops) are summed here first, so Redis sees one increment per
/// distinct value and batch rather than one per hit; visitor ids are deduplicated per site and day;
/// only the hits of identified visitors, plus pageviews without an id (for their sources), go to the
/// script one by one, in arrival order, for the visit logic.
public struct RollupBatch: Sendable {
    /// The settings.
    public let configuration: RollupConfiguration

    /// A site and day, interned: counters refer to it by index, so adding a hit builds no key strings.
    private struct SiteDay: Hashable {
        var site: String
        var day: Int
    }

    /// Which hash (and, for totals, which field) a counter increments.
    private enum Kind: UInt8 {
        case pageviews, events, pages, browsers, os, devices, countries, hours, customEvents, siteDrops, globalDrops

        var suffix: String {
            switch self {
            case .pageviews, .events: return "totals"
            case .pages: return "bd:pages"
            case .browsers: return "bd:browsers"
            case .os: return "bd:os"
            case .devices: return "bd:devices"
            case .countries: return "bd:countries"
            case .hours: return "bd:hours"
            case .customEvents: return "bd:events"
            case .siteDrops: return "drops"
            case .globalDrops: return ""
            }
        }

        var capped: Bool { self != .pageviews && self != .events && self != .siteDrops && self != .globalDrops }
    }

    private struct CounterKey: Hashable {
        var siteDay: Int32
        var kind: UInt8
        var field: String
    }

    private struct Counter {
        var increment: Int
        var order: Int
    }

    private var siteDays: [SiteDay] = []
    private var siteDayIndex: [SiteDay: Int] = [:]
    private var counters: [CounterKey: Counter] = [:]
    private var uniques: [Int: (ids: Set<String>, order: Int)] = [:]
    private var hits: [[UInt8]] = []
    private var hitCount = 0
    /// Outcomes added.
    public private(set) var count = 0

    /// An empty batch.
    public init(configuration: RollupConfiguration) {
        self.configuration = configuration
        hits.reserveCapacity(512 * 12)
    }

    /// Whether nothing was added.
    public var isEmpty: Bool { count == 0 }

    /// Adds one outcome.
    public mutating func add(_ outcome: HitOutcome) {
        count += 1
        switch outcome {
        case .dropped(let hit):
            let day = hit.day
            increment(intern(site: "", day: day), .globalDrops, hit.reason.rawValue)
            if hit.isForKnownSite, let site = hit.site {
                increment(intern(site: site, day: day), .siteDrops, hit.reason.rawValue)
            }
        case .accepted(let hit):
            let day = hit.day
            let siteDay = intern(site: hit.site, day: day)
            if hit.isPageview {
                increment(siteDay, .pageviews, "pageviews")
                increment(siteDay, .pages, hit.path)
                increment(siteDay, .browsers, hit.browser)
                increment(siteDay, .os, hit.os)
                increment(siteDay, .devices, hit.device)
                increment(siteDay, .countries, hit.country ?? "(unknown)")
                increment(siteDay, .hours, Self.hour(hit.timestamp))
            } else {
                increment(siteDay, .events, "events")
                increment(siteDay, .customEvents, hit.event)
            }
            if let vid = hit.visitorID {
                if uniques[siteDay] == nil { uniques[siteDay] = ([], uniques.count) }
                uniques[siteDay]!.ids.insert(vid)
            }
            guard hit.visitorID != nil || hit.isPageview else { return }
            let base = configuration.keys.base(site: hit.site, day: day)
            hitCount += 1
            hits.append(Array(hit.site.utf8))
            hits.append(Array(base.utf8))
            hits.append(Array(String(configuration.expireAt(day)).utf8))
            hits.append(Array((hit.visitorID ?? "").utf8))
            hits.append(Array((hit.previousVisitorID ?? "").utf8))
            hits.append(Array(String(Self.milliseconds(hit.timestamp)).utf8))
            hits.append(hit.isPageview ? [UInt8(ascii: "1")] : [UInt8(ascii: "0")])
            hits.append(Array(hit.path.utf8))
            hits.append(Array(hit.source.utf8))
            hits.append(Array((hit.campaign.source ?? "").utf8))
            hits.append(Array((hit.campaign.medium ?? "").utf8))
            hits.append(Array((hit.campaign.name ?? "").utf8))
        }
    }

    private mutating func intern(site: String, day: Day) -> Int {
        let key = SiteDay(site: site, day: day.number)
        if let index = siteDayIndex[key] { return index }
        siteDays.append(key)
        siteDayIndex[key] = siteDays.count - 1
        return siteDays.count - 1
    }

    private mutating func increment(_ siteDay: Int, _ kind: Kind, _ field: String) {
        let key = CounterKey(siteDay: Int32(siteDay), kind: kind.rawValue, field: field)
        if counters[key] != nil {
            counters[key]!.increment += 1
        } else {
            counters[key] = Counter(increment: 1, order: counters.count)
        }
    }

    private func redisKey(_ siteDay: Int, _ kind: Kind) -> String {
        let entry = siteDays[siteDay]
        let day = Day(number: entry.day)
        if kind == .globalDrops { return configuration.keys.globalDrops(day: day) }
        return configuration.keys.base(site: entry.site, day: day) + kind.suffix
    }

    static let hourNames: [String] = (0..<24).map { $0 < 10 ? "0\($0)" : "\($0)" }

    static func hour(_ timestamp: Double) -> String {
        let day = Day(timestamp: timestamp)
        let seconds = min(max(timestamp - day.startTimestamp, 0), 86_399)
        return hourNames[Int(seconds) / 3600]
    }

    /// Milliseconds since the epoch, clamped like ``Day/init(timestamp:)``.
    static func milliseconds(_ timestamp: Double) -> Int {
        let value = (timestamp * 1000).rounded()
        return value.isNaN ? 0 : Int(min(max(value, Day.minimumNumber * 86_400_000), (Day.maximumNumber + 1) * 86_400_000))
    }

    /// The script's arguments (after `EVALSHA sha 0`).
    public func arguments() -> [[UInt8]] {
        var args: [[UInt8]] = []
        args.reserveCapacity(8 + counters.count * 5 + hits.count + uniques.count * 3 + count)
        args.append([UInt8(ascii: "1")])
        args.append(Array(configuration.keys.prefix.utf8))
        args.append(Array(String(configuration.breakdownCap).utf8))
        args.append(Array(String(configuration.sessionIdleSeconds * 1000).utf8))
        args.append(Array(String(configuration.sessionStateTTLSeconds).utf8))
        args.append(Array(configuration.visitPrefix.utf8))
        // Counters in first-seen order, so that which values make it under a cap follows arrival order.
        args.append(Array(String(counters.count).utf8))
        for (key, counter) in counters.sorted(by: { $0.value.order < $1.value.order }) {
            let kind = Kind(rawValue: key.kind)!
            args.append(Array(redisKey(Int(key.siteDay), kind).utf8))
            args.append(Array(key.field.utf8))
            args.append(Array(String(counter.increment).utf8))
            args.append(kind.capped ? [UInt8(ascii: "1")] : [UInt8(ascii: "0")])
            args.append(Array(String(configuration.expireAt(Day(number: siteDays[Int(key.siteDay)].day))).utf8))
        }
        args.append(Array(String(uniques.count).utf8))
        for (siteDay, entry) in uniques.sorted(by: { $0.value.order < $1.value.order }) {
            let day = Day(number: siteDays[siteDay].day)
            args.append(Array(configuration.keys.uniques(site: siteDays[siteDay].site, day: day).utf8))
            args.append(Array(String(configuration.expireAt(day)).utf8))
            args.append(Array(String(entry.ids.count).utf8))
            for id in entry.ids.sorted() { args.append(Array(id.utf8)) }
        }
        args.append(Array(String(hitCount).utf8))
        args += hits
        return args
    }

    /// `EVALSHA <sha> 0 <arguments>`, to put in `ReliableListConsumer.Outcome.commands`.
    public func command() -> [[UInt8]] {
        [Array("EVALSHA".utf8), Array(RollupScript.sha1.utf8), [UInt8(ascii: "0")]] + arguments()
    }

    /// `EVAL <script> 0 <arguments>`: the same without relying on the script cache.
    public func evalCommand() -> [[UInt8]] {
        [Array("EVAL".utf8), Array(RollupScript.source.utf8), [UInt8(ascii: "0")]] + arguments()
    }
}
