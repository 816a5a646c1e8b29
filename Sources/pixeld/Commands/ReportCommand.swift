import ArgumentParser
import Logging
import PixelAnalytics
import PixelDashboard
import PixeldCLI
import RespBridge

#if canImport(Glibc)
import Glibc
#endif

/// `pixeld report --site S [--from D] [--to D] [--json]`: a site's numbers from the Redis rollups.
struct ReportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Print a site's analytics for a range of UTC days: a readable report, or JSON with --json.",
        // Written out: --site is an array only to refuse a second one, and one is taken.
        usage: "pixeld report [--redis <url>] [--log-level <level>] --site <host> [--from <day>] [--to <day>] [--json] [--limit <n>]",
        discussion: """
            Reads the rollups that `pixeld consume --site` writes (pixeld:site:SITE:DAY:*). Unique visitors \
            over several days are the HyperLogLog union of the days: visitor ids are per day by design, so a \
            person who came on two days counts twice. The JSON object (schema v1) has pageviews, visitors, \
            visits, bounces, bounce_rate, visit_duration_s (mean per visit), total_duration_s, custom_events (hits), drops \
            and one array per breakdown: pages, sources ({name, pageviews, visits}), utm_sources, utm_mediums, \
            utm_campaigns, browsers, os, devices, countries, hours ({name, pageviews}), entry_pages \
            ({name, visits}) and events ({name, events}).
            """
    )

    @OptionGroup var global: GlobalOptions

    @Option(help: ArgumentHelp("The site (host name, as given to consume --site). Env: PIXELD_SITE, when it names one site.", valueName: "host"))
    var site: [String] = []

    @Option(help: ArgumentHelp("First UTC day, YYYY-MM-DD. Default: --to.", valueName: "day"))
    var from: String?

    @Option(help: ArgumentHelp("Last UTC day, YYYY-MM-DD. Default: today (UTC).", valueName: "day"))
    var to: String?

    @Flag(help: "Print one JSON object instead of tables.")
    var json = false

    @Option(parsing: .unconditional, help: ArgumentHelp("Entries per breakdown at most. Default 10 (100 with --json).", valueName: "n"))
    var limit: Int?

    func run() async throws {
        // An array, so that a second --site is refused rather than silently replacing the first.
        guard site.count <= 1 else { throw ValidationError("--site is given \(site.count) times, and a report is of one site") }
        let sites = Environment.resolve(site, flag: "site")
        guard sites.count == 1 else {
            throw ValidationError(
                sites.isEmpty
                    ? "--site is required (or PIXELD_SITE naming one site)"
                    : "--site is required: PIXELD_SITE names \(sites.count) sites, and a report is of one"
            )
        }
        guard let name = SiteList.normalize(sites[0]) else { throw ValidationError("--site: '\(sites[0])' is not a host name") }
        let today = Day(timestamp: Double(time(nil)))
        let last = try to.map { text in
            guard let day = Day(text) else { throw ValidationError("--to: '\(text)' is not a date YYYY-MM-DD") }
            return day
        } ?? today
        let first = try from.map { text in
            guard let day = Day(text) else { throw ValidationError("--from: '\(text)' is not a date YYYY-MM-DD") }
            return day
        } ?? last
        guard first <= last else { throw ValidationError("--from must not be after --to") }
        guard last.number - first.number < 3700 else { throw ValidationError("the range is limited to 3700 days") }
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
        let logger = Bootstrap.logging(level: try global.level(), label: "pixeld.report")
        let connection = RedisConnection(configuration: try global.redisConfiguration(), logger: logger)
        defer { connection.close() }
        let query = ReportQuery(site: name, from: first, to: last)
        // The same read as serve's: a reply that is an error (NOAUTH) is a failure to read, as a lost
        // connection is; a key or count the consumer never writes (a hand edit) is named, as serve logs it.
        let hashes: [[String: Int]], visitors: Int
        do throws(RollupReadError) {
            (hashes, visitors) = try await DamagedKey.report(hashKeys: query.hashKeys, uniqueKeys: query.uniqueKeys) {
                commands throws(RespError) in try connection.pipeline(commands)
            }
        } catch {
            switch error {
            case .redis(let error): throw CommandFailure("cannot read the rollups from Redis: \(error)")
            case .damaged(let found):
                throw CommandFailure("damaged rollup key, not written by pixeld consume: \(found.map(\.description).joined(separator: ", "))")
            }
        }
        let report = query.report(hashes: hashes, visitors: visitors)
        if report.pageviews == 0 && report.visits == 0 && report.events == 0 && report.drops.isEmpty {
            Self.note("no rollups for \(name) in this range; is it a name given to consume --site? (redis-cli --scan --pattern 'pixeld:site:*:totals' lists the sites that have some)")
        }
        if json {
            print(report.json(limit: limit ?? 100))
            return
        }
        print(report.text(limit: limit ?? 10), terminator: "")
        // The all-sites drop counts are every site's: damage there leaves its part out of this line
        // (with a note), not this site's report, which --json and serve read without them.
        let siteLess: (counts: [String: Int], damaged: [RollupDamage])
        do throws(RespError) {
            siteLess = try await DamagedKey.sharedCounts(hashKeys: query.siteLessDropKeys) {
                commands throws(RespError) in try connection.pipeline(commands)
            }
        } catch {
            throw CommandFailure("cannot read the rollups from Redis: \(error)")
        }
        if let line = Self.siteLessDropsLine(siteLess.counts) { print("\n" + line) }
        if !siteLess.damaged.isEmpty {
            Self.note("damaged all-sites drop counts left out, not written by pixeld consume: \(siteLess.damaged.map(\.description).joined(separator: ", "))")
        }
    }

    /// `pixeld report: TEXT` on standard error: the report itself (text or JSON) stays as it is.
    static func note(_ text: String) {
        let line = "pixeld report: \(text)\n"
        _ = line.utf8CString.withUnsafeBufferPointer { write(STDERR_FILENO, $0.baseAddress, $0.count - 1) }
    }

    /// The drops of hits that never got a site, from the all-sites drop counts, as one line; `nil`
    /// when there are none. (The counts' other reasons are every site's own drops.)
    static func siteLessDropsLine(_ drops: [String: Int]) -> String? {
        let siteLess = Set(DroppedHit.reasonsWithoutSite.map(\.rawValue))
        let counted = drops.filter { $0.value != 0 && siteLess.contains($0.key) }
        guard !counted.isEmpty else { return nil }
        return "Dropped before a site was known (hits of any site): \(Report.dropsText(counted))"
    }
}
