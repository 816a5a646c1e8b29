public import Logging
public import PixelAnalytics
public import RespBridge

/// Reads the rollups the consumer writes (see `RollupKeys`) through a ``RedisReader`` and turns them
/// into `Report`s and time series, with the same combination code as `pixeld report`.
public struct RollupStore: Sendable {
    /// The connection pool.
    public let reader: RedisReader
    /// The key layout.
    public let keys: RollupKeys
    /// For a damaged rollup key (see ``DamagedKey``), which the series show as unknown.
    let warnings: DamageWarnings

    /// Creates a store.
    /// - Parameters:
    ///   - logger: Warns of a damaged rollup key (one the consumer did not write: a string where a
    ///     HyperLogLog belongs, a corrupt HyperLogLog, a count that is not a number), once a minute
    ///     per key (and field).
    ///   - clock: Seconds (from any origin), for those warnings' minute; default a monotonic clock.
    public init(
        reader: RedisReader, keys: RollupKeys = RollupKeys(), logger: Logger = Logger(label: "pixeld.serve"),
        clock: (@Sendable () -> Double)? = nil
    ) {
        self.reader = reader
        self.keys = keys
        let start = ContinuousClock.now
        self.warnings = DamageWarnings(
            logger: logger,
            clock: clock ?? {
                let elapsed = ContinuousClock.now - start
                return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
            }
        )
    }

    /// The report of `site` from `from` to `to` (inclusive) — the object `pixeld report --json` prints,
    /// with only `breakdowns` read (the others empty).
    /// - Throws: ``RollupReadError/damaged(_:)`` when a key or count of the range is damaged (a
    ///   report has no unknown figure), each logged by name; ``RollupReadError/redis(_:)``.
    public func report(
        site: String, from: Day, to: Day, breakdowns: [Breakdown] = Breakdown.allCases
    ) async throws(RollupReadError) -> Report {
        let query = ReportQuery(site: site, from: from, to: to, keys: keys, breakdowns: breakdowns)
        do throws(RollupReadError) {
            let read = try await DamagedKey.report(hashKeys: query.hashKeys, uniqueKeys: query.uniqueKeys) {
                commands throws(RespError) in try await reader.pipeline(commands)
            }
            return query.report(hashes: read.hashes, visitors: read.visitors)
        } catch {
            if case .damaged(let found) = error {
                for damage in found { warnings.warn("damaged rollup key: the reports of its days fail", damage) }
            }
            throw error
        }
    }

    /// One point per day of the range: pageviews, visitors (that day's HyperLogLog), visits, bounces.
    /// A figure whose key or field is damaged (see ``DamagedKey``) is `nil` (unknown) and logged, so
    /// one hand-edited key costs its own figures, not the whole answer.
    public func daily(site: String, from: Day, to: Day) async throws(RespError) -> [SeriesPoint] {
        let days = ReportQuery(site: site, from: from, to: to, keys: keys).days
        var commands: [[[UInt8]]] = []
        for day in days {
            commands.append([Array("HGETALL".utf8), Array(keys.totals(site: site, day: day).utf8)])
            commands.append([Array("PFCOUNT".utf8), Array(keys.uniques(site: site, day: day).utf8)])
        }
        let replies = try await reader.pipeline(commands)
        var points: [SeriesPoint] = []
        for (index, day) in days.enumerated() {
            let totals = try readableHash(replies[index * 2], key: keys.totals(site: site, day: day))
            let uniques = keys.uniques(site: site, day: day)
            let visitors = try DamagedKey.check(replies[index * 2 + 1], operation: "PFCOUNT", key: uniques, warnings: warnings)?.int
            points.append(
                SeriesPoint(
                    label: day.description, pageviews: totals?.count("pageviews"), visitors: visitors.map { Int($0) },
                    visits: totals?.count("visits"), bounces: totals?.count("bounces")
                )
            )
        }
        return points
    }

    /// One point per UTC hour of `day` (pageviews only: the rollups count hours by pageviews); an
    /// hour whose count is damaged is `nil`, all of them when the hash is.
    public func hourly(site: String, day: Day) async throws(RespError) -> [SeriesPoint] {
        let key = keys.breakdown(.hours, site: site, day: day)
        let replies = try await reader.pipeline([[Array("HGETALL".utf8), Array(key.utf8)]])
        let hours = try readableHash(replies[0], key: key)
        return (0..<24).map { hour in
            let label = hour < 10 ? "0\(hour)" : "\(hour)"
            return SeriesPoint(label: label, pageviews: hours?.count(label), visitors: nil, visits: nil, bounces: nil)
        }
    }

    /// A rollup hash whose damaged fields are logged; `nil` (logged) when the key itself is damaged.
    private func readableHash(_ reply: RESPValue, key: String) throws(RespError) -> RollupHash? {
        guard let reply = try DamagedKey.check(reply, operation: "HGETALL", key: key, warnings: warnings) else { return nil }
        let hash = try Self.rollupHash(reply, operation: "HGETALL")
        for damage in DamagedKey.unreadableFields(hash, key: key) {
            warnings.warn("damaged rollup field: not a number; its figure shows as unknown", damage)
        }
        return hash
    }

    /// Distinct anonymous visitors of `site` seen in the last five minutes before `now` (the sorted
    /// set the consumer keeps with each ack, see `LiveUpdate`).
    public func recentVisitors(site: String, now: Double) async throws(RespError) -> Int {
        let replies = try await reader.pipeline([LiveUpdate.countCommand(site: site, keys: keys, now: now)])
        return Int(try replies[0].unwrap("ZCOUNT").int ?? 0)
    }

    /// Sites that have rollups in Redis: a `SCAN` of `…site:*:totals` (1,000 keys a call) that stops
    /// at the end of the keyspace, at `limit` sites or after `maxRounds` calls.
    /// - Parameters:
    ///   - limit: The most sites returned.
    ///   - maxRounds: The most `SCAN` calls (1,000 cover about a million keys).
    /// - Returns: The sites found, sorted, and whether the scan went through the whole keyspace.
    public func discoverSites(limit: Int = 200, maxRounds: Int = 1000) async throws(RespError) -> SiteDiscovery {
        var found = Set<String>()
        var scan = KeyScan(matching: keys.prefix + "site:*:totals")
        repeat {
            for key in try scan.keys(in: try await reader.pipeline([scan.command])[0]) {
                guard let text = key.string else { continue }
                // prefix + "site:" + SITE + ":" + YYYY-MM-DD + ":totals"
                let rest = text.dropFirst(keys.prefix.count + 5)
                guard rest.count > 18 else { continue }
                found.insert(String(rest.dropLast(18)))
            }
        } while !scan.isComplete && found.count < limit && scan.calls < maxRounds
        return SiteDiscovery(
            sites: Array(found.sorted().prefix(limit)), complete: scan.isComplete && found.count <= limit, rounds: scan.calls
        )
    }

    /// A rollup hash (`HGETALL` reply) as field → count, and the fields whose value is not a number.
    static func rollupHash(_ reply: RESPValue, operation: String) throws(RespError) -> RollupHash {
        let items = try reply.unwrap(operation).array ?? []
        var hash = RollupHash()
        for index in stride(from: 0, to: items.count - 1, by: 2) {
            let field = items[index].string ?? ""
            guard let count = items[index + 1].string.flatMap({ Int($0) }) else {
                hash.unreadable.insert(field)
                continue
            }
            // Added, not assigned: Swift's String equality is canonical (NFC "café" == NFD "café"),
            // while Redis keeps the two byte sequences apart.
            hash.counts[field, default: 0] += count
        }
        return hash
    }
}

/// A rollup hash read: the counts, and the fields whose value is not a number (a hand edit).
struct RollupHash {
    var counts: [String: Int] = [:]
    var unreadable: Set<String> = []

    /// A field's count: 0 when absent (nothing counted), `nil` when it is not a number (unknown).
    func count(_ field: String) -> Int? {
        unreadable.contains(field) ? nil : counts[field] ?? 0
    }
}

/// One point of a time series.
public struct SeriesPoint: Sendable, Equatable {
    /// The day (`YYYY-MM-DD`) or the hour (`00`–`23`).
    public var label: String
    /// Pageviews; `nil`: unknown (a damaged rollup, see ``DamagedKey``).
    public var pageviews: Int?
    /// Unique visitors of the day; `nil` in an hourly series, or unknown (a damaged rollup).
    public var visitors: Int?
    /// Visits; `nil` in an hourly series, or unknown.
    public var visits: Int?
    /// Bounces; `nil` in an hourly series, or unknown.
    public var bounces: Int?
}

/// What ``RollupStore/discoverSites(limit:maxRounds:)`` found.
public struct SiteDiscovery: Sendable, Equatable {
    /// The sites, sorted.
    public var sites: [String]
    /// `false` when the scan stopped at its limit of sites or of `SCAN` calls before the end of the
    /// keyspace: sites may be missing.
    public var complete: Bool
    /// The `SCAN` calls made.
    public var rounds: Int
}
