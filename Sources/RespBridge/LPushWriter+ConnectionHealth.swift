import Logging
import PixeldConcurrency

#if canImport(Glibc)
import Glibc
#endif

/// ``LPushWriter``'s connection health: connecting, probing an outage, noting failures and
/// recoveries, and the backoff between attempts.
extension LPushWriter {
    func ensureConnected() throws(RespError) {
        guard !connection.isConnected else { return }
        try connection.connect()
        if everConnected {
            statistics.addReconnect()
        } else {
            logger.info("connected to redis", metadata: ["redis.url": "\(connection.configuration)"])
        }
        everConnected = true
    }

    /// Whether Redis answers a `PING`, while an outage lasts and nothing waits to be committed.
    func probe() {
        do {
            try ensureConnected()
            _ = try connection.command(["PING"]).unwrap("PING")
            noteRecovery()
        } catch {
            noteFailure(error, countsRetry: false)
        }
    }

    /// - Parameter countsRetry: whether a commit failed (`pixeld_redis_retries_total`), not a connect
    ///   at start or a probe.
    func noteFailure(_ error: RespError, countsRetry: Bool = true) {
        if countsRetry { statistics.addRetry() }
        // A server error part-way through a pipeline leaves replies unread: the connection is out of
        // step (the next command would read a stale reply), so it goes too; and so does one to a server
        // that does not take writes (a replica after a failover), so that the next attempt reconnects.
        if error.connectionIsDead || connection.hasPendingReplies || error.callsForReconnect { connection.close() }
        let reason = error.connectionIsDead ? "unavailable" : (error.serverErrorPrefix.map { $0.lowercased() } ?? "\(error.code)")
        let full = error.serverErrorPrefix == "FULL"
        if heldByFullList && !full {
            outage.forget()  // a failing Redis during a hold: an outage of its own, with its warning
        }
        if error.connectionIsDead {
            outage.failed(error, logger: logger, message: "redis unavailable, holding messages and retrying", repeatMessage: "redis still unavailable")
        } else {
            // Redis answered but refused the commit (`FULL` at a `hold` limit, `OOM`, …): say why.
            outage.failed(error, logger: logger, message: "redis refused the commit (\(reason)), holding messages and retrying",
                          repeatMessage: "redis still refusing the commit (\(reason))")
        }
        statistics.setRedis(.failing(reason: reason, since: outage.startedAt!))
        redisReportedOK = false
        heldByFullList = full
    }

    func noteRecovery() {
        backoff.reset()
        spilledInThisStall = false
        // A full list that took one batch is still holding the rest until the backlog is in: under a
        // consumer slower than the traffic that is one long hold, not an outage per batch.
        if heldByFullList && queue.pendingCount + (spool?.messageCount ?? 0) >= maxBatchMessages { return }
        heldByFullList = false
        if !redisReportedOK {
            redisReportedOK = true
            statistics.setRedis(.ok)
        }
        outage.recovered(logger: logger)
    }

    /// The next replay of the spool is due a backoff delay from now.
    func retryReplayLater() {
        nextReplayAt = MonotonicClock.nanoseconds() + Int64(backoff.nextDelayMilliseconds()) * 1_000_000
    }

    /// Sleeps for the next backoff delay, in slices so that a shutdown deadline is noticed promptly.
    /// - Parameter spilling: between a live batch's attempts: the queue is spilled to the spool as it
    ///   fills (``spill(waitedNanoseconds:)``). Not while a batch waits to join the spool: what is
    ///   queued must not overtake it.
    func pause(spilling: Bool = false) {
        var left = backoff.nextDelayMilliseconds()
        while left > 0 && !isGivingUp {
            let slice = min(left, 10)
            usleep(UInt32(slice * 1000))
            left -= slice
            if spilling { spill(waitedNanoseconds: .max) }
        }
    }
}
