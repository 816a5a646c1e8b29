import Logging
import PixeldConcurrency

/// The spool side of ``LPushWriter``: batches to disk (as a stall spills the queue, after failed
/// commits, behind the spool's records) and the replay back to Redis.
extension LPushWriter {
    /// What became of a batch handed to the spool.
    enum SpoolOutcome {
        /// Written.
        case spooled
        /// Dropped, counted as `spool_full`: the spool is at its size limit while Redis fails.
        case dropped
        /// Not taken (no spool, the write failed, or the spool is at its size limit while Redis takes
        /// its replay): the caller still holds the batch.
        case kept
    }

    /// Appends `batch` to the spool. A failed write is counted and warned about once per episode
    /// (`spool writable again` ends it); the batch is then the caller's to keep. At the size limit the
    /// batch is dropped only while Redis fails: while it takes commits, the replay is making room, and
    /// the batch is kept until there is.
    /// - Parameter spilled: a batch never attempted, spooled as ``spillInstanceID`` by
    ///   ``spill(waitedNanoseconds:)`` while a commit may be under way (whose state is not touched).
    func toSpool(_ batch: PushBatch, sequence: UInt64, spilled: Bool = false) -> SpoolOutcome {
        guard let spool else { return .kept }
        let unfinished = spilled
            ? UnfinishedPart(batch: batch, instanceID: spillInstanceID, book: {}) : unfinishedPart(of: batch, sequence: sequence)
        do {
            guard try spool.append(unfinished.batch, instanceID: unfinished.instanceID, sequence: sequence) else {
                if redisReportedOK { return .kept }
                unfinished.book()
                statistics.addSpoolFull(unfinished.batch.count)
                // One error per episode (every batch is counted in pixeld_ingest_dropped_total).
                if !spoolFullDropping {
                    spoolFullDropping = true
                    logger.error(
                        "spool full; messages dropped while redis fails (counted as spool_full)",
                        metadata: ["messages": "\(unfinished.batch.count)"]
                    )
                }
                return .dropped
            }
            unfinished.book()
            statistics.setSpooled(spool.messageCount)
            if spoolFullDropping {
                spoolFullDropping = false
                logger.info("spool has room again")
            }
            if spoolWriteFailing {
                spoolWriteFailing = false
                logger.info("spool writable again")
            }
            return .spooled
        } catch {
            statistics.addSpoolWriteError()
            if spoolWriteFailing {
                logger.debug("spool write still failing", metadata: ["error": "\(error)"])
            } else {
                spoolWriteFailing = true
                logger.warning("spool write failed; holding messages in memory", metadata: ["error": "\(error)"])
            }
            return .kept
        }
    }

    /// Puts `batch` behind the spool's records. One the spool does not take now (a write error, or its
    /// size limit while Redis takes the replay) waits here — and the queue, and then the receivers,
    /// behind it — so that nothing overtakes a spooled record: between backoff pauses the spool is
    /// replayed when due and the write tried again, and once the replay has emptied the spool the batch
    /// is delivered live. After the shutdown deadline it is given up.
    func joinSpool(_ batch: PushBatch, sequence: UInt64) {
        // What is queued is newer than `batch`: no spill may put it in the spool first.
        waitingToJoinSpool = true
        defer { waitingToJoinSpool = false }
        while toSpool(batch, sequence: sequence) == .kept {
            if isGivingUp {
                abandon(batch, sequence: sequence)
                return
            }
            pause()
            if MonotonicClock.nanoseconds() >= nextReplayAt { replaySpool(budgetNanoseconds: Self.replaySliceNanoseconds) }
            if spool?.isEmpty ?? true {
                waitingToJoinSpool = false  // delivered live now, as any batch (which a spill may follow)
                deliver(batch, sequence: sequence)
                return
            }
        }
    }

    /// Sets the in-flight gauge: `count` messages of the batch in hand, plus those of ``spillHeld``
    /// (out of the queue, not yet spooled), so that `received = pushed + queued + in flight +
    /// spooled + …` holds meanwhile.
    func setInFlight(_ count: Int) {
        inFlight = count
        statistics.setInFlight(count + (spillHeld?.batch.count ?? 0))
    }

    /// Puts the batch a spill took and the spool did not (``spillHeld``) behind the spool — or
    /// delivers it, once the spool is empty — before anything newer is taken from the queue; a spill
    /// during that delivery may hold another, settled in turn.
    func settleSpillHeld() {
        while let held = spillHeld {
            spillHeld = nil
            setInFlight(held.batch.count)
            joinSpool(held.batch, sequence: held.sequence)
            setInFlight(0)
        }
    }

    /// How long a commit must have awaited its replies before ``spill(waitedNanoseconds:)`` moves the queue to the
    /// spool: Redis answers a commit in about a millisecond, so this is a stall, not a busy moment.
    static let spillAfterNanoseconds: Int64 = 100_000_000

    /// The identity of the batches ``spill(waitedNanoseconds:)`` spools, with a commit marker of its own.
    /// The batch whose commit is under way keeps this writer's identity and its sequence, lower than
    /// theirs; if that commit fails twice (or is given up at the shutdown deadline) it is spooled
    /// behind them, and under a shared marker its replay would then be taken for applied (the marker
    /// already past its sequence) and lost unnoticed.
    var spillInstanceID: String { instanceID + ":spill" }

    /// While the writer waits on Redis — a reply awaited for more than ``spillAfterNanoseconds`` (a
    /// stalled Redis: `DEBUG SLEEP`, a paused client, an overloaded host; a reply may take the whole
    /// command timeout), or the pause between attempts — the receivers go on filling the queue. Once it
    /// holds ``Options/spoolAtQueueFraction`` of its capacity, or a receiver waits for room
    /// (``PushQueue/needsRoom(atFraction:)``), everything waiting there moves to the spool, so that a
    /// stall fills the disk, not the socket buffers (whose overflow the kernel drops). The spool is then
    /// replayed in order once the commit under way is settled; that batch, should its commit fail
    /// twice, joins the spool behind the spilled ones (the one case where a later message reaches Redis
    /// first).
    func spill(waitedNanoseconds: Int64) {
        guard spool != nil, spillHeld == nil, !waitingToJoinSpool, waitedNanoseconds >= Self.spillAfterNanoseconds,
            queue.needsRoom(atFraction: options.spoolAtQueueFraction)
        else { return }
        // (Between attempts the outage's own warning has said that Redis fails.)
        if !spilledInThisStall && waitedNanoseconds != .max {
            logger.warning(
                "redis is slow to answer; moving the queue to the spool",
                metadata: ["waited.ms": "\(waitedNanoseconds / 1_000_000)"]
            )
        }
        spilledInThisStall = true
        var batch = PushBatch()
        var waiting = queue.pendingBytes
        while waiting > 0 {
            let outcome = queue.take(
                into: &batch, lingerNanoseconds: 0, maxBytes: options.maxBatchBytes, maxMessages: maxBatchMessages, timeoutNanoseconds: 1
            )
            guard outcome == .taken else { return }
            waiting -= batch.byteCount
            sequence += 1
            switch toSpool(batch, sequence: sequence, spilled: true) {
            case .kept:
                spillHeld = (batch, sequence)
                setInFlight(inFlight)
                return
            case .spooled:
                spilledBatches += 1
            case .dropped:
                break
            }
            batch.removeAll()
        }
    }

    /// How long one replay of the spool runs before the writer moves what has arrived since into the
    /// spool: a long replay (a large spool after an outage or a restart) must not block the receivers.
    static let replaySliceNanoseconds: Int64 = 50_000_000

    /// Commits spooled batches, oldest first, while Redis takes them, for up to `budget` nanoseconds and
    /// never past the shutdown deadline. On a failure the next replay is due a backoff delay later
    /// (``nextReplayAt``).
    /// - Parameter yieldingToTheQueue: the run loop's replay, which moves the queue behind the spool
    ///   when it returns: it returns as soon as the queue needs room (``PushQueue/needsRoom(atFraction:)``),
    ///   after one record at least (so that it advances under any load), not at the end of the slice.
    ///   The receivers come first: catching up after an outage the writer spools, reads back and
    ///   commits every message, and a slice that ran to its end while the queue was full had the
    ///   receivers wait for room (up to 176 ms after a 2 s `CLIENT PAUSE` at 50k msg/s, release
    ///   build), while the socket buffer filled and the kernel dropped what did not fit
    ///   (`BENCHMARKS.md`, session 25).
    func replaySpool(budgetNanoseconds budget: Int64, yieldingToTheQueue: Bool = false) {
        guard let spool, !spool.isEmpty else { return }
        guard !gaveUpOnRedis && !isGivingUp else {
            // Not before the final replay at the end (which stops at once past the deadline): a due
            // replay that does nothing would have the run loop spin until the queue closes.
            nextReplayAt = .max
            return
        }
        let started = MonotonicClock.nanoseconds()
        while MonotonicClock.nanoseconds() - started < budget && !isGivingUp {
            let record: Spool.Record
            do {
                let next = try spool.peek()
                let unreadable = spool.takeUnreadableMessages()
                if unreadable > 0 {
                    // Of a previous run's records first (the oldest segments): those stand outside this
                    // run's totals, as their replay counts as `recovered`, so only this run's share is lost.
                    let inherited = min(inheritedSpoolMessages, unreadable)
                    inheritedSpoolMessages -= inherited
                    statistics.addLost(unreadable - inherited)
                    statistics.setSpooled(spool.messageCount)
                    logger.error(
                        "spool segment unreadable or deleted; its messages are lost",
                        metadata: ["messages": "\(unreadable)", "of_a_previous_run": "\(inherited)"]
                    )
                }
                guard let next else { break }
                record = next
            } catch {
                logger.error("spool read failed", metadata: ["error": "\(error)"])
                retryReplayLater()
                return
            }
            var groups: [KeyGroup] = []
            KeyGroup.group(record.batch, into: &groups)
            do {
                try ensureConnected()
                // Through the script, never a transaction: a key that refused a transaction's push would
                // leave a follow-up that, should it fail and the run end, no replay could tell from an
                // applied record (the marker says applied, and no outcome is saved).
                let result = try commit(
                    record.batch, groups: groups, marker: BatchCommitter.markerKey(instanceID: record.instanceID),
                    sequence: record.sequence, allowingTransaction: false
                )
                let inherited = min(inheritedSpoolMessages, record.batch.count)
                inheritedSpoolMessages -= inherited
                settle(result, batch: record.batch, groups: groups, fromPreviousRun: inherited)
                try spool.removeFirst()
                statistics.setSpooled(spool.messageCount)
                noteRecovery()  // after the record left the spool: the backlog a hold waits for is what is left
                if yieldingToTheQueue && queue.needsRoom(atFraction: options.spoolAtQueueFraction) { break }
            } catch let error as RespError {
                noteFailure(error)
                if isGivingUp { gaveUpOnRedis = true }
                retryReplayLater()
                return
            } catch {
                logger.error("spool update failed", metadata: ["error": "\(error)"])
                retryReplayLater()
                return
            }
        }
        if spool.isEmpty { logger.info("spool replayed; back to live delivery") }
    }
}
