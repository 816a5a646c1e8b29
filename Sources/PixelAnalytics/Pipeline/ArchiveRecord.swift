public import PixelEvents

/// The archive's line format, schema version 1: one flat JSON object per hit, `jq`-able, written by
/// `pixeld consume --archive` and read back by `pixeld replay`.
///
/// Members, in this order (optional ones left out when empty):
/// - `ts` — number, nginx's `$msec` verbatim;
/// - `v` — number, the schema version, `1`;
/// - `status` — `"ok"` or `"dropped"`;
/// - `site` — the normalized site (for drops: the page's host, when it had one);
/// - `event` — `"pageview"` or the custom event name;
/// - `path` — the page path, no query string;
/// - accepted hits only: `vid` (anonymous daily visitor id, 32 hex digits), `source`,
///   `utm_source`, `utm_medium`, `utm_campaign`, `browser`, `os`, `device`, `country`, `props`
///   (a JSON object as a string: `jq '.props | fromjson'`), `pvid` (the id under the previous day's
///   key; the consumer writes it only into the lines of a visit that was in progress at midnight:
///   see ``HeldBackPreviousIDs``);
/// - dropped hits only: `reason` (a ``DropReason`` code) and `rule` (the bot rule that matched).
///
/// New members may be added within version 1; a change of meaning gets a new version.
public enum ArchiveRecord {
    /// The schema version written.
    public static let version = 1

    /// `line` without its visitor ids (`vid`, `pvid`): what the live feed shows a viewer with the
    /// dashboard's token (anyone else gets ``minimalLiveEvent(_:)``); with the ids, they could follow
    /// each visitor from page to page through the day. (Members are written as `,"name":"value"`; inside a string a quote is
    /// always escaped, so `,"vid":"` only ever starts that member.)
    public static func withoutVisitorIDs(_ line: Substring) -> String {
        var text = line
        for name in [#","vid":""#, #","pvid":""#] {
            guard let start = text.firstRange(of: name) else { continue }
            guard let end = text[start.upperBound...].firstIndex(of: "\"") else { continue }
            text = text[..<start.lowerBound] + text[text.index(after: end)...]
        }
        return String(text)
    }

    /// The least of an accepted hit's `line` that still tells what happens on the site, for a live
    /// feed that anyone may watch: `{"ts","event","path","source"}`, the time cut down to the minute
    /// (`ts` a whole number of seconds). Without the visitor's browser, OS, device, country, campaign,
    /// properties and exact time, the hits of visitors on the site at the same time cannot be told
    /// apart and linked into one visitor's path; the source is the hit's own (an external referrer
    /// or a campaign, `(direct)` on the pages after the first), not the visit's. `nil` for a
    /// dropped hit or a line that cannot be read.
    public static func minimalLiveEvent(_ line: Substring) -> String? {
        guard case .accepted(let hit)? = try? outcome(from: PixelEventDecoder.decode(line.utf8)) else { return nil }
        var out = JSONText(capacity: 64 + hit.path.utf8.count)
        out.raw("{\"ts\":")
        out.raw(String(Int((hit.timestamp / 60).rounded(.down)) * 60))
        out.member("event", hit.event)
        out.member("path", hit.path)
        out.member("source", hit.source)
        out.raw("}")
        return String(decoding: out.bytes, as: UTF8.self)
    }

    /// Appends `outcome` as one line (with its `\n`); without `pvid` unless `previousVisitorID`.
    public static func appendLine(_ outcome: HitOutcome, to buffer: inout [UInt8], previousVisitorID: Bool = true) {
        var out = JSONText(capacity: 0)
        swap(&out.bytes, &buffer)
        out.bytes.reserveCapacity(out.bytes.count + 320)
        switch outcome {
        case .accepted(let hit):
            out.raw("{\"ts\":")
            out.raw(hit.timestampText)
            out.raw(",\"v\":1,\"status\":\"ok\"")
            out.member("site", hit.site)
            out.member("event", hit.event)
            out.member("path", hit.path)
            if let vid = hit.visitorID { out.member("vid", vid) }
            out.member("source", hit.source)
            if let value = hit.campaign.source { out.member("utm_source", value) }
            if let value = hit.campaign.medium { out.member("utm_medium", value) }
            if let value = hit.campaign.name { out.member("utm_campaign", value) }
            out.member("browser", hit.browser)
            out.member("os", hit.os)
            out.member("device", hit.device)
            if let value = hit.country { out.member("country", value) }
            if let value = hit.props { out.member("props", value) }
            if previousVisitorID, let pvid = hit.previousVisitorID { out.member("pvid", pvid) }
        case .dropped(let hit):
            out.raw("{\"ts\":")
            out.raw(hit.timestampText)
            out.raw(",\"v\":1,\"status\":\"dropped\"")
            if let value = hit.site { out.member("site", value) }
            if let value = hit.event { out.member("event", value) }
            if let value = hit.path { out.member("path", value) }
            out.member("reason", hit.reason.rawValue)
            if let value = hit.rule { out.member("rule", value) }
        }
        out.raw("}\n")
        swap(&out.bytes, &buffer)
    }

    /// One outcome as a line, without the `\n`.
    public static func line(_ outcome: HitOutcome) -> String {
        var bytes: [UInt8] = []
        appendLine(outcome, to: &bytes)
        bytes.removeLast()
        return String(decoding: bytes, as: UTF8.self)
    }

    /// An archive line that cannot be read back.
    public struct ReadError: Error, Sendable, CustomStringConvertible {
        /// What is wrong.
        public var description: String
    }

    /// Reads a line back (decode it first with `PixelEventDecoder.decode`, which reads any flat
    /// JSON object).
    /// - Throws: ``ReadError`` when a required member is missing or the version is unknown.
    public static func outcome(from event: PixelEvent) throws(ReadError) -> HitOutcome {
        guard event.field("v") == "1" else {
            throw ReadError(description: "unknown archive schema version \(event.field("v") ?? "(none)")")
        }
        switch event.field("status") {
        case "ok":
            guard let site = event.field("site"), let name = event.field("event"), let path = event.field("path"),
                let source = event.field("source")
            else { throw ReadError(description: "accepted hit without site/event/path/source") }
            return .accepted(
                EnrichedHit(
                    timestampText: event.timestampText, timestamp: event.timestamp, site: site,
                    visitorID: event.field("vid"), previousVisitorID: event.field("pvid"), event: name, path: path,
                    source: source,
                    campaign: Campaign(
                        source: event.field("utm_source"), medium: event.field("utm_medium"),
                        name: event.field("utm_campaign")
                    ),
                    browser: event.field("browser") ?? "(unknown)", os: event.field("os") ?? "(unknown)",
                    device: event.field("device") ?? "(unknown)", country: event.field("country"),
                    props: event.field("props")
                )
            )
        case "dropped":
            guard let code = event.field("reason"), let reason = DropReason(rawValue: code) else {
                throw ReadError(description: "dropped hit without a known reason")
            }
            return .dropped(
                DroppedHit(
                    timestampText: event.timestampText, timestamp: event.timestamp, reason: reason,
                    site: event.field("site"), rule: event.field("rule"), event: event.field("event"),
                    path: event.field("path")
                )
            )
        default:
            throw ReadError(description: "unknown status")
        }
    }
}
