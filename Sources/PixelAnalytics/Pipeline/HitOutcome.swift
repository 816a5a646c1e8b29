/// A hit that passed every check, anonymised and enriched: what the archive stores and the rollups
/// count. It holds no IP address and no user agent.
public struct EnrichedHit: Sendable, Equatable {
    /// The time as nginx logged it (`$msec`), verbatim.
    public var timestampText: String
    /// The time in seconds since the epoch.
    public var timestamp: Double
    /// The normalized site.
    public var site: String
    /// The anonymous visitor id of the hit's day, `nil` when the log line has no IP/user agent
    /// (the classic `$msec,$args` format): such hits count as pageviews but not as visitors or visits.
    public var visitorID: String?
    /// The visitor's id under the previous day's key, for hits within the session timeout after
    /// midnight, so a visit crossing midnight continues; `nil` otherwise.
    public var previousVisitorID: String?
    /// `pageview` or a custom event name.
    public var event: String
    /// The page path (no query string).
    public var path: String
    /// The source (see ``SourceClassifier``).
    public var source: String
    /// Campaign parameters of the page URL.
    public var campaign: Campaign
    /// Browser family.
    public var browser: String
    /// Operating system family.
    public var os: String
    /// `desktop`, `mobile`, `tablet` or `(unknown)`.
    public var device: String
    /// ISO 3166 alpha-2 country code, when known.
    public var country: String?
    /// Custom event properties, normalized JSON object text, when given and valid.
    public var props: String?

    /// Whether the hit is a pageview (not a custom event).
    public var isPageview: Bool { event == HitProcessor.pageviewEvent }

    /// The hit's UTC day.
    public var day: Day { Day(timestamp: timestamp) }

    /// Creates a hit.
    public init(
        timestampText: String, timestamp: Double, site: String, visitorID: String?, previousVisitorID: String? = nil,
        event: String, path: String, source: String, campaign: Campaign = Campaign(), browser: String, os: String,
        device: String, country: String? = nil, props: String? = nil
    ) {
        self.timestampText = timestampText
        self.timestamp = timestamp
        self.site = site
        self.visitorID = visitorID
        self.previousVisitorID = previousVisitorID
        self.event = event
        self.path = path
        self.source = source
        self.campaign = campaign
        self.browser = browser
        self.os = os
        self.device = device
        self.country = country
        self.props = props
    }
}

/// A hit left out of the numbers, with its reason; kept in the archive so drops stay queryable.
public struct DroppedHit: Sendable, Equatable {
    /// The time as nginx logged it.
    public var timestampText: String
    /// The time in seconds since the epoch.
    public var timestamp: Double
    /// Why it was dropped.
    public var reason: DropReason
    /// The page URL's normalized host when it had one (a configured site, or for
    /// ``DropReason/unknownSite`` the unknown host, cleaned and capped).
    public var site: String?
    /// The rule that matched for bots (a list pattern or generic word, never the user agent itself).
    public var rule: String?
    /// The event name, when known.
    public var event: String?
    /// The page path, when known.
    public var path: String?
    /// The day the drop counts on when it is not ``day``, `nil` otherwise: the day it was processed
    /// on, for a hit whose time lay outside the window (``HitProcessor``); read back from an archive,
    /// the day of the file it was in (``ArchiveReader/outcomes(directory:days:site:maxRecords:)``).
    public var countedOn: Day?

    /// The hit's UTC day.
    public var day: Day { Day(timestamp: timestamp) }

    /// The day the drop counts on, and whose archive file its line goes to: ``countedOn``, else ``day``.
    public var countingDay: Day { countedOn ?? day }

    /// Creates a dropped hit.
    public init(
        timestampText: String, timestamp: Double, reason: DropReason, site: String? = nil, rule: String? = nil,
        event: String? = nil, path: String? = nil, countedOn: Day? = nil
    ) {
        self.timestampText = timestampText
        self.timestamp = timestamp
        self.reason = reason
        self.site = site
        self.rule = rule
        self.event = event
        self.path = path
        self.countedOn = countedOn
    }

    /// The reasons of drops that never get a site (the page URL is missing, unusable or of no
    /// configured site): counted only in the all-sites drop count (`pixeld:drops:DAY`).
    public static let reasonsWithoutSite: Set<DropReason> = [.unknownSite, .badURL, .missingURL]

    /// Whether `site` is a configured site (so the drop is also counted under the site).
    public var isForKnownSite: Bool { !Self.reasonsWithoutSite.contains(reason) && site != nil }
}

/// What processing made of one hit.
public enum HitOutcome: Sendable, Equatable {
    /// Counted.
    case accepted(EnrichedHit)
    /// Left out, with a reason.
    case dropped(DroppedHit)

    /// The hit's time in seconds since the epoch.
    public var timestamp: Double {
        switch self {
        case .accepted(let hit): return hit.timestamp
        case .dropped(let hit): return hit.timestamp
        }
    }

    /// The day the hit counts on: an accepted hit's own, a drop's ``DroppedHit/countingDay``.
    public var countingDay: Day {
        switch self {
        case .accepted(let hit): return hit.day
        case .dropped(let hit): return hit.countingDay
        }
    }
}
