package import ArgumentParser
import Logging
import PixeldCLI
import RespBridge
import ServiceLifecycle
import UnixSignals
import SyslogIngest

#if canImport(Glibc)
import Glibc
#endif

/// `pixeld ingest`: receive syslog datagrams and push each accepted message into a Redis list.
package struct IngestCommand: AsyncParsableCommand {
    package static let configuration = CommandConfiguration(
        commandName: "ingest",
        abstract: "Receive syslog (UDP, unix datagram, TCP) and LPUSH each message of the kept facilities (local3 by default) into the Redis list named after its program.",
        discussion: """
            Each datagram is parsed as RFC 5424 or RFC 3164 (as nginx, logger, glibc and Python send it). \
            Messages of the configured facilities are pushed with LPUSH to the list <key-prefix><program>, \
            the value byte-for-byte what the sender wrote; everything else is dropped and counted by reason \
            (malformed, filtered, no_program, bad_program, oversize, truncated). SIGTERM or SIGINT drains the sockets, \
            flushes to Redis and exits; SIGHUP, SIGUSR1 and SIGUSR2 are logged and ignored.
            """
    )

    @OptionGroup var global: GlobalOptions

    @Option(help: ArgumentHelp("UDP address to listen on, HOST:PORT or [IPV6]:PORT (IPv6 only: add 0.0.0.0:PORT for IPv4); repeatable. Default 127.0.0.1:5514 when no listener is given. Env: PIXELD_UDP.", valueName: "host:port"))
    var udp: [String] = []

    @Option(help: ArgumentHelp("TCP address for syslog forwarders (rsyslog omfwd, syslog-ng), HOST:PORT or [IPV6]:PORT (IPv6 only); RFC 6587 octet counting or LF framing, detected per connection; repeatable. Env: PIXELD_TCP.", valueName: "host:port"))
    var tcp: [String] = []

    @Option(help: ArgumentHelp("Unix datagram socket to create and listen on (a stale socket file is replaced; one that a running process is bound to is an error); repeatable. Env: PIXELD_UNIX.", valueName: "path"))
    var unix: [String] = []

    @Option(help: ArgumentHelp("Permission bits of the unix sockets, octal. Default 0666, which lets nginx's unprivileged workers write. Env: PIXELD_UNIX_MODE.", valueName: "mode"))
    var unixMode: String?

    @Option(help: ArgumentHelp("Owner of the unix sockets, USER, USER:GROUP or :GROUP (names or numbers), e.g. :www-data with --unix-mode 0660 (pixeld must be in the group, or have CAP_CHOWN). Default: the user running pixeld. Env: PIXELD_UNIX_OWNER.", valueName: "user[:group]"))
    var unixOwner: String?

    @Option(help: ArgumentHelp("Facilities to keep, comma-separated (e.g. local3,local4), or all; names as in syslog.h (cron is 9; nginx's facility=cron is 15, solaris-cron here; security is auth, 4) or codes 0–23. Others are dropped as 'filtered'. Default local3. Env: PIXELD_FACILITY.", valueName: "list"))
    var facility: String?

    @Option(help: ArgumentHelp("Prefix put before the program name to form the Redis key. Default none. Env: PIXELD_KEY_PREFIX.", valueName: "text"))
    var keyPrefix: String?

    @Option(help: ArgumentHelp("Accept only these programs (repeatable); others are dropped as 'bad_program'. Default: any name of 1–64 bytes of [A-Za-z0-9_.:/-]. Env: PIXELD_PROGRAM.", valueName: "name"))
    var program: [String] = []

    @Option(parsing: .unconditional, help: ArgumentHelp("Largest datagram accepted; larger ones are dropped as 'oversize', never truncated. Default 65535. Env: PIXELD_MAX_MESSAGE_BYTES.", valueName: "bytes"))
    var maxMessageBytes: Int?

    @Option(parsing: .unconditional, help: ArgumentHelp("Kernel receive buffer (SO_RCVBUF) per socket, 0 for the kernel's default; a warning is logged when the kernel caps it. Default 4194304. Env: PIXELD_RECEIVE_BUFFER_BYTES.", valueName: "bytes"))
    var receiveBufferBytes: Int?

    @Option(parsing: .unconditional, help: ArgumentHelp("Nice value (-20…19) of the datagram receive threads, so they pre-empt the writer, a Redis on the same core and other processes when datagrams arrive (a unix socket's queue holds only net.unix.max_dgram_qlen datagrams). Lowering it needs CAP_SYS_NICE or RLIMIT_NICE; without, the threads keep the process's priority (logged at info for the default, as a warning when asked for). Default -10. Env: PIXELD_RECEIVE_NICE.", valueName: "n"))
    var receiveNice: Int?

    @Option(parsing: .unconditional, help: ArgumentHelp("Memory queue between the receivers and the Redis writer, in bytes; when full, receivers wait. Default 1048576. Env: PIXELD_BUFFER_BYTES.", valueName: "bytes"))
    var bufferBytes: Int?

    @Option(parsing: .unconditional, help: ArgumentHelp("How long the first message of a batch may wait for more before the flush, in milliseconds (0 = flush at once). Longer means fewer, larger commits: less CPU for Redis, more latency (e.g. 2: ~19 messages per commit at 10k msg/s instead of ~11). Default 1. Env: PIXELD_FLUSH_INTERVAL_MS.", valueName: "ms"))
    var flushIntervalMs: Int?

    @Option(help: ArgumentHelp("Directory of the disk spool: when Redis fails, a batch that failed twice (or once, with the memory queue half full) is written here, and everything after it follows, replayed in order when Redis is back (and on the next start). Default: no spool, messages wait in memory. Env: PIXELD_SPOOL.", valueName: "dir"))
    var spool: String?

    @Option(parsing: .unconditional, help: ArgumentHelp("Most bytes of spooled records not yet replayed; beyond it, while Redis fails, messages are dropped as 'spool_full'. Default 1073741824. Env: PIXELD_SPOOL_MAX_BYTES.", valueName: "bytes"))
    var spoolMaxBytes: Int?

    @Option(help: ArgumentHelp("When spooled records reach the disk: always (fdatasync per batch: nothing accepted is lost), interval:MS, or never (left to the kernel). Default always. Env: PIXELD_SPOOL_SYNC.", valueName: "policy"))
    var spoolSync: String?

    @Option(help: ArgumentHelp("Serve Prometheus text at http://HOST:PORT/metrics and a health check at /healthz. Default: off. Env: PIXELD_METRICS.", valueName: "host:port"))
    var metrics: String?

    @Option(parsing: .unconditional, help: ArgumentHelp("Most values a list may hold; 0 = no limit. Default 0. Env: PIXELD_MAX_LIST_LENGTH.", valueName: "n"))
    var maxListLength: Int?

    @Option(help: ArgumentHelp("At --max-list-length: hold (keep new messages queued/spooled until the consumer makes room) or drop-oldest (push and trim the oldest, counted as pixeld_redis_trimmed_total). Default hold. Env: PIXELD_WHEN_FULL.", valueName: "policy"))
    var whenFull: String?

    @Option(parsing: .unconditional, help: ArgumentHelp("On SIGTERM, how long to keep trying to flush to Redis before giving up, in seconds. Default 10. Env: PIXELD_SHUTDOWN_TIMEOUT.", valueName: "seconds"))
    var shutdownTimeout: Int?

    /// For ArgumentParser: the flags are set from the command line afterwards.
    package init() {}

    /// Binds every listener, starts the writer (and spool, metrics server) and runs until SIGTERM or
    /// SIGINT, then drains within `--shutdown-timeout`.
    package func run() async throws {
        let logger = Bootstrap.logging(level: try global.level(), label: "pixeld.ingest")
        await IgnoredSignals.logWhenReceived(logger: logger)
        Bootstrap.releaseCodePages(now: logger, again: .seconds(1))
        Bootstrap.raiseOpenFileLimit(logger: logger)
        let settings = try IngestSettings(command: self)
        let registry = Bootstrap.metrics()
        let queue = PushQueue(capacityBytes: settings.bufferBytes)
        var spool: Spool?
        if let directory = settings.spoolDirectory {
            do {
                spool = try Spool(directory: directory, maxBytes: settings.spoolMaxBytes, sync: settings.spoolSync)
            } catch where error.isInUse {
                throw CommandFailure("spool directory \(directory) is in use by another pixeld ingest")
            } catch {
                throw CommandFailure("--spool: \(error)")
            }
            if let cut = spool?.bytesCutAtOpen, cut > 0 {
                logger.error(
                    "spool: a torn or damaged record was cut off with what followed it in its segment; those messages are lost",
                    metadata: ["pixeld.spool": "\(directory)", "bytes": "\(cut)"]
                )
            }
            for file in spool?.filesSetAsideAtOpen ?? [] {
                logger.error("spool: a segment could not be read and was set aside; its messages are not replayed", metadata: ["file": "\(file)"])
            }
        }
        let writer = LPushWriter(queue: queue, redis: settings.redis, options: settings.writerOptions, spool: spool, logger: logger)
        var listeners: [any SyslogListener] = []
        for address in settings.addresses {
            let socket: DatagramSocket
            do {
                socket = try DatagramSocket(binding: address, receiveBufferBytes: settings.receiveBufferBytes)
            } catch {
                throw CommandFailure("cannot listen on \(address): \(error)")
            }
            if socket.receiveBufferIsShort(of: settings.receiveBufferBytes) {
                logger.warning(
                    "kernel capped the receive buffer; raise net.core.rmem_max or run with CAP_NET_ADMIN",
                    metadata: ["pixeld.listener": "\(address)", "requested": "\(settings.receiveBufferBytes)", "granted": "\(socket.grantedReceiveBufferBytes)"]
                )
            }
            do {
                try settings.unixOwner.map { owner throws(SyslogIngestError) in try socket.changeOwner(to: owner) }
            } catch {
                throw CommandFailure(error.description)
            }
            let sink = QueueSink(queue: queue, keyPrefix: settings.rules.programs.keyPrefix)
            let listener = DatagramListener(
                socket: socket,
                rules: settings.rules,
                sink: sink,
                logger: logger,
                threadNice: settings.receiveNice,
                threadNiceFailureLevel: settings.receiveNiceIsDefault ? .info : .warning
            )
            // A busy UDP receiver gathers datagrams in pauses that end as the writer's linger does (see
            // `DatagramListener.pauseNanoseconds(forLingerNanoseconds:)`); no linger, no pause.
            listener.pauseNanoseconds = DatagramListener.pauseNanoseconds(
                forLingerNanoseconds: settings.writerOptions.lingerNanoseconds
            )
            listeners.append(listener)
        }
        for (host, port) in settings.tcpAddresses {
            let sink = QueueSink(queue: queue, keyPrefix: settings.rules.programs.keyPrefix)
            do {
                listeners.append(try StreamListener(host: host, port: port, rules: settings.rules, sink: sink, logger: logger))
            } catch {
                throw CommandFailure("cannot listen on \(StreamListener.address(host: host, port: port)): \(error)")
            }
        }
        var metricsServer: MetricsHTTPServer?
        if let (host, port) = settings.metrics {
            let metrics = IngestMetrics(registry: registry, listeners: listeners.map(\.statistics), writer: writer.statistics, queue: queue)
            do {
                metricsServer = try MetricsHTTPServer(host: host, port: port, logger: logger) { path in
                    switch path {
                    case "/metrics": return .init(status: "200 OK", contentType: "text/plain; version=0.0.4", body: metrics.render())
                    case "/healthz": return .init(status: "200 OK", contentType: "application/json", body: metrics.health())
                    default: return .init(status: "404 Not Found", contentType: "text/plain", body: Array("try /metrics or /healthz\n".utf8))
                    }
                }
            } catch {
                throw CommandFailure("cannot serve --metrics: \(error)")
            }
        }
        let service = IngestService(
            listeners: listeners,
            writer: writer,
            queue: queue,
            metricsServer: metricsServer,
            shutdownTimeoutNanoseconds: Int64(settings.shutdownTimeoutSeconds) * 1_000_000_000,
            logger: logger
        )
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: service)],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        try await group.run()
    }
}

/// The ingest flags resolved against the environment and defaults, and validated.
struct IngestSettings {
    var redis: RedisConfiguration
    var addresses: [ListenAddress]
    var tcpAddresses: [(String, Int)] = []
    var rules: IngestRules
    var receiveBufferBytes: Int
    var receiveNice: Int
    var receiveNiceIsDefault: Bool
    var bufferBytes: Int
    var writerOptions: LPushWriter.Options
    var shutdownTimeoutSeconds: Int
    var spoolDirectory: String?
    var spoolMaxBytes: Int
    var spoolSync: Spool.SyncPolicy
    var metrics: (String, Int)?
    var unixOwner: UnixOwner?

    init(command: IngestCommand) throws {
        redis = try command.global.redisConfiguration()
        (addresses, tcpAddresses) = try Self.listenAddresses(command)

        let maxMessageBytes = try Self.integer(command.maxMessageBytes, "max-message-bytes", 65535, 1...(1 << 20))
        receiveBufferBytes = try Self.integer(command.receiveBufferBytes, "receive-buffer-bytes", 4 << 20, 0...(1 << 30))
        bufferBytes = try Self.integer(command.bufferBytes, "buffer-bytes", 1 << 20, (64 << 10)...(1 << 34))
        receiveNiceIsDefault = command.receiveNice == nil && Environment.value(forFlag: "receive-nice") == nil
        receiveNice = try Self.integer(command.receiveNice, "receive-nice", -10, -20...19)
        let flushMs = try Self.integer(command.flushIntervalMs, "flush-interval-ms", 1, 0...1000)
        shutdownTimeoutSeconds = try Self.integer(command.shutdownTimeout, "shutdown-timeout", 10, 0...3600)
        spoolDirectory = command.spool ?? Environment.value(forFlag: "spool")
        spoolMaxBytes = try Self.integer(command.spoolMaxBytes, "spool-max-bytes", 1 << 30, (1 << 20)...(1 << 50))
        spoolSync = try Self.spoolSync(command)
        if let text = command.metrics ?? Environment.value(forFlag: "metrics") {
            metrics = try ListenAddress.flagValue(text, flag: "metrics")
        }
        writerOptions = try Self.writerOptions(command, flushMilliseconds: flushMs)
        try Self.refuseFlagsWithoutEffect(command, spoolDirectory: spoolDirectory, writerOptions: writerOptions, addresses: addresses)
        unixOwner = try Self.unixOwner(command)
        rules = try Self.rules(command, maxMessageBytes: maxMessageBytes)
    }

    /// An integer flag (or its environment variable), its default, checked against `range`.
    private static func integer(_ value: Int?, _ flag: String, _ fallback: Int, _ range: ClosedRange<Int>) throws -> Int {
        try Environment.integer(value, flag: flag, default: fallback, range: range)
    }

    /// The datagram sockets (`--udp`, `--unix` with `--unix-mode`) and the TCP listeners; UDP on
    /// 127.0.0.1:5514 when none is given.
    private static func listenAddresses(_ command: IngestCommand) throws -> ([ListenAddress], [(String, Int)]) {
        let modeText = Environment.resolve(command.unixMode, flag: "unix-mode", default: "0666")
        guard let mode = UInt32(modeText, radix: 8), mode <= 0o7777 else {
            throw ValidationError("--unix-mode: '\(modeText)' is not an octal mode such as 0666")
        }
        var addresses: [ListenAddress] = []
        var tcpAddresses: [(String, Int)] = []
        do {
            for text in Environment.resolve(command.udp, flag: "udp") {
                addresses.append(try ListenAddress.udp(parsing: text))
            }
            for text in Environment.resolve(command.tcp, flag: "tcp") {
                tcpAddresses.append(try ListenAddress.parseHostPort(text, flag: "tcp"))
            }
        } catch {
            throw ValidationError(error.description)
        }
        for path in Environment.resolve(command.unix, flag: "unix") {
            guard !path.isEmpty else {
                throw ValidationError("--unix: empty path")
            }
            addresses.append(.unix(path: path, mode: mode))
        }
        if addresses.isEmpty && tcpAddresses.isEmpty { addresses = [.udp(host: "127.0.0.1", port: 5514)] }
        return (addresses, tcpAddresses)
    }

    /// `--spool-sync`: always, never or interval:MS.
    private static func spoolSync(_ command: IngestCommand) throws -> Spool.SyncPolicy {
        let syncText = Environment.resolve(command.spoolSync, flag: "spool-sync", default: "always")
        switch syncText {
        case "always": return .always
        case "never": return .never
        default:
            guard syncText.hasPrefix("interval:"), let ms = Int(syncText.dropFirst("interval:".count)), ms > 0 else {
                throw ValidationError("--spool-sync: '\(syncText)' is not always, never or interval:MS")
            }
            return .interval(milliseconds: ms)
        }
    }

    /// The writer's linger (`--flush-interval-ms`, resolved already) and list limit (`--max-list-length`,
    /// `--when-full`).
    private static func writerOptions(_ command: IngestCommand, flushMilliseconds: Int) throws -> LPushWriter.Options {
        var writerOptions = LPushWriter.Options()
        writerOptions.lingerNanoseconds = Int64(flushMilliseconds) * 1_000_000
        writerOptions.maxListLength = try integer(command.maxListLength, "max-list-length", 0, 0...Int(Int32.max))
        switch Environment.resolve(command.whenFull, flag: "when-full", default: "hold") {
        case "hold": writerOptions.dropOldestWhenFull = false
        case "drop-oldest": writerOptions.dropOldestWhenFull = true
        case let other: throw ValidationError("--when-full: '\(other)' is not hold or drop-oldest")
        }
        return writerOptions
    }

    /// Flags that would be accepted and change nothing are refused, as consume refuses its analytics
    /// flags without a site: an operator must not believe a socket is locked down.
    private static func refuseFlagsWithoutEffect(
        _ command: IngestCommand, spoolDirectory: String?, writerOptions: LPushWriter.Options, addresses: [ListenAddress]
    ) throws {
        if spoolDirectory == nil {
            try Environment.refuse(
                [
                    ("--spool-max-bytes", Environment.isGiven(command.spoolMaxBytes, flag: "spool-max-bytes")),
                    ("--spool-sync", Environment.isGiven(command.spoolSync, flag: "spool-sync")),
                ],
                needing: "--spool DIR: without it nothing is spooled"
            )
        }
        if writerOptions.maxListLength == 0 {
            try Environment.refuse(
                [("--when-full drop-oldest", writerOptions.dropOldestWhenFull)],
                needing: "--max-list-length N: without a limit no list is ever full"
            )
        }
        if !addresses.contains(where: { if case .unix = $0 { true } else { false } }) {
            try Environment.refuse(
                [
                    ("--unix-mode", Environment.isGiven(command.unixMode, flag: "unix-mode")),
                    ("--unix-owner", Environment.isGiven(command.unixOwner, flag: "unix-owner")),
                ],
                needing: "--unix PATH: they apply to unix sockets only"
            )
        }
    }

    /// `--unix-owner`, parsed (names are looked up when the sockets are made).
    private static func unixOwner(_ command: IngestCommand) throws -> UnixOwner? {
        guard let owner = command.unixOwner ?? Environment.value(forFlag: "unix-owner") else { return nil }
        do {
            return try UnixOwner(parsing: owner)
        } catch {
            throw ValidationError(error.description)
        }
    }

    /// The routing rules: `--facility`, `--key-prefix`, `--program`, `--max-message-bytes`. Each error
    /// names its flag.
    private static func rules(_ command: IngestCommand, maxMessageBytes: Int) throws -> IngestRules {
        let facilities: FacilityFilter
        do {
            facilities = try FacilityFilter(parsing: Environment.resolve(command.facility, flag: "facility", default: "local3"))
        } catch {
            throw ValidationError("--facility: \(error.description)")
        }
        let prefix = Environment.resolve(command.keyPrefix, flag: "key-prefix", default: "")
        let allow = Environment.resolve(command.program, flag: "program")
        do {
            let programs = try ProgramPolicy(keyPrefix: Array(prefix.utf8), allowList: allow.isEmpty ? nil : Set(allow))
            return IngestRules(facilities: facilities, programs: programs, maxMessageBytes: maxMessageBytes)
        } catch {
            let flag = (try? ProgramPolicy(keyPrefix: Array(prefix.utf8), allowList: nil)) == nil ? "--key-prefix" : "--program"
            throw ValidationError("\(flag): \(error.description)")
        }
    }
}
