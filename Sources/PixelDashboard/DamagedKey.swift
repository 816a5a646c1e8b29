import Logging
public import RespBridge
import Synchronization

/// A rollup key that holds what the consumer never writes: a string at a HyperLogLog's key
/// (`WRONGTYPE`), a corrupt HyperLogLog (`INVALIDOBJ`), a string at a hash's key. Its figure is
/// unknown, and the other keys of the same pipeline still count; any other error reply (`NOAUTH`,
/// `LOADING`…) is Redis failing, not a key, and is thrown.
package enum DamagedKey {
    /// Whether `reply` is a damaged key's error.
    package static func isDamage(_ reply: RESPValue) -> Bool {
        guard case .error(let text) = reply else { return false }
        return text.hasPrefix("WRONGTYPE") || text.hasPrefix("INVALIDOBJ")
    }

    /// `reply`, or `nil` (with a warning naming `key`) when it is a damaged key's error.
    static func check(_ reply: RESPValue, operation: String, key: String, warnings: DamageWarnings) throws(RespError) -> RESPValue? {
        guard case .error(let text) = reply, isDamage(reply) else { return try reply.unwrap(operation) }
        warnings.warn("damaged rollup key: its figure shows as unknown", RollupDamage(key: key, field: nil, error: text))
        return nil
    }

    /// The damaged keys among (key, reply) pairs, with their error text.
    static func damaged(_ pairs: some Sequence<(String, RESPValue)>) -> [RollupDamage] {
        pairs.compactMap { key, reply in
            guard case .error(let text) = reply, isDamage(reply) else { return nil }
            return RollupDamage(key: key, field: nil, error: text)
        }
    }

    /// The hashes and the visitors of a report — `serve`'s and `pixeld report`'s one read: an
    /// `HGETALL` of each of `hashKeys` and one `PFCOUNT` of the union of `uniqueKeys`, in one pipeline.
    /// A report has no unknown figure, so any damage fails it, with every damaged key and field: a
    /// key the consumer never writes, a count that is not a number. When the union fails, each day's
    /// HyperLogLog is counted alone (a second pipeline): the union's error does not say which is damaged.
    /// - Parameter pipeline: Runs commands in one round trip (``RedisReader`` or a `RedisConnection`).
    /// - Throws: ``RollupReadError/damaged(_:)``; ``RollupReadError/redis(_:)`` when Redis fails.
    package static func report(
        hashKeys: [String], uniqueKeys: [String], pipeline: ([[[UInt8]]]) async throws(RespError) -> [RESPValue]
    ) async throws(RollupReadError) -> (hashes: [[String: Int]], visitors: Int) {
        var commands: [[[UInt8]]] = hashKeys.map { [Array("HGETALL".utf8), Array($0.utf8)] }
        commands.append([Array("PFCOUNT".utf8)] + uniqueKeys.map { Array($0.utf8) })
        var hashes: [[String: Int]] = []
        var found: [RollupDamage] = []
        var unreadable: [RollupDamage] = []
        var visitors = 0
        do throws(RespError) {
            let replies = try await pipeline(commands)
            found = damaged(zip(hashKeys, replies))
            if let union = replies.last, isDamage(union) {
                found += damaged(zip(uniqueKeys, try await pipeline(uniqueKeys.map { [Array("PFCOUNT".utf8), Array($0.utf8)] })))
            }
            for (key, reply) in zip(hashKeys, replies) where !isDamage(reply) {
                let hash = try RollupStore.rollupHash(reply, operation: "HGETALL")
                unreadable += unreadableFields(hash, key: key)
                hashes.append(hash.counts)
            }
            found += unreadable
            if found.isEmpty { visitors = Int(try replies.last?.unwrap("PFCOUNT").int ?? 0) }
        } catch {
            throw .redis(error)
        }
        guard found.isEmpty else { throw .damaged(found) }
        return (hashes, visitors)
    }
}

extension DamagedKey {
    /// The counts of hashes every site shares (the all-sites drop counts of `pixeld report`'s
    /// site-less line), merged: damage there is no one site's, so it costs only what is damaged —
    /// returned, for a note — and not the report.
    /// - Throws: Redis's failure (an error reply that is not a damaged key's included).
    package static func sharedCounts(
        hashKeys: [String], pipeline: ([[[UInt8]]]) async throws(RespError) -> [RESPValue]
    ) async throws(RespError) -> (counts: [String: Int], damaged: [RollupDamage]) {
        let replies = try await pipeline(hashKeys.map { [Array("HGETALL".utf8), Array($0.utf8)] })
        var counts: [String: Int] = [:]
        var found = damaged(zip(hashKeys, replies))
        for (key, reply) in zip(hashKeys, replies) where !isDamage(reply) {
            let hash = try RollupStore.rollupHash(reply, operation: "HGETALL")
            found += unreadableFields(hash, key: key)
            counts.merge(hash.counts, uniquingKeysWith: +)
        }
        return (counts, found)
    }

    /// The fields of `hash` (at `key`) whose count is not a number.
    static func unreadableFields(_ hash: RollupHash, key: String) -> [RollupDamage] {
        hash.unreadable.sorted().map { RollupDamage(key: key, field: $0, error: "not a number") }
    }
}

/// A damaged rollup key, or one field of a rollup hash whose count is not a number.
public struct RollupDamage: Sendable, Equatable, CustomStringConvertible {
    /// The key.
    public var key: String
    /// The field whose count is not a number; `nil` when the key itself is damaged.
    public var field: String?
    /// Redis's error reply (`WRONGTYPE …`, `INVALIDOBJ …`), or "not a number".
    public var error: String

    /// `KEY (ERROR)`, or `KEY field FIELD (not a number)`.
    public var description: String {
        field.map { "\(key) field \($0) (\(error))" } ?? "\(key) (\(error))"
    }
}

/// Why a report could not be read.
public enum RollupReadError: Error, Sendable, CustomStringConvertible {
    /// Redis failed (unreachable, busy, or an error reply that is not a damaged key's).
    case redis(RespError)
    /// Keys or fields of the range hold what the consumer never writes: a report has no unknown figure.
    case damaged([RollupDamage])

    /// Redis's error, or the damaged keys and fields.
    public var description: String {
        switch self {
        case .redis(let error): "\(error)"
        case .damaged(let found): "damaged rollup key: " + found.map(\.description).joined(separator: ", ")
        }
    }
}

/// The warnings of damaged rollup keys, at most one per message, key and field every ``interval``
/// seconds: every request for `/` or `/api/sites` reads the same damaged keys again.
final class DamageWarnings: Sendable {
    /// Seconds between two warnings of the same damage.
    static let interval = 60.0
    /// Damage remembered at most; past it, entries older than ``interval`` are forgotten, and while
    /// none is that old new damage is logged every time rather than remembered.
    static let capacity = 4096

    let logger: Logger
    private let clock: @Sendable () -> Double
    private let lastLogged = Mutex<[String: Double]>([:])

    /// - Parameter clock: Seconds (since any origin).
    init(logger: Logger, clock: @escaping @Sendable () -> Double) {
        self.logger = logger
        self.clock = clock
    }

    /// Logs `message` naming `damage`, unless it was logged less than ``interval`` seconds ago.
    func warn(_ message: Logger.Message, _ damage: RollupDamage) {
        let now = clock()
        let id = "\(message)\u{0}\(damage.key)\u{0}\(damage.field ?? "")"
        let due = lastLogged.withLock { last in
            if let previous = last[id], now - previous < Self.interval { return false }
            if last.count >= Self.capacity { last = last.filter { now - $0.value < Self.interval } }
            // Still full (that much damage within the interval): logged, not remembered — the limit holds.
            if last.count < Self.capacity { last[id] = now }
            return true
        }
        guard due else { return }
        var metadata: Logger.Metadata = ["key": "\(damage.key)", "error": "\(damage.error)"]
        if let field = damage.field { metadata["field"] = "\(field)" }
        logger.warning(message, metadata: metadata)
    }
}
