public import PixelAnalytics
import PixeldConcurrency

/// Reads the consumer's archive (`pixeld consume --archive DIR`) for the filtered views, which the
/// per-dimension rollups cannot answer. Reading blocks (file I/O, `gzip -dc` for closed days), so
/// it runs on the store's own ``DedicatedThread``s, never on the cooperative pool, as
/// ``RedisReader`` does for hiredis; at most ``maxQueued`` reads wait, later ones fail at once.
///
/// `@unchecked Sendable`: the ``WorkQueue`` is thread-safe; the other stored properties are set in
/// `init` only.
public final class ArchiveStore: @unchecked Sendable {
    /// The archive directory.
    public let directory: String
    /// The most days a filtered range may span (`from`…`to`).
    public let maxDays: Int
    /// The most archive lines one read may go through.
    public let maxRecords: Int
    /// The most reads waiting for a thread.
    public let maxQueued: Int

    private let queue: WorkQueue<@Sendable () -> Void>
    private var threads: [DedicatedThread] = []

    /// Starts the reader threads.
    /// - Parameters:
    ///   - directory: The archive directory.
    ///   - threads: Reader threads, 1…8.
    ///   - maxDays: The longest filtered range in days; 92 by default.
    ///   - maxRecords: Lines one read may go through (the site's records are held in memory; files are read line by line and the read stops at the limit); 1 million by default.
    ///   - maxQueued: Reads that may wait for a thread; 16 by default.
    public init(directory: String, threads: Int = 1, maxDays: Int = 92, maxRecords: Int = 1_000_000, maxQueued: Int = 16) {
        self.directory = directory
        self.maxDays = maxDays
        self.maxRecords = maxRecords
        self.maxQueued = maxQueued
        queue = WorkQueue(maxQueued: maxQueued)
        for index in 0..<max(1, min(8, threads)) {
            self.threads.append(DedicatedThread(name: "pixeld-arch-\(index)") { [self] in self.work() })
        }
    }

    /// The records of `site` in the files of `days`, read on one of the store's threads.
    /// - Throws: ``ArchiveReader/Failure`` when a file cannot be read, the range holds more than
    ///   ``maxRecords`` lines, too many reads are waiting, or the store is stopped.
    public func records(site: String, days: [Day]) async throws(ArchiveReader.Failure) -> ArchiveReader.Records {
        let directory = self.directory
        let maxRecords = self.maxRecords
        let result = await withCheckedContinuation {
            (continuation: CheckedContinuation<Result<ArchiveReader.Records, ArchiveReader.Failure>, Never>) in
            let refusal = queue.submit {
                continuation.resume(
                    returning: Result { () throws(ArchiveReader.Failure) in
                        try ArchiveReader.outcomes(directory: directory, days: days, site: site, maxRecords: maxRecords)
                    }
                )
            }
            switch refusal {
            case nil: break
            case .stopped?: continuation.resume(returning: .failure(ArchiveReader.Failure("the archive reader is stopped")))
            case .full?: continuation.resume(returning: .failure(ArchiveReader.Failure("too many archive reads at once; try again")))
            }
        }
        return try result.get()
    }

    /// Stops the threads after the reads in hand; later calls fail.
    public func stop() async {
        queue.stop()
        for thread in threads { await thread.finished() }
    }

    private func work() {
        while let job = queue.next() { job() }
    }
}
