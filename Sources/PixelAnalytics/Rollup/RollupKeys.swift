/// The Redis key layout of the rollups, all under one prefix (`pixeld:` by default).
///
/// Per site `S` and UTC day `D` (`YYYY-MM-DD`), expiring `retentionDays` after the end of `D`:
/// - `pixeld:site:S:D:totals` — hash: `pageviews`, `events` (custom event hits), `visits`,
///   `bounces`, `duration_ms` (sum over visits started that day of last hit − first hit);
/// - `pixeld:site:S:D:uniques` — HyperLogLog of the day's anonymous visitor ids;
/// - `pixeld:site:S:D:drops` — hash: drop reason → hits;
/// - `pixeld:site:S:D:bd:NAME` — hash: dimension value → count, at most `cap` values plus
///   `(other)`, for each ``Breakdown``.
///
/// Elsewhere:
/// - `pixeld:drops:D` — hash: drop reason → hits over all sites, unknown ones included;
/// - `pixeld:visit:S:VID` — the state of a visit in progress (first and last hit, hits, bounce
///   flag, start day, source, campaign), expiring a few hours after its last hit;
/// - `pixeld:visit-version` — a counter every consumer increments with each ack that writes visit
///   state, reads with the visit states, and makes its ack conditional on (see ``RollupBatch``);
/// - `pixeld:key:D` — the day's visitor key (see ``DailyKey``);
/// - `pixeld:site:S:recent` — sorted set: anonymous visitor id → time of its last hit, trimmed to
///   the last ``LiveUpdate/recentWindowSeconds`` (the dashboard's "visitors in the last 5 minutes");
/// - channel `pixeld:live:S` — each accepted hit's archive line, published with the ack while anyone
///   subscribes (by name or pattern).
public struct RollupKeys: Sendable {
    /// The default prefix.
    public static let defaultPrefix = "pixeld:"

    /// The field of a capped breakdown hash that counts the values past the cap (``RollupScript``
    /// writes it): a bucket of many values, not one.
    public static let otherField = "(other)"

    /// The prefix of every key.
    public var prefix: String

    /// Creates a layout.
    public init(prefix: String = RollupKeys.defaultPrefix) {
        self.prefix = prefix
    }

    /// `prefix + "site:S:D:"`, the start of every per-site, per-day key.
    public func base(site: String, day: Day) -> String {
        prefix + "site:" + site + ":" + day.description + ":"
    }

    /// The totals hash.
    public func totals(site: String, day: Day) -> String { base(site: site, day: day) + "totals" }
    /// The unique-visitor HyperLogLog.
    public func uniques(site: String, day: Day) -> String { base(site: site, day: day) + "uniques" }
    /// The per-site drop counters.
    public func drops(site: String, day: Day) -> String { base(site: site, day: day) + "drops" }
    /// A breakdown hash.
    public func breakdown(_ breakdown: Breakdown, site: String, day: Day) -> String {
        base(site: site, day: day) + "bd:" + breakdown.rawValue
    }
    /// The start of visit state keys: `prefix + "visit:"`, then `SITE:VID`.
    public var visitPrefix: String { prefix + "visit:" }
    /// The counter that changes whenever a consumer writes visit state (optimistic locking).
    public var visitVersion: String { prefix + "visit-version" }
    /// The drop counters over all sites.
    public func globalDrops(day: Day) -> String { prefix + "drops:" + day.description }
    /// The sorted set of recently seen visitors of `site` (see ``LiveUpdate``).
    public func recentVisitors(site: String) -> String { prefix + "site:" + site + ":recent" }
    /// The pub/sub channel of `site`'s accepted hits (see ``LiveUpdate``).
    public func liveChannel(site: String) -> String { prefix + "live:" + site }
    /// The pattern matching every site's live channel (for `PSUBSCRIBE`).
    public var liveChannelPattern: String { prefix + "live:*" }
}

/// The capped dimensions rolled up per site and day.
public enum Breakdown: String, Sendable, CaseIterable {
    /// Pageviews per path.
    case pages
    /// Visits per entry path (the first hit's path).
    case entryPages = "entry_pages"
    /// Pageviews per visit source (a visit's pageviews all count for the source it came from).
    case sources
    /// Visits per source.
    case sourceVisits = "source_visits"
    /// Pageviews per `utm_source` of the visit.
    case utmSources = "utm_sources"
    /// Pageviews per `utm_medium` of the visit.
    case utmMediums = "utm_mediums"
    /// Pageviews per `utm_campaign` of the visit.
    case utmCampaigns = "utm_campaigns"
    /// Pageviews per browser family.
    case browsers
    /// Pageviews per OS family.
    case os
    /// Pageviews per device class.
    case devices
    /// Pageviews per country.
    case countries
    /// Pageviews per UTC hour (`00`–`23`).
    case hours
    /// Custom event hits per event name.
    case events

    /// Whether the breakdown takes a few values known in advance (24 hours, the device classes), so
    /// that `--breakdown-cap` never applies to it: a cap below 24 would put a day's later hours in
    /// `(other)`, and the hourly chart would lose them.
    public var hasFixedValues: Bool { self == .hours || self == .devices }
}
