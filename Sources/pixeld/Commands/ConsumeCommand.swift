import ArgumentParser
import Logging
import PixelAnalytics
import PixeldCLI
import PixeldIngest
import Prometheus
import RespBridge
import SyslogIngest
import ServiceLifecycle
import UnixSignals

#if canImport(Glibc)
import Glibc
#endif

/// `pixeld consume PROGRAM`: a reliable worker on the list `PROGRAM`.
struct ConsumeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "consume",
        abstract: "Pop events reliably from a Redis list; print them as JSON lines, or with --site turn them into privacy-safe analytics.",
        discussion: """
            Events move atomically from PROGRAM into PROGRAM:processing:<consumer-id> and are removed only \
            after their JSON lines are written, so a consumer killed at any moment loses nothing; processing \
            lists of consumers whose heartbeat (PROGRAM:consumer:<id>, --heartbeat-seconds) expired are returned to PROGRAM. \
            Several consumers may work on one list, each with its own id: a consumer whose id another running \
            consumer holds stops with status 1. Values that cannot be decoded go to PROGRAM:dead.
            """
    )

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The list to consume: the syslog program, e.g. pixel (with the ingest --key-prefix, if any).")
    var program: String

    @Option(help: ArgumentHelp("This consumer's id, unique among the consumers of the list, and the same across restarts. Default <hostname>-<pid>; required with --output or --archive. Env: PIXELD_CONSUMER_ID.", valueName: "id"))
    var consumerId: String?

    @Option(help: ArgumentHelp("Append the JSON lines to this file instead of standard output, exactly once even across crashes (its acknowledged length is kept in Redis as PROGRAM:output:<consumer-id>). One file per consumer: a run holds a regular file locked, and a second run on it fails at start. Env: PIXELD_OUTPUT.", valueName: "file"))
    var output: String?

    @Option(parsing: .unconditional, help: ArgumentHelp("Events per batch at most. Default 512. Env: PIXELD_BATCH_SIZE.", valueName: "n"))
    var batchSize: Int?

    @Option(parsing: .unconditional, help: ArgumentHelp("Seconds this consumer's heartbeat lives without renewal (renewed every third). A dead consumer's events are returned to PROGRAM, and a restart after a crash with the same id starts, at most this long after. Default 15. Env: PIXELD_HEARTBEAT_SECONDS.", valueName: "n"))
    var heartbeatSeconds: Int?

    @Option(parsing: .unconditional, help: ArgumentHelp("On SIGTERM/SIGINT, how long to wait for Redis to take the last ack and the events given back, in seconds; past it (a stalled Redis) the consumer exits 0 without waiting, and what it had taken stays in its processing list for the next start with this id (or another consumer once the heartbeat expires). Default 5. Env: PIXELD_SHUTDOWN_TIMEOUT.", valueName: "seconds"))
    var shutdownTimeout: Int?

    @Option(help: ArgumentHelp("Serve Prometheus text at http://HOST:PORT/metrics (events consumed, dead-lettered, recovered, ack conflicts and command errors, handler failures) and /healthz (200 while Redis answers and batches are acked, else 503). Default: off. Env: PIXELD_METRICS.", valueName: "host:port"))
    var metrics: String?

    @Option(name: .customLong("site"), help: ArgumentHelp("Analytics: accept hits for this site (its host name, e.g. example.com; www. and ports ignored). Repeatable. With at least one site the consumer validates, drops bots, anonymises, enriches and rolls up hits into Redis (pixeld:site:SITE:DAY:*) instead of printing raw events. Env: PIXELD_SITE (space-separated).", valueName: "host"))
    var sites: [String] = []

    @Option(help: ArgumentHelp("Analytics: write the enriched, anonymised hits (and the dropped ones with their reasons) as JSON lines to DIR/YYYY-MM-DD.<consumer-id>.jsonl, exactly once, gzip-compressed once the day is closed, deleted after --retention-days. Env: PIXELD_ARCHIVE.", valueName: "dir"))
    var archive: String?

    @Option(parsing: .unconditional, help: ArgumentHelp("Analytics: days to keep rollups and archive files after the day ends. Default 400. Env: PIXELD_RETENTION_DAYS.", valueName: "n"))
    var retentionDays: Int?

    @Flag(help: ArgumentHelp("Analytics: drop hits sent with DNT: 1 or Sec-GPC: 1 (reasons dnt, gpc). Env: PIXELD_RESPECT_DNT=1."))
    var respectDnt = false

    @Option(parsing: .unconditional, help: ArgumentHelp("Analytics: distinct values kept per breakdown, site and day; the rest are counted as (other) (hours and devices are never capped). Default 1000. Env: PIXELD_BREAKDOWN_CAP.", valueName: "n"))
    var breakdownCap: Int?

    @Option(help: ArgumentHelp("Analytics: a MaxMind DB (GeoLite2-Country.mmdb, GeoIP2-City.mmdb, DB-IP country lite…) for the country of hits that carry no CDN country header. Read into memory at start; only the country code is kept. Env: PIXELD_GEOIP.", valueName: "file"))
    var geoip: String?

    @Option(parsing: .unconditional, help: ArgumentHelp("Analytics: hits older than this many hours are dropped (too_old); at most 24, so the day's visitor key still exists. Default 24. Env: PIXELD_MAX_AGE_HOURS.", valueName: "n"))
    var maxAgeHours: Int?

    func validate() throws {
        guard !program.isEmpty, program.utf8.count <= 200 else { throw ValidationError("PROGRAM must be 1–200 bytes") }
        // The lists ingest fills: no space or control byte in a key it makes, and none in pixeld's own
        // key space (a consumer there would move the analytics keys or another consumer's lists).
        guard !program.utf8.contains(where: { $0 <= 0x20 || $0 == 0x7F }) else {
            throw ValidationError("PROGRAM '\(program)' has a space or control character; ingest never makes such a key (name the list, e.g. pixel)")
        }
        guard !ProgramPolicy.isReserved(key: Array(program.utf8)) else {
            throw ValidationError(
                "PROGRAM '\(program)' is in pixeld's own key space (pixeld:…, or a list's :processing:, :consumer:, :dead… keys); name the list ingest fills, e.g. pixel"
            )
        }
        let analytics = !Environment.resolve(sites, flag: "site").isEmpty
        // Analytics flags without a site would be ignored, and the raw events (IPs, user agents)
        // printed: refused, whether they come from the command line or the environment.
        let respectsDnt = try Environment.flag(respectDnt, flag: "respect-dnt")
        func given(_ value: Any?, _ flag: String) -> Bool { Environment.isGiven(value, flag: flag) }
        if !analytics {
            try Environment.refuse(
                [
                    ("--archive", given(archive, "archive")), ("--retention-days", given(retentionDays, "retention-days")),
                    ("--respect-dnt", respectsDnt), ("--breakdown-cap", given(breakdownCap, "breakdown-cap")),
                    ("--geoip", given(geoip, "geoip")), ("--max-age-hours", given(maxAgeHours, "max-age-hours")),
                ],
                needing: "at least one --site (or PIXELD_SITE): without one, consume prints the raw events"
            )
        }
        // With an archive the lines go to its day files, and --output would stay empty.
        if analytics && given(archive, "archive") && given(output, "output") {
            throw ValidationError(
                "--output and --archive (flag or PIXELD_* variable) cannot be combined: with --archive the JSON lines go to the archive's day files"
            )
        }
        // The files' acknowledged lengths are kept per consumer id: a run under a new id cannot cut
        // back what a crashed run wrote but did not acknowledge, and would write it again.
        let writesFiles = (output ?? Environment.value(forFlag: "output")) != nil
            || (analytics && (archive ?? Environment.value(forFlag: "archive")) != nil)
        if writesFiles && consumerId == nil && Environment.value(forFlag: "consumer-id") == nil {
            throw ValidationError(
                "--output and --archive need a fixed --consumer-id (e.g. the host name; env PIXELD_CONSUMER_ID): the default <hostname>-<pid> changes at every start, and a restart would write again what a crashed run wrote but had not acknowledged"
            )
        }
    }

    func run() async throws {
        let logger = Bootstrap.logging(level: try global.level(), label: "pixeld.consume")
        await IgnoredSignals.logWhenReceived(logger: logger)
        Bootstrap.releaseCodePages(now: logger, again: .seconds(1))
        let redis = try global.redisConfiguration()
        var options = ReliableListConsumer.Options()
        options.batchSize = try Environment.integer(batchSize, flag: "batch-size", default: 512, range: 1...100_000)
        options.heartbeatSeconds = try Environment.integer(heartbeatSeconds, flag: "heartbeat-seconds", default: 15, range: 3...300)
        // Well under systemd's TimeoutStopSec=10 (deploy/pixeld-consume.service).
        options.shutdownTimeoutSeconds = try Environment.integer(shutdownTimeout, flag: "shutdown-timeout", default: 5, range: 0...3600)
        var metricsAddress: (host: String, port: Int)?
        if let text = metrics ?? Environment.value(forFlag: "metrics") {
            metricsAddress = try ListenAddress.flagValue(text, flag: "metrics")
        }
        // Before any instrument is made: swift-metrics binds them to the factory of their creation.
        let registry = metricsAddress == nil ? nil : Bootstrap.metrics()
        let id = consumerId ?? Environment.value(forFlag: "consumer-id") ?? Self.defaultConsumerID()
        let siteNames = Environment.resolve(sites, flag: "site")
        if !siteNames.isEmpty { options.ackFunctions = AnalyticsHandler.ackFunctions }
        let consumer = ReliableListConsumer(list: program, consumerID: id, redis: redis, options: options, logger: logger) {
            // Once Redis has answered: before, the consumer may be retrying to connect.
            logger.info("consume ready", metadata: ["redis.key": "\(program)", "consumer": "\(id)"])
        }
        DeadLetters.name(list: consumer.deadList)
        // Bound before anything logs: a port already taken is then the one line the run prints.
        var metricsServer: MetricsHTTPServer?
        if let metricsAddress, let registry {
            do {
                metricsServer = try MetricsHTTPServer(host: metricsAddress.host, port: metricsAddress.port, logger: logger) { path in
                    switch path {
                    case "/metrics":
                        return .init(status: "200 OK", contentType: "text/plain; version=0.0.4", body: registry.emitToBuffer())
                    case "/healthz":
                        guard let problem = Self.healthProblem(of: consumer) else {
                            return .init(status: "200 OK", contentType: "text/plain", body: Array("ok\n".utf8))
                        }
                        return .init(status: "503 Service Unavailable", contentType: "text/plain", body: Array("\(problem)\n".utf8))
                    default:
                        return .init(status: "404 Not Found", contentType: "text/plain", body: Array("try /metrics or /healthz\n".utf8))
                    }
                }
            } catch {
                throw CommandFailure("cannot serve --metrics: \(error)")
            }
        }
        let printer: EventPrinter
        if let path = output ?? Environment.value(forFlag: "output") {
            do {
                printer = try EventPrinter(logger: logger, path: path, offsetKey: consumer.keys.outputLength)
            } catch {
                throw CommandFailure("--output: \(error)")
            }
        } else {
            printer = EventPrinter(logger: logger)
        }
        let start: @Sendable (ReliableListConsumer) -> Void
        if siteNames.isEmpty {
            start = { consumer in
                consumer.start(prepare: { try printer.prepare($0) }, handler: { batch, _ in try printer.handle(batch) })
            }
        } else {
            let analytics = try analyticsHandler(
                sites: siteNames, keys: consumer.keys, connection: consumer.makeHandlerConnection(), printer: printer, logger: logger
            )
            start = { consumer in
                consumer.start(
                    prepare: { try analytics.prepare($0) }, process: { try analytics.process($0) },
                    request: { analytics.request($0) }, resolve: { try analytics.resolve($0, replies: $1, aheadOfAck: $2) },
                    finish: { try analytics.finish($0, connection: $1) }
                )
            }
        }
        metricsServer?.start()
        let service = ConsumeService(consumer: consumer, start: start, logger: logger)
        let group = ServiceGroup(
            configuration: .init(services: [.init(service: service)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        )
        do {
            try await group.run()
        } catch {
            await metricsServer?.stop()
            throw error
        }
        await metricsServer?.stop()
    }

    private func analyticsHandler(
        sites siteNames: [String], keys: ConsumerKeys, connection: RedisConnection, printer: EventPrinter, logger: Logger
    ) throws -> AnalyticsHandler {
        let sites: SiteList
        do {
            sites = try SiteList(siteNames)
        } catch {
            throw ValidationError("--site: \(error)")
        }
        let retention = try Environment.integer(retentionDays, flag: "retention-days", default: 400, range: 1...36_500)
        let cap = try Environment.integer(breakdownCap, flag: "breakdown-cap", default: 1000, range: 10...1_000_000)
        let maxAge = try Environment.integer(maxAgeHours, flag: "max-age-hours", default: 24, range: 1...24)
        let dnt = try Environment.flag(respectDnt, flag: "respect-dnt")
        var geoIP: GeoIPDatabase?
        if let path = geoip ?? Environment.value(forFlag: "geoip") {
            do {
                geoIP = try GeoIPDatabase(path: path)
            } catch {
                throw CommandFailure("--geoip: \(error)")
            }
        }
        let processor = HitProcessor(
            validator: HitValidator(sites: sites, maxAgeSeconds: Double(maxAge) * 3600),
            respectPrivacySignals: dnt, geoIP: geoIP
        )
        let rollups = RollupConfiguration(retentionDays: retention, breakdownCap: cap)
        var archiveWriter: ArchiveWriter?
        if let directory = archive ?? Environment.value(forFlag: "archive") {
            do {
                let writer = try ArchiveWriter(
                    directory: directory, consumerID: keys.consumerID, retentionDays: retention,
                    closeAfterSeconds: Double(maxAge) * 3600 + 3600
                )
                try writer.lockForConsumer()
                archiveWriter = writer
            } catch {
                throw CommandFailure("--archive: \(error)")
            }
        }
        let handler = AnalyticsHandler(
            logger: logger, processor: processor, rollups: rollups, connection: connection, archive: archiveWriter,
            archiveKey: keys.archiveLengths, printer: archiveWriter == nil ? printer : nil
        )
        logger.info(
            "analytics on",
            metadata: [
                "sites": "\(sites.names.joined(separator: " "))", "archive": "\(archiveWriter?.directory ?? "-")",
                "retention_days": "\(retention)", "respect_dnt": "\(dnt)", "bot_list": "\(BotDetector.listVersion)",
                "geoip": "\(geoIP == nil ? "-" : "on")",
            ]
        )
        return handler
    }

    /// What `/healthz` answers with a 503, or `nil` for 200 `ok`: Redis not answering at all (down,
    /// refusing connections, timing out), Redis answering with an error (named by its prefix, with
    /// what it usually means), or the handler failing batches while Redis answers.
    static func healthProblem(of consumer: ReliableListConsumer) -> String? {
        if !consumer.isAnswering {
            guard let reply = consumer.redisErrorReply else { return "redis not answering" }
            let prefix = reply.prefix { $0 != " " }
            let meaning =
                switch prefix {
                case "READONLY": "a replica? point --redis at the master"
                case "UNBLOCKED": "it changed role, made a replica? point --redis at the master"
                case "MASTERDOWN": "a replica that lost its link to the master"
                case "LOADING": "loading its data set into memory; it serves again once loaded"
                case "NOPERM", "NOAUTH", "WRONGPASS": "check the user and password in --redis and its ACL"
                default: ""
                }
            // Another error: its text (the prefix first), once.
            return meaning.isEmpty ? "redis answers \(reply.prefix(200))" : "redis answers \(prefix) (\(meaning))"
        }
        return consumer.isHandlerFailing ? "batches failing (see the log), none acked since" : nil
    }

    static func defaultConsumerID() -> String {
        var name = [CChar](repeating: 0, count: 256)
        gethostname(&name, name.count)
        let host = String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return "\(host)-\(getpid())"
    }
}

/// The consumer as a service: runs until SIGTERM/SIGINT, then finishes the batch in hand (within
/// `--shutdown-timeout`, ``ReliableListConsumer/stop()``).
final class ConsumeService: Service, Sendable {
    let consumer: ReliableListConsumer
    /// Starts the consumer with its handler.
    let start: @Sendable (ReliableListConsumer) -> Void
    let logger: Logger

    init(consumer: ReliableListConsumer, start: @escaping @Sendable (ReliableListConsumer) -> Void, logger: Logger) {
        self.consumer = consumer
        self.start = start
        self.logger = logger
    }

    func run() async throws {
        start(consumer)
        // Until SIGTERM/SIGINT, or until the consumer stops by itself (another process took its id).
        await withTaskGroup(of: Void.self) { group in
            group.addTask { try? await gracefulShutdown() }
            group.addTask { await self.consumer.finished() }
            await group.next()
            group.cancelAll()
            await consumer.stop()
        }
        logger.info(
            "consume stopped",
            metadata: [
                "consumed": "\(consumer.consumed)", "dead_lettered": "\(consumer.deadLettered)", "recovered": "\(consumer.recovered)",
                "ack_conflicts": "\(consumer.ackConflicts)",
            ]
        )
        if let failure = consumer.failure { throw CommandFailure(failure) }
    }
}
