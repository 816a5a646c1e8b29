/// A walk through the keyspace with `SCAN <cursor> MATCH <pattern> COUNT 1000`: the command of each
/// call and the reading of its reply, for callers that send it their own way (a pool, a pipeline);
/// ``RedisConnection/scanKeys(matching:)`` walks all of it on one connection. A key may come more
/// than once (`SCAN`'s guarantee is that every key present throughout the walk comes at least once).
public struct KeyScan: Sendable {
    /// The `MATCH` pattern.
    public let pattern: String
    /// The cursor of the next call (`"0"` before the first and after the last).
    public private(set) var cursor = "0"
    /// The calls whose replies were read.
    public private(set) var calls = 0

    /// A walk of the keys that match `pattern`.
    public init(matching pattern: String) {
        self.pattern = pattern
    }

    /// Whether the walk went through the whole keyspace: the last reply's cursor was `0`.
    public var isComplete: Bool { calls > 0 && cursor == "0" }

    /// The next call.
    public var command: [[UInt8]] {
        ["SCAN", cursor, "MATCH", pattern, "COUNT", "1000"].map { Array($0.utf8) }
    }

    /// Reads the reply to ``command``: the keys it names (as Redis sent them); the cursor moves on.
    /// - Throws: ``RespError``: the error reply, or `.unexpectedReply` for a reply that is not a
    ///   cursor and an array.
    public mutating func keys(in reply: RESPValue) throws(RespError) -> [RESPValue] {
        let value = try reply.unwrap("SCAN")
        guard let parts = value.array, parts.count == 2, let next = parts[0].string else {
            throw RespError(code: .unexpectedReply, operation: "SCAN", message: "not a cursor and an array")
        }
        cursor = next
        calls += 1
        return parts[1].array ?? []
    }
}

extension RedisConnection {
    /// The keys that match `pattern`, from a whole ``KeyScan`` on this connection.
    public func scanKeys(matching pattern: String) throws(RespError) -> [[UInt8]] {
        var scan = KeyScan(matching: pattern)
        var keys: [[UInt8]] = []
        repeat {
            keys += try scan.keys(in: try command(scan.command)).compactMap(\.bytes)
        } while !scan.isComplete
        return keys
    }
}
