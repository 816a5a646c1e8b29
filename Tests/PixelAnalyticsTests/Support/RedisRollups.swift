@testable import PixelAnalytics
import PixeldTestSupport
import PixelEvents

#if canImport(Glibc)
import Glibc
#endif

/// Drives the analytics pieces against a real Redis the way `pixeld consume` does: fetch the daily
/// keys, process a batch, read its visit states, apply its rollup — here as `EVALSHA` inside
/// `MULTI`/`EXEC` (the standalone script, as `pixeld replay` runs it; the consumer runs the same body
/// as a function of its ack script, which the end-to-end tests cover).
struct RedisRollups {
    let connection: RESPConnection
    let configuration: RollupConfiguration
    private(set) var keys = DailyKeys()

    init(connection: RESPConnection, configuration: RollupConfiguration = RollupConfiguration()) throws {
        self.connection = connection
        self.configuration = configuration
        let loaded = try connection.command(bytes: RollupScript.loadCommand)
        guard loaded.string == RollupScript.sha1 else { throw TestSupportError("SCRIPT LOAD replied \(loaded)") }
    }

    /// Loads (creating where allowed) the keys the timestamps need.
    ///
    /// Each day's key is first offered with fixed bytes (`SET … NX`), so that the consumer's fetch finds
    /// it: visitor ids, and with them the HyperLogLog estimates, are then the same in every run. With
    /// random keys a ±2 % bound on ~100 visitors failed now and then (an estimate 3 off), and a failure
    /// could not be replayed. The bytes depend on the day's distance from today, as the simulations'
    /// days do, so that runs on different dates see the same ids too.
    mutating func loadKeys(for timestamps: [Double]) throws {
        let needed = DailyKeys.daysNeeded(for: timestamps, sessionIdleSeconds: Double(configuration.sessionIdleSeconds))
            .filter { keys[$0.day] == nil }
        guard !needed.isEmpty else { return }
        let today = Day(timestamp: Double(time(nil))).number
        for entry in needed where entry.create {
            let bytes = (0..<DailyKey.byteCount).map { UInt8(truncatingIfNeeded: (entry.day.number - today) &* 31 &+ $0 &* 7) }
            _ = try connection.command(bytes: [
                Array("SET".utf8), Array(DailyKey.redisKey(for: entry.day, prefix: configuration.keys.prefix).utf8), bytes,
                Array("NX".utf8), Array("EX".utf8), Array("172800".utf8),  // the simulations' days are in the past
            ])
        }
        let reply = try connection.command(bytes: DailyKey.fetchCommand(needed, prefix: configuration.keys.prefix))
        guard let values = reply.array, values.count == needed.count else { throw TestSupportError("key fetch replied \(reply)") }
        for (entry, value) in zip(needed, values) {
            if let bytes = value.bytes {
                guard let key = DailyKey(day: entry.day, bytes: bytes) else { throw TestSupportError("bad key length") }
                keys.insert(key)
            }
        }
    }

    /// Reads the batch's visit states and applies it in `MULTI`/`EXEC`; with `abortFirst`, first
    /// queues it and `DISCARD`s (a consumer that died before `EXEC`). Returns the hits that continued a
    /// visit across midnight (for ``HeldBackPreviousIDs/insert(continued:into:live:)``).
    @discardableResult
    func apply(_ batch: RollupBatch, abortFirst: Bool = false) throws -> [Int] {
        var states: [[UInt8]?] = []
        if let read = batch.stateReadCommand() {
            let reply = try connection.command(bytes: read)
            guard let values = reply.array, let parsed = batch.parseStateRead(values.map(\.bytes)) else {
                throw TestSupportError("MGET replied \(reply)")
            }
            states = parsed.states
        }
        // The consumer sends the rollup encoded straight into one buffer; it must be exactly the RESP of
        // its arguments (which `pixeld replay` sends), batch after batch of the simulations.
        let (command, writes, continued) = batch.encodedCommand(states: states)
        guard command == RESPConnection.encode(batch.command(states: states)) else {
            throw TestSupportError("the encoded rollup command differs from the RESP of its arguments")
        }
        if abortFirst {
            _ = try connection.command(["MULTI"])
            try connection.send(encoded: command)
            _ = try connection.readReply()
            _ = try connection.command(["DISCARD"])
        }
        _ = try connection.command(["MULTI"])
        try connection.send(encoded: command)
        let queued = try connection.readReply()
        guard queued == .simpleString("QUEUED") else { throw TestSupportError("EVALSHA not queued: \(queued)") }
        let reply = try connection.command(["EXEC"])
        guard let results = reply.array, results.count == 1, !results[0].isError else {
            throw TestSupportError("EXEC replied \(reply)")
        }
        // The writes the consumer carries over to the next batch's read are what Redis now holds.
        if !writes.keys.isEmpty {
            let stored = try connection.command(bytes: [Array("MGET".utf8)] + writes.keys)
            guard stored.array?.map(\.bytes) == writes.values else {
                throw TestSupportError("the states written differ from the rollup's StateWrites")
            }
        }
        return continued
    }

    /// Reads the report of `site` over `from`…`to`.
    func report(site: String, from: Day, to: Day) throws -> Report {
        let query = ReportQuery(site: site, from: from, to: to, keys: configuration.keys)
        var hashes: [[String: Int]] = []
        for key in query.hashKeys {
            let reply = try connection.command(["HGETALL", key])
            guard let items = reply.array else { throw TestSupportError("HGETALL replied \(reply)") }
            var hash: [String: Int] = [:]
            for index in stride(from: 0, to: items.count, by: 2) {
                hash[items[index].string ?? ""] = Int(items[index + 1].string ?? "") ?? 0
            }
            hashes.append(hash)
        }
        let count = try connection.command(["PFCOUNT"] + query.uniqueKeys)
        return query.report(hashes: hashes, visitors: Int(count.integer ?? -1))
    }

    /// `HGETALL` of a drop hash as reason → count.
    func hash(_ key: String) throws -> [String: Int] {
        let reply = try connection.command(["HGETALL", key])
        var hash: [String: Int] = [:]
        let items = reply.array ?? []
        for index in stride(from: 0, to: items.count, by: 2) {
            hash[items[index].string ?? ""] = Int(items[index + 1].string ?? "") ?? 0
        }
        return hash
    }
}
