/// Collects one batch's outcomes into the arguments of ``RollupScript``, which the consumer runs as
/// a function of its ack (``encodedArguments(states:)``), in two steps:
///
/// 1. ``add(_:archivedOn:)`` each outcome. Counters that do not depend on visit state (pageviews, pages,
///    browsers, OS, devices, countries, hours, custom events, drops) are summed at once, so Redis sees
///    one increment per distinct value and batch rather than one per hit; visitor ids are
///    deduplicated per site and day; the hits that take part in visits are kept, in arrival order.
/// 2. Read the visit state of ``visitKeys`` (``stateReadCommand()``, `MGET`; ``parseStateRead(_:)``
///    splits the reply) and call ``command(states:)``: the visits are continued or started here, in Swift — the 30-minute rule,
///    bounces, durations, entry pages, sources and campaigns per visit — and the command carries the
///    resulting increments and the new visit states.
///
/// The state must not change between the read and the ack, or two consumers would both continue
/// the same visit. The read includes ``RollupKeys/visitVersion``, which every ack that writes visit
/// state increments (``versionCommand``), and the consumer makes its ack conditional on the version
/// it expects (`ReliableListConsumer.Outcome.condition`): the version read, plus one when its own
/// previous ack, still on its way when the read was answered, writes visits too (whose states it
/// then takes from that ack's ``StateWrites`` rather than from the read). An ack of another consumer
/// in between refuses the ack, and the batch is handled again. (One key rather than every visit key:
/// checking a batch's visits one by one would cost more than the rollups.) `pixeld replay` owns its
/// visit keys and needs no condition.
public struct RollupBatch: Sendable {
    /// The settings.
    public let configuration: RollupConfiguration

    /// A site and day, interned: counters refer to it by index, so adding a hit builds no key strings.
    private struct SiteDay: Hashable {
        var site: String
        var day: Int
    }

    /// The hashes of a site and day: `totals`, `drops`, the global drops of the day, one per ``Breakdown``.
    private enum Slot {
        static let totals = 0
        static let drops = 1
        static let globalDrops = 2
        static let count = 3 + Breakdown.allCases.count
        /// A `switch`, not a dictionary: it runs for every counter of every hit, and hashing the
        /// breakdown cost more than the rest of the lookup.
        static func breakdown(_ breakdown: Breakdown) -> Int {
            switch breakdown {
            case .pages: 3
            case .entryPages: 4
            case .sources: 5
            case .sourceVisits: 6
            case .utmSources: 7
            case .utmMediums: 8
            case .utmCampaigns: 9
            case .browsers: 10
            case .os: 11
            case .devices: 12
            case .countries: 13
            case .hours: 14
            case .events: 15
            }
        }
        /// The breakdown names by slot (inverting ``breakdown(_:)``, so the two cannot disagree).
        static let names: [String] = {
            var names = [String](repeating: "", count: count)
            for breakdown in Breakdown.allCases {
                precondition(names[Slot.breakdown(breakdown)].isEmpty, "two breakdowns share a slot")
                names[Slot.breakdown(breakdown)] = breakdown.rawValue
            }
            return names
        }()
        /// Whether a slot's hash is capped by `--breakdown-cap`: every breakdown's but those with
        /// fixed values (``Breakdown/hasFixedValues``); never the totals and drop counters.
        static let capped: [Bool] = names.indices.map { slot in
            slot > globalDrops && !(Breakdown(rawValue: names[slot])?.hasFixedValues ?? false)
        }
    }

    /// A hash to increment: fields in the order they first appeared (that order decides which values
    /// make it under the cap).
    private struct PendingHash {
        var key: String
        var capped: Bool
        var expireAt: Int
        /// Field → index into `fields`, kept once there are more than ``scanLimit`` fields.
        var fieldIndex: [String: Int] = [:]
        var fields: [(name: String, increment: Int)] = []

        /// Up to this many fields are found by comparing them in turn: most hashes (totals, browsers,
        /// OS, devices, countries, hours of a batch) have a handful, and comparing short strings costs
        /// less than hashing one.
        static let scanLimit = 8

        mutating func add(_ field: String, _ increment: Int) {
            if fields.count <= Self.scanLimit {
                for index in fields.indices where fields[index].name == field {
                    fields[index].increment += increment
                    return
                }
                fields.append((field, increment))
                if fields.count > Self.scanLimit {
                    for (index, known) in fields.enumerated() { fieldIndex[known.name] = index }
                }
            } else if let index = fieldIndex[field] {
                fields[index].increment += increment
            } else {
                fieldIndex[field] = fields.count
                fields.append((field, increment))
            }
        }
    }

    /// A hit that takes part in visits (or, without a visitor id, a pageview counted for its own source).
    private struct VisitHit {
        var siteDay: Int
        /// Index into ``visitKeys``; `-1` without a visitor id.
        var key: Int
        /// Index into ``visitKeys`` of the previous day's id; `-1` if none.
        var previousKey: Int
        var milliseconds: Int
        var isPageview: Bool
        var path: String
        var source: String
        var campaign: Campaign
    }

    /// Up to this many site days are found by comparison, beyond by ``siteDayIndex``.
    private static let siteDayScanLimit = 8
    private var siteDays: [SiteDay] = []
    /// Per site day, ``RollupKeys/base(site:day:)``.
    private var bases: [String] = []
    private var siteDayIndex: [SiteDay: Int] = [:]
    /// Per site day and slot, the index into `hashes`, or -1.
    private var slots: [[Int]] = []
    private var hashes: [PendingHash] = []
    private var hashIndex: [String: Int] = [:]
    /// Per site day, its distinct visitor ids (for the HyperLogLog).
    private var uniques: [[String]] = []
    private var visitHits: [VisitHit] = []
    /// Visitor id → index into ``visitKeys``. Ids are keyed hashes over the site among others, so an id
    /// names one site's visitor; `visitSites` checks it, and `otherSiteKeys` takes the impossible rest.
    private var visitKeyIndex: [String: Int] = [:]
    private var visitSites: [String] = []
    private var otherSiteKeys: [[UInt8]: Int] = [:]
    /// The site day whose `uniques` hold the key's id; -1 while none (ids seen only as a previous
    /// day's are not counted). A repeat costs nothing: adding an id to a HyperLogLog twice is harmless.
    private var uniqueIn: [Int] = []
    /// The visit state keys the batch's hits need (today's and, after midnight, yesterday's ids), in
    /// first-seen order, as the bytes of their names (each is a command argument twice and never a
    /// `String`): read them (``stateReadCommand()``) and pass the states (``parseStateRead(_:)``) to
    /// ``command(states:)``.
    public private(set) var visitKeys: [[UInt8]] = []
    /// Outcomes added.
    public private(set) var count = 0

    /// An empty batch.
    public init(configuration: RollupConfiguration) {
        self.configuration = configuration
        visitHits.reserveCapacity(512)
    }

    /// Whether nothing was added.
    public var isEmpty: Bool { count == 0 }

    /// Adds one outcome.
    /// - Parameter archivedOn: The day of the archive file its line goes to, when there is one: a
    ///   drop counts on that day, without one on its ``DroppedHit/countingDay``. Both are the hit's
    ///   own day but for a hit outside the time window (a `too_old` drop after a long stop, a clock
    ///   far off) or of a closed day, which counts on, and goes to the file of, the day it was
    ///   processed on; so `pixeld replay` of a day, which reads that day's files, counts the same
    ///   drops as live.
    /// - Returns: For an accepted hit with a ``EnrichedHit/previousVisitorID``, its number among the
    ///   batch's visit hits, by which ``encodedCommand(states:)`` says whether its visit began the
    ///   day before; `nil` otherwise.
    @discardableResult
    public mutating func add(_ outcome: HitOutcome, archivedOn: Day? = nil) -> Int? {
        count += 1
        switch outcome {
        case .dropped(let hit):
            let day = archivedOn ?? hit.countingDay
            increment(intern(site: "", day: day), Slot.globalDrops, hit.reason.rawValue)
            if hit.isForKnownSite, let site = hit.site {
                increment(intern(site: site, day: day), Slot.drops, hit.reason.rawValue)
            }
        case .accepted(let hit):
            let siteDay = intern(site: hit.site, day: hit.day)
            if hit.isPageview {
                increment(siteDay, Slot.totals, "pageviews")
                increment(siteDay, Slot.breakdown(.pages), hit.path)
                increment(siteDay, Slot.breakdown(.browsers), hit.browser)
                increment(siteDay, Slot.breakdown(.os), hit.os)
                increment(siteDay, Slot.breakdown(.devices), hit.device)
                increment(siteDay, Slot.breakdown(.countries), hit.country ?? "(unknown)")
                increment(siteDay, Slot.breakdown(.hours), Self.hour(hit.timestamp))
            } else {
                increment(siteDay, Slot.totals, "events")
                increment(siteDay, Slot.breakdown(.events), hit.event)
            }
            var key = -1
            if let vid = hit.visitorID {
                key = visitKey(site: hit.site, id: vid)
                if uniqueIn[key] != siteDay {
                    uniqueIn[key] = siteDay
                    uniques[siteDay].append(vid)
                }
            }
            guard hit.visitorID != nil || hit.isPageview else { return nil }
            visitHits.append(
                VisitHit(
                    siteDay: siteDay, key: key,
                    previousKey: hit.previousVisitorID.map { visitKey(site: hit.site, id: $0) } ?? -1,
                    milliseconds: Self.milliseconds(hit.timestamp), isPageview: hit.isPageview,
                    path: hit.path, source: hit.source, campaign: hit.campaign
                )
            )
            return hit.previousVisitorID == nil ? nil : visitHits.count - 1
        }
        return nil
    }

    /// `MGET` of the visit version (``RollupKeys/visitVersion``) and ``visitKeys``; `nil` when the batch
    /// needs no visit state. One command, so the states are read as of one version.
    public func stateReadCommand() -> [[UInt8]]? {
        visitKeys.isEmpty ? nil : [Array("MGET".utf8), Array(configuration.keys.visitVersion.utf8)] + visitKeys
    }

    /// The reply of ``stateReadCommand()``, its values in order, split into the visit version (a
    /// missing key counts as 0) and the states of ``visitKeys``; `nil` when the reply does not fit.
    public func parseStateRead(_ values: [[UInt8]?]) -> (version: Int, states: [[UInt8]?])? {
        guard values.count == visitKeys.count + 1 else { return nil }
        let version: Int
        if let bytes = values[0] {
            guard let number = Int(String(decoding: bytes, as: UTF8.self)) else { return nil }
            version = number
        } else {
            version = 0
        }
        return (version, Array(values.dropFirst()))
    }

    /// `INCR` of the visit version, to send in the ack with the rollup, which must be
    /// conditional on the version the states were read at (``stateReadCommand()``): other consumers'
    /// acks based on older state are then refused.
    public var versionCommand: [[UInt8]] { [Array("INCR".utf8), Array(configuration.keys.visitVersion.utf8)] }

    /// `EVALSHA <sha> 0 <arguments>`: the rollup on its own (`pixeld replay`). Not for an ack: a
    /// script cannot run `EVALSHA`; the ack calls the rollup with ``encodedArguments(states:)``.
    /// - Parameter states: the values of ``visitKeys`` (`nil` for a missing key), as
    ///   ``parseStateRead(_:)`` returned them; an empty array means no visit is in progress.
    public func command(states: [[UInt8]?]) -> [[UInt8]] {
        Self.evalshaPrefix + arguments(states: states)
    }

    /// The visit states a rollup command writes: the keys of ``visitKeys`` it changes and, per key,
    /// the new state (its MessagePack form, as `MGET` would return it) or `nil` for a state it deletes.
    public struct StateWrites: Sendable {
        /// The visit-state keys written, in order.
        public private(set) var keys: [[UInt8]] = []
        /// Per key, its new state, or `nil` to delete it.
        public private(set) var values: [[UInt8]?] = []
        /// Per key, its visitor id (`nil` for an id under a second site, see `otherSiteKeys`):
        /// ``RollupBatch/overlay(_:on:)`` looks the ids up in the next batch's index of its own.
        fileprivate var ids: [String?] = []
        /// No writes.
        public init() {}

        fileprivate mutating func append(_ key: [UInt8], id: String?, _ value: [UInt8]?) {
            keys.append(key)
            ids.append(id)
            values.append(value)
        }
    }

    /// Replaces, in `states` (the values of ``visitKeys`` as read), those of the keys that `writes`
    /// changes: the writes of the previous batch's ack, not yet applied when the states were read.
    public func overlay(_ writes: StateWrites, on states: inout [[UInt8]?]) {
        guard states.count == visitKeys.count else { return }
        for (write, key) in writes.keys.enumerated() {
            let index: Int?
            if let id = writes.ids[write] {
                index = visitKeyIndex[id].flatMap { visitKeys[$0] == key ? $0 : otherSiteKeys[key] }
            } else {
                index = visitKeys.firstIndex(of: key)
            }
            if let index { states[index] = writes.values[write] }
        }
    }

    /// The same command as ``command(states:)``, already encoded as RESP (`*N\r\n$7\r\nEVALSHA…`),
    /// written into one buffer instead of one array per argument. Also
    /// returns the states it writes, which the next batch's read may not see yet, and the hits (as
    /// numbered by ``add(_:archivedOn:)``) in visits that began the day before, under their previous day's id:
    /// only their archive lines need that id (see ``HeldBackPreviousIDs``).
    public func encodedCommand(states: [[UInt8]?]) -> (command: [UInt8], writes: StateWrites, continuedAcrossMidnight: [Int]) {
        let (sink, writes, continued) = encoded(states: states, after: Self.evalshaPrefix)
        return (sink.command(), writes, continued)
    }

    /// The script's arguments (after `EVALSHA sha 0`), encoded as RESP bulk strings one after the
    /// other with no array header, and how many there are: what the consumer's ack passes to the
    /// rollup, which runs as a function of the ack's script. Also returns what
    /// ``encodedCommand(states:)`` does.
    public func encodedArguments(states: [[UInt8]?]) -> (arguments: [UInt8], count: Int, writes: StateWrites, continuedAcrossMidnight: [Int]) {
        let (sink, writes, continued) = encoded(states: states, after: [])
        return (sink.body, sink.count, writes, continued)
    }

    private func encoded(states: [[UInt8]?], after prefix: [[UInt8]]) -> (RESPArguments, StateWrites, [Int]) {
        var resolved = self
        let visits = resolved.resolveVisits(states: states)
        var sink = RESPArguments(capacity: resolved.encodedSizeEstimate(visits))
        for argument in prefix { sink.append(argument) }
        let writes = resolved.encode(visits, into: &sink)
        return (sink, writes, visits.continuedAcrossMidnight)
    }

    /// The script's arguments (after `EVALSHA sha 0`); see ``RollupScript`` for the layout.
    public func arguments(states: [[UInt8]?]) -> [[UInt8]] {
        var resolved = self
        let visits = resolved.resolveVisits(states: states)
        var sink = ArgumentArrays()
        resolved.encode(visits, into: &sink)
        return sink.arguments
    }

    private static let evalshaPrefix: [[UInt8]] = [Array("EVALSHA".utf8), Array(RollupScript.sha1.utf8), [UInt8(ascii: "0")]]

    // MARK: - Counting

    private mutating func intern(site: String, day: Day) -> Int {
        let key = SiteDay(site: site, day: day.number)
        // A batch has a few sites and days: comparing them in turn costs less than hashing the site.
        if siteDays.count <= Self.siteDayScanLimit {
            if let index = siteDays.firstIndex(of: key) { return index }
        } else if let index = siteDayIndex[key] {
            return index
        }
        siteDays.append(key)
        bases.append(configuration.keys.base(site: site, day: day))
        siteDayIndex[key] = siteDays.count - 1
        slots.append([Int](repeating: -1, count: Slot.count))
        uniques.append([])
        return siteDays.count - 1
    }

    private mutating func visitKey(site: String, id: String) -> Int {
        if let index = visitKeyIndex[id] {
            if visitSites[index] == site { return index }
            // The same id under another site: practically impossible (a 128-bit collision), kept correct all the same.
            let name = visitKeyName(site: site, id: id)
            if let other = otherSiteKeys[name] { return other }
            otherSiteKeys[name] = visitKeys.count
            return appendVisitKey(name, site: site)
        }
        visitKeyIndex[id] = visitKeys.count
        return appendVisitKey(visitKeyName(site: site, id: id), site: site)
    }

    /// `<visit prefix><site>:<id>`, built in one allocation.
    private func visitKeyName(site: String, id: String) -> [UInt8] {
        var name: [UInt8] = []
        name.reserveCapacity(configuration.visitPrefix.utf8.count + site.utf8.count + 1 + id.utf8.count)
        name += configuration.visitPrefix.utf8
        name += site.utf8
        name.append(UInt8(ascii: ":"))
        name += id.utf8
        return name
    }

    private mutating func appendVisitKey(_ name: [UInt8], site: String) -> Int {
        visitKeys.append(name)
        visitSites.append(site)
        uniqueIn.append(-1)
        return visitKeys.count - 1
    }

    /// The key prefix of a site day's hashes, built once per batch and site day (not per visit).
    private func base(_ siteDay: Int) -> String { bases[siteDay] }

    private func expireAt(_ siteDay: Int) -> Int {
        configuration.expireAt(Day(number: siteDays[siteDay].day))
    }

    private mutating func increment(_ siteDay: Int, _ slot: Int, _ field: String, by increment: Int = 1) {
        var index = slots[siteDay][slot]
        if index < 0 {
            let key: String
            switch slot {
            case Slot.globalDrops: key = configuration.keys.globalDrops(day: Day(number: siteDays[siteDay].day))
            case Slot.totals: key = base(siteDay) + "totals"
            case Slot.drops: key = base(siteDay) + "drops"
            default: key = base(siteDay) + "bd:" + Slot.names[slot]
            }
            index = hash(key, capped: Slot.capped[slot], expireAt: expireAt(siteDay))
            slots[siteDay][slot] = index
        }
        hashes[index].add(field, increment)
    }

    /// The index of `key` in `hashes`, added if new.
    private mutating func hash(_ key: String, capped: Bool, expireAt: Int) -> Int {
        if let index = hashIndex[key] { return index }
        hashes.append(PendingHash(key: key, capped: capped, expireAt: expireAt))
        hashIndex[key] = hashes.count - 1
        return hashes.count - 1
    }

    // MARK: - Visits

    /// The visits of each visitor key after the batch (oldest first, see ``VisitState/encode(_:)``),
    /// empty for a key to delete (its visits moved from yesterday's id to today's); `changed` marks
    /// the keys to write.
    private struct ResolvedVisits {
        var states: [[VisitState]]
        var changed: [Bool]
        /// The visit hits (with a previous day's id) in visits that began the day before, in order.
        var continuedAcrossMidnight: [Int] = []
    }

    private static let dayMilliseconds = 86_400_000

    /// Continues or starts the visit of each hit in arrival order and counts what depends on it.
    ///
    /// A visitor's recent visits are all kept (up to ``VisitState/keptPerVisitor``, oldest first), not
    /// only the one in progress: a hit continues the one it lies within the idle timeout of (the
    /// nearest, if two), so hits that arrive late — in this batch or a later one — neither start a
    /// visit of their own nor end the visit in progress. A hit after midnight that continues none of
    /// today's id's visits may continue one of yesterday's id (``EnrichedHit/previousVisitorID``),
    /// which then moves to today's id. For hits in time order this is the one-visit-per-id rule of
    /// ``ArchiveReport/sessions(_:idleMilliseconds:)``, which `pixeld replay` and the filtered views
    /// count by. Out of order, live can still count more visits than replay: a late hit within the
    /// timeout of two visits joins one (they are not merged), and a late hit under yesterday's id
    /// does not find a visit that has moved to today's.
    private mutating func resolveVisits(states stored: [[UInt8]?]) -> ResolvedVisits {
        var visits = ResolvedVisits(
            states: visitKeys.indices.map { index in
                (index < stored.count ? stored[index].flatMap { VisitState.decodeVisits($0, knownBases: bases) } : nil) ?? []
            },
            changed: [Bool](repeating: false, count: visitKeys.count)
        )
        let idle = configuration.sessionIdleSeconds * 1000
        var totalsOfBase: [String: Int] = [:]
        for (index, hit) in visitHits.enumerated() {
            guard hit.key >= 0 else {
                // No visitor id (no IP/user agent logged): pageviews by the hit's own source, no visit.
                countSource(hit.siteDay, hit.source, hit.campaign.source ?? "", hit.campaign.medium ?? "", hit.campaign.name ?? "")
                continue
            }
            let ms = hit.milliseconds
            let key = hit.key
            visits.changed[key] = true
            // The states are changed in place (`inout`): a copy of one retains its strings.
            var visit = Self.visit(in: visits.states[key], continuedAt: ms, idle: idle)
            if visit == nil, hit.previousKey >= 0,
                let moving = Self.visit(in: visits.states[hit.previousKey], continuedAt: ms, idle: idle)
            {
                // A visit that started before midnight, under yesterday's id: it moves to today's.
                let state = visits.states[hit.previousKey].remove(at: moving)
                visit = Self.insert(state, into: &visits.states[key])
                visits.changed[hit.previousKey] = true
            }
            if let visit {
                // The visit goes on; its visits, bounces and duration count on the day it started.
                continueVisit(&visits.states[key][visit], with: hit, at: ms, totalsOfBase: &totalsOfBase)
                // Whichever of its hits after midnight comes first by time, a replay (which reads
                // them in time order) moves the visit with it: each one keeps its previous-day id.
                if hit.previousKey >= 0, visits.states[key][visit].first < ms - ms % Self.dayMilliseconds {
                    visits.continuedAcrossMidnight.append(index)
                }
                continue
            }
            // A new visit: the first, a later one (the previous timed out), or an earlier one arriving late.
            increment(hit.siteDay, Slot.totals, "visits")
            if hit.isPageview { increment(hit.siteDay, Slot.totals, "bounces") }
            increment(hit.siteDay, Slot.breakdown(.entryPages), hit.path)
            increment(hit.siteDay, Slot.breakdown(.sourceVisits), hit.source)
            let campaign = (hit.campaign.source ?? "", hit.campaign.medium ?? "", hit.campaign.name ?? "")
            if hit.isPageview { countSource(hit.siteDay, hit.source, campaign.0, campaign.1, campaign.2) }
            let state = VisitState(
                first: ms, last: ms, hits: 1, bounce: hit.isPageview, base: base(hit.siteDay),
                expireAt: expireAt(hit.siteDay), source: hit.source,
                utmSource: campaign.0, utmMedium: campaign.1, utmCampaign: campaign.2
            )
            Self.insert(state, into: &visits.states[key])
        }
        // The most recent visits are kept (within a batch a list may hold more: a hit may still continue any).
        for key in visits.states.indices where visits.states[key].count > VisitState.keptPerVisitor {
            visits.states[key].removeFirst(visits.states[key].count - VisitState.keptPerVisitor)
        }
        return visits
    }

    /// The index in `visits` of the visit that a hit at `milliseconds` continues: of those within
    /// `idle` of it, the nearest (the later one on a tie). Spans then never overlap, so the list stays
    /// in order.
    private static func visit(in visits: [VisitState], continuedAt milliseconds: Int, idle: Int) -> Int? {
        var found: Int?
        var nearest = Int.max
        for (index, visit) in visits.enumerated()
        where VisitState.continues(first: visit.first, last: visit.last, at: milliseconds, idle: idle) {
            let distance = max(visit.first - milliseconds, milliseconds - visit.last, 0)
            if distance <= nearest {
                nearest = distance
                found = index
            }
        }
        return found
    }

    /// Inserts `visit` into `visits` (oldest first) where its start puts it; returns its index.
    @discardableResult
    private static func insert(_ visit: VisitState, into visits: inout [VisitState]) -> Int {
        let position = visits.firstIndex { $0.first > visit.first } ?? visits.endIndex
        visits.insert(visit, at: position)
        return position
    }

    /// Adds `hit` to the visit in progress `visit`: its span, hits and bounce, and the totals and
    /// sources that depend on them.
    private mutating func continueVisit(_ visit: inout VisitState, with hit: VisitHit, at ms: Int, totalsOfBase: inout [String: Int]) {
        let first = min(visit.first, ms), last = max(visit.last, ms)
        let delta = (last - first) - (visit.last - visit.first)
        if delta != 0 || visit.bounce {
            let totals: Int
            if let known = totalsOfBase[visit.base] {
                totals = known
            } else {
                totals = hash(visit.base + "totals", capped: false, expireAt: visit.expireAt)
                totalsOfBase[visit.base] = totals
            }
            if delta != 0 { hashes[totals].add("duration_ms", delta) }
            if visit.bounce { hashes[totals].add("bounces", -1) }
        }
        visit.first = first
        visit.last = last
        visit.hits += 1
        visit.bounce = false
        if hit.isPageview {
            countSource(hit.siteDay, visit.source, visit.utmSource, visit.utmMedium, visit.utmCampaign)
        }
    }

    /// A pageview's source and campaign (the visit's, or the hit's own without a visit).
    private mutating func countSource(_ siteDay: Int, _ source: String, _ utmSource: String, _ utmMedium: String, _ utmCampaign: String) {
        increment(siteDay, Slot.breakdown(.sources), source)
        if !utmSource.isEmpty { increment(siteDay, Slot.breakdown(.utmSources), utmSource) }
        if !utmMedium.isEmpty { increment(siteDay, Slot.breakdown(.utmMediums), utmMedium) }
        if !utmCampaign.isEmpty { increment(siteDay, Slot.breakdown(.utmCampaigns), utmCampaign) }
    }

    // MARK: - Encoding

    /// Writes the script's arguments (see ``RollupScript``) into `sink`; returns the states written.
    @discardableResult
    private func encode(_ visits: ResolvedVisits, into sink: inout some RollupArgumentSink) -> StateWrites {
        sink.append(CollectionOfOne(UInt8(ascii: "2")))
        sink.append(number: configuration.breakdownCap)
        sink.append(number: configuration.sessionStateTTLSeconds)
        sink.append(number: hashes.count)
        for hash in hashes {
            sink.append(hash.key.utf8)
            sink.append(CollectionOfOne(hash.capped ? UInt8(ascii: "1") : UInt8(ascii: "0")))
            sink.append(number: hash.expireAt)
            sink.append(number: hash.fields.count)
            for field in hash.fields {
                sink.append(field.name.utf8)
                sink.append(number: field.increment)
            }
        }
        let withVisitors = siteDays.indices.filter { !uniques[$0].isEmpty }
        sink.append(number: withVisitors.count)
        for siteDay in withVisitors {
            let day = Day(number: siteDays[siteDay].day)
            sink.append(configuration.keys.uniques(site: siteDays[siteDay].site, day: day).utf8)
            sink.append(number: configuration.expireAt(day))
            sink.append(number: uniques[siteDay].count)
            for id in uniques[siteDay] { sink.append(id.utf8) }
        }
        let changed = visitKeys.indices.filter { visits.changed[$0] }
        let deleted = changed.filter { visits.states[$0].isEmpty }
        // Ids by key index, for the writes (ids of keys in `otherSiteKeys` are left out: see `overlay`).
        var ids = [String?](repeating: nil, count: visitKeys.count)
        for (id, index) in visitKeyIndex { ids[index] = id }
        var writes = StateWrites()
        sink.append(number: deleted.count)
        for index in deleted {
            sink.append(visitKeys[index])
            writes.append(visitKeys[index], id: ids[index], nil)
        }
        sink.append(number: changed.count - deleted.count)
        for index in changed {
            guard !visits.states[index].isEmpty else { continue }
            let encoded = VisitState.encode(visits.states[index])
            sink.append(visitKeys[index])
            sink.append(encoded)
            writes.append(visitKeys[index], id: ids[index], encoded)
        }
        return writes
    }

    /// A generous estimate of the encoded arguments' bytes with `visits`, so that the RESP buffer grows at most once.
    private func encodedSizeEstimate(_ visits: ResolvedVisits) -> Int {
        var bytes = 256
        for hash in hashes { bytes += hash.key.utf8.count + 48 + hash.fields.count * 40 }
        for ids in uniques { bytes += 64 + ids.count * 40 }
        for (index, key) in visitKeys.enumerated() { bytes += key.count * 2 + 160 * max(1, visits.states[index].count) }
        return bytes
    }

    // MARK: - Time

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
}
