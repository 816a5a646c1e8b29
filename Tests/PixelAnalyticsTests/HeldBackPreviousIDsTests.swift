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

    /// Renders `outcomes` as one batch, as the consumer does (two buffers, as it keeps one per
    /// archive day), on top of `states` (the visit states the batch reads); returns the lines and the
    /// states the batch writes.
    static func batch(_ outcomes: [HitOutcome], states: RollupBatch.StateWrites = .init()) throws -> (lines: [[UInt8]], writes: RollupBatch.StateWrites) {
        var batch = RollupBatch(configuration: RollupConfiguration())
        var buffers: [[UInt8]] = [[], []]
        var heldBack = HeldBackPreviousIDs()
        var live = LiveUpdate(keys: RollupKeys(), now: Double((Self.day.number + 1) * 86_400 + 1800))
        for (index, outcome) in outcomes.enumerated() {
            let visitHit = batch.add(outcome)
            let buffer = index % 2
            let start = buffers[buffer].count
            heldBack.appendLine(outcome, visitHit: visitHit, to: &buffers, buffer: buffer)
            if case .accepted(let hit) = outcome {
                live.add(hit, line: .init(buffer: buffer, range: start..<buffers[buffer].count))
            }
        }
        #expect(!buffers.contains { String(decoding: $0, as: UTF8.self).contains("pvid") }, "held back until resolved")
        var read = [[UInt8]?](repeating: nil, count: batch.visitKeys.count)
        batch.overlay(states, on: &read)
        let (_, writes, continued) = batch.encodedCommand(states: read)
        heldBack.insert(continued: continued, into: &buffers, live: &live)
        // The live feed publishes the lines as they are now, in processing order.
        var lines: [[UInt8]] = []
        for index in outcomes.indices {
            let buffer = buffers[index % 2].split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true)
            lines.append(Array(buffer[index / 2]))
        }
        let publish = try #require(live.commands(lines: buffers).first { $0.first == Array("PUBLISH".utf8) })
        #expect(publish[2] == Array(lines.joined(separator: [UInt8(ascii: "\n")])))
        return (lines, writes)
    }

    @Test func onlyTheHitsOfAVisitInProgressAtMidnightKeepTheirPreviousID() throws {
        // C's visit goes on after midnight under its new id, its hits out of time order (00:10
        // before 00:08), and once more in the next batch: each of these lines keeps c1. D was not
        // here yesterday, E not for 9 hours: their lines must not link d1/e1 to d2/e2.
        let first = try Self.batch([
            Self.hit(0, 15, 0, vid: "e1", path: "/e-afternoon"),
            Self.hit(0, 23, 50, vid: "c1", path: "/c-before"),
            Self.hit(1, 0, 10, vid: "c2", pvid: "c1", path: "/c-after"),
            Self.hit(1, 0, 5, vid: "d2", pvid: "d1", path: "/d"),
            Self.hit(1, 0, 8, vid: "c2", pvid: "c1", path: "/c-earlier"),
            Self.hit(1, 0, 12, vid: "e2", pvid: "e1", path: "/e-night"),
        ])
        let second = try Self.batch(
            [Self.hit(1, 0, 20, vid: "c2", pvid: "c1", path: "/c-next-batch"), Self.hit(1, 0, 21, vid: "d2", pvid: "d1", path: "/d-again")],
            states: first.writes
        )
        var previousIDs: [String: String] = [:]
        var outcomes: [HitOutcome] = []
        for line in first.lines + second.lines {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line)) as? [String: Any], "\(String(decoding: line, as: UTF8.self))")
            if let pvid = object["pvid"] as? String { previousIDs[object["path"] as? String ?? "?"] = pvid }
            outcomes.append(try ArchiveRecord.outcome(from: PixelEventDecoder.decode(line)))
        }
        #expect(previousIDs == ["/c-after": "c1", "/c-earlier": "c1", "/c-next-batch": "c1"])
        // Replay reads the lines in time order: C's visit is one visit of the first day, as live.
        let report = ArchiveReport(site: Self.site, from: Self.day, to: Self.day.next, filter: nil).report(outcomes)
        #expect(report.visits == 4, "C once, D once, E twice")
        #expect(report.breakdowns[.entryPages] == ["/e-afternoon": 1, "/c-before": 1, "/d": 1, "/e-night": 1])
        #expect(report.durationMilliseconds == 30 * 60_000 + 16 * 60_000)
    }
}
