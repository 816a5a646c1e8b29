/// Why a hit was left out of the visitor numbers. Every dropped hit has exactly one reason; the
/// ``rawValue`` is the stable code used in rollups (`…:drops` hashes), the archive and metrics.
public enum DropReason: String, Sendable, CaseIterable, Hashable {
    /// The page URL's host is not one of the configured sites.
    case unknownSite = "unknown_site"
    /// No page URL (`u`, nor a `Referer` to fall back on).
    case missingURL = "missing_url"
    /// The page URL is not an `http`/`https` URL with a host.
    case badURL = "bad_url"
    /// The hit is older than the accepted window.
    case tooOld = "too_old"
    /// The hit is further in the future than the accepted clock skew.
    case inFuture = "in_future"
    /// The event name is empty after trimming, too long or contains control characters.
    case badEvent = "bad_event"
    /// The user agent is empty (or `-`): no browser sends that.
    case emptyUserAgent = "bot_empty_ua"
    /// The user agent matches the crawler-user-agents list.
    case listedBot = "bot_list"
    /// The user agent matches a generic automation pattern (`bot`, `crawl`, `curl/`, not a browser…).
    case genericBot = "bot_generic"
    /// The user agent names a headless or automated browser (HeadlessChrome, PhantomJS, Lighthouse…).
    case headless = "bot_headless"
    /// `Do Not Track: 1` with `--respect-dnt`.
    case doNotTrack = "dnt"
    /// `Sec-GPC: 1` with `--respect-dnt`.
    case globalPrivacyControl = "gpc"
}
