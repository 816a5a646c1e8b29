@testable import PixelAnalytics
import Testing

@Suite struct IdentityTests {
    let day = Day("2025-11-22")!
    var key: DailyKey { DailyKey(day: day, bytes: [UInt8](repeating: 7, count: 32))! }

    @Test func visitorIDIsStableAndKeyed() {
        let id = VisitorID.make(key: key, site: "example.com", ip: "192.0.2.1", userAgent: "UA")
        #expect(id.utf8.count == 32)
        #expect(id.allSatisfy { $0.isHexDigit && !$0.isUppercase })
        #expect(id == VisitorID.make(key: key, site: "example.com", ip: "192.0.2.1", userAgent: "UA"))
        let other = DailyKey(day: day.next, bytes: [UInt8](repeating: 8, count: 32))!
        #expect(id != VisitorID.make(key: other, site: "example.com", ip: "192.0.2.1", userAgent: "UA"))
        #expect(id != VisitorID.make(key: key, site: "example.org", ip: "192.0.2.1", userAgent: "UA"))
        #expect(id != VisitorID.make(key: key, site: "example.com", ip: "192.0.2.2", userAgent: "UA"))
        #expect(id != VisitorID.make(key: key, site: "example.com", ip: "192.0.2.1", userAgent: "UA2"))
        // The separator keeps field boundaries: ("a", "bc") differs from ("ab", "c").
        #expect(
            VisitorID.make(key: key, site: "s", ip: "a", userAgent: "bc")
                != VisitorID.make(key: key, site: "s", ip: "ab", userAgent: "c")
        )
    }

    /// SipHash-2-4-128 as the reference implementation (github.com/veorq/SipHash, `vectors.h`,
    /// `vectors_sip128`) computes it: key 00 01 … 0f, message 00 01 … (n-1), for tail lengths 0–7
    /// and messages of one, two and seven words.
    @Test(arguments: [
        (0, "a3817f04ba25a8e66df67214c7550293"), (1, "da87c1d86b99af44347659119b22fc45"),
        (7, "a1f1ebbed8dbc153c0b84aa61ff08239"), (8, "3b62a9ba6258f5610f83e264f31497b4"),
        (9, "264499060ad9baabc47f8b02bb6d71ed"), (15, "5493e99933b0a8117e08ec0f97cfc3d9"),
        (16, "6ee2a4ca67b054bbfd3315bf85230577"), (63, "5150d1772f50834a503e069a973fbd7c"),
    ])
    func sipHashMatchesTheReference(length: Int, tag: String) {
        let hash = SipHash24(k0: 0x0706_0504_0302_0100, k1: 0x0f0e_0d0c_0b0a_0908)
        #expect([UInt8]((0..<length).map { UInt8($0) }).withUnsafeBytes { hash.hexTag($0) } == tag)
    }

    /// The id is pinned to an independent implementation (Python: `hmac` for the derived key, the
    /// reference's SipHash-2-4-128 written out, checked against `vectors_sip128`), so that any change
    /// to the ids — which splits the visitors of the day it is deployed — is deliberate:
    /// `k = hmac.new(bytes([7] * 32), b"pixeld visitor id: SipHash-2-4-128", "sha256").digest()[:16]`,
    /// id = `siphash128(k, site + b"\0" + ip + b"\0" + ua).hex()`.
    @Test func visitorIDIsPinned() {
        #expect(VisitorID.make(key: key, site: "example.com", ip: "192.0.2.1", userAgent: "UA") == "a625e4f435a1342fbacaef143cbab002")
        let userAgent = String(repeating: "Mozilla/5.0 (X11; Linux x86_64) ", count: 9)
        #expect(VisitorID.make(key: key, site: "example.org", ip: "2001:db8::1", userAgent: userAgent) == "2e46a61c897085bccc56ce0b60efa9c5")
    }

    @Test func keysNeverPrintTheirBytes() {
        #expect("\(key)" == "DailyKey(2025-11-22, <hidden>)")
        var dumped = ""
        dump(key, to: &dumped)
        #expect(!dumped.contains(String(key.visitorHash.k0)) && !dumped.contains("k0") && !dumped.contains("k1"), "\(dumped)")
        #expect("\(key.visitorHash)" == "SipHash24(<hidden>)")
        #expect(DailyKey(day: day, bytes: [1, 2, 3]) == nil)
        #expect(DailyKey.randomBytes().count == 32)
        #expect(DailyKey.randomBytes() != DailyKey.randomBytes())
        #expect(DailyKey.redisKey(for: day) == "pixeld:key:2025-11-22")
    }

    @Test func daysNeeded() {
        let start = day.startTimestamp
        let needed = DailyKeys.daysNeeded(for: [start + 100, start + 5000, start + 86_400 + 4000], sessionIdleSeconds: 1800)
        #expect(needed.map(\.day) == [day, day.next, day.previous])
        #expect(needed.map(\.create) == [true, true, false])
    }

    /// The consumer's cache forgets a day's key when Redis does (01:00 UTC two days after the day
    /// began), not a day later: past that, nobody can link that day's ids to addresses.
    @Test func cachedKeysGoWhenRedisExpiresThem() throws {
        var keys = DailyKeys()
        for day in [day.previous, day, day.next] {
            keys.insert(try #require(DailyKey(day: day, bytes: [UInt8](repeating: 7, count: DailyKey.byteCount))))
        }
        let expiry = Double(DailyKey.expiresAt(day))
        keys.removeExpired(now: expiry - 1)
        #expect(keys[day] != nil && keys[day.next] != nil)
        #expect(keys[day.previous] == nil, "expired at \(DailyKey.expiresAt(day.previous))")
        keys.removeExpired(now: expiry)
        #expect(keys[day] == nil && keys[day.next] != nil)
    }

    /// A day only read (the day before a hit's) whose key Redis did not hold is left out of the next
    /// loads for ``DailyKeys/missRecheckSeconds``, then asked for again; a day whose key may be
    /// created, or a clock set back, is asked for at once; a key found ends the miss.
    @Test func aMissedKeyIsAskedForAgainOnlyAfterAWhile() throws {
        var keys = DailyKeys()
        let now = day.startTimestamp + 60, wait = DailyKeys.missRecheckSeconds
        let readOnly = [(day: day.previous, create: false)], creating = [(day: day.previous, create: true)]
        #expect(keys.toLoad(readOnly, now: now).map(\.day) == [day.previous])
        keys.recordMiss(day.previous, now: now)
        #expect(keys.toLoad(readOnly, now: now + wait - 0.5).isEmpty)
        #expect(keys.toLoad(creating, now: now + 1).map(\.day) == [day.previous])
        #expect(keys.toLoad(readOnly, now: now - 1).map(\.day) == [day.previous], "the clock set back")
        #expect(keys.toLoad(readOnly, now: now + wait).map(\.day) == [day.previous])
        keys.removeExpired(now: now + 1)
        #expect(keys.toLoad(readOnly, now: now + 1).isEmpty, "a miss kept by removeExpired while it is recent")
        keys.insert(try #require(DailyKey(day: day.previous, bytes: [UInt8](repeating: 7, count: DailyKey.byteCount))))
        #expect(keys.toLoad(readOnly, now: now + 1).isEmpty)
        #expect(keys.toLoad(readOnly + [(day: day, create: true)], now: now + 1).map(\.day) == [day])
    }
}
