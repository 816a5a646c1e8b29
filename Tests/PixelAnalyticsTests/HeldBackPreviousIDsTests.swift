import Foundation
@testable import PixelAnalytics
import PixelEvents
import Testing

/// Archive lines carry a visitor's previous-day id (`pvid`) only when the hit continued a visit in
/// progress at midnight: for everyone else seen in the half hour after midnight it would link their
/// two days' ids for as long as the archive is kept.
struct HeldBackPreviousIDsTests {
    static let day = Day(number: 20_000)
    static let site = "s.example"

    static func hit(_ dayOffset: Int, _ hour: Int, _ minute: Int, vid: String, pvid: String? = nil, path: String) -> HitOutcome {
        let seconds = Double((day.number + dayOffset) * 86_400 + hour * 3600 + minute * 60)
        return .accepted(
            EnrichedHit(
                timestampText: String(Int(seconds)) + ".000", timestamp: seconds, site: site, visitorID: vid,
                previousVisitorID: pvid, event: "pageview", path: path, source: "(direct)", browser: "Firefox",
                os: "Linux", device: "desktop"
            )
        )
    }

    @Test func onlyAHitThatContinuedAVisitAcrossMidnightKeepsItsPreviousID() throws {
        let outcomes = [
            Self.hit(0, 15, 0, vid: "e1", path: "/e-afternoon"),
            Self.hit(0, 23, 50, vid: "c1", path: "/c-before"),
            // C's visit goes on after midnight under its new id: this line keeps c1.
            Self.hit(1, 0, 10, vid: "c2", pvid: "c1", path: "/c-after"),
            // D was not here yesterday, E not for 9 hours: their lines must not link e1/d1 to e2/d2.
            Self.hit(1, 0, 5, vid: "d2", pvid: "d1", path: "/d"),
            Self.hit(1, 0, 12, vid: "e2", pvid: "e1", path: "/e-night"),
            // C's next hit continues the visit already under c2.
            Self.hit(1, 0, 14, vid: "c2", pvid: "c1", path: "/c-later"),
        ]
        var batch = RollupBatch(configuration: RollupConfiguration())
        var buffers: [[UInt8]] = [[], []]
        var heldBack = HeldBackPreviousIDs()
        var live = LiveUpdate(keys: RollupKeys(), now: Double((Self.day.number + 1) * 86_400 + 900))
        for (index, outcome) in outcomes.enumerated() {
            let visitHit = batch.add(outcome)
            // Two buffers, as the consumer has one per archive day.
            let buffer = index < 2 ? 0 : 1
            let start = buffers[buffer].count
            heldBack.appendLine(outcome, visitHit: visitHit, to: &buffers, buffer: buffer)
            if case .accepted(let hit) = outcome {
                live.add(hit, line: .init(buffer: buffer, range: start..<buffers[buffer].count))
            }
        }
        #expect(!heldBack.isEmpty)
        #expect(!buffers.contains { String(decoding: $0, as: UTF8.self).contains("pvid") }, "held back until resolved")
        let (_, _, continued) = batch.encodedCommand(states: [])
        heldBack.insert(continued: continued, into: &buffers, live: &live)

        let lines = buffers.flatMap { $0.split(separator: UInt8(ascii: "\n")) }
        var previousIDs: [String: String] = [:]
        for line in lines {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line)) as? [String: Any], "\(String(decoding: line, as: UTF8.self))")
            if let pvid = object["pvid"] as? String { previousIDs[object["path"] as? String ?? "?"] = pvid }
        }
        #expect(previousIDs == ["/c-after": "c1"])
        // The live feed publishes the same lines, pvid included where inserted.
        let publish = try #require(live.commands(lines: buffers).first { $0.first == Array("PUBLISH".utf8) })
        #expect(publish[2] == Array(lines.joined(separator: [UInt8(ascii: "\n")])))
        // What replay reads back continues C's visit: one visit for C across both days, as live.
        let decoded = try lines.map { try ArchiveRecord.outcome(from: PixelEventDecoder.decode(Array($0))) }
        #expect(decoded.compactMap { if case .accepted(let hit) = $0 { hit.previousVisitorID } else { nil } } == ["c1"])
    }
}
