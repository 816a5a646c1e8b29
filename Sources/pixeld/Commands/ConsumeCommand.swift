import ArgumentParser
import Logging
import RespBridge
import ServiceLifecycle
import UnixSignals

#if canImport(Glibc)
import Glibc
#endif

/// `pixeld consume PROGRAM`: a reliable worker on the list `PROGRAM`.
struct ConsumeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "consume",
        abstract: "Pop events reliably from a Redis list and print one JSON object per event (jq-able).",
        discussion: """
            Events move atomically from PROGRAM into PROGRAM:processing:<consumer-id> and are removed only \
            after their JSON lines are written, so a consumer killed at any moment loses nothing; processing \
            lists of consumers whose heartbeat (PROGRAM:consumer:<id>, 15 s) expired are returned to PROGRAM. \
            Several consumers may work on one list. Values that cannot be decoded go to PROGRAM:dead.
            """
    )

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The list to consume: the syslog program, e.g. pixel (with the ingest --key-prefix, if any).")
    var program: String

    @Option(help: ArgumentHelp("This consumer's id, unique among the consumers of the list. Default <hostname>-<pid>. Env: PIXELD_CONSUMER_ID.", valueName: "id"))
    var consumerId: String?

    @Option(help: ArgumentHelp("Append the JSON lines to this file instead of standard output, exactly once even across crashes (its acknowledged length is kept in Redis as PROGRAM:output:<consumer-id>). One file per consumer id. Env: PIXELD_OUTPUT.", valueName: "file"))
    var output: String?

    @Option(help: ArgumentHelp("Events per batch at most. Default 512. Env: PIXELD_BATCH_SIZE.", valueName: "n"))
    var batchSize: Int?

    func validate() throws {
        guard !program.isEmpty, program.utf8.count <= 200 else { throw ValidationError("PROGRAM must be 1–200 bytes") }
    }

    func run() async throws {
        let logger = Bootstrap.logging(level: try global.level(), label: "pixeld.consume")
        let redis = try global.redisConfiguration()
        var options = ReliableListConsumer.Options()
        let batchText = batchSize.map(String.init) ?? Environment.value(forFlag: "batch-size") ?? "512"
        guard let batch = Int(batchText), (1...100_000).contains(batch) else {
            throw ValidationError("--batch-size: '\(batchText)' must be a whole number in 1…100000")
        }
        options.batchSize = batch
        let id = consumerId ?? Environment.value(forFlag: "consumer-id") ?? Self.defaultConsumerID()
        let consumer = ReliableListConsumer(list: program, consumerID: id, redis: redis, options: options, logger: logger)
        let printer: EventPrinter
        if let path = output ?? Environment.value(forFlag: "output") {
            do {
                printer = try EventPrinter(logger: logger, path: path, offsetKey: "\(program):output:\(id)")
            } catch {
                throw ValidationError("--output: \(error)")
            }
        } else {
            printer = EventPrinter(logger: logger)
        }
        let service = ConsumeService(consumer: consumer, printer: printer, logger: logger)
        let group = ServiceGroup(
            configuration: .init(services: [.init(service: service)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        )
        try await group.run()
    }

    static func defaultConsumerID() -> String {
        var name = [CChar](repeating: 0, count: 256)
        gethostname(&name, name.count)
        let host = String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return "\(host)-\(getpid())"
    }
}

/// The consumer as a service: runs until SIGTERM/SIGINT, then finishes the batch in hand.
final class ConsumeService: Service, Sendable {
    let consumer: ReliableListConsumer
    let printer: EventPrinter
    let logger: Logger

    init(consumer: ReliableListConsumer, printer: EventPrinter, logger: Logger) {
        self.consumer = consumer
        self.printer = printer
        self.logger = logger
    }

    func run() async throws {
        let printer = self.printer
        consumer.start(prepare: { connection in try printer.prepare(connection) }, handler: { batch in try printer.handle(batch) })
        logger.info("consume ready", metadata: ["redis.key": "\(consumer.list)", "consumer": "\(consumer.consumerID)"])
        try? await gracefulShutdown()
        await consumer.stop()
        logger.info(
            "consume stopped",
            metadata: ["consumed": "\(consumer.consumed)", "dead_lettered": "\(consumer.deadLettered)", "recovered": "\(consumer.recovered)"]
        )
    }
}
