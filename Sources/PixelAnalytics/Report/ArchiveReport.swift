/// A site's ``Report`` computed from archive records instead of the Redis rollups, optionally
/// restricted by a ``ReportFilter`` — what the rollups cannot answer, since they are one hash per
/// dimension. Pure: the caller reads the records (``ArchiveReader/outcomes(directory:days:site:maxRecords:)``).
///
/// Visits are rebuilt exactly as the consumer does it (``RollupBatch``), from all accepted
/// hits of the site in time order (stable, as `pixeld replay` orders them): a hit with a visitor id
/// continues that id's visit when it lies within the idle timeout of it (before its first or after
/// its last hit), else starts a new one; a hit after midnight whose id has no visit yet continues
/// the visit of its previous-day id (`pvid`). A visit's entry page, source and UTM values are its
/// first hit's; it bounces when it is a single pageview; its duration is last − first hit. Pageviews,
/// events, visitors and the per-hit breakdowns count on the hit's UTC day; visits, bounces,
/// durations, entry pages and source visits on the day the visit started. Hits without a visitor id
/// count as pageviews under their own source but make no visit.
///
/// Give it the records of ``readDays`` (the range plus a day on either side: the day before
/// supplies visits still open at midnight, the day after extends the durations of visits that
/// cross the range's end); only numbers of days within `from`…`to` are reported.
///
/// Differences from the rollups, by design: ``Report/visitors`` is exact — the sum over the days of
/// the distinct visitor ids of each day (ids change every day, so a visitor counts once per day,
/// which is also what the rollups' HyperLogLog union estimates); breakdowns are not capped (no
/// `(other)`); drops are reported only without a filter.
public struct ArchiveReport: Sendable {
    /// The site.
    public let site: String
    /// The first day.
    public let from: Day
    /// The last day (inclusive).
    public let to: Day
    /// The condition, or `nil` for every hit.
    public let filter: ReportFilter?
    /// The visit timeout in seconds (30 minutes, as the consumer).
    public let sessionIdleSeconds: Int

    /// Creates an aggregator.
    public init(site: String, from: Day, to: Day, filter: ReportFilter? = nil, sessionIdleSeconds: Int = 1800) {
        self.site = site
        self.from = from
        self.to = to
        self.filter = filter
        self.sessionIdleSeconds = sessionIdleSeconds
    }

    /// The days of the range, oldest first.
    public var days: [Day] {
        guard from <= to else { return [] }
        return (from.number...to.number).map(Day.init(number:))
    }

    /// The archive days to read: the range and one day on either side.
    public var readDays: [Day] {
        guard from <= to else { return [] }
        return ((from.number - 1)...(to.number + 1)).map(Day.init(number:))
    }

    /// The report over the range (the days of ``dailyReports(_:)`` added up).
    /// - Parameter outcomes: The archive records of ``readDays`` (any order; other sites are ignored).
    public func report(_ outcomes: [HitOutcome]) -> Report {
        report(days: dailyReports(outcomes))
    }

    /// The report over the range from day reports: those of `days` that lie within `from`…`to`,
    /// added up. A day's numbers depend only on the records, not on the range they were computed
    /// for (visits are rebuilt from every record given, and counted on their start day), so the
    /// ``dailyReports(_:)`` of a longer range, over the same records, give both this range's
    /// report and its series with one sort — exactly ``report(_:)`` over those records.
    /// - Parameter days: Day reports (`from == to`), e.g. a longer range's ``dailyReports(_:)``.
    public func report(days: [Report]) -> Report {
        var total = Report(
            site: site, from: from, to: to, pageviews: 0, visitors: 0, visits: 0, bounces: 0, durationMilliseconds: 0,
            events: 0, breakdowns: [:], drops: [:]
        )
        for day in days where from <= day.from && day.from <= to {
            total.pageviews += day.pageviews
            total.visitors += day.visitors
            total.visits += day.visits
            total.bounces += day.bounces
            total.durationMilliseconds += day.durationMilliseconds
            total.events += day.events
            total.drops.merge(day.drops, uniquingKeysWith: +)
            for (breakdown, values) in day.breakdowns {
                total.breakdowns[breakdown, default: [:]].merge(values, uniquingKeysWith: +)
            }
        }
        return total
    }

    /// One report per day of the range, oldest first (for time series: the `hours` breakdown has
    /// the pageviews per UTC hour).
    /// - Parameter outcomes: The archive records of ``readDays``.
    public func dailyReports(_ outcomes: [HitOutcome]) -> [Report] {
        let days = self.days
        guard let first = days.first else { return [] }
        var tallies = [Tally](repeating: Tally(), count: days.count)
        func slot(_ day: Day) -> Int? {
            let index = day.number - first.number
            return index >= 0 && index < tallies.count ? index : nil
        }

        // Accepted hits of the site in time order (stable); drops counted on the way.
        var hits: [EnrichedHit] = []
        for outcome in outcomes {
            switch outcome {
            case .accepted(let hit) where hit.site == site:
                hits.append(hit)
            case .dropped(let hit) where filter == nil && hit.isForKnownSite && hit.site == site:
                // On the day it counts on, as the rollups: the day of its archive file (see
                // `ArchiveReader.outcomes`), which is the hit's own day but for a hit outside the time
                // window or of a closed day (the day it was processed on).
                if let index = slot(hit.countingDay) { tallies[index].drops[hit.reason.rawValue, default: 0] += 1 }
            default:
                continue
            }
        }
        hits = hits.enumerated().sorted {
            $0.element.timestamp != $1.element.timestamp ? $0.element.timestamp < $1.element.timestamp : $0.offset < $1.offset
        }.map(\.element)

        // Pass 1: rebuild the visits; each hit gets the index of its visit.
        let visits = Self.sessions(hits, idleMilliseconds: sessionIdleSeconds * 1000)

        // Pass 2: which hits and visits count.
        var counted = [Bool](repeating: filter == nil, count: hits.count)
        var visitCounted = [Bool](repeating: filter == nil, count: visits.visits.count)
        if let filter {
            for (index, hit) in hits.enumerated() {
                let visit = visits.visitOfHit[index].map { visits.visits[$0] }
                if Self.matches(filter, hit: hit, visit: visit) {
                    counted[index] = true
                    if let number = visits.visitOfHit[index] { visitCounted[number] = true }
                }
            }
        }

        // Pass 3: count.
        for (index, hit) in hits.enumerated() where counted[index] {
            guard let day = slot(hit.day) else { continue }
            let visit = visits.visitOfHit[index].map { visits.visits[$0] }
            if hit.isPageview {
                tallies[day].pageviews += 1
                tallies[day].add(.pages, hit.path)
                tallies[day].add(.browsers, hit.browser)
                tallies[day].add(.os, hit.os)
                tallies[day].add(.devices, hit.device)
                tallies[day].add(.countries, hit.country ?? "(unknown)")
                tallies[day].add(.hours, RollupBatch.hour(hit.timestamp))
                // Sources and UTM: the visit's (its first hit's), or the hit's own without a visit.
                tallies[day].add(.sources, visit?.source ?? hit.source)
                let campaign = visit?.campaign ?? hit.campaign
                if let value = campaign.source, !value.isEmpty { tallies[day].add(.utmSources, value) }
                if let value = campaign.medium, !value.isEmpty { tallies[day].add(.utmMediums, value) }
                if let value = campaign.name, !value.isEmpty { tallies[day].add(.utmCampaigns, value) }
            } else {
                tallies[day].events += 1
                tallies[day].add(.events, hit.event)
            }
            if let vid = hit.visitorID { tallies[day].visitors.insert(vid) }
        }
        for (number, visit) in visits.visits.enumerated() where visitCounted[number] {
            guard let day = slot(visit.startDay) else { continue }
            tallies[day].visits += 1
            if visit.hits == 1 && visit.startsWithPageview { tallies[day].bounces += 1 }
            tallies[day].durationMilliseconds += visit.last - visit.first
            tallies[day].add(.entryPages, visit.entryPath)
            tallies[day].add(.sourceVisits, visit.source)
        }
        return zip(days, tallies).map { day, tally in
            Report(
                site: site, from: day, to: day, pageviews: tally.pageviews, visitors: tally.visitors.count,
                visits: tally.visits, bounces: tally.bounces, durationMilliseconds: tally.durationMilliseconds,
                events: tally.events, breakdowns: tally.breakdowns, drops: tally.drops
            )
        }
    }

    /// Whether a hit (of `visit`, if it has one) satisfies `filter`.
    static func matches(_ filter: ReportFilter, hit: EnrichedHit, visit: Visit?) -> Bool {
        let value = filter.value
        switch filter.dimension {
        case .pages: return hit.path == value
        case .browsers: return hit.browser == value
        case .os: return hit.os == value
        case .devices: return hit.device == value
        case .countries: return (hit.country ?? "(unknown)") == value
        case .events: return !hit.isPageview && hit.event == value
        case .hours: return RollupBatch.hour(hit.timestamp) == value
        case .entryPages: return visit?.entryPath == value
        case .sources, .sourceVisits: return (visit?.source ?? hit.source) == value
        case .utmSources: return (visit?.campaign ?? hit.campaign).source == value
        case .utmMediums: return (visit?.campaign ?? hit.campaign).medium == value
        case .utmCampaigns: return (visit?.campaign ?? hit.campaign).name == value
        }
    }

    /// A rebuilt visit.
    struct Visit {
        /// First and last hit, in milliseconds since the epoch.
        var first: Int
        var last: Int
        /// Hits (pageviews and custom events).
        var hits: Int
        /// Whether the hit that started it was a pageview (a single-pageview visit bounces).
        var startsWithPageview: Bool
        /// The day it started on (where the rollups count it).
        var startDay: Day
        var entryPath: String
        var source: String
        var campaign: Campaign
    }

    /// The visits of `hits` (in time order) and, per hit, its visit (`nil` for hits without a
    /// visitor id) — the consumer's visit logic (``RollupBatch``), with the visit state kept in memory.
    static func sessions(_ hits: [EnrichedHit], idleMilliseconds idle: Int) -> (visits: [Visit], visitOfHit: [Int?]) {
        var visits: [Visit] = []
        var visitOfHit: [Int?] = []
        visitOfHit.reserveCapacity(hits.count)
        var open: [String: Int] = [:]  // visitor id → its visit (the consumer's `visit:SITE:VID` key)
        for hit in hits {
            guard let vid = hit.visitorID else {
                visitOfHit.append(nil)
                continue
            }
            let ts = RollupBatch.milliseconds(hit.timestamp)
            func within(_ visit: Visit) -> Bool { VisitState.continues(first: visit.first, last: visit.last, at: ts, idle: idle) }
            if open[vid] == nil, let pvid = hit.previousVisitorID, let previous = open[pvid], within(visits[previous]) {
                // A visit that started before midnight, under yesterday's id.
                open[pvid] = nil
                open[vid] = previous
            }
            if let number = open[vid], within(visits[number]) {
                visits[number].first = min(visits[number].first, ts)
                visits[number].last = max(visits[number].last, ts)
                visits[number].hits += 1
                visitOfHit.append(number)
            } else {
                visits.append(
                    Visit(
                        first: ts, last: ts, hits: 1, startsWithPageview: hit.isPageview, startDay: hit.day,
                        entryPath: hit.path, source: hit.source, campaign: hit.campaign
                    )
                )
                open[vid] = visits.count - 1
                visitOfHit.append(visits.count - 1)
            }
        }
        return (visits, visitOfHit)
    }

    /// One day's counters.
    struct Tally {
        var pageviews = 0
        var events = 0
        var visits = 0
        var bounces = 0
        var durationMilliseconds = 0
        var visitors: Set<String> = []
        var breakdowns: [Breakdown: [String: Int]] = [:]
        var drops: [String: Int] = [:]

        mutating func add(_ breakdown: Breakdown, _ value: String) {
            breakdowns[breakdown, default: [:]][value, default: 0] += 1
        }
    }
}
