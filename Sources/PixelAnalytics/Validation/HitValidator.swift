/// Checks a hit's page URL and timestamp: the first step of processing, before any look at the
/// user agent.
///
/// - The page URL must be an absolute `http`/`https` URL of at most 8 KiB (``DropReason/missingURL``,
///   ``DropReason/badURL``) whose host, normalized like ``SiteList``, is a configured site
///   (``DropReason/unknownSite``).
/// - The timestamp must not be older than ``maxAgeSeconds`` (``DropReason/tooOld``) nor more than
///   ``maxFutureSeconds`` ahead (``DropReason/inFuture``) of the clock given; replaying an archive
///   passes no clock and skips this check.
public struct HitValidator: Sendable {
    /// The accepted sites.
    public var sites: SiteList
    /// Hits older than this many seconds are dropped. Keep it below the daily key's TTL (48 h)
    /// minus one day, so the key of a hit's day still exists when the hit is processed.
    public var maxAgeSeconds: Double
    /// Hits further ahead of the consumer's clock than this many seconds are dropped.
    public var maxFutureSeconds: Double

    /// Creates a validator.
    /// - Parameters:
    ///   - sites: The accepted sites.
    ///   - maxAgeSeconds: The past window; 24 h by default.
    ///   - maxFutureSeconds: The allowed clock skew into the future; 10 minutes by default.
    public init(sites: SiteList, maxAgeSeconds: Double = 86_400, maxFutureSeconds: Double = 600) {
        self.sites = sites
        self.maxAgeSeconds = maxAgeSeconds
        self.maxFutureSeconds = maxFutureSeconds
    }

    /// A page URL that passed: its site and the parts analytics keeps.
    public struct Page: Sendable, Equatable {
        /// The normalized site (host lowercased, without `www.`).
        public var site: String
        /// The path without query string or fragment, `/` when empty, capped in length and
        /// with control characters replaced.
        public var path: String
        /// The raw (still percent-encoded) query string, for campaign parameters; empty when none.
        public var query: String
    }

    /// Checks the timestamp against `now`.
    /// - Parameters:
    ///   - timestamp: The hit's time, seconds since the epoch.
    ///   - now: The consumer's clock; `nil` skips the check (replay).
    /// - Returns: The reason to drop the hit, or `nil` when it is within the window.
    public func checkTime(_ timestamp: Double, now: Double?) -> DropReason? {
        guard let now else { return nil }
        if timestamp < now - maxAgeSeconds { return .tooOld }
        if timestamp > now + maxFutureSeconds { return .inFuture }
        return nil
    }

    /// Parses and checks a page URL.
    /// - Parameter url: The page URL (`u`), `nil` when absent.
    /// - Returns: The page, or the reason to drop the hit.
    public func checkPage(_ url: String?) -> Result<Page, DropReasonError> {
        guard let url, !url.isEmpty, url != "-" else { return .failure(DropReasonError(.missingURL)) }
        return ASCIIBytes.withBytes(url) { bytes -> Result<Page, DropReasonError> in
            guard let parts = URLParts.parse(bytes) else {
                return .failure(DropReasonError(.badURL))
            }
            let site = URLParts.normalizedHost(bytes, parts.host)
            guard sites.contains(site) else { return .failure(DropReasonError(.unknownSite)) }
            let path = parts.path.isEmpty ? "/" : DimensionText.clean(bytes, parts.path, limit: DimensionText.pathLimit)
            let query = parts.query.map { String(decoding: bytes.extracting($0), as: UTF8.self) } ?? ""
            return .success(Page(site: site, path: path, query: query))
        }
    }
}

/// A ``DropReason`` as an `Error`, for `Result`.
public struct DropReasonError: Error, Sendable, Equatable {
    /// The reason.
    public var reason: DropReason
    /// Wraps `reason`.
    public init(_ reason: DropReason) { self.reason = reason }
}
