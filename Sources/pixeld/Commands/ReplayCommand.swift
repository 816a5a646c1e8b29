import ArgumentParser
import Logging
import PixelAnalytics
import PixeldCLI
import PixelEvents
import RespBridge

#if canImport(Glibc)
import Glibc
#endif

/// `pixeld replay --archive DIR --from D --to D`: rebuilds the rollups of those days from the archive.
struct ReplayCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Rebuild the Redis rollups of a range of UTC days from the archive written by consume --archive.",
        discussion: """
            For each day of the range that has archive files: deletes the rollups of each site those files \
            hold accepted hits of (pixeld:site:SITE:DAY:*), only the drop counts (pixeld:site:SITE:DAY:drops) \
            of a site they hold drops of alone, and the all-sites drop count pixeld:drops:DAY; then counts the \
            archived hits again — accepted ones with their anonymous visitor ids, dropped ones under their \
            reasons — with visit state kept apart from live consumers'. Other sites keep their rollups (they \
            may come from another consumer's archive). Give the files of every consumer of a site (in one \
            directory): a site's day, and the all-sites drop count, are rebuilt from what the directory holds. Run it for days no consumer is still writing (or stop the consumers): a live hit for a \
            replayed day may otherwise be lost or doubled. The archive holds no IP address or user agent, so \
            bot rules that look at the user agent cannot be re-applied to it. Visits are cut at the range's \
            ends: one that started the day before --from and went on after midnight counts as a new visit \
            on --from, and the hits after midnight of one that started on --to and went on into the next \
            day are not read, so it counts as shorter there (a bounce, if it had one hit on --to). \
            It counts into keys of its own (pixeld:replay:RUN:…) and then replaces each day in one script: \
            stopped (Ctrl-C, SIGTERM) or failing, it leaves each day as it was or rebuilt and says which.
            """
    )

    @OptionGroup var global: GlobalOptions

    @Option(help: ArgumentHelp("The archive directory (consume --archive). Env: PIXELD_ARCHIVE.", valueName: "dir"))
    var archive: String?

    @Option(help: ArgumentHelp("First UTC day, YYYY-MM-DD.", valueName: "day"))
    var from: String

    @Option(help: ArgumentHelp("Last UTC day, YYYY-MM-DD (inclusive).", valueName: "day"))
    var to: String

    @Option(parsing: .unconditional, help: ArgumentHelp("Days to keep the rebuilt rollups after each day ends, as consume's. Default 400. Env: PIXELD_RETENTION_DAYS.", valueName: "n"))
    var retentionDays: Int?

    @Option(parsing: .unconditional, help: ArgumentHelp("Distinct values per breakdown, site and day, as consume's. Default 1000. Env: PIXELD_BREAKDOWN_CAP.", valueName: "n"))
    var breakdownCap: Int?

    func run() throws {
        guard let first = Day(from) else { throw ValidationError("--from: '\(from)' is not a date YYYY-MM-DD") }
        guard let last = Day(to) else { throw ValidationError("--to: '\(to)' is not a date YYYY-MM-DD") }
        guard first <= last else { throw ValidationError("--from must not be after --to") }
        guard last.number - first.number < 3700 else { throw ValidationError("the range is limited to 3700 days") }
        // The same variables as consume's, so that a replay on the consumer's host rebuilds what it wrote.
        guard let archive = archive ?? Environment.value(forFlag: "archive") else {
            throw ValidationError("--archive (or PIXELD_ARCHIVE) is required: the directory of consume --archive")
        }
        let retentionDays = try Environment.integer(retentionDays, flag: "retention-days", default: 400, range: 1...36_500)
        let breakdownCap = try Environment.integer(breakdownCap, flag: "breakdown-cap", default: 1000, range: 10...1_000_000)
        let logger = Bootstrap.logging(level: try global.level(), label: "pixeld.replay")
        let connection = RedisConnection(configuration: try global.redisConfiguration(), logger: logger)
        defer { connection.close() }
        let keys = RollupKeys()
        // The replay counts into keys of its own and then moves them into place one day at a time.
        let staging = RollupKeys(prefix: keys.prefix + "replay:\(getpid())-\(time(nil)):")
        let configuration = RollupConfiguration(keys: staging, retentionDays: retentionDays, breakdownCap: breakdownCap)

        // Only days with archive files are rebuilt: the rollups of a day whose files are gone (past the
        // retention, or a wrong --archive) stay as they are instead of being deleted and not rebuilt.
        guard let directory = opendir(archive) else {
            throw CommandFailure("--archive: cannot read \(archive): \(String(cString: strerror(errno)))")
        }
        closedir(directory)
        let filesByDay = (first.number...last.number).map { (day: Day(number: $0), files: ArchiveWriter.files(in: archive, day: Day(number: $0))) }
        let days = filesByDay.filter { !$0.files.isEmpty }.map(\.day)
        guard !days.isEmpty else {
            throw CommandFailure("no archive files for \(first) … \(last) in \(archive): nothing replayed, no rollup touched")
        }
        let rebuilt = Set(days)
        // Read everything first: a broken file stops the replay before any rollup is touched. Each
        // line with the day of its file: a drop counts there (`RollupBatch.add(_:archivedOn:)`).
        var outcomes: [(outcome: HitOutcome, file: Day)] = []
        var files = 0
        for (fileDay, paths) in filesByDay {
            for path in paths {
                files += 1
                for (index, line) in try ArchiveReader.lines(of: path).enumerated() {
                    do {
                        let outcome = try ArchiveRecord.outcome(from: PixelEventDecoder.decode(line))
                        // An accepted hit counts on its own day, a drop on its file's (always rebuilt).
                        if case .accepted(let hit) = outcome, !rebuilt.contains(hit.day) { continue }
                        outcomes.append((outcome, fileDay))
                    } catch {
                        throw CommandFailure("\(path):\(index + 1): \(error)")
                    }
                }
            }
        }
        // Several consumers' files: put the hits back in time order (stable for equal times).
        outcomes = outcomes.enumerated().sorted {
            $0.element.outcome.timestamp != $1.element.outcome.timestamp
                ? $0.element.outcome.timestamp < $1.element.outcome.timestamp : $0.offset < $1.offset
        }.map(\.element)

        // The sites of each day whose rollups this archive rebuilds (see step 2 below).
        var counted: [Day: Set<String>] = [:], dropped: [Day: Set<String>] = [:]
        for (outcome, file) in outcomes {
            switch outcome {
            case .accepted(let hit): counted[hit.day, default: []].insert(hit.site)
            case .dropped(let hit): if hit.isForKnownSite, let site = hit.site { dropped[file, default: []].insert(site) }
            }
        }
        // Interrupted (Ctrl-C, SIGTERM), it stops where every day is either rebuilt or as it was.
        Interruption.record()
        var swapped: [Day] = [], swapping: Day?
        do {
            _ = try connection.command(RollupScript.loadCommand).unwrap("SCRIPT LOAD")
            _ = try connection.command(["SET", Self.openMarker(staging), "1"]).unwrap("SET")
            // 1. Count every hit into the staging keys: the live rollups are not touched yet.
            var index = 0
            while index < outcomes.count {
                try Self.stopIfInterrupted()
                var batch = RollupBatch(configuration: configuration)
                for (outcome, file) in outcomes[index..<min(index + 1000, outcomes.count)] { batch.add(outcome, archivedOn: file) }
                index += 1000
                // The replay owns its visit keys (its own prefix): read, then apply, without WATCH.
                var states: [[UInt8]?] = []
                if let read = batch.stateReadCommand() {
                    let reply = try connection.command(read).unwrap("MGET")
                    guard let parsed = batch.parseStateRead((reply.array ?? []).map(\.bytes)) else {
                        throw CommandFailure("MGET of the visit version and states replied \(reply)")
                    }
                    states = parsed.states
                }
                _ = try connection.command(batch.command(states: states)).unwrap("EVALSHA rollup")
            }
            // 2. Per day, in one script: delete the rollups this archive rebuilds — all of a site it
            // holds accepted hits of, only the drop counts of a site it holds drops of alone (another
            // archive may hold its accepted hits), the all-sites drop count — and rename the day's
            // staging keys into their place. Other sites keep theirs.
            let stagedByDay = try stagedKeysByDay(staging, connection)
            for day in days {
                try Self.stopIfInterrupted()
                let whole = counted[day, default: []], dropsOnly = dropped[day, default: []].subtracting(whole)
                let sitePrefix = keys.prefix + "site:", daySuffix = ":\(day):"
                // One scan of the day's site keys; a site name holds no ':'.
                let replaced = try scanKeys(matching: sitePrefix + "*" + daySuffix + "*", connection) { key in
                    guard let middle = key.dropFirst(sitePrefix.count).firstRange(of: daySuffix) else { return false }
                    let site = String(key[key.index(key.startIndex, offsetBy: sitePrefix.count)..<middle.lowerBound])
                    return whole.contains(site) || (dropsOnly.contains(site) && key[middle.upperBound...] == "drops")
                }
                let staged = stagedByDay[day.description, default: []] + [Array(staging.globalDrops(day: day).utf8)]
                swapping = day
                try swap(replacing: replaced + [Array(keys.globalDrops(day: day).utf8)], with: staged, staging: staging, keys: keys, connection)
                swapping = nil
                swapped.append(day)
            }
            try discardStaging(staging, connection)
        } catch {
            // Each day is swapped whole, or not at all (the script does nothing once the staging is
            // discarded: a swap whose reply was lost cannot run later on an emptied staging).
            try? discardStaging(staging, connection)
            let progress = Self.progress(swapped, of: days, uncertain: swapping)
            if let signal = Interruption.received {
                throw CommandFailure("interrupted (\(signal)): \(progress); replay again to rebuild the rest")
            }
            if let error = error as? RespError {
                throw CommandFailure("cannot rebuild the rollups in Redis: \(error); \(progress) (replay again once Redis answers)")
            }
            throw CommandFailure("\(error); \(progress)")
        }
        let accepted = outcomes.filter { if case .accepted = $0.outcome { true } else { false } }.count
        print("replayed \(outcomes.count) hits (\(accepted) accepted, \(outcomes.count - accepted) dropped) from \(files) files, \(first) … \(last)")
        let sites = Set(counted.values.flatMap { $0 }).sorted()
        let dropsOnly = Set(dropped.values.flatMap { $0 }).subtracting(sites).sorted()
        print("sites rebuilt: \(sites.isEmpty ? "none" : sites.joined(separator: " "))")
        if !dropsOnly.isEmpty { print("sites with only drops in the archive, their drop counts rebuilt: \(dropsOnly.joined(separator: " "))") }
        // A day that may still get hits (a running consumer accepts hits up to 24 hours old).
        let today = Day(timestamp: Double(time(nil)))
        let live = days.filter { $0.number >= today.number - 1 }
        if !live.isEmpty {
            print("\(live.map(\.description).joined(separator: " and ")) may still get hits: what a running consumer counted during the replay is missing from the rebuilt rollups (each day was replaced whole at its turn); the archive has it, for a replay once the consumers are stopped or the day is over")
        }
        let skipped = filesByDay.filter(\.files.isEmpty).map(\.day.description)
        if !skipped.isEmpty {
            print("no archive files for \(skipped.count) day(s), their rollups left as they were: \(skipped.prefix(10).joined(separator: ", "))\(skipped.count > 10 ? ", …" : "")")
        }
    }

    /// Thrown between two steps after SIGINT or SIGTERM (see ``Interruption``).
    private struct Interrupted: Error {}

    /// Stops the replay between two steps — where each day is either rebuilt or as it was — once
    /// SIGINT or SIGTERM came.
    private static func stopIfInterrupted() throws {
        if Interruption.received != nil { throw Interrupted() }
    }

    /// Which days were rebuilt: "none of the 3 day(s) rebuilt, their rollups as they were", "2 of 3
    /// days rebuilt (2026-11-01 … 2026-11-02), the others as they were", and the day whose swap's
    /// reply never came (`uncertain`: Redis may have applied it), if any.
    private static func progress(_ swapped: [Day], of days: [Day], uncertain: Day?) -> String {
        let text: String
        if let first = swapped.first, let last = swapped.last {
            text = swapped.count == days.count
                ? "all \(days.count) day(s) rebuilt"
                : "\(swapped.count) of \(days.count) days rebuilt (\(first) … \(last)), the others as they were"
        } else {
            text = "none of the \(days.count) day(s) rebuilt, their rollups as they were"
        }
        return uncertain.map { text + " except \($0), rebuilt or as it was (its swap's reply was lost)" } ?? text
    }

    /// The key whose presence lets a swap run: set before the staging is filled, deleted first when
    /// it is discarded.
    private static func openMarker(_ staging: RollupKeys) -> String { staging.prefix + "open" }

    /// Deletes the staging keys, the marker first (a swap in flight then does nothing).
    private func discardStaging(_ staging: RollupKeys, _ connection: RedisConnection) throws {
        _ = try connection.command(["DEL", Self.openMarker(staging)]).unwrap("DEL")
        try deleteKeys(matching: staging.prefix + "*", connection)
    }

    /// The staging's per-site, per-day keys (`<staging>site:S:D:…`), by day (`D`), in one scan.
    private func stagedKeysByDay(_ staging: RollupKeys, _ connection: RedisConnection) throws -> [String: [[UInt8]]] {
        let start = staging.prefix.utf8.count + "site:".utf8.count
        var byDay: [String: [[UInt8]]] = [:]
        for key in try scanKeys(matching: staging.prefix + "site:*", connection) {
            // A site name holds no ':'; the day after it is YYYY-MM-DD.
            let rest = key.dropFirst(start)
            guard let colon = rest.firstIndex(of: UInt8(ascii: ":")) else { continue }
            let day = rest[(colon + 1)...].prefix(10)
            byDay[String(decoding: day, as: UTF8.self), default: []].append(key)
        }
        return byDay
    }

    /// One script, so that a day is replaced whole or not at all: unless the staging was discarded,
    /// unlinks `replaced`, then renames each of `staged` that exists to its live name (the staging
    /// prefix replaced by the live one).
    private func swap(
        replacing replaced: [[UInt8]], with staged: [[UInt8]], staging: RollupKeys, keys: RollupKeys, _ connection: RedisConnection
    ) throws {
        let live = staged.map { Array(keys.prefix.utf8) + $0.dropFirst(staging.prefix.utf8.count) }
        let pairs = zip(staged, live).flatMap { [$0, $1] }
        let keyArguments = [Array(Self.openMarker(staging).utf8)] + replaced + pairs
        let arguments: [[UInt8]] = [Array("EVAL".utf8), Array(Self.swapScript.utf8), Array(String(keyArguments.count).utf8)]
            + keyArguments + [Array(String(replaced.count).utf8)]
        guard try connection.command(arguments).unwrap("EVAL swap").int == 1 else {
            throw CommandFailure("the replay's staging keys are gone (deleted by someone else?)")
        }
    }

    /// `KEYS`: the marker (``openMarker(_:)``), the keys to delete (`ARGV[1]` of them), then pairs of
    /// staging key and live key. `UNLINK`: a large hash is freed off Redis's main thread.
    private static let swapScript = """
        if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
        local deleted = tonumber(ARGV[1])
        for i = 2, deleted + 1 do redis.call('UNLINK', KEYS[i]) end
        for i = deleted + 2, #KEYS, 2 do
          if redis.call('EXISTS', KEYS[i]) == 1 then redis.call('RENAME', KEYS[i], KEYS[i + 1]) end
        end
        return 1
        """

    /// The keys that match `pattern` and that `selected` (if given) keeps.
    private func scanKeys(matching pattern: String, _ connection: RedisConnection, where selected: ((String) -> Bool)? = nil) throws -> [[UInt8]] {
        try connection.scanKeys(matching: pattern).filter { key in
            selected.map { $0(String(decoding: key, as: UTF8.self)) } ?? true
        }
    }

    /// Deletes the keys that match `pattern`.
    private func deleteKeys(matching pattern: String, _ connection: RedisConnection) throws {
        let found = try scanKeys(matching: pattern, connection)
        for start in stride(from: 0, to: found.count, by: 1000) {
            _ = try connection.command([Array("DEL".utf8)] + found[start..<min(start + 1000, found.count)]).unwrap("DEL")
        }
    }
}
