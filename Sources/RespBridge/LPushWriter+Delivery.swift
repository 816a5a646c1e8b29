import Logging
import PixeldConcurrency

/// Committing a live batch and booking what Redis did with it (``LPushWriter``'s delivery).
extension LPushWriter {
    /// Commits one batch, retrying until it is applied; spools it (or gives up) as described above.
    func deliver(_ batch: PushBatch, sequence: UInt64) {
        var groups: [KeyGroup] = []
        KeyGroup.group(batch, into: &groups)
        var attempts = 0
        let spilledBefore = spilledBatches
        while true {
            if gaveUpOnRedis {
                abandon(batch, sequence: sequence)
                return
            }
            attempts += 1
            let wasIdle = connection.mayHaveBeenClosedForIdleness
            do {
                try ensureConnected()
                let started = MonotonicClock.nanoseconds()
                let result = try commit(batch, groups: groups, marker: marker, sequence: sequence)
                metrics.recordCommit(nanoseconds: MonotonicClock.nanoseconds() - started, messages: batch.count)
                noteRecovery()
                settle(result, batch: batch, groups: groups, fromPreviousRun: 0)
                return
            } catch {
                if attempts == 1 && error.connectionIsDead && error.code != .timeout && wasIdle && !isGivingUp {
                    // Redis closes a connection left idle past its `timeout`; the first use finds it gone.
                    // Not an outage: a new connection, at once (an outage shows on that one). Not an
                    // attempt either: the batch's first failure is the one on the new connection, so a
                    // stall of one timeout still keeps the order (and shows in /healthz). A timeout is
                    // never a closed connection: it is the stall.
                    attempts -= 1
                    connection.close()
                    logger.debug("redis connection found closed after idling; reconnecting", metadata: ["error": "\(error)"])
                    continue
                }
                noteFailure(error)
                if isGivingUp { gaveUpOnRedis = true }
                // With a spool, a batch that failed twice (a dead connection gets one immediate retry
                // on a new one) goes to disk at once, so an outage or a crash loses nothing held here;
                // so does one that failed once with the queue needing room — unless a spill has put
                // newer batches in the spool meanwhile: behind them it would reach Redis after them, and
                // the spills in the pause below make room anyway (a stall of one timeout keeps the order).
                // A spool that cannot be written leaves it here, retried as without a spool (the spool
                // was empty when this batch was taken; what a spill put there since is newer, and is
                // replayed after this batch is committed).
                let needsRoom = spilledBatches == spilledBefore && queue.needsRoom(atFraction: options.spoolAtQueueFraction)
                if spool != nil, attempts >= 2 || needsRoom, toSpool(batch, sequence: sequence) != .kept
                {
                    retryReplayLater()
                    return
                }
                if error.connectionIsDead && attempts == 1 && !gaveUpOnRedis { continue }  // reconnect and retry at once
                pause(spilling: true)
            }
        }
    }

    /// ``BatchCommitter/commit(_:groups:marker:sequence:on:allowingTransaction:)`` on the writer's
    /// connection, its start published meanwhile (``WriterStatistics/commitWaitingNanoseconds``: `/healthz`
    /// says `slow` once a reply is a second late).
    func commit(
        _ batch: PushBatch, groups: [KeyGroup], marker: [UInt8], sequence: UInt64, allowingTransaction: Bool = true
    ) throws(RespError) -> BatchCommitter.Result {
        statistics.setCommitStarted(MonotonicClock.nanoseconds())
        defer { statistics.setCommitStarted(0) }
        return try committer.commit(
            batch, groups: groups, marker: marker, sequence: sequence, on: connection, allowingTransaction: allowingTransaction
        )
    }

    /// After the shutdown deadline, with Redis failing: the batch goes to the spool, or is counted lost.
    func abandon(_ batch: PushBatch, sequence: UInt64) {
        guard toSpool(batch, sequence: sequence) == .kept else { return }
        let unfinished = unfinishedPart(of: batch, sequence: sequence)
        unfinished.book()
        statistics.addLost(unfinished.batch.count)
        logger.error(
            spool == nil ? "gave up at shutdown: redis unreachable and no spool" : "gave up at shutdown: redis unreachable and the spool cannot be written",
            metadata: ["messages": "\(unfinished.batch.count)"]
        )
    }

    /// What of a batch is still to be committed when it leaves memory (spooled, dropped or given up).
    struct UnfinishedPart {
        /// The messages still to be committed.
        var batch: PushBatch
        /// The writer instance they are committed as.
        var instanceID: String
        /// Books the rest of the batch (committed already) and forgets its follow-up: call once the
        /// unfinished part has left memory.
        var book: () -> Void
    }

    /// All of `batch`, unless a transaction applied it and only the keys that refused their push wait
    /// for the follow-up (``BatchCommitter/pendingFollowUp``). Then only those keys' values remain, as
    /// the follow-up's instance (`<id>:followup`, whose marker is the follow-up marker), so that a replay
    /// (after a restart too) commits exactly them, once; the whole batch under this instance's marker
    /// would be taken for applied (its sequence is the marker's) and those values lost unnoticed.
    func unfinishedPart(of batch: PushBatch, sequence: UInt64) -> UnfinishedPart {
        guard let pending = committer.pendingFollowUp, pending.marker == marker, pending.sequence == sequence else {
            return UnfinishedPart(batch: batch, instanceID: instanceID, book: {})
        }
        var groups: [KeyGroup] = []
        KeyGroup.group(batch, into: &groups)
        var applied: [(KeyGroup, BatchCommitter.KeyOutcome)] = []
        var unfinishedEntries: [Int] = []
        for (group, outcome) in zip(groups, pending.outcomes) {
            if let outcome { applied.append((group, outcome)) } else { unfinishedEntries += group.entryIndices }
        }
        var rest = PushBatch()
        for index in unfinishedEntries.sorted() {
            let entry = batch.entries[index]
            rest.append(key: Array(batch.key(of: entry)), value: Array(batch.value(of: entry)), acceptedAt: entry.acceptedAt)
        }
        return UnfinishedPart(batch: rest, instanceID: instanceID + BatchCommitter.followUpSuffix) { [self] in
            committer.pendingFollowUp = nil
            settle(.applied(applied.map(\.1)), batch: batch, groups: applied.map(\.0), fromPreviousRun: 0)
        }
    }

    /// Books a commit's outcome per key: pushed, dead-lettered or lost.
    func settle(_ result: BatchCommitter.Result, batch: PushBatch, groups: [KeyGroup], fromPreviousRun: Int) {
        var inherited = fromPreviousRun
        /// Messages a previous run left in the spool count as recovered, not as this run's.
        func ownShare(_ count: Int) -> Int {
            let fromBefore = min(inherited, count)
            inherited -= fromBefore
            if fromBefore > 0 { statistics.addRecovered(fromBefore) }
            return count - fromBefore
        }
        guard case .applied(let outcomes) = result else {
            // A spooled batch applied long ago, before a crash: its outcome is gone; count it pushed.
            statistics.addPushed(ownShare(batch.count))
            return
        }
        for (group, outcome) in zip(groups, outcomes) {
            let count = group.entryIndices.count
            switch outcome {
            case .pushed(_, let trimmed):
                statistics.addPushed(ownShare(count))
                metrics.recordAcks(batch, group.entryIndices)
                onDelivered?(batch, group.entryIndices)
                if trimmed > 0 { statistics.addTrimmed(Int(trimmed)) }
            case .deadLettered(let error):
                statistics.addDeadLettered(ownShare(count))
                logger.error(
                    "push failed permanently; values sent to the dead-letter list",
                    metadata: ["redis.key": "\(key(of: group, in: batch))", "error": "\(error)", "messages": "\(count)"]
                )
            case .lost(let error):
                statistics.addLost(ownShare(count))
                logger.error(
                    "push and dead-letter push both failed; messages lost",
                    metadata: ["redis.key": "\(key(of: group, in: batch))", "error": "\(error)", "messages": "\(count)"]
                )
            }
        }
    }

    func key(of group: KeyGroup, in batch: PushBatch) -> String {
        String(decoding: batch.bytes[group.keyStart..<group.keyStart + group.keyLength], as: UTF8.self)
    }
}
