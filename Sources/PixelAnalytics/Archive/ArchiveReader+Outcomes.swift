import PixelEvents

extension ArchiveReader {
    /// What ``outcomes(directory:days:site:maxRecords:)`` found.
    public struct Records: Sendable {
        /// The site's records (accepted and dropped), in file order.
        public var outcomes: [HitOutcome]
        /// Lines that could not be read back (skipped).
        public var unreadableLines: Int
    }

    /// Reads the records of `site` from every consumer's files (plain or compressed) of `days` in
    /// `directory`. A drop in the file of another day than its own (a hit outside the time window or
    /// of a closed day, filed on the day it was processed) gets that day as its
    /// ``DroppedHit/countedOn``, the day the rollups count it on. Blocking file I/O (and `gzip -dc`
    /// for closed days): call it off the cooperative pool.
    /// - Parameters:
    ///   - directory: The consumer's `--archive` directory.
    ///   - days: The days whose files to read (a missing file is an empty day).
    ///   - site: Only records of this site are kept.
    ///   - maxRecords: The most lines read in all; more throws, so one request cannot eat the memory.
    /// - Throws: ``Failure`` when a file cannot be read (`.io`) or there are more than `maxRecords`
    ///   lines (`.tooManyRecords`).
    public static func outcomes(directory: String, days: [Day], site: String, maxRecords: Int) throws(Failure) -> Records {
        var records = Records(outcomes: [], unreadableLines: 0)
        var seen = 0
        for day in days {
            for path in ArchiveWriter.files(in: directory, day: day) {
                // Line by line: the limit stops a read before a large day is in memory.
                try forEachLine(of: path) { line throws(Failure) in
                    seen += 1
                    guard seen <= maxRecords else {
                        throw Failure(
                            code: .tooManyRecords, description: "more than \(maxRecords) archive lines in the range; choose a shorter one"
                        )
                    }
                    do {
                        let outcome = try ArchiveRecord.outcome(from: PixelEventDecoder.decode(line))
                        switch outcome {
                        case .accepted(let hit) where hit.site == site: records.outcomes.append(outcome)
                        case .dropped(var hit) where hit.site == site:
                            if hit.day != day { hit.countedOn = day }
                            records.outcomes.append(.dropped(hit))
                        default: return
                        }
                    } catch {
                        records.unreadableLines += 1
                    }
                }
            }
        }
        return records
    }
}

extension ArchiveReader.Failure {
    /// A failure with a message, for readers built on ``ArchiveReader`` (such as the dashboard's
    /// archive store refusing a read).
    /// - Parameters:
    ///   - description: What failed.
    ///   - code: What kind of failure; `.io` by default.
    public init(_ description: String, code: Code = .io) {
        self.init(code: code, description: description)
    }
}
