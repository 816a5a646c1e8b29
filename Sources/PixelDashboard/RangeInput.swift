import Hummingbird
import PixelAnalytics
import PixelEvents

/// Form fields (`application/x-www-form-urlencoded`) decoded as a browser's form sends them: `+` is
/// a space and `%HH` a byte (``QueryString``'s rules). (Hummingbird's `queryParameters` decodes `%HH`
/// only, so the date form of a filtered page, `filter=sources%3AHacker+News`, would filter on
/// "Hacker+News".) A field read that is given more than once is a `400` that names it (`?site=a&site=b`
/// would otherwise show one of the two silently).
struct FormFields: Sendable {
    private let pairs: [QueryArg]

    /// A request's query parameters.
    init(_ request: Request) {
        self.init(encoded: request.uri.query ?? "")
    }

    /// Encoded fields: a query, or a form's body (the login form's).
    init(encoded text: String) {
        pairs = QueryString.parse(text)
    }

    /// The value of `name`; `nil` when absent.
    /// - Throws: `HTTPError` `400` when `name` is given more than once.
    subscript(_ name: String) -> String? {
        get throws {
            let values = pairs.filter { $0.name == name }
            guard values.count <= 1 else {
                throw HTTPError(.badRequest, message: "\(name): given \(values.count) times; give it once")
            }
            return values.first?.value
        }
    }
}

/// The validated query parameters shared by the pages and the API. Bad input is a `400` with a
/// message that names the parameter, never a `500`.
struct RangeInput: Sendable {
    var site: String
    var from: Day
    var to: Day
    /// `today`, `7d`, `30d` or `custom` (explicit `from`/`to`).
    var period: String
    /// `filter=DIMENSION:VALUE`, when given (answered from the archive).
    var filter: ReportFilter? = nil
    /// The oldest day whose rollups are kept (today − `--retention-days`: a day's keys expire that
    /// many days after it ends); `nil`: not known, every day counts as kept.
    var oldestKept: Day? = nil

    /// The query parameters that select the range (`period=…` or `from=…&to=…`), not yet escaped
    /// for HTML, for links that keep it.
    var periodQuery: String {
        period == "custom" ? "from=\(from)&to=\(to)" : "period=" + Escape.query(period)
    }

    /// The range of the same length just before this one.
    var previous: (from: Day, to: Day) {
        let length = to.number - from.number + 1
        return (Day(number: from.number - length), Day(number: to.number - length))
    }

    /// Whether every day of ``previous`` is kept: a comparison with a period whose first days are
    /// deleted would count them as zeros and show a rise that never happened.
    var previousIsKept: Bool {
        oldestKept.map { previous.from >= $0 } ?? true
    }

    /// - Parameters:
    ///   - authenticated: Whether the request carries the token (see ``siteParameter(_:sites:authenticated:)``).
    ///   - retentionDays: The rollups' retention (`--retention-days`): a range may span at most one
    ///     more day (and at most 3,700).
    static func parse(
        _ request: Request, today: Day, sites: SiteAccess, authenticated: Bool, retentionDays: Int
    ) throws -> RangeInput {
        let parameters = FormFields(request)
        let site = try siteParameter(parameters["site"], sites: sites, authenticated: authenticated)
        let fromText = try parameters["from"]
        let toText = try parameters["to"]
        let periodText = try parameters["period"]
        guard periodText == nil || (fromText == nil && toText == nil) else {
            throw HTTPError(.badRequest, message: "period: give either period or from and to, not both")
        }
        let period = periodText ?? (fromText == nil && toText == nil ? "today" : "custom")
        var from = today
        var to = today
        // The preset periods stop at the oldest day kept (a 30-day link must not fail under a 14-day retention).
        let oldestKept = today.number - min(retentionDays, 3699)
        switch period {
        case "today": break
        case "7d": from = Day(number: max(today.number - 6, oldestKept))
        case "30d": from = Day(number: max(today.number - 29, oldestKept))
        case "custom" where periodText == nil:
            to = try toText.map { try day($0, name: "to") } ?? today
            from = try fromText.map { try day($0, name: "from") } ?? to
        default:
            throw HTTPError(.badRequest, message: "period: use today, 7d or 30d, or from and to (YYYY-MM-DD) for other days")
        }
        guard from <= to else { throw HTTPError(.badRequest, message: "from must not be after to") }
        // The days kept and today's; never more than 3,700 (a long retention is no reason for one
        // request to read tens of thousands of days).
        let maxDays = min(3700, retentionDays + 1)
        guard to.number - from.number < maxDays else {
            guard maxDays < 3700 else { throw HTTPError(.badRequest, message: "the range is limited to 3700 days") }
            throw HTTPError(
                .badRequest,
                message: "the range is limited to \(maxDays) days: rollups are kept \(retentionDays) days after the day ends "
                    + "(pixeld serve --retention-days, as the consumer's)"
            )
        }
        return RangeInput(
            site: site, from: from, to: to, period: period, filter: try filter(parameters["filter"]),
            oldestKept: Day(number: today.number - retentionDays)
        )
    }

    /// The `filter` parameter: `DIMENSION:VALUE` with a filterable dimension and a value of at most
    /// ``ReportFilter/maxValueBytes`` bytes; anything else is a `400`.
    static func filter(_ text: String?) throws -> ReportFilter? {
        guard let text else { return nil }
        do {
            return try ReportFilter(parsing: text)
        } catch {
            throw HTTPError(.badRequest, message: error.description)
        }
    }

    /// The `site` parameter, normalized: a `400` when missing or not a host name; a `401` when the
    /// caller may not see it; a `404` when it is not one of the configured sites. Visibility comes
    /// first: a caller without the token gets the same `401` for an unknown site as for a private
    /// one, so that it cannot probe which private sites exist.
    static func siteParameter(_ text: String?, sites: SiteAccess, authenticated: Bool) throws -> String {
        guard let text, !text.isEmpty else { throw HTTPError(.badRequest, message: "site: missing (e.g. ?site=example.com)") }
        guard text.utf8.count <= 253, let site = SiteList.normalize(text) else {
            throw HTTPError(.badRequest, message: "site: not a host name")
        }
        guard sites.isVisible(site, authenticated: authenticated) else {
            throw HTTPError(.unauthorized, headers: [.wwwAuthenticate: "Bearer"], message: "this site needs the token")
        }
        guard sites.isKnown(site) else { throw HTTPError(.notFound, message: "site: unknown site") }
        return site
    }

    static func day(_ text: String, name: String) throws -> Day {
        guard text.utf8.count == 10, let day = Day(text), day.description == text else {
            throw HTTPError(.badRequest, message: "\(name): not a date YYYY-MM-DD")
        }
        return day
    }

    static func limit(_ request: Request, default fallback: Int, maximum: Int = 1000) throws -> Int {
        guard let text = try FormFields(request)["limit"] else { return fallback }
        guard let limit = Int(text), (1...maximum).contains(limit) else {
            throw HTTPError(.badRequest, message: "limit: a whole number in 1…\(maximum)")
        }
        return limit
    }
}

/// Which sites exist and which of them anyone may see.
struct SiteAccess: Sendable {
    /// Configured sites; empty means any host name is accepted (and listed if Redis has rollups).
    var configured: [String]
    /// Sites whose dashboard and API need no token.
    var publicSites: Set<String>
    /// `true` when a token is configured.
    var tokenRequired: Bool

    func isKnown(_ site: String) -> Bool { configured.isEmpty || configured.contains(site) }

    func isVisible(_ site: String, authenticated: Bool) -> Bool {
        !tokenRequired || authenticated || publicSites.contains(site)
    }
}
