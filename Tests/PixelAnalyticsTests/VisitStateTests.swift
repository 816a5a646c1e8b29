@testable import PixelAnalytics
import PixeldTestSupport
import Testing

/// Visit state is MessagePack in the shape Lua's `cmsgpack` gave it when the rollup script kept it
/// (format 1): both ways, through a real Redis, so a consumer upgraded mid-visit continues the visits
/// an older one started.
@Suite(.serialized, .enabled(if: TestEnvironment.canRun("redis-server")))
struct VisitStateTests {
    static let state = VisitState(
        first: 1_763_805_600_001, last: 1_763_806_500_250, hits: 3, bounce: false,
        base: "pixeld:site:example.com:2025-11-22:", expireAt: 1_798_502_400,
        source: String(repeating: "s", count: 40), utmSource: "newsletter", utmMedium: "", utmCampaign: "n\u{f6}v"
    )

    @Test func luaReadsWhatSwiftWrites() throws {
        let server = try RedisServer.start()
        let connection = try server.connect(timeout: 30)
        let reply = try connection.command(bytes: [
            Array("EVAL".utf8),
            Array("local t = cmsgpack.unpack(ARGV[1]) return {tostring(t[1]), tostring(t[2]), t[3], t[4], t[5], t[6], t[7], t[8], t[9], t[10]}".utf8),
            Array("0".utf8), Self.state.encoded,
        ])
        let s = Self.state
        // Lua prints numbers of 14+ digits in %.14g: compare through the integers instead.
        let values = reply.array ?? []
        #expect(values.count == 10, "\(reply)")
        guard values.count == 10 else { return }
        #expect(Double(values[0].string ?? "") == Double(s.first) && Double(values[1].string ?? "") == Double(s.last))
        #expect(values[2].integer == 3 && values[3].string == "0" && values[4].string == s.base)
        #expect(values[5].string == "1798502400" && values[6].string == s.source && values[7].string == "newsletter")
        #expect(values[8].string == "" && values[9].string == "n\u{f6}v")
    }

    @Test func swiftReadsWhatLuaWrote() throws {
        let server = try RedisServer.start()
        let connection = try server.connect(timeout: 30)
        // What the format-1 script stored: numbers from tonumber(ARGV), strings as given.
        let reply = try connection.command(bytes: [
            Array("EVAL".utf8),
            Array("return cmsgpack.pack({tonumber(ARGV[1]), tonumber(ARGV[2]), 3, '0', ARGV[3], ARGV[4], ARGV[5], 'newsletter', '', ARGV[6]})".utf8),
            Array("0".utf8), Array(String(Self.state.first).utf8), Array(String(Self.state.last).utf8), Array(Self.state.base.utf8),
            Array("1798502400".utf8), Array(Self.state.source.utf8), Array("n\u{f6}v".utf8),
        ])
        let bytes = try #require(reply.bytes)
        #expect(VisitState(encoded: bytes) == Self.state)
    }

    @Test func garbageIsNoState() {
        #expect(VisitState(encoded: []) == nil)
        #expect(VisitState(encoded: Array(Self.state.encoded.dropLast())) == nil)
        #expect(VisitState(encoded: Self.state.encoded + [0]) == nil)
        #expect(VisitState(encoded: [0x9A] + [UInt8](repeating: 0xC0, count: 10)) == nil)
        #expect(VisitState(encoded: Self.state.encoded) == Self.state)
        // With the batch's known key bases (shared, not copied): the same state, whether or not one matches.
        #expect(VisitState(encoded: Self.state.encoded, knownBases: ["pixeld:site:other:", Self.state.base]) == Self.state)
        #expect(VisitState(encoded: Self.state.encoded, knownBases: ["pixeld:site:other:"]) == Self.state)
    }

    /// A visitor's visits: one alone is stored as the single state older consumers read; several as
    /// an array of states, oldest first.
    @Test func aVisitorsVisits() {
        var later = Self.state
        later.first += 7_200_000
        later.last += 7_200_000
        later.source = "news.example"
        #expect(VisitState.encode([Self.state]) == Self.state.encoded)
        #expect(VisitState.decodeVisits(Self.state.encoded) == [Self.state])
        let both = VisitState.encode([Self.state, later])
        #expect(VisitState.decodeVisits(both) == [Self.state, later])
        #expect(VisitState(encoded: both) == nil)  // what an older consumer makes of it: a new visit
        #expect(VisitState.decodeVisits(Array(both.dropLast())) == nil)
        #expect(VisitState.decodeVisits(both + [0]) == nil)
        #expect(VisitState.decodeVisits([0x90]) == nil)
        #expect(VisitState.decodeVisits([0x92] + Self.state.encoded + [0x01]) == nil)
        // More visits than this version keeps: not read (a fixarray holds up to 15).
        let five = [UInt8(0x95)] + (0..<5).flatMap { _ in Self.state.encoded }
        #expect(VisitState.decodeVisits(five) == nil)
        #expect(VisitState.decodeVisits([0x94] + (0..<4).flatMap { _ in Self.state.encoded })?.count == 4)
    }
}
