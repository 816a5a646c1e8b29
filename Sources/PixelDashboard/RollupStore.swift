public import PixelAnalytics
public import RespBridge

/// Reads the rollups the consumer writes (see `RollupKeys`) through a ``RedisReader`` and turns them
/// into `Report`s and time series, with the same combination code as `pixeld report`.
public struct RollupStore: Sendable {
    /// The connection pool.
    public let reader: RedisReader
    /// The key layout.
    public let keys: RollupKeys

    /// Creates a store.
    public init(reader: RedisReader, keys: RollupKeys = RollupKeys()) {
        self.reader = reader
        self.keys = keys
    }

    /// The report of `site` from `from` to `to` (inclusive) — the object `pixeld report --json` prints,
    /// with only `breakdowns` read (the others empty).
    public func report(site: String, from: Day, to: Day, breakdowns: [Breakdown] = Breakdown.allCases) async throws(RespError) -> Report {
        let query = ReportQuery(site: site, from: from, to: to, keys: keys, breakdowns: breakdowns)
        var commands: [[[UInt8]]] = query.hashKeys.map { [Array("HGETALL".utf8), Array($0.utf8)] }
        commands.append([Array("PFCOUNT".utf8)] + query.uniqueKeys.map { Array($0.utf8) })
        let replies = try await reader.pipeline(commands)
        var hashes: [[String: Int]] = []
        hashes.reserveCapacity(replies.count)
        for reply in replies.dropLast() { hashes.append(try Self.hash(reply, operation: "HGETALL")) }
        let visitors = Int(try replies.last?.unwrap("PFCOUNT").int ?? 0)
        return query.report(hashes: hashes, visitors: visitors)
    }

    /// One point per day of the range: pageviews, visitors (that day's HyperLogLog), visits, bounces.
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
            let totals = try Self.hash(replies[index * 2], operation: "HGETALL")
            let visitors = Int(try replies[index * 2 + 1].unwrap("PFCOUNT").int ?? 0)
            points.append(
                SeriesPoint(
                    label: day.description, pageviews: totals["pageviews"] ?? 0, visitors: visitors,
                    visits: totals["visits"] ?? 0, bounces: totals["bounces"] ?? 0
                )
            )
        }
        return points
    }

    /// One point per UTC hour of `day` (pageviews only: the rollups count hours by pageviews).
    public func hourly(site: String, day: Day) async throws(RespError) -> [SeriesPoint] {
        let replies = try await reader.pipeline([
            [Array("HGETALL".utf8), Array(keys.breakdown(.hours, site: site, day: day).utf8)]
        ])
        let hours = try Self.hash(replies[0], operation: "HGETALL")
        return (0..<24).map { hour in
            let label = hour < 10 ? "0\(hour)" : "\(hour)"
            return SeriesPoint(label: label, pageviews: hours[label] ?? 0, visitors: nil, visits: nil, bounces: nil)
        }
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
        var cursor = "0"
        let pattern = keys.prefix + "site:*:totals"
        var rounds = 0
        repeat {
            let reply = try await reader.pipeline([
                ["SCAN", cursor, "MATCH", pattern, "COUNT", "1000"].map { Array($0.utf8) }
            ])[0].unwrap("SCAN")
            guard let parts = reply.array, parts.count == 2, let next = parts[0].string else {
                throw RespError(code: .unexpectedReply, operation: "SCAN", message: "not a cursor and an array")
            }
            cursor = next
            for key in parts[1].array ?? [] {
                guard let text = key.string else { continue }
                // prefix + "site:" + SITE + ":" + YYYY-MM-DD + ":totals"
                let rest = text.dropFirst(keys.prefix.count + 5)
                guard rest.count > 18 else { continue }
                found.insert(String(rest.dropLast(18)))
            }
            rounds += 1
        } while cursor != "0" && found.count < limit && rounds < maxRounds
        return SiteDiscovery(
            sites: Array(found.sorted().prefix(limit)), complete: cursor == "0" && found.count <= limit, rounds: rounds
        )
    }

    /// A rollup hash (`HGETALL` reply) as field → count; `pixeld report` reads its hashes with it too.
    package static func hash(_ reply: RESPValue, operation: String) throws(RespError) -> [String: Int] {
        let items = try reply.unwrap(operation).array ?? []
        var hash: [String: Int] = [:]
        for index in stride(from: 0, to: items.count - 1, by: 2) {
            // Added, not assigned: Swift's String equality is canonical (NFC "café" == NFD "café"),
            // while Redis keeps the two byte sequences apart.
            hash[items[index].string ?? "", default: 0] += items[index + 1].string.flatMap { Int($0) } ?? 0
        }
        return hash
    }
}

/// One point of a time series.
public struct SeriesPoint: Sendable, Equatable {
    /// The day (`YYYY-MM-DD`) or the hour (`00`–`23`).
    public var label: String
    /// Pageviews.
    public var pageviews: Int
    /// Unique visitors of the day, where known.
    public var visitors: Int?
    /// Visits, where known.
    public var visits: Int?
    /// Bounces, where known.
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
