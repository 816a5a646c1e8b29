/// The realtime side of a batch: the commands that publish its accepted hits and remember which
/// visitors were seen in the last five minutes. The consumer returns them with the rollup, so they
/// run in the same script as the ack: a hit is published exactly when it is counted.
///
/// Per batch and site:
/// - one `PUBLISH pixeld:live:S LINES`, where `LINES` are the accepted hits' archive lines
///   (``ArchiveRecord``), separated by `\n`, in order: enriched and anonymised, no IP address, no
///   user agent (one message per batch, not per hit, keeps Redis's work per hit small) — only when
///   the channel has a subscriber (the consumer asks Redis in its read before the ack), since the
///   lines are most of an ack's bytes;
/// - `ZADD pixeld:site:S:recent GT TS VID …` for the visitors whose latest hit in the batch is
///   within the last ``recentWindowSeconds`` (each visitor once), then `ZREMRANGEBYSCORE` of
///   everything older and an `EXPIRE`, so the set holds at most the visitors of the last five
///   minutes. (Older hits — a consumer catching up — are not "recent" and are left out: adding and
///   trimming them again would cost Redis a sorted-set update per hit for nothing.)
public struct LiveUpdate {
    /// The window of the "visitors in the last 5 minutes" figure.
    public static let recentWindowSeconds = 300.0

    /// Where an accepted hit's line is: a range of one of the buffers the caller keeps the batch's
    /// lines in (``commands(listened:lines:)`` gets the buffers). The lines are copied only for a
    /// channel that someone listens to — most batches publish nothing.
    public struct LineLocation: Sendable {
        /// The index of the buffer.
        public var buffer: Int
        /// The line's bytes in it (with or without its `\n`).
        public var range: Range<Int>
        /// Creates a location.
        public init(buffer: Int, range: Range<Int>) {
            self.buffer = buffer
            self.range = range
        }
    }

    private let keys: RollupKeys
    private let now: Double
    /// Per site, in first-seen order: where its lines are and its recent visitors' latest hits. (A
    /// batch has a few sites: they are found by comparison, not hashing.)
    private var sites: [(site: String, lines: [LineLocation], recent: [String: (score: Double, text: String)])] = []

    /// An empty update for a batch processed at `now` (seconds since the epoch).
    public init(keys: RollupKeys, now: Double) {
        self.keys = keys
        self.now = now
    }

    /// Adds an accepted hit whose archive line is at `line`.
    public mutating func add(_ hit: EnrichedHit, line: LineLocation) {
        let index: Int
        if let known = sites.firstIndex(where: { $0.site == hit.site }) {
            index = known
        } else {
            index = sites.count
            sites.append((hit.site, [], [:]))
        }
        sites[index].lines.append(line)
        guard let visitor = hit.visitorID, hit.timestamp >= now - Self.recentWindowSeconds else { return }
        if let seen = sites[index].recent[visitor], seen.score >= hit.timestamp { return }
        sites[index].recent[visitor] = (hit.timestamp, hit.timestampText)
    }

    /// Moves the locations of the lines in buffer `buffer` to `offset(old)`: after bytes were
    /// inserted into it (``HeldBackPreviousIDs/insert(continued:into:live:)``).
    public mutating func moveLines(in buffer: Int, to offset: (Int) -> Int) {
        for site in sites.indices {
            for line in sites[site].lines.indices where sites[site].lines[line].buffer == buffer {
                let range = sites[site].lines[line].range
                sites[site].lines[line].range = offset(range.lowerBound)..<offset(range.upperBound)
            }
        }
    }

    /// The channels the update publishes on, one per site with an accepted hit, in first-seen order.
    public var channels: [String] { sites.map { keys.liveChannel(site: $0.site) } }

    /// The commands; empty when no hit was added.
    /// - Parameters:
    ///   - listened: whether a channel (one of ``channels``) has a subscriber; a `PUBLISH` that no
    ///     one receives is left out (its lines are the biggest part of an ack), the recent visitors
    ///     are written either way.
    ///   - buffers: the buffers the ``LineLocation``s point into.
    public func commands(listened: (String) -> Bool = { _ in true }, lines buffers: [[UInt8]]) -> [[[UInt8]]] {
        var commands: [[[UInt8]]] = []
        for (site, locations, _) in sites {
            let channel = keys.liveChannel(site: site)
            guard listened(channel) else { continue }
            var message: [UInt8] = []
            message.reserveCapacity(locations.reduce(0) { $0 + $1.range.count })
            for location in locations {
                if !message.isEmpty { message.append(UInt8(ascii: "\n")) }
                let line = buffers[location.buffer][location.range]
                message += line.last == UInt8(ascii: "\n") ? line.dropLast() : line
            }
            commands.append([Array("PUBLISH".utf8), Array(channel.utf8), message])
        }
        let cutoff = Array(String(Int((now - Self.recentWindowSeconds).rounded(.down))).utf8)
        for (site, _, visitors) in sites where !visitors.isEmpty {
            let key = Array(keys.recentVisitors(site: site).utf8)
            // At most 2,000 visitors per `ZADD`: the consumer's ack, a script, passes a command's
            // arguments with Lua's `unpack`, which takes ~8,000 at most.
            let sorted = visitors.sorted(by: { $0.key < $1.key })
            for start in stride(from: 0, to: sorted.count, by: Self.visitorsPerCommand) {
                var zadd: [[UInt8]] = [Array("ZADD".utf8), key, Array("GT".utf8)]
                for (visitor, seen) in sorted[start..<min(start + Self.visitorsPerCommand, sorted.count)] {
                    zadd.append(Array(seen.text.utf8))
                    zadd.append(Array(visitor.utf8))
                }
                commands.append(zadd)
            }
            commands.append([Array("ZREMRANGEBYSCORE".utf8), key, Array("-inf".utf8), Array("(".utf8) + cutoff])
            commands.append([Array("EXPIRE".utf8), key, Array(String(Int(Self.recentWindowSeconds) * 2).utf8)])
        }
        return commands
    }

    static let visitorsPerCommand = 2_000

    /// The command counting the visitors of `site` seen in the last five minutes before `now`.
    public static func countCommand(site: String, keys: RollupKeys, now: Double) -> [[UInt8]] {
        let from = String(Int((now - recentWindowSeconds).rounded(.down)))
        return [Array("ZCOUNT".utf8), Array(keys.recentVisitors(site: site).utf8), Array(from.utf8), Array("+inf".utf8)]
    }
}
