import Crypto
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

    /// The id is HMAC-SHA256 as RFC 2104 defines it (computed here from two prepared hash states):
    /// pinned to Python's `hmac` module and checked against swift-crypto's `HMAC`, so that ids made
    /// by consumers of different versions during one day agree.
    @Test func visitorIDIsTheStandardHMAC() {
        // python3 -c "import hmac,hashlib; print(hmac.new(bytes([7]*32), b'example.com\x00192.0.2.1\x00UA', hashlib.sha256).hexdigest()[:32])"
        #expect(VisitorID.make(key: key, site: "example.com", ip: "192.0.2.1", userAgent: "UA") == "e8a2da5fef5e67742cd22d551ffb52f7")
        let userAgent = String(repeating: "Mozilla/5.0 (X11; Linux x86_64) ", count: 9)
        let code = HMAC<SHA256>.authenticationCode(for: Array("example.org\u{0}2001:db8::1\u{0}\(userAgent)".utf8), using: key.key)
        let expected = code.prefix(16).map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
        #expect(VisitorID.make(key: key, site: "example.org", ip: "2001:db8::1", userAgent: userAgent) == expected)
    }

    @Test func keysNeverPrintTheirBytes() {
        #expect("\(key)" == "DailyKey(2025-11-22, <hidden>)")
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
}
