import ArgumentParser
import Hummingbird
import Logging
import PixelAnalytics
import PixeldCLI
import PixelDashboard
import PixeldIngest
import Prometheus
import RespBridge
import ServiceLifecycle
import SyslogIngest
import UnixSignals

#if canImport(Glibc)
import Glibc
#endif

/// `pixeld serve`: the dashboard, JSON API, live feed, `/metrics` and `/healthz` over the rollups.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the dashboard, the JSON API and the live feed (reads the Redis rollups; no database of its own).",
        discussion: """
            Pages: / (sites), /site?site=S[&period=today|7d|30d or &from=D&to=D]. API: /api/sites, \
            /api/stats?site&from&to (the object of `pixeld report --json`), /api/timeseries?site&from&to&interval, \
            /api/breakdown?site&from&to&dimension&limit[&format=csv], /api/counts?site, /api/count?site&path, \
            /api/realtime?site, /api/live?site (Server-Sent Events of what the consumer publishes on \
            pixeld:live:SITE). Operations: /metrics, /healthz. With --token (or PIXELD_TOKEN) every site but the \
            --public-site ones needs the token, as `Authorization: Bearer TOKEN` or through the /login form's cookie. \
            With --archive DIR (the consumer's --archive directory), the site page and /api/stats, /api/breakdown \
            and /api/timeseries take &filter=DIMENSION:VALUE (e.g. pages:/blog/, sources:Google, countries:DE) \
            and compute that view from the archive (ranges of at most 92 days).
            """
    )

    @OptionGroup var global: GlobalOptions

    @Option(help: ArgumentHelp("Address to listen on: IPV4:PORT, [IPV6]:PORT or localhost:PORT. Default 127.0.0.1:8088. Env: PIXELD_LISTEN.", valueName: "host:port"))
    var listen: String?

    @Option(help: ArgumentHelp("A site to show (repeatable). Default: every site with rollups in Redis. Env: PIXELD_SITE.", valueName: "host"))
    var site: [String] = []

    @Option(help: ArgumentHelp("Read-only access token; without it every site is public. Env: PIXELD_TOKEN.", valueName: "token"))
    var token: String?

    @Option(help: ArgumentHelp("A site anyone may see even with --token (repeatable). Env: PIXELD_PUBLIC_SITE.", valueName: "host"))
    var publicSite: [String] = []

    @Option(help: ArgumentHelp(
        "Without --token: a host name the dashboard answers to besides IP addresses and localhost (repeatable), e.g. the name nginx passes on as Host; others get 421 (a guard against DNS rebinding). Env: PIXELD_ALLOWED_HOST.",
        valueName: "name"
    ))
    var allowedHost: [String] = []

    @Option(parsing: .unconditional, help: ArgumentHelp("Redis connections (each on its own thread) for reads, 1–16. Default 2. Env: PIXELD_REDIS_CONNECTIONS.", valueName: "n"))
    var redisConnections: Int?

    @Option(help: ArgumentHelp(
        "The consumer's archive directory (its --archive): enables filtered views (&filter=DIMENSION:VALUE). Env: PIXELD_ARCHIVE.",
        valueName: "dir"
    ))
    var archive: String?

    @Option(parsing: .unconditional, help: ArgumentHelp(
        "Live-feed streams (/api/live) open at once from one client address, 1–256 (the whole feed's limit). Default 16. Env: PIXELD_LIVE_STREAMS_PER_CLIENT.",
        valueName: "n"
    ))
    var liveStreamsPerClient: Int?

    @Option(parsing: .unconditional, help: ArgumentHelp("Days the consumer keeps rollups after the day ends (its --retention-days): longer ranges are refused. Default 400. Env: PIXELD_RETENTION_DAYS.", valueName: "n"))
    var retentionDays: Int?

    @Option(parsing: .unconditional, help: ArgumentHelp(
        "Seconds a connection may stay idle between requests, or take to send a request's header, before it is closed, 1–3600. Default 60. A live-feed stream is never idle. Env: PIXELD_IDLE_TIMEOUT.",
        valueName: "seconds"
    ))
    var idleTimeout: Int?

    func run() async throws {
        let address = Environment.resolve(listen, flag: "listen", default: "127.0.0.1:8088")
        let (host, port) = try ListenAddress.flagValue(address, flag: "listen")
        func sites(_ values: [String], flag: String) throws -> [String] {
            try Environment.resolve(values, flag: flag).map { text in
                guard let name = SiteList.normalize(text) else { throw ValidationError("--\(flag): '\(text)' is not a host name") }
                return name
            }
        }
        let shown = try sites(site, flag: "site")
        let publicSites = try sites(publicSite, flag: "public-site")
        if !shown.isEmpty, let missing = publicSites.first(where: { !shown.contains($0) }) {
            throw ValidationError("--public-site: '\(missing)' is not one of the --site values")
        }
        let secret = token ?? Environment.value(forFlag: "token")
        if let secret, secret.count < 8 { throw ValidationError("--token: use at least 8 characters") }
        // An empty PIXELD_TOKEN= line (a value not filled in) would otherwise make every site public.
        if secret == nil, let raw = getenv("PIXELD_TOKEN"), raw.pointee == 0 {
            throw ValidationError("PIXELD_TOKEN is set but empty: give a token of at least 8 characters, or unset it to make every site public")
        }
        let allowedHosts = try Environment.resolve(allowedHost, flag: "allowed-host").map { text in
            guard let name = HostCheck.name(text) else {
                throw ValidationError("--allowed-host: '\(text)' is not a host name (letters, digits, hyphens and dots; no port)")
            }
            return name
        }
        if secret == nil {
            try Environment.refuse(
                [("--public-site", !publicSites.isEmpty)],
                needing: "--token (or PIXELD_TOKEN): without a token every site is public"
            )
        }
        if secret != nil, !allowedHosts.isEmpty {
            throw ValidationError(
                "--allowed-host (flag or PIXELD_* variable) has no effect with a token: the Host check guards only a dashboard without --token"
            )
        }
        let connections = try Environment.integer(redisConnections, flag: "redis-connections", default: 2, range: 1...16)
        let streamsPerClient = try Environment.integer(
            liveStreamsPerClient, flag: "live-streams-per-client", default: LiveFeed.defaultMaximumPerClient,
            range: 1...LiveFeed.defaultMaximumSubscribers
        )
        let retention = try Environment.integer(retentionDays, flag: "retention-days", default: 400, range: 1...36_500)
        let idleSeconds = try Environment.integer(idleTimeout, flag: "idle-timeout", default: 60, range: 1...3600)
        var archiveStore: ArchiveStore?
        if let directory = archive ?? Environment.value(forFlag: "archive") {
            var info = stat()
            guard stat(directory, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR, access(directory, R_OK | X_OK) == 0 else {
                throw CommandFailure("--archive: '\(directory)' is not a readable directory")
            }
            archiveStore = ArchiveStore(directory: directory)
        }
        let redis = try global.redisConfiguration()
        let logger = Bootstrap.logging(level: try global.level(), label: "pixeld.serve")
        await IgnoredSignals.logWhenReceived(logger: logger)
        let registry = Bootstrap.metrics()

        let reader = RedisReader(configuration: redis, threads: connections, logger: logger)
        let keys = RollupKeys()
        let live = LiveFeed(configuration: redis, keys: keys, maximumPerClient: streamsPerClient, logger: logger)
        let dashboard = Dashboard(
            store: RollupStore(reader: reader, keys: keys, logger: logger), live: live, archive: archiveStore,
            configuration: DashboardConfiguration(
                sites: shown, token: secret, publicSites: Set(publicSites), allowedHosts: allowedHosts, retentionDays: retention
            ),
            metricsText: { String(decoding: registry.emitToBuffer(), as: UTF8.self) }, logger: logger
        )
        let app = Application(
            router: dashboard.router(),
            // Without an idle timeout a client that connects and sends nothing, or half a header,
            // or keeps a connection after its response, holds it (and a file descriptor) forever. With
            // HTTP1Framing: HTTP/1.0 answered as such and closed, a 400 of the parser says why.
            server: .dashboardHTTP1(configuration: .init(idleTimeout: .seconds(Int64(idleSeconds)))),
            configuration: .init(address: .hostname(host, port: port), serverName: nil),
            services: [LiveFeedService(feed: live, reader: reader, archive: archiveStore)],
            onServerRunning: { _ in
                // Only once bound: a port already taken is then the one line the run prints, not
                // preceded by the feed's complaints about a Redis that is down too.
                live.start()
                logger.info(
                    "serve ready",
                    metadata: ["listen": "\(host):\(port)", "access": "\(secret == nil ? "every site public (no --token)" : "token required")"]
                )
            },
            logger: logger
        )
        // A shutdown that does not end within 8 s (a stuck request) is cut short by cancelling the
        // services, before systemd's SIGKILL (TimeoutStopSec=10 in deploy/pixeld-serve.service).
        var group = ServiceGroupConfiguration(services: [.init(service: app)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        group.maximumGracefulShutdownDuration = .seconds(8)
        do {
            try await ServiceGroup(configuration: group).run()
        } catch {
            throw CommandFailure("serve (\(address)): \(Self.reason(error))")
        }
        logger.info("serve stopped")  // as ingest and consume say when they end
    }

    /// An error's text; for a socket error, its errno's (NIO's reads `bind(descriptor:ptr:bytes:):
    /// Address already in use) (errno: 98)`).
    static func reason(_ error: any Error) -> String {
        let text = "\(error)"
        guard let marker = text.firstRange(of: "(errno: "), let code = Int32(text[marker.upperBound...].prefix(while: \.isNumber)) else {
            return text
        }
        return "\(text.prefix { $0 != "(" }.trimmingSuffix()): \(String(cString: strerror(code)))"
    }
}

extension StringProtocol {
    fileprivate func trimmingSuffix() -> Substring {
        var text = self[...]
        while text.last == " " || text.last == ":" { text = text.dropLast() }
        return Substring(text)
    }
}

/// At shutdown, stops the live feed's subscriber thread (started once the server is bound), the
/// read pool and the archive readers.
struct LiveFeedService: Service {
    let feed: LiveFeed
    let reader: RedisReader
    let archive: ArchiveStore?

    func run() async throws {
        try? await gracefulShutdown()
        await feed.stop()
        await reader.stop()
        await archive?.stop()
    }
}
