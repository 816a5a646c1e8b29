/// What `pixeld report` reads for one site and a range of days, and how the replies combine into a
/// ``Report``: pure, so the same code serves the command, the tests and any dashboard.
///
/// Read every key of ``hashKeys`` with `HGETALL` and count ``uniqueKeys`` with one
/// `PFCOUNT k1 k2 …` (the HyperLogLog union: a visitor seen on several days counts once per day,
/// since each day has its own key and nothing links the days), then call ``report(hashes:visitors:)``.
public struct ReportQuery: Sendable {
    /// The site.
    public let site: String
    /// The first day.
    public let from: Day
    /// The last day (inclusive).
    public let to: Day
    /// The key layout.
    public let keys: RollupKeys
    /// The breakdowns read (the report's others are empty): all of them by default; a caller that
    /// needs one (the dashboard's page counts) reads a fifteenth of the hashes.
    public let breakdowns: [Breakdown]

    /// Creates a query; `from` after `to` gives an empty range.
    public init(site: String, from: Day, to: Day, keys: RollupKeys = RollupKeys(), breakdowns: [Breakdown] = Breakdown.allCases) {
        self.site = site
        self.from = from
        self.to = to
        self.keys = keys
        self.breakdowns = breakdowns
    }

    /// The days of the range, oldest first (at most 3,700).
    public var days: [Day] {
        guard from <= to else { return [] }
        return (from.number...min(to.number, from.number + 3_699)).map(Day.init(number:))
    }

    private var hashKinds: [String] { ["totals", "drops"] + breakdowns.map { "bd:" + $0.rawValue } }

    /// The hashes to read with `HGETALL`, day by day.
    public var hashKeys: [String] {
        days.flatMap { day in hashKinds.map { keys.base(site: site, day: day) + $0 } }
    }

    /// The all-sites drop counters, one hash a day, to read with `HGETALL`: of them, the reasons of
    /// hits that never got a site (``DroppedHit/reasonsWithoutSite``: `unknown_site`, `missing_url`,
    /// `bad_url`) count nowhere else, and a site whose hits all land there (its host is not a
    /// `consume --site`) would otherwise show only zeros. The hash's other reasons are the sites' own
    /// drops again.
    public var siteLessDropKeys: [String] {
        days.map { keys.globalDrops(day: $0) }
    }

    /// The HyperLogLogs to count together with `PFCOUNT`.
    public var uniqueKeys: [String] {
        days.map { keys.uniques(site: site, day: $0) }
    }

    /// Combines the replies.
    /// - Parameters:
    ///   - hashes: The `HGETALL` replies for ``hashKeys``, in the same order, as field → integer.
    ///   - visitors: The `PFCOUNT` of ``uniqueKeys``.
    public func report(hashes: [[String: Int]], visitors: Int) -> Report {
        var totals: [String: Int] = [:]
        var drops: [String: Int] = [:]
        var breakdowns: [Breakdown: [String: Int]] = [:]
        let kinds = hashKinds
        for (index, hash) in hashes.enumerated() {
            let kind = kinds[index % kinds.count]
            switch kind {
            case "totals": totals.merge(hash, uniquingKeysWith: +)
            case "drops": drops.merge(hash, uniquingKeysWith: +)
            default:
                if let breakdown = Breakdown(rawValue: String(kind.dropFirst(3))) {
                    breakdowns[breakdown, default: [:]].merge(hash, uniquingKeysWith: +)
                }
            }
        }
        return Report(
            site: site, from: from, to: to, pageviews: totals["pageviews"] ?? 0, visitors: visitors,
            visits: totals["visits"] ?? 0, bounces: totals["bounces"] ?? 0,
            durationMilliseconds: totals["duration_ms"] ?? 0, events: totals["events"] ?? 0,
            breakdowns: breakdowns.mapValues { $0.filter { $0.value != 0 } }, drops: drops.filter { $0.value != 0 }
        )
    }
}

/// A site's numbers over a range of days.
public struct Report: Sendable, Equatable {
    /// The site.
    public var site: String
    /// The first day.
    public var from: Day
    /// The last day.
    public var to: Day
    /// Pageviews.
    public var pageviews: Int
    /// Unique visitors: the HyperLogLog union of the days (about ±0.8 %); a visitor counts once per
    /// day they visited, as ids are not linkable across days.
    public var visitors: Int
    /// Visits started in the range.
    public var visits: Int
    /// Visits of a single pageview and nothing else.
    public var bounces: Int
    /// Sum over visits of last hit − first hit, in milliseconds.
    public var durationMilliseconds: Int
    /// Custom event hits.
    public var events: Int
    /// Breakdown → value → count (pageviews; visits for entry pages and source visits; hits for events).
    public var breakdowns: [Breakdown: [String: Int]]
    /// Drop reason → hits for this site.
    public var drops: [String: Int]

    /// Creates a report.
    public init(
        site: String, from: Day, to: Day, pageviews: Int, visitors: Int, visits: Int, bounces: Int,
        durationMilliseconds: Int, events: Int, breakdowns: [Breakdown: [String: Int]], drops: [String: Int]
    ) {
        self.site = site
        self.from = from
        self.to = to
        self.pageviews = pageviews
        self.visitors = visitors
        self.visits = visits
        self.bounces = bounces
        self.durationMilliseconds = durationMilliseconds
        self.events = events
        self.breakdowns = breakdowns
        self.drops = drops
    }

    /// Bounces ÷ visits (0 without visits).
    public var bounceRate: Double { visits == 0 ? 0 : Double(bounces) / Double(visits) }

    /// The mean visit duration in seconds (0 without visits).
    public var visitDurationSeconds: Double { visits == 0 ? 0 : Double(durationMilliseconds) / 1000 / Double(visits) }

    /// One breakdown's entries, largest first (ties by name), at most `limit`; the hours all (at
    /// most 24), in order: the first `limit` hours of the day would hide the afternoon.
    public func top(_ breakdown: Breakdown, limit: Int = .max) -> [(name: String, count: Int)] {
        let entries = (breakdowns[breakdown] ?? [:]).map { (name: $0.key, count: $0.value) }
        if breakdown == .hours { return entries.sorted { $0.name < $1.name } }
        let sorted = entries.sorted { $0.count != $1.count ? $0.count > $1.count : $0.name < $1.name }
        return Array(sorted.prefix(limit))
    }
}
