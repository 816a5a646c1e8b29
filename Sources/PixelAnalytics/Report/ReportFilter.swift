/// One `dimension = value` condition on a report, as the dashboard's `filter=DIMENSION:VALUE` gives
/// it. Pure value; ``ArchiveReport`` applies it.
///
/// Two kinds of dimension (see ``scope``):
/// - **hit-level** — `pages`, `browsers`, `os`, `devices`, `countries`, `events`: a property of each
///   hit. The hits that match count (pageviews, events and every per-hit breakdown); a visit counts
///   (visits, bounces, duration, entry pages, source visits) when at least one of its hits matches,
///   with its bounce and duration those of the whole visit. `pages` matches any hit on that path
///   (pageviews and the custom events sent from it), `countries` matches `(unknown)` for hits
///   without a country, `events` matches custom event hits of that name only.
/// - **visit-level** — `entry_pages`, `sources`, `utm_sources`, `utm_mediums`, `utm_campaigns`: a
///   property of the visit, taken from its first hit. Whole visits whose attribute matches count,
///   with all their hits. A hit without a visitor id (no visit) uses its own source and UTM values,
///   as the rollups do, and never matches `entry_pages`.
public struct ReportFilter: Sendable, Equatable, CustomStringConvertible {
    /// Whether a dimension belongs to each hit or to a visit.
    public enum Scope: Sendable, Equatable {
        /// Matching hits count.
        case hit
        /// Whole visits whose attribute matches count.
        case visit
    }

    /// The dimensions that can be filtered on, in the order of ``Report/sections``.
    public static let dimensions: [Breakdown] = [
        .pages, .entryPages, .sources, .utmSources, .utmMediums, .utmCampaigns, .browsers, .os, .devices, .countries,
        .events,
    ]

    /// The longest value accepted, in UTF-8 bytes.
    public static let maxValueBytes = 2048

    /// The dimension.
    public let dimension: Breakdown
    /// The value it must have (exactly, as the breakdown shows it).
    public let value: String

    /// Why a filter was refused; the description is meant for a `400` answer.
    public struct Invalid: Error, Sendable, Equatable, CustomStringConvertible {
        /// What is wrong.
        public var description: String
    }

    /// Creates a filter.
    /// - Throws: ``Invalid`` when `dimension` cannot be filtered on or `value` is empty or longer
    ///   than ``maxValueBytes``.
    public init(dimension: Breakdown, value: String) throws(Invalid) {
        guard Self.dimensions.contains(dimension) else {
            throw Invalid(description: "filter: unknown dimension (use one of \(Self.dimensionList))")
        }
        guard !value.isEmpty else { throw Invalid(description: "filter: the value is empty (DIMENSION:VALUE)") }
        guard value.utf8.count <= Self.maxValueBytes else {
            throw Invalid(description: "filter: the value is longer than \(Self.maxValueBytes) bytes")
        }
        self.dimension = dimension
        self.value = value
    }

    /// Parses `DIMENSION:VALUE` (split at the first `:`, so the value may contain colons).
    /// - Throws: ``Invalid`` with a message naming the problem.
    public init(parsing text: String) throws(Invalid) {
        guard let colon = text.firstIndex(of: ":") else {
            throw Invalid(description: "filter: use DIMENSION:VALUE (dimension one of \(Self.dimensionList))")
        }
        guard let dimension = Breakdown(rawValue: String(text[..<colon])) else {
            throw Invalid(description: "filter: unknown dimension (use one of \(Self.dimensionList))")
        }
        try self.init(dimension: dimension, value: String(text[text.index(after: colon)...]))
    }

    /// `DIMENSION:VALUE`, what ``init(parsing:)`` reads.
    public var description: String { dimension.rawValue + ":" + value }

    /// Hit-level or visit-level (see the type's documentation).
    public var scope: Scope {
        switch dimension {
        case .entryPages, .sources, .sourceVisits, .utmSources, .utmMediums, .utmCampaigns: return .visit
        default: return .hit
        }
    }

    static var dimensionList: String { dimensions.map(\.rawValue).joined(separator: ", ") }
}
