import Foundation
@testable import PixelAnalytics
import PixeldTestSupport
import Testing

/// The privacy check of the end-to-end tests: no IP address or user agent in any Redis key name or
/// value, nor in the archive.
///
/// Every value is read as its type gives it (`GET`, `HGETALL`, `LRANGE`, `SMEMBERS`, `ZRANGE`,
/// `XRANGE`), not through `DUMP`: with Redis's default `rdbcompression yes`, `DUMP` compresses a value
/// over 20 bytes (LZF), which cuts any text longer than 32 bytes — every user agent — into pieces
/// that no search finds. A key of any other type is an issue, so that a new type is read too.
enum PersonalData {
    /// Records an issue for each of `needles` found (case-insensitively, so stricter) in a key name or
    /// value of `redis`, or in `archive`.
    static func expectNone(of needles: [String], in redis: RedisServer, archive: [[UInt8]]) throws {
        let connection = try redis.connect(timeout: 30)
        var haystacks = archive
        for key in try redis.keys() {
            haystacks.append(Array(key.utf8))
            let read: [String]
            switch try connection.command(["TYPE", key]).string {
            case "string": read = ["GET", key]
            case "hash": read = ["HGETALL", key]
            case "list": read = ["LRANGE", key, "0", "-1"]
            case "set": read = ["SMEMBERS", key]
            case "zset": read = ["ZRANGE", key, "0", "-1"]
            case "stream": read = ["XRANGE", key, "-", "+"]
            case "none": continue  // expired since KEYS listed it
            case let type:
                Issue.record("key \(key) of type \(type ?? "?") is not searched")
                continue
            }
            collect(try connection.command(read), into: &haystacks)
        }
        let automaton = LiteralAutomaton(needles.map { Array($0.utf8) })
        var found: Set<Int> = []
        for haystack in haystacks {
            haystack.withUnsafeBufferPointer { bytes in
                automaton.forEachMatch(in: bytes) { found.insert($0); return true }
            }
        }
        #expect(found.isEmpty, "personal data found: \(found.sorted().prefix(5).map { needles[$0] })")
    }

    /// The bulk strings of a reply, nested arrays (a stream's entries) included.
    private static func collect(_ reply: RESP, into haystacks: inout [[UInt8]]) {
        if let elements = reply.array {
            for element in elements { collect(element, into: &haystacks) }
        } else if let bytes = reply.bytes {
            haystacks.append(bytes)
        }
    }
}
