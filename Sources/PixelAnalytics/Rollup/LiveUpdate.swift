/// The realtime side of a batch: the commands that publish its accepted hits and remember which
/// visitors were seen in the last five minutes. The consumer returns them with the rollup, so they
/// run in the same `MULTI`/`EXEC` as the ack: a hit is published exactly when it is counted.
///
/// Per batch and site:
/// - one `PUBLISH pixeld:live:S LINES`, where `LINES` are the accepted hits' archive lines
///   (``ArchiveRecord``), separated by `\n`, in order: enriched and anonymised, no IP address, no
///   user agent (one message per batch, not per hit, keeps Redis's work per hit small);
/// - `ZADD pixeld:site:S:recent TS VID …` for the hits that have a visitor id, then
///   `ZREMRANGEBYSCORE` of everything older than ``recentWindowSeconds`` before `now` and an
///   `EXPIRE`, so the set holds at most the visitors of the last five minutes.
public enum LiveUpdate {
    /// The window of the "visitors in the last 5 minutes" figure.
    public static let recentWindowSeconds = 300.0

    /// The commands for `hits` (accepted hits of one batch, in order), at `now` (seconds since the
    /// epoch). Empty when `hits` is empty.
    public static func commands(for hits: [EnrichedHit], keys: RollupKeys, now: Double) -> [[[UInt8]]] {
        var commands: [[[UInt8]]] = []
        var lines: [String: [UInt8]] = [:]
        var recent: [String: [[UInt8]]] = [:]
        var sites: [String] = []
        for hit in hits {
            if lines[hit.site] == nil { sites.append(hit.site) }
            ArchiveRecord.appendLine(.accepted(hit), to: &lines[hit.site, default: []])
            guard let visitor = hit.visitorID else { continue }
            recent[hit.site, default: []] += [Array(hit.timestampText.utf8), Array(visitor.utf8)]
        }
        for site in sites {
            var payload = lines[site] ?? []
            if payload.last == UInt8(ascii: "\n") { payload.removeLast() }
            commands.append([Array("PUBLISH".utf8), Array(keys.liveChannel(site: site).utf8), payload])
        }
        let cutoff = Array(String(Int((now - recentWindowSeconds).rounded(.down))).utf8)
        for site in sites where recent[site] != nil {
            let key = Array(keys.recentVisitors(site: site).utf8)
            commands.append([Array("ZADD".utf8), key] + (recent[site] ?? []))
            commands.append([Array("ZREMRANGEBYSCORE".utf8), key, Array("-inf".utf8), Array("(".utf8) + cutoff])
            commands.append([Array("EXPIRE".utf8), key, Array(String(Int(recentWindowSeconds) * 2).utf8)])
        }
        return commands
    }

    /// The command counting the visitors of `site` seen in the last five minutes before `now`.
    public static func countCommand(site: String, keys: RollupKeys, now: Double) -> [[UInt8]] {
        let from = String(Int((now - recentWindowSeconds).rounded(.down)))
        return [Array("ZCOUNT".utf8), Array(keys.recentVisitors(site: site).utf8), Array(from.utf8), Array("+inf".utf8)]
    }
}
