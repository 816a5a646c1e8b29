public import PixelAnalytics
import PixeldConcurrency

/// Reads the consumer's archive (`pixeld consume --archive DIR`) for the filtered views, which the
/// per-dimension rollups cannot answer. Reading blocks (file I/O, `gzip -dc` for closed days), so
/// it runs on the store's own ``DedicatedThread``s, never on the cooperative pool, as
/// ``RedisReader`` does for hiredis, and so does the aggregation of what was read (CPU-bound: a
/// copy and a sort of up to ``maxRecords`` records); at most ``maxQueued`` reads wait, later ones fail at once.
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

    /// Called on the reading thread after each aggregation (tests check which thread did it).
    private let afterAggregation: (@Sendable () -> Void)?

    /// Starts the reader threads.
    /// - Parameters:
    ///   - directory: The archive directory.
    ///   - threads: Reader threads, 1…8.
    ///   - maxDays: The longest filtered range in days; 92 by default.
    ///   - maxRecords: Lines one read may go through (the site's records are held in memory; files are read line by line and the read stops at the limit); 1 million by default.
    ///   - maxQueued: Reads that may wait for a thread; 16 by default.
    public convenience init(directory: String, threads: Int = 1, maxDays: Int = 92, maxRecords: Int = 1_000_000, maxQueued: Int = 16) {
        self.init(
            directory: directory, threads: threads, maxDays: maxDays, maxRecords: maxRecords, maxQueued: maxQueued,
            afterAggregation: nil
        )
    }

    /// As the public initializer; `afterAggregation` runs on the reading thread after each aggregation.
    init(
        directory: String, threads: Int = 1, maxDays: Int = 92, maxRecords: Int = 1_000_000, maxQueued: Int = 16,
        afterAggregation: (@Sendable () -> Void)?
    ) {
        self.directory = directory
        self.maxDays = maxDays
        self.maxRecords = maxRecords
        self.maxQueued = maxQueued
        self.afterAggregation = afterAggregation
        queue = WorkQueue(maxQueued: maxQueued)
        for index in 0..<max(1, min(8, threads)) {
            self.threads.append(DedicatedThread(name: "pixeld-arch-\(index)") { [self] in self.work() })
        }
    }

    /// The day reports of `aggregator` (``ArchiveReport/dailyReports(_:)``) over its site's records
    /// of its ``ArchiveReport/readDays``. The read and the aggregation (a copy and a sort of up to
    /// ``maxRecords`` records) both run on one of the store's threads, so that
    /// filtered requests never hold the cooperative pool that every other request needs.
    /// - Throws: ``ArchiveReader/Failure`` when a file cannot be read (`.io`), the range holds more
    ///   than ``maxRecords`` lines (`.tooManyRecords`), too many reads are waiting (`.busy`), or the
    ///   store is stopped (`.stopped`).
    public func dailyReports(_ aggregator: ArchiveReport) async throws(ArchiveReader.Failure) -> [Report] {
        let directory = self.directory
        let maxRecords = self.maxRecords
        let afterAggregation = self.afterAggregation
        let result = await withCheckedContinuation {
            (continuation: CheckedContinuation<Result<[Report], ArchiveReader.Failure>, Never>) in
            let refusal = queue.submit {
                continuation.resume(
                    returning: Result { () throws(ArchiveReader.Failure) in
                        let records = try ArchiveReader.outcomes(
                            directory: directory, days: aggregator.readDays, site: aggregator.site, maxRecords: maxRecords
                        )
                        let days = aggregator.dailyReports(records.outcomes)
                        afterAggregation?()
                        return days
                    }
                )
            }
            switch refusal {
            case nil: break
            case .stopped?:
                continuation.resume(returning: .failure(ArchiveReader.Failure("the archive reader is stopped", code: .stopped)))
            case .full?:
                continuation.resume(
                    returning: .failure(ArchiveReader.Failure("too many archive reads at once; try again", code: .busy))
                )
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
