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
            day are not read, so it counts as shorter there (a bounce, if it had one hit on --to).
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
        var configuration = RollupConfiguration(keys: keys, retentionDays: retentionDays, breakdownCap: breakdownCap)
        configuration.visitPrefix = keys.prefix + "replay:\(getpid())-\(time(nil)):visit:"

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

        // Per day, only what this archive can rebuild: all the rollups of a site it holds accepted
        // hits of, only the drop counts of a site it holds drops of alone (another archive may hold
        // its accepted hits); other sites keep theirs. The all-sites drop count is rebuilt.
        var counted: [Day: Set<String>] = [:], dropped: [Day: Set<String>] = [:]
        for (outcome, file) in outcomes {
            switch outcome {
            case .accepted(let hit): counted[hit.day, default: []].insert(hit.site)
            case .dropped(let hit): if hit.isForKnownSite, let site = hit.site { dropped[file, default: []].insert(site) }
            }
        }
        do {
            _ = try connection.command(RollupScript.loadCommand).unwrap("SCRIPT LOAD")
            for day in days {
                let whole = counted[day, default: []], dropsOnly = dropped[day, default: []].subtracting(whole)
                let sitePrefix = keys.prefix + "site:", daySuffix = ":\(day):"
                // One scan of the day's site keys; a site name holds no ':'.
                try deleteKeys(matching: sitePrefix + "*" + daySuffix + "*", connection) { key in
                    guard let middle = key.dropFirst(sitePrefix.count).firstRange(of: daySuffix) else { return false }
                    let site = String(key[key.index(key.startIndex, offsetBy: sitePrefix.count)..<middle.lowerBound])
                    return whole.contains(site) || (dropsOnly.contains(site) && key[middle.upperBound...] == "drops")
                }
                _ = try connection.command(["DEL", keys.globalDrops(day: day)]).unwrap("DEL")
            }
            var index = 0
            while index < outcomes.count {
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
            try deleteKeys(matching: configuration.visitPrefix + "*", connection)
        } catch let error as RespError {
            // Nothing was replayed (Redis down, a wrong --redis) or part of it: a second run starts over.
            throw CommandFailure("cannot rebuild the rollups in Redis: \(error) (replay again once Redis answers: it starts over)")
        }
        let accepted = outcomes.filter { if case .accepted = $0.outcome { true } else { false } }.count
        print("replayed \(outcomes.count) hits (\(accepted) accepted, \(outcomes.count - accepted) dropped) from \(files) files, \(first) … \(last)")
        let sites = Set(counted.values.flatMap { $0 }).sorted()
        let dropsOnly = Set(dropped.values.flatMap { $0 }).subtracting(sites).sorted()
        print("sites rebuilt: \(sites.isEmpty ? "none" : sites.joined(separator: " "))")
        if !dropsOnly.isEmpty { print("sites with only drops in the archive, their drop counts rebuilt: \(dropsOnly.joined(separator: " "))") }
        let skipped = filesByDay.filter(\.files.isEmpty).map(\.day.description)
        if !skipped.isEmpty {
            print("no archive files for \(skipped.count) day(s), their rollups left as they were: \(skipped.prefix(10).joined(separator: ", "))\(skipped.count > 10 ? ", …" : "")")
        }
    }

    /// Deletes the keys that match `pattern` and that `selected` (if given) keeps.
    private func deleteKeys(matching pattern: String, _ connection: RedisConnection, where selected: ((String) -> Bool)? = nil) throws {
        var cursor = "0"
        repeat {
            let reply = try connection.command(["SCAN", cursor, "MATCH", pattern, "COUNT", "1000"]).unwrap("SCAN")
            guard let parts = reply.array, parts.count == 2, let next = parts[0].string else {
                throw CommandFailure("unexpected SCAN reply")
            }
            cursor = next
            let found = (parts[1].array ?? []).compactMap(\.bytes).filter { key in
                selected.map { $0(String(decoding: key, as: UTF8.self)) } ?? true
            }
            if !found.isEmpty { _ = try connection.command([Array("DEL".utf8)] + found).unwrap("DEL") }
        } while cursor != "0"
    }
}
