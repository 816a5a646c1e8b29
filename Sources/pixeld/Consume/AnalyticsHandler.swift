import Logging
import PixelAnalytics
import PixeldConcurrency
import PixelEvents
import RespBridge

#if canImport(Glibc)
import Glibc
#endif

/// `pixeld consume --site …`: turns each batch into privacy-safe analytics.
///
/// Per batch, in four steps (see `ReliableListConsumer.start(prepare:process:request:resolve:finish:)`):
/// - ``process(_:)``, while Redis applies an earlier ack: decode (undecodable values become dead
///   letters), load the daily visitor keys the hits need when a day is new (created in Redis with
///   `SET NX EX` by whichever consumer comes first, cached in memory only; on the handler's own
///   connection, made anew when it idled, which the consumer abandons at its shutdown deadline),
///   process every hit (validate, drop bots, anonymise, enrich) and render its archive line;
/// - ``request(_:)``, sent right *before* the previous batch's ack: ask whether anyone listens to
///   the live channels, and read the visit version and the states of the visits the batch
///   continues (one `MGET`);
/// - ``resolve(_:replies:aheadOfAck:)``, while Redis applies the previous ack: take the states that
///   ack writes from it (``RollupBatch/StateWrites``: the read was answered before them), work the
///   visits out and encode the call of the rollup (`RollupScript`, an ack function: see
///   ``ackFunctions``), conditional on the visit version
///   expected after the previous ack, and the live feed (`LiveUpdate`: `PUBLISH` only to listened
///   channels);
/// - ``finish(_:connection:)``, once the previous ack is applied: write the lines (to
///   `--archive DIR`, else `--output FILE`, else standard output) and return the ack's commands —
///   the rollup with the version's `INCR`, the live feed, the archive lengths — which
///   `ReliableListConsumer` applies in the same script as the ack (`AckScript` in RespBridge), which
///   Redis runs when it is over `maxmemory` too.
final class AnalyticsHandler: @unchecked Sendable {
    // `@unchecked Sendable`: used only by the consumer thread after `init`.
    private let logger: Logger
    private let processor: HitProcessor
    private let rollups: RollupConfiguration
    private let connection: RedisConnection
    private let archive: ArchiveWriter?
    private let archiveKey: [UInt8]
    private let printer: EventPrinter?
    private var keys = DailyKeys()
    private var lastMaintenance: Double = 0
    private var warnedAboutPubsub = false

    /// - Parameters:
    ///   - archiveKey: the Redis hash of acknowledged archive file lengths (`<list>:archive:<id>`).
    ///   - printer: where lines go when there is no archive; `nil` with an archive.
    ///   - connection: the handler's own, for the daily keys: one the consumer abandons at its
    ///     shutdown deadline (``ReliableListConsumer/makeHandlerConnection()``).
    init(
        logger: Logger, processor: HitProcessor, rollups: RollupConfiguration, connection: RedisConnection,
        archive: ArchiveWriter?, archiveKey: String, printer: EventPrinter?
    ) {
        self.logger = logger
        self.processor = processor
        self.rollups = rollups
        self.connection = connection
        self.archive = archive
        self.archiveKey = Array(archiveKey.utf8)
        self.printer = printer
    }

    /// Makes the output agree with Redis before the first batch and after any failure: archive files
    /// (or the `--output` file) are cut back to the lengths recorded with the last ack, so the unacked
    /// batch about to be handled again is written exactly once; what the last finished ack was to
    /// write is forgotten (it may not have been applied).
    func prepare(_ connection: RedisConnection) throws {
        previousWrites = RollupBatch.StateWrites()
        previousIncrements = false
        try printer?.prepare(connection)
        guard let archive else { return }
        let reply = try connection.command([Array("HGETALL".utf8), archiveKey]).unwrap("HGETALL")
        var acknowledged: [String: Int] = [:]
        let items = reply.array ?? []
        for index in stride(from: 0, to: items.count - 1, by: 2) {
            if let name = items[index].string, let length = items[index + 1].string.flatMap({ Int($0) }) {
                acknowledged[name] = length
            }
        }
        // The hash carries a field that is never removed, written before this consumer's first write:
        // without it, Redis lost the lengths (a flushed or new Redis) rather than never had them, and
        // files without a length are kept as they are instead of being cut to nothing (files with
        // one, from a hash an earlier version wrote, are still cut back to it).
        let tracked = acknowledged.removeValue(forKey: Self.trackedField) != nil
        let adopted = try archive.recover(acknowledged: acknowledged, keepingUnlisted: !tracked)
        if !tracked {
            if !adopted.isEmpty {
                logger.warning(
                    "no acknowledged archive lengths in Redis (a new or flushed Redis?): archive files kept as they are",
                    metadata: ["files": "\(adopted.count)"]
                )
            }
            // A thousand files per `HSET` (an ack's command takes at most 7,000 arguments), the
            // field that says the lengths are kept last.
            let files = adopted.sorted { $0.key < $1.key }
            for start in stride(from: 0, to: files.count, by: 1_000) {
                let part = Dictionary(uniqueKeysWithValues: files[start..<min(start + 1_000, files.count)].map { ($0.key, $0.value) })
                _ = try connection.command(ReliableListConsumer.allowingOOM(recordLengths(part))).unwrap("HSET")
            }
            _ = try connection.command(ReliableListConsumer.allowingOOM(recordLengths([Self.trackedField: 1]))).unwrap("HSET")
        }
    }

    /// The functions the acks call: the rollup (``RollupScript``).
    static let ackFunctions = [rollupFunction: RollupScript.functionBody]
    private static let rollupFunction = "rollup"

    /// The field of the archive hash that says it has been kept since this consumer's first write.
    static let trackedField = ".tracked"

    /// `HSET <archive key> name length …`: archive file lengths acknowledged.
    private func recordLengths(_ lengths: [String: Int]) -> [[UInt8]] {
        var hset: [[UInt8]] = [Array("HSET".utf8), archiveKey]
        for (name, length) in lengths.sorted(by: { $0.key < $1.key }) {
            hset += [Array(name.utf8), Array(String(length).utf8)]
        }
        return hset
    }

    /// What ``process(_:)`` prepared for ``request(_:)`` and ``resolve(_:replies:aheadOfAck:)``.
    struct Work {
        var now: Double
        var dead: [[UInt8]]
        var rollup: RollupBatch
        /// The lines, one buffer per archive day in first-seen order (a batch has one or two), or one
        /// buffer (day `nil`) for `--output`/stdout. The live feed points into them.
        var buffers: [[UInt8]] = []
        var days: [Day?] = []
        var live: LiveUpdate
        /// The previous day's ids left out of the lines until the visits are resolved.
        var heldBack = HeldBackPreviousIDs()
        /// The daily keys the batch's ids were made with, checked against Redis in the request.
        var keys: [DailyKey] = []

        /// The index of the buffer of `day`, added if new.
        mutating func buffer(for day: Day?, capacity: Int) -> Int {
            if let index = days.firstIndex(of: day) { return index }
            days.append(day)
            buffers.append([])
            buffers[buffers.count - 1].reserveCapacity(capacity)
            return buffers.count - 1
        }
    }

    /// Step one, while the previous batch's ack may still be on its way to Redis: decode, process
    /// every hit and render its line. Writes nothing that a failed ack would have to take back.
    func process(_ batch: [[UInt8]]) throws -> Work {
        var events: [PixelEvent] = []
        events.reserveCapacity(batch.count)
        let dead = DeadLetters.sortOut(batch, logger: logger) { (value) throws(PixelDecodeError) in
            events.append(try PixelEventDecoder.decode(value))
        }
        let now = Self.now()
        let used = try loadDailyKeys(for: events, now: now)
        var work = Work(now: now, dead: dead, rollup: RollupBatch(configuration: rollups), live: LiveUpdate(keys: rollups.keys, now: now))
        work.keys = used
        for event in events {
            let outcome = try processor.process(event, now: now, keys: keys)
            // Each line is rendered once, into its day's buffer; the live feed remembers where.
            let day = archive?.targetDay(for: outcome.countingDay, now: now)
            let visitHit = work.rollup.add(outcome, archivedOn: day)
            let buffer = work.buffer(for: day, capacity: events.count * 320)
            let start = work.buffers[buffer].count
            work.heldBack.appendLine(outcome, visitHit: visitHit, to: &work.buffers, buffer: buffer)
            // `consume`: the last use, so the hit is moved out, not copied (with each of its strings).
            switch consume outcome {
            case .accepted(let hit):
                work.live.add(hit, line: .init(buffer: buffer, range: start..<work.buffers[buffer].count))
            case .dropped: break
            }
        }
        return work
    }

    /// Step two, sent right before the previous batch's ack (so Redis answers it at once):
    /// `PUBSUB NUMPAT` and `PUBSUB NUMSUB` of the live channels (a
    /// pattern subscription anywhere, such as the dashboard's `PSUBSCRIBE`, counts as a listener of
    /// every channel), `MGET` of the visit version and the visit states the batch continues, and the
    /// daily keys it used, put back in Redis if Redis lost them (``DailyKey/restoreScript``). Each
    /// part only when the batch needs it.
    func request(_ work: Work) -> [[[UInt8]]] {
        let rollup = work.rollup, channels = work.live.channels
        var commands: [[[UInt8]]] = []
        if !channels.isEmpty {
            commands.append([Array("PUBSUB".utf8), Array("NUMPAT".utf8)])
            commands.append([Array("PUBSUB".utf8), Array("NUMSUB".utf8)] + channels.map { Array($0.utf8) })
        }
        if let stateRead = rollup.stateReadCommand() { commands.append(stateRead) }
        if !work.keys.isEmpty { commands.append(DailyKey.restoreCommand(work.keys, prefix: rollups.keys.prefix)) }
        return commands
    }

    /// What ``resolve(_:replies:aheadOfAck:)`` hands to ``finish(_:connection:)``.
    struct Resolved {
        var work: Work
        var commands: [ReliableListConsumer.Command] = []
        var condition: ReliableListConsumer.Condition?
        var writes = RollupBatch.StateWrites()
    }

    /// The visit states the last finished batch's ack writes, and whether it increments the
    /// visit version: the next batch's read was answered before that ack was applied. Reset by
    /// ``prepare(_:)`` (after a failure the next read is sent with nothing in flight, so they would
    /// not be used anyway).
    private var previousWrites = RollupBatch.StateWrites()
    private var previousIncrements = false

    /// Step three, while Redis applies the previous batch's ack: the visits and the rollup command.
    /// - Parameter aheadOfAck: whether the request was answered before the previous batch's ack was
    ///   applied (then the states that ack writes replace those read, and it moves the version on).
    func resolve(_ work: Work, replies: [RESPValue], aheadOfAck: Bool) throws -> Resolved {
        var resolved = Resolved(work: work)
        var read = try Self.parseRead(replies, for: work.rollup, channels: work.live.channels, keys: work.keys)
        checkDailyKeys(read.keysInRedis, used: work.keys)
        if let error = read.pubsubError, !warnedAboutPubsub {
            warnedAboutPubsub = true
            logger.warning("PUBSUB refused; the live feed is published whether or not anyone listens", metadata: ["error": "\(error)"])
        }
        if !work.rollup.isEmpty {
            if aheadOfAck { work.rollup.overlay(previousWrites, on: &read.states) }
            // Encoded straight into one buffer: the rollup has thousands of arguments.
            let (arguments, count, writes, continued) = work.rollup.encodedArguments(states: read.states)
            work.heldBack.insert(continued: continued, into: &resolved.work.buffers, live: &resolved.work.live)
            resolved.commands.append(.init(function: Self.rollupFunction, count: count, encodedArguments: arguments))
            resolved.writes = writes
            if !work.rollup.visitKeys.isEmpty {
                resolved.commands.append(ReliableListConsumer.Command(arguments: work.rollup.versionCommand))
                let expected = read.version + (aheadOfAck && previousIncrements ? 1 : 0)
                resolved.condition = ReliableListConsumer.Condition(key: rollups.keys.visitVersion, value: String(expected))
            }
        }
        resolved.commands += resolved.work.live.commands(listened: read.listened, lines: resolved.work.buffers)
            .map(ReliableListConsumer.Command.init(arguments:))
        return resolved
    }

    /// Step four, once every earlier batch is acknowledged: write the archive (or output) and return
    /// the ack's commands.
    func finish(_ resolved: Resolved, connection: RedisConnection) throws -> ReliableListConsumer.Outcome {
        let work = resolved.work
        var commands = resolved.commands
        if let archive {
            var gone: [String] = []
            if work.now - lastMaintenance > 60 {
                // Every byte written so far is acknowledged: safe to close files.
                gone = archive.maintain(now: work.now)
                lastMaintenance = work.now
            }
            var lines: [Day: [UInt8]] = [:]
            for (day, bytes) in zip(work.days, work.buffers) { if let day { lines[day] = bytes } }
            let lengths = try archive.append(lines, now: work.now)
            if !lengths.isEmpty { commands.append(.init(arguments: recordLengths(lengths))) }
            for start in stride(from: 0, to: gone.count, by: 1_000) {
                let names = gone[start..<min(start + 1_000, gone.count)].map { Array($0.utf8) }
                commands.append(.init(arguments: [Array("HDEL".utf8), archiveKey] + names))
            }
        } else if let printer {
            commands += try printer.emit(work.buffers.first ?? []).map(ReliableListConsumer.Command.init(arguments:))
        }
        // What the next batch's read, answered before this ack, will not see yet.
        previousWrites = resolved.writes
        previousIncrements = resolved.condition != nil
        return .init(deadLetters: work.dead, ackCommands: commands, condition: resolved.condition)
    }

    /// What the request before an ack found out.
    struct AckRead {
        /// The visit states the rollup asked for, in its order (`nil`: none stored).
        var states: [[UInt8]?] = []
        /// The visit version they were read at (a missing key counts as 0).
        var version = 0
        /// Whether a live channel has a subscriber (by name or by pattern).
        var listened: (String) -> Bool = { _ in false }
        /// Redis's error when it refused `PUBSUB` (every channel then counts as listened).
        var pubsubError: String?
        /// For each daily key the batch used: whether Redis had lost it (and has it back now), and the
        /// key Redis holds now (`nil`: none).
        var keysInRedis: [(restored: Bool, bytes: [UInt8]?)] = []
    }

    /// Reads the replies to ``request(_:)``, in its order.
    static func parseRead(_ replies: [RESPValue], for rollup: RollupBatch, channels: [String], keys: [DailyKey]) throws -> AckRead {
        var replies = replies[...]
        var read = AckRead()
        if !channels.isEmpty {
            let patternsReply = replies.removeFirst(), countsReply = replies.removeFirst()
            if case .error(let text) = patternsReply {
                // E.g. an ACL user allowed PUBLISH but not PUBSUB: publish as before rather than fail.
                read.pubsubError = text
                read.listened = { _ in true }
            } else {
                let counts = try countsReply.unwrap("PUBSUB NUMSUB").array ?? []
                guard let patterns = patternsReply.int, counts.count == channels.count * 2 else {
                    throw HandlerFailure("PUBSUB replied \(patternsReply) and \(countsReply)")
                }
                var listened: Set<String> = []
                for index in stride(from: 0, to: counts.count, by: 2) where patterns > 0 || (counts[index + 1].int ?? 0) > 0 {
                    listened.insert(channels[index / 2])
                }
                read.listened = { listened.contains($0) }
            }
        }
        if !rollup.visitKeys.isEmpty {
            let reply = replies.removeFirst()
            guard let values = try reply.unwrap("MGET").array, let parsed = rollup.parseStateRead(values.map(\.bytes)) else {
                throw HandlerFailure("MGET of the visit version and states replied \(reply)")
            }
            (read.version, read.states) = parsed
        }
        if !keys.isEmpty {
            let reply = replies.removeFirst()
            guard let values = try reply.unwrap("EVAL restore daily keys").array, values.count == 2 * keys.count else {
                throw HandlerFailure("the daily key check replied \(reply)")
            }
            read.keysInRedis = stride(from: 0, to: values.count, by: 2).map { (values[$0].int == 1, values[$0 + 1].bytes) }
        }
        return read
    }

    /// Follows what Redis holds of the daily keys the batch used. A key Redis had lost is back
    /// (logged: Redis lost data). One Redis holds differently — lost, then made anew by a consumer
    /// that started before this one put it back — replaces this consumer's, so that every consumer
    /// makes the same ids again from the next batch: the day's visitors seen on both sides of the
    /// loss count twice, once.
    private func checkDailyKeys(_ inRedis: [(restored: Bool, bytes: [UInt8]?)], used: [DailyKey]) {
        for (key, found) in zip(used, inRedis) {
            if found.restored {
                logger.warning(
                    "the visitor key of a day was gone from redis (restarted without persistence? flushed? a failover?): put back",
                    metadata: ["day": "\(key.day)"]
                )
            } else if let bytes = found.bytes, !key.isKey(bytes), let replacement = DailyKey(day: key.day, bytes: bytes) {
                keys.insert(replacement)
                logger.warning(
                    "the visitor key of a day in redis is not this consumer's (redis lost it and another consumer made a new one): following redis; visitors of the day seen before and after count twice",
                    metadata: ["day": "\(key.day)"]
                )
            }
        }
    }

    /// Loads the missing daily keys, on the handler's own connection; returns the keys the batch
    /// needs, known or loaded. A day before the hits' whose key Redis does not hold is asked for again
    /// only after a while (``DailyKeys/missRecheckSeconds``).
    private func loadDailyKeys(for events: [PixelEvent], now: Double) throws -> [DailyKey] {
        keys.removeExpired(now: now)
        let days = DailyKeys.daysNeeded(
            for: events.map(\.timestamp), sessionIdleSeconds: Double(rollups.sessionIdleSeconds)
        ).filter {
            // Keys only for days a hit can be accepted on (the time window drops the others first).
            abs($0.day.number - Day(timestamp: now).number) <= 2
        }
        let needed = keys.toLoad(days, now: now)
        // Rarely needed (a new day): a round trip here waits for the previous ack to be applied.
        guard !needed.isEmpty else { return days.compactMap { keys[$0.day] } }
        // Idle since the last new day, as a rule: Redis may have closed it meanwhile (its `timeout`, a
        // restart), and the batch would fail — `handler failed`, counted — although Redis is up.
        connection.closeIfIdle()
        let values = try connection.command(DailyKey.fetchCommand(needed, prefix: rollups.keys.prefix)).unwrap("EVAL daily keys").array ?? []
        for (entry, value) in zip(needed, values) {
            guard let bytes = value.bytes else {
                keys.recordMiss(entry.day, now: now)  // (the day before, which nobody made: not asked again for a while)
                continue
            }
            guard let key = DailyKey(day: entry.day, bytes: bytes) else {
                throw HandlerFailure("the visitor key of \(entry.day) in Redis is not 32 bytes")
            }
            keys.insert(key)
        }
        return days.compactMap { keys[$0.day] }
    }

    static func now() -> Double {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }
}
