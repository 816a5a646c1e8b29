public import Hummingbird
public import Logging
import NIOCore
import PixelAnalytics
import RespBridge
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#endif

/// What `pixeld serve` shows and who may see it.
public struct DashboardConfiguration: Sendable {
    /// The sites (normalised host names); empty: every site with rollups in Redis.
    public var sites: [String]
    /// The read-only token; `nil` makes every site public.
    public var token: String?
    /// Sites anyone may see when a token is set.
    public var publicSites: Set<String>
    /// Without a token: the host names answered besides IP addresses and `localhost` (see
    /// ``HostCheck``); unused with a token.
    public var allowedHosts: [String]
    /// Rows per table on the site page.
    public var tableRows: Int
    /// Days the consumer keeps rollups after the day ends (its `--retention-days`): a range may span
    /// at most one more day (today, still open, and the days kept), so a request cannot read
    /// thousands of days of keys that no longer exist.
    public var retentionDays: Int

    /// Creates a configuration.
    public init(
        sites: [String] = [], token: String? = nil, publicSites: Set<String> = [], allowedHosts: [String] = [],
        tableRows: Int = 10, retentionDays: Int = 400
    ) {
        self.sites = sites
        self.token = token
        self.publicSites = publicSites
        self.allowedHosts = allowedHosts
        self.tableRows = tableRows
        self.retentionDays = retentionDays
    }
}

/// The dashboard: HTML pages, the JSON API, the live feed, `/metrics` and `/healthz`, as a
/// Hummingbird router over the Redis rollups.
public struct Dashboard: Sendable {
    /// Where the numbers come from.
    public let store: RollupStore
    /// The realtime feed, if any.
    public let live: LiveFeed?
    /// The consumer's archive, for filtered views (`filter=DIMENSION:VALUE`); `nil`: no filters.
    public let archive: ArchiveStore?
    /// Access and display settings.
    public let configuration: DashboardConfiguration
    /// The Prometheus text for `/metrics`.
    public let metricsText: @Sendable () -> String
    /// Seconds since the epoch (a parameter for tests).
    public let clock: @Sendable () -> Double
    /// For what the server's operator should know and a client should not see (an unreadable archive file).
    let logger: Logger
    let access: SiteAccess
    let auth: TokenCheck
    /// The discovered sites (without configured ones), kept for a minute.
    let discoveredSites: SiteListCache
    /// `/healthz`'s `PING`, one at a time and reused for a second.
    let healthCheck: HealthCheck
    /// Wrong tokens per client, with a token (see ``CredentialThrottle``).
    let credentialThrottle: CredentialThrottle

    /// Creates a dashboard.
    /// - Parameters:
    ///   - store: The rollup reader.
    ///   - live: The realtime feed (`nil`: no `/api/live`, realtime figures are 0).
    ///   - archive: The consumer's archive (`nil`: filters answer 400 and table rows are no links).
    ///   - configuration: Sites, token, public sites.
    ///   - metricsText: Renders the Prometheus text exposition for `/metrics`.
    ///   - clock: Seconds since the epoch.
    ///   - logger: For a site discovery that stopped before the end of the keyspace and an archive read error.
    public init(
        store: RollupStore, live: LiveFeed?, archive: ArchiveStore? = nil, configuration: DashboardConfiguration,
        metricsText: @escaping @Sendable () -> String = { "" },
        clock: (@Sendable () -> Double)? = nil,
        logger: Logger = Logger(label: "pixeld.serve")
    ) {
        self.store = store
        self.live = live
        self.archive = archive
        self.configuration = configuration
        self.metricsText = metricsText
        self.clock = clock ?? { Double(time(nil)) }
        self.logger = logger
        access = SiteAccess(
            configured: configuration.sites, publicSites: configuration.publicSites,
            tokenRequired: configuration.token != nil
        )
        auth = TokenCheck(token: configuration.token)
        credentialThrottle = CredentialThrottle(clock: self.clock)
        discoveredSites = SiteListCache(logger: logger) { () async throws(RespError) in try await store.discoverSites() }
        healthCheck = HealthCheck {
            do throws(RespError) {
                // Beyond the queue's limit: busy is not down (it still waits its turn).
                let reply = try await store.reader.pipeline([[Array("PING".utf8)]], beyondLimit: true)
                _ = try reply[0].unwrap("PING")
                return nil
            } catch {
                return error
            }
        }
    }

    var today: Day { Day(timestamp: clock()) }

    /// The router with every route and the security headers.
    public func router() -> Router<DashboardRequestContext> {
        // `HEAD` of every `GET` route (uptime monitors check with it): the `GET` answer without its body.
        let router = Router(context: DashboardRequestContext.self, options: .autoGenerateHeadEndpoints)
        router.add(middleware: SecurityHeadersMiddleware())
        router.add(middleware: NotFoundMiddleware())
        // Without a token anyone who reaches the server sees every site, and a web page reaches a
        // loopback server through its visitor's browser by pointing its own name at 127.0.0.1 (DNS
        // rebinding). With a token no such check is needed: that page cannot know the token, and the
        // browser sends it no cookie of this server's (a cookie belongs to the name it was set for,
        // and SameSite=Strict), so it sees only the --public-site sites, which anyone may see.
        if configuration.token == nil {
            router.add(middleware: HostCheckMiddleware(check: HostCheck(allowedHosts: configuration.allowedHosts)))
        }
        router.add(middleware: SameOriginPostMiddleware())
        if configuration.token != nil {
            router.add(middleware: CredentialThrottleMiddleware(throttle: credentialThrottle, auth: auth))
        }
        router.add(middleware: MetricsMiddleware())
        router.get("/healthz") { _, _ in await self.health() }
        router.get("/metrics") { request, _ in
            guard self.auth.isAuthenticated(request) else { throw HTTPError(.unauthorized, message: "token required") }
            return Self.response(self.metricsText(), type: "text/plain; version=0.0.4; charset=utf-8")
        }
        router.get("/assets/dashboard.css") { _, _ in
            Self.response(Pages.css, type: "text/css; charset=utf-8", cache: "public, max-age=3600")
        }
        router.get("/assets/dashboard.js") { _, _ in
            Self.response(Pages.javascript, type: "text/javascript; charset=utf-8", cache: "public, max-age=3600")
        }
        router.get("/") { request, _ in try await Self.htmlErrors { try await self.siteListPage(request) } }
        router.get("/site") { request, _ in try await Self.htmlErrors { try await self.sitePage(request) } }
        router.get("/login") { request, _ in
            try Self.html(Pages.login(failed: false, next: Self.safeNext(FormFields(request)["next"])))
        }
        router.post("/login") { request, context in try await self.login(request, client: context.client(of: request)) }
        router.post("/logout") { _, _ in
            var response = Response.redirect(to: "/", type: .found)
            response.setCookie(Cookie(name: TokenCheck.cookieName, value: "", maxAge: 0, path: "/", httpOnly: true, sameSite: .strict))
            return response
        }
        router.get("/api/sites") { request, _ in try await self.apiSites(request) }
        router.get("/api/stats") { request, _ in try await self.apiStats(request) }
        router.get("/api/timeseries") { request, _ in try await self.apiTimeseries(request) }
        router.get("/api/breakdown") { request, _ in try await self.apiBreakdown(request) }
        router.get("/api/counts") { request, _ in try await self.apiCounts(request) }
        router.get("/api/count") { request, _ in try await self.apiCount(request) }
        router.get("/api/realtime") { request, _ in try await self.apiRealtime(request) }
        router.get("/api/live") { request, context in
            try self.liveStream(request, client: context.clientNetwork(of: request), connection: context.connection)
        }
        // Its own `HEAD`: the generated one would subscribe, for a moment, for a body never sent (a
        // stream slot taken, or a 503 when the feed is full).
        router.head("/api/live") { request, _ in
            _ = try self.visibleSite(request)
            guard self.live != nil else { throw HTTPError(.notFound, message: "the live feed is off") }
            return Response(status: .ok, headers: Self.liveStreamHeaders)
        }
        return router
    }

    // MARK: - Access

    /// The validated range of a request whose site the caller may see (401 otherwise, see
    /// ``RangeInput/siteParameter(_:sites:authenticated:)``); a filter needs the archive, a range of
    /// at most ``ArchiveStore/maxDays`` days, and (with `filters: false`) an endpoint that takes one
    /// (400 otherwise).
    func range(_ request: Request, filters: Bool = true) throws -> RangeInput {
        let range = try RangeInput.parse(
            request, today: today, sites: access, authenticated: auth.isAuthenticated(request),
            retentionDays: configuration.retentionDays
        )
        if range.filter != nil {
            guard filters else { throw HTTPError(.badRequest, message: "filter: not supported by this endpoint") }
            guard let archive else { throw Self.filtersNeedTheArchive }
            guard range.to.number - range.from.number < archive.maxDays else {
                throw HTTPError(.badRequest, message: "filter: the range is limited to \(archive.maxDays) days")
            }
        }
        return range
    }

    /// The request's `site`, which the caller may see (401 otherwise).
    func visibleSite(_ request: Request) throws -> String {
        try RangeInput.siteParameter(FormFields(request)["site"], sites: access, authenticated: auth.isAuthenticated(request))
    }

    func report(_ site: String, _ from: Day, _ to: Day, breakdowns: [Breakdown] = Breakdown.allCases) async throws -> Report {
        do throws(RollupReadError) {
            return try await store.report(site: site, from: from, to: to, breakdowns: breakdowns)
        } catch {
            switch error {
            case .redis(let error): throw Self.unavailable(error)
            case .damaged: throw Self.damagedRange
            }
        }
    }

    /// Visitors in the last 5 minutes; a Redis failure is a `503`.
    func recentVisitors(_ site: String) async throws -> Int {
        do {
            return try await store.recentVisitors(site: site, now: clock())
        } catch {
            throw Self.unavailable(error)
        }
    }

    /// The report of a range: from the rollups, or with a filter from the archive.
    func report(_ range: RangeInput) async throws -> Report {
        guard range.filter != nil else { return try await report(range.site, range.from, range.to) }
        let aggregator = ArchiveReport(site: range.site, from: range.from, to: range.to, filter: range.filter)
        return aggregator.report(days: try await archiveDailyReports(aggregator))
    }

    /// The day reports of `aggregator`, read and aggregated on the archive's own threads (a request
    /// thread only waits). A range with more archive lines than the store reads is a `400`; a busy
    /// or stopped store or an unreadable file a `503` (the file's error is logged, not sent).
    func archiveDailyReports(_ aggregator: ArchiveReport) async throws -> [Report] {
        guard let archive else { throw Self.filtersNeedTheArchive }
        do {
            return try await archive.dailyReports(aggregator)
        } catch where error.code == .tooManyRecords {
            // The request asks for too much (a shorter range will do): the client's to change.
            throw HTTPError(.badRequest, message: "filter: \(error.description)")
        } catch where error.code == .busy || error.code == .stopped {
            // Busy or stopped: the server's, and may pass (the store's own words, which name no file).
            throw HTTPError(.serviceUnavailable, message: "cannot read the archive: \(error.description)")
        } catch {
            // An unreadable file: its path and the system's reason are for the log, not for any client.
            logger.error("cannot read the archive", metadata: ["error": "\(error.description)"])
            throw HTTPError(.serviceUnavailable, message: "cannot read the archive (the server's log says why)")
        }
    }

    func sites() async throws -> [String] {
        if !configuration.sites.isEmpty { return configuration.sites.sorted() }
        do {
            return try await discoveredSites.sites(now: clock())
        } catch {
            throw Self.unavailable(error)
        }
    }

    /// A page's error (a bad `period`, Redis down) as a page a browser shows, with the same status and
    /// message as the API's JSON error.
    static func htmlErrors(_ page: () async throws -> Response) async throws -> Response {
        do {
            return try await page()
        } catch let error as HTTPError {
            var response = html(Pages.message(title: error.status.reasonPhrase, text: error.body ?? error.status.reasonPhrase))
            response.status = error.status
            for field in error.headers { response.headers.append(field) }
            return response
        }
    }

    /// A filter asked of a server without an archive.
    static let filtersNeedTheArchive = HTTPError(.badRequest, message: "filters need `pixeld serve --archive DIR`")

    /// Redis failed.
    static func unavailable(_ error: RespError) -> HTTPError {
        HTTPError(.serviceUnavailable, message: "cannot read the rollups from Redis (\(error.code))")
    }

    /// Redis is fine: a key or count of the range holds what the consumer never writes (logged by name).
    static let damagedRange = HTTPError(.serviceUnavailable, message: "a rollup key of this range is damaged (the server's log names it)")

    // MARK: - Handlers

    /// `/healthz`: `ok` when Redis answered ``healthCheck``'s `PING`, else a `503` saying why.
    func health() async -> Response {
        guard let error = await healthCheck.failure() else { return Self.response("ok\n", type: "text/plain; charset=utf-8") }
        return Self.response("redis unavailable: \(error.code)\n", type: "text/plain; charset=utf-8", status: .serviceUnavailable)
    }

    struct SiteSummary {
        var site: String
        /// The last 30 days, today last.
        var trend: [SeriesPoint]
        /// `nil`: unknown (a damaged rollup key, logged by the store).
        var todaysVisitors: Int? { trend.last.flatMap(\.visitors) }
        /// `nil`: unknown.
        var todaysPageviews: Int? { trend.last.flatMap(\.pageviews) }
    }

    func summaries(_ request: Request) async throws -> [SiteSummary] {
        let authenticated = auth.isAuthenticated(request)
        let day = today
        var result: [SiteSummary] = []
        for site in try await sites() where access.isVisible(site, authenticated: authenticated) {
            do {
                // Today's figures are the trend's last point (its totals and its HyperLogLog), not a
                // report, which would read every breakdown of the day as well.
                let trend = try await store.daily(site: site, from: Day(number: day.number - 29), to: day)
                result.append(SiteSummary(site: site, trend: trend))
            } catch {
                throw Self.unavailable(error)
            }
        }
        return result
    }

    func siteListPage(_ request: Request) async throws -> Response {
        let rows = try await summaries(request).map {
            Pages.SiteRow(site: $0.site, visitors: $0.todaysVisitors, pageviews: $0.todaysPageviews, trend: $0.trend.map(\.pageviews))
        }
        return Self.html(
            Pages.siteList(rows, today: today, loggedIn: auth.isAuthenticated(request), tokenRequired: access.tokenRequired)
        )
    }

    func apiSites(_ request: Request) async throws -> Response {
        let items = try await summaries(request).map { summary in
            "{\"site\":" + Escape.json(summary.site) + ",\"today\":{\"visitors\":" + Self.json(summary.todaysVisitors)
                + ",\"pageviews\":" + Self.json(summary.todaysPageviews) + "},\"trend\":["
                + summary.trend.map { Self.json($0.pageviews) }.joined(separator: ",") + "]}"
        }
        return Self.json("{\"v\":1,\"day\":\"\(today)\",\"sites\":[" + items.joined(separator: ",") + "]}")
    }

    func sitePage(_ request: Request) async throws -> Response {
        let range: RangeInput
        do {
            range = try self.range(request)
        } catch let error as HTTPError where error.status == .unauthorized {
            let next = Self.safeNext(request.uri.path + (request.uri.query.map { "?" + $0 } ?? ""))
            var response = Self.html(Pages.login(failed: false, next: next))
            response.status = .unauthorized
            return response
        }
        let limit = configuration.tableRows
        let previousRange = range.previous
        // A previous period that reaches past the retention is not read: the page shows no change.
        let compared = range.previousIsKept
        let report: Report
        let previous: Report?
        let series: [SeriesPoint]
        if let filter = range.filter {
            // One read and one aggregation cover both periods (adjacent: the previous one ends the
            // day before this one starts); each period adds up its own days.
            let current = ArchiveReport(site: range.site, from: range.from, to: range.to, filter: filter)
            let before = ArchiveReport(site: range.site, from: previousRange.from, to: previousRange.to, filter: filter)
            let read = ArchiveReport(site: range.site, from: compared ? previousRange.from : range.from, to: range.to, filter: filter)
            let days = try await archiveDailyReports(read)
            report = current.report(days: days)
            previous = compared ? before.report(days: days) : nil
            series = Self.series(days.filter { $0.from >= range.from }, hourly: range.from == range.to)
        } else {
            report = try await self.report(range.site, range.from, range.to)
            previous = compared ? try await self.report(range.site, previousRange.from, previousRange.to) : nil
            series = try await self.series(site: range.site, from: range.from, to: range.to, hourly: range.from == range.to)
        }
        let realtime = try await recentVisitors(range.site)
        return Self.html(
            Pages.sitePage(
                range: range, today: today, report: report, previous: previous, series: series,
                shown: begun(series, hourlyOf: range.from == range.to ? range.from : nil).count, realtime: realtime, limit: limit,
                // A link on a range the archive does not filter would only lead to a 400.
                filterable: archive.map { range.to.number - range.from.number < $0.maxDays } ?? false
            )
        )
    }

    func series(site: String, from: Day, to: Day, hourly: Bool) async throws -> [SeriesPoint] {
        do {
            return hourly ? try await store.hourly(site: site, day: from) : try await store.daily(site: site, from: from, to: to)
        } catch {
            throw Self.unavailable(error)
        }
    }

    /// The points of `points` (a series of `day`'s hours, or with `nil` of days) that have begun by
    /// the clock: a series that showed the hours or days still to come as 0 would fall to zero at
    /// the present.
    func begun(_ points: [SeriesPoint], hourlyOf day: Day?) -> [SeriesPoint] {
        let now = clock()
        let today = Day(timestamp: now)
        guard let day else { return points.filter { $0.label <= today.description } }
        guard day >= today else { return points }
        guard day == today else { return [] }
        let hour = Int(now - Double(today.number) * 86_400) / 3600
        return points.filter { Int($0.label).map { $0 <= hour } ?? true }
    }

    /// The points of archive day reports: one per hour of the single day, or one per day.
    static func series(_ days: [Report], hourly: Bool) -> [SeriesPoint] {
        if hourly {
            let hours = days.first?.breakdowns[.hours] ?? [:]
            return (0..<24).map { hour in
                let label = hour < 10 ? "0\(hour)" : "\(hour)"
                return SeriesPoint(label: label, pageviews: hours[label] ?? 0, visitors: nil, visits: nil, bounces: nil)
            }
        }
        return days.map {
            SeriesPoint(label: $0.from.description, pageviews: $0.pageviews, visitors: $0.visitors, visits: $0.visits, bounces: $0.bounces)
        }
    }

    func apiTimeseries(_ request: Request) async throws -> Response {
        let range = try self.range(request)
        let interval = try FormFields(request)["interval"] ?? (range.from == range.to ? "hour" : "day")
        guard interval == "hour" || interval == "day" else { throw HTTPError(.badRequest, message: "interval: use hour or day") }
        if interval == "hour" && range.from != range.to {
            throw HTTPError(.badRequest, message: "interval=hour needs a single day (from = to)")
        }
        let points: [SeriesPoint]
        if let filter = range.filter {
            let aggregator = ArchiveReport(site: range.site, from: range.from, to: range.to, filter: filter)
            points = Self.series(try await archiveDailyReports(aggregator), hourly: interval == "hour")
        } else {
            points = try await series(site: range.site, from: range.from, to: range.to, hourly: interval == "hour")
        }
        // Up to the current hour (or today): hours still to come are no zeros.
        let items = begun(points, hourlyOf: interval == "hour" ? range.from : nil).map { point in
            var item = "{\"" + (interval == "hour" ? "hour" : "date") + "\":" + Escape.json(point.label)
            item += ",\"pageviews\":" + Self.json(point.pageviews)
            if interval == "day" {
                // null: unknown (a damaged rollup key, logged).
                item += ",\"visitors\":" + Self.json(point.visitors) + ",\"visits\":" + Self.json(point.visits)
                item += ",\"bounces\":" + Self.json(point.bounces)
            }
            return item + "}"
        }
        return Self.json(Self.jsonHead(range) + "\"interval\":\"" + interval + "\",\"points\":[" + items.joined(separator: ",") + "]}")
    }

    /// `/api/stats`: the range's report as JSON.
    func apiStats(_ request: Request) async throws -> Response {
        let range = try self.range(request)
        let limit = try RangeInput.limit(request, default: 100)  // (a bad one costs no read)
        return Self.json(try await report(range).json(limit: limit))
    }

    /// `/api/counts`: pageviews per path, as one JSON object (for a page's view counters).
    func apiCounts(_ request: Request) async throws -> Response {
        let range = try self.range(request, filters: false)
        let limit = try RangeInput.limit(request, default: 1000, maximum: 100_000)
        let report = try await self.report(range.site, range.from, range.to, breakdowns: [.pages])
        let pages = report.top(.pages, limit: limit)
        return Self.json("{" + pages.map { Escape.json($0.name) + ":" + String($0.count) }.joined(separator: ",") + "}")
    }

    /// `/api/count`: one path's pageviews.
    func apiCount(_ request: Request) async throws -> Response {
        let range = try self.range(request, filters: false)
        guard let path = try FormFields(request)["path"], !path.isEmpty else {
            throw HTTPError(.badRequest, message: "path: missing (e.g. &path=/blog/)")
        }
        guard path.utf8.count <= 2048 else { throw HTTPError(.badRequest, message: "path: longer than 2048 bytes") }
        // The pages breakdown alone, summed as /api/counts sums it (canonically equivalent paths
        // together), not an HGET of the path's exact bytes.
        let report = try await self.report(range.site, range.from, range.to, breakdowns: [.pages])
        let count = report.breakdowns[.pages]?[path] ?? 0
        return Self.json("{\"path\":" + Escape.json(path) + ",\"count\":\(count)}")
    }

    /// `/api/realtime`: the site's visitors of the last minutes.
    func apiRealtime(_ request: Request) async throws -> Response {
        let site = try visibleSite(request)
        let visitors = try await recentVisitors(site)
        return Self.json("{\"site\":" + Escape.json(site) + ",\"visitors\":\(visitors)}")
    }

    /// The start of an API answer about `range`: `{"v":1,"site":…,"from":…,"to":…,` (the caller
    /// adds its fields and the closing brace).
    static func jsonHead(_ range: RangeInput) -> String {
        "{\"v\":1,\"site\":" + Escape.json(range.site) + ",\"from\":\"\(range.from)\",\"to\":\"\(range.to)\","
    }

    func apiBreakdown(_ request: Request) async throws -> Response {
        let range = try self.range(request)
        guard let name = try FormFields(request)["dimension"] else {
            throw HTTPError(.badRequest, message: "dimension: missing (one of \(Breakdown.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        guard let breakdown = Breakdown(rawValue: name) else {
            throw HTTPError(.badRequest, message: "dimension: one of \(Breakdown.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let format = try FormFields(request)["format"] ?? "json"
        guard format == "json" || format == "csv" else { throw HTTPError(.badRequest, message: "format: json or csv") }
        let limit = try RangeInput.limit(request, default: format == "csv" ? 100_000 : 100, maximum: 100_000)
        let report = try await self.report(range)
        let rows = report.top(breakdown, limit: limit)
        if format == "csv" {
            var csv = "name,count\r\n"
            for row in rows { csv += Escape.csv(row.name) + "," + String(row.count) + "\r\n" }
            var response = Self.response(csv, type: "text/csv; charset=utf-8")
            let file = "\(range.site)-\(breakdown.rawValue)-\(range.from)-\(range.to).csv"
            response.headers[.contentDisposition] = "attachment; filename=\"" + file + "\""
            return response
        }
        let items = rows.map { "{\"name\":" + Escape.json($0.name) + ",\"count\":\($0.count)}" }
        return Self.json(Self.jsonHead(range) + "\"dimension\":\"" + breakdown.rawValue + "\",\"items\":[" + items.joined(separator: ",") + "]}")
    }

    /// `/api/live`: the site's Server-Sent Events, whole (without visitor ids) for a caller with the
    /// token (or with none configured), else minimal (see ``LiveFeed/Detail``); `503` when the feed
    /// has no slot left, in all or for `client` (see ``DashboardRequestContext/client(of:)``).
    /// `connection` is the request's: it is closed a second after graceful shutdown begins, which ends a
    /// stream whose client stopped reading.
    /// The headers of a live-feed stream.
    static let liveStreamHeaders: HTTPFields = {
        var headers = HTTPFields()
        headers[.contentType] = "text/event-stream; charset=utf-8"
        headers[.cacheControl] = "no-store"
        // nginx in front (proxy_buffering is on by default) would hold the events back in its buffer.
        headers[HTTPFields.Element.Name("X-Accel-Buffering")!] = "no"
        return headers
    }()

    func liveStream(_ request: Request, client: String, connection: any Channel) throws -> Response {
        let site = try visibleSite(request)
        guard let live else { throw HTTPError(.notFound, message: "the live feed is off") }
        let stream: AsyncStream<String>
        do {
            stream = try live.subscribe(site: site, client: client, detail: auth.isAuthenticated(request) ? .full : .minimal)
        } catch {
            throw HTTPError(.serviceUnavailable, message: error.description)
        }
        let headers = Self.liveStreamHeaders
        let body = ResponseBody { writer in
            // One stream for the events and a keep-alive comment every 15 s; a client that went away
            // makes the write throw, which cancels both and ends the subscription.
            let (merged, sink) = AsyncStream<String>.makeStream(bufferingPolicy: .bufferingNewest(512))
            let pump = Task {
                for await payload in stream { sink.yield(Self.sseEvent(payload)) }
                sink.finish()
            }
            let beat = Task {
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(15))
                    sink.yield(": keep-alive\n\n")
                }
            }
            defer {
                pump.cancel()
                beat.cancel()
            }
            // At graceful shutdown the stream ends, so the server does not wait for the clients to leave.
            // A client that stopped reading holds a write that waits for room in its connection, which
            // never comes: its connection is closed a second later, which ends that write (a reading
            // client's stream has ended by then).
            // A client that closes its connection ends the stream at once, not at the next keep-alive
            // write up to 15 s later (its stream slot held meanwhile): the socket's end of input
            // ends the request's inbound parts. (The channel itself stays open, half-closed, until
            // the response ends, so its closeFuture does not tell.) This preconditionFails on a request
            // body that is not NIO's, such as HummingbirdTesting's `.router`: live-stream tests use
            // the real server (`.live`, or the pixeld binary).
            try await request.body.consumeWithInboundCloseHandler { _ in
                try await withGracefulShutdownHandler {
                    // A comment (browsers ignore it; curl shows it) when the feed has lost Redis: the
                    // stream is open, but no hit comes until it subscribes again.
                    let state = live.isSubscribed ? "" : ": the live feed is not subscribed to Redis now (see serve's log); hits follow once it is\n\n"
                    try await writer.write(ByteBuffer(string: "retry: 2000\n: connected\n\n" + state))
                    for await chunk in merged { try await writer.write(ByteBuffer(string: chunk)) }
                } onGracefulShutdown: {
                    sink.finish()
                    connection.eventLoop.scheduleTask(in: .seconds(1)) { connection.close(promise: nil) }
                }
            } onInboundClosed: {
                sink.finish()
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: headers, body: body)
    }

    /// One SSE `hit` event; each line of the payload on its own `data:` line. Split on Unicode
    /// scalars, not `Character`s: `"\r\n"` is one `Character`, which is neither `"\r"` nor `"\n"`, and
    /// would end the `data:` line early in the browser, starting a field of the payload's choosing.
    static func sseEvent(_ payload: String) -> String {
        var event = "event: hit\n"
        for line in payload.unicodeScalars.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r" }) {
            event += "data: " + String(line) + "\n"
        }
        return event + "\n"
    }

    /// The login form's answer: the cookie and a redirect for the right token; for a wrong one, the
    /// form again (`401`), counted against `client`; for a client ``CredentialThrottle`` holds, `429`
    /// whatever the token. Held here, not only in ``CredentialThrottleMiddleware``: this is the one
    /// place every spelling of the path the router sends here (`/login/`, `//login`) comes through.
    func login(_ request: Request, client: String) async throws -> Response {
        var request = request
        let buffer: ByteBuffer
        do {
            buffer = try await request.collectBody(upTo: 16 * 1024)
        } catch is NIOTooManyBytesError {
            // (Hummingbird's own 413 has an empty body.)
            throw HTTPError(.contentTooLarge, message: "the login form is limited to 16 KiB")
        }
        let form = FormFields(encoded: String(buffer: buffer))
        let next = Self.safeNext(try form["next"])
        guard let token = configuration.token else { return Response.redirect(to: next, type: .found) }
        if let seconds = credentialThrottle.heldSeconds(client) { return CredentialThrottle.heldResponse(seconds: seconds) }
        guard let given = try form["token"], TokenCheck.equal(given, token) else {
            credentialThrottle.recordFailure(client)
            var response = Self.html(Pages.login(failed: true, next: next))
            response.status = .unauthorized
            return response
        }
        var response = Response.redirect(to: next, type: .found)
        // Secure behind a TLS proxy (which says so): the browser then never sends it over plain HTTP.
        let https = request.headers[HTTPFields.Element.Name("X-Forwarded-Proto")!]?.lowercased() == "https"
        response.setCookie(
            Cookie(
                name: TokenCheck.cookieName, value: TokenCheck.cookieValue(token), maxAge: 30 * 86_400, path: "/",
                secure: https, httpOnly: true, sameSite: .strict
            )
        )
        return response
    }

    /// A local path to go back to after logging in; anything else becomes `/`.
    static func safeNext(_ text: String?) -> String {
        guard let text, text.hasPrefix("/"), !text.hasPrefix("//"), !text.contains("\\"),
            !text.unicodeScalars.contains(where: { $0.value < 0x21 || $0.value > 0x7E })
        else { return "/" }
        return text
    }

    // MARK: - Responses

    static func response(
        _ text: String, type: String, status: HTTPResponse.Status = .ok, cache: String = "no-store"
    ) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = type
        headers[.cacheControl] = cache
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }

    static func html(_ text: String) -> Response { response(text, type: "text/html; charset=utf-8") }

    static func json(_ text: String) -> Response { response(text + "\n", type: "application/json") }

    /// A JSON number, or `null` for an unknown one.
    static func json(_ number: Int?) -> String { number.map { String($0) } ?? "null" }
}
