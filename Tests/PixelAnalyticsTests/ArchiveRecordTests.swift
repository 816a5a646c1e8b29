@testable import PixelAnalytics
import PixelEvents
import Testing

@Suite struct ArchiveRecordTests {
    let accepted = HitOutcome.accepted(
        EnrichedHit(
            timestampText: "1763805600.123", timestamp: 1_763_805_600.123, site: "example.com",
            visitorID: "0123456789abcdef0123456789abcdef", previousVisitorID: nil, event: "pageview",
            path: "/a\"b\\c", source: "Google", campaign: Campaign(source: "news", medium: nil, name: "spring"),
            browser: "Chrome", os: "Windows", device: "desktop", country: "DE", props: #"{"k":"v"}"#
        )
    )
    let dropped = HitOutcome.dropped(
        DroppedHit(
            timestampText: "1763805601", timestamp: 1_763_805_601, reason: .listedBot, site: "example.com",
            rule: "Googlebot\\/", event: "pageview", path: "/"
        )
    )

    @Test("the live feed's lines: the same without vid and pvid, whatever the other members hold")
    func visitorIDsAreLeftOutOfLiveLines() {
        var hit = EnrichedHit(
            timestampText: "1763805600.123", timestamp: 1_763_805_600.123, site: "example.com",
            visitorID: "0123456789abcdef0123456789abcdef", previousVisitorID: "fedcba9876543210fedcba9876543210", event: "pageview",
            path: #"/,"vid":"x"#, source: "Google", browser: "Chrome", os: "Windows", device: "desktop", props: #"{"vid":"y"}"#
        )
        let full = ArchiveRecord.line(.accepted(hit))
        hit.visitorID = nil
        hit.previousVisitorID = nil
        #expect(ArchiveRecord.withoutVisitorIDs(full[...]) == ArchiveRecord.line(.accepted(hit)), "\(full)")
        #expect(ArchiveRecord.withoutVisitorIDs(ArchiveRecord.line(dropped)[...]) == ArchiveRecord.line(dropped))
    }

    @Test func linesAreStableFlatJSON() {
        #expect(
            ArchiveRecord.line(accepted)
                == #"{"ts":1763805600.123,"v":1,"status":"ok","site":"example.com","event":"pageview","path":"/a\"b\\c","vid":"0123456789abcdef0123456789abcdef","source":"Google","utm_source":"news","utm_campaign":"spring","browser":"Chrome","os":"Windows","device":"desktop","country":"DE","props":"{\"k\":\"v\"}"}"#
        )
        #expect(
            ArchiveRecord.line(dropped)
                == #"{"ts":1763805601,"v":1,"status":"dropped","site":"example.com","event":"pageview","path":"/","reason":"bot_list","rule":"Googlebot\\/"}"#
        )
    }

    @Test func linesReadBack() throws {
        for outcome in [accepted, dropped] {
            let event = try PixelEventDecoder.decode(Array(ArchiveRecord.line(outcome).utf8))
            #expect(try ArchiveRecord.outcome(from: event) == outcome)
        }
    }

    @Test func unknownVersionsAreRefused() throws {
        let event = try PixelEventDecoder.decode(Array(#"{"ts":1,"v":2,"status":"ok"}"#.utf8))
        #expect(throws: ArchiveRecord.ReadError.self) { try ArchiveRecord.outcome(from: event) }
    }

    /// `JSONText.string` copies 8-byte words without a byte to escape at once: a quote, a backslash,
    /// a control byte or a multi-byte character at every offset must still come out right.
    @Test("JSON strings escape at every offset", arguments: 0..<24)
    func jsonStringEscapesAtEveryOffset(offset: Int) {
        let head = String(repeating: "a", count: offset)
        let tail = "bcdefghijklmnopqrstuvwxyz"
        for (raw, escaped) in [("\"", #"\""#), ("\\", #"\\"#), ("\n", #"\n"#), ("\u{1}", #"\u0001"#), ("é", "é")] {
            var json = JSONText()
            json.string(head + raw + tail)
            #expect(json.text == "\"" + head + escaped + tail + "\"", "\(escaped) at \(offset)")
        }
    }
}
