/// The Lua-free fast path of ``BatchCommitter``: a batch as one pipelined
/// `MULTI` / `LPUSH key v1 … vN` per key / `SET <marker> <seq> EX <ttl>` / `EXEC`.
///
/// A `MULTI`/`EXEC` transaction is atomic like the script (nothing else runs in between; it reaches the
/// AOF and replicas as one unit) and each `LPUSH` reports its own outcome in the `EXEC` reply, but Redis
/// does not copy every value into the Lua VM and back — about 2.5× less Redis CPU per message
/// (`bench/redis_ab.py`). What the transaction cannot do is look at the marker before writing, so the
/// fast path is taken only where that look is not needed:
///
/// - **A fresh batch of this writer instance**: a sequence greater than any this committer has sent
///   under its own marker. Only this process writes that marker, so such a batch cannot have been
///   applied. Spool records (of this run too: see the writer's replay), and every retry, take the
///   script, which checks the marker.
/// - **Keys last seen to accept a push** (lists, or absent): a key never seen, or whose last push
///   failed, takes the script, whose `redis.pcall` dead-letters it within the same commit.
/// - **No `hold` limit**: the script checks every list's length before writing. With `drop-oldest` the
///   transaction also runs `LTRIM key 0 max-1` after each `LPUSH`, and the trimmed count comes from the
///   `LPUSH` reply.
///
/// The transaction also deletes the marker's saved outcome (`<marker>:last`) when a script commit may
/// have written one, so a later script run for this sequence (a spool record replayed after a crash)
/// finds no stale outcome of an older batch, returns -1 and the batch is booked as already applied.
///
/// Two things can still go wrong, and what happens then:
///
/// 1. **A key refuses its push** (`WRONGTYPE`: it changed type since its last push). Redis still runs
///    the rest of the transaction — the other keys are pushed, the marker is set — and the `EXEC` reply
///    says which key failed. Its values then go through the script as a follow-up commit under a
///    separate marker, `<marker>:followup`, with the same sequence: the script pushes them to the key (if
///    it accepts them by now) or to `<key>:dead`, exactly once even if that reply is lost too (the
///    follow-up marker and its saved outcome make its retry return the same outcome). A batch spooled
///    or given up with its follow-up outstanding is spooled as that follow-up alone (the writer's
///    `unfinishedPart(of:sequence:)`), so that its replay, after a restart too, is the follow-up.
/// 2. **The reply is lost** (the connection died after the transaction was sent). The next attempt at
///    the same batch first makes sure the transaction cannot run any more (see `fenceOff`), then reads
///    the marker: below the sequence, the transaction never ran (`EXEC` is all or nothing) and the
///    batch goes through the script; at or above it, it ran, and `TYPE` of each
///    key tells which pushes succeeded — a list (or, if a consumer emptied it, no key) accepted the
///    values, any other type refused them and they take the follow-up of case 1. The one case this
///    cannot tell apart: a key that refused the push and was then deleted or turned back into a list
///    before the retry read its type (milliseconds, and only in a batch whose reply was lost). Its
///    values are then booked as pushed but are in neither the key nor `<key>:dead`. The same holds when
///    the process dies in that window and a later run replays the batch from the spool: the marker
///    says "applied", and with no saved outcome the script's -1 books it as pushed. Both need a key to
///    change type twice around a lost reply; the script path has no such window, so every batch whose
///    keys are not all known-good still takes it.
extension BatchCommitter {
    /// A fast commit that was sent but whose `EXEC` reply was not read.
    struct UnresolvedTransaction {
        var marker: [UInt8]
        var sequence: UInt64
        /// The `CLIENT ID` of the connection it was sent on, and its server, if known.
        var clientID: RedisConnection.ClientID?
    }

    /// A batch applied by a transaction in which some keys refused their push: those keys' values still
    /// have to be committed through the script (the follow-up).
    struct PendingFollowUp {
        var marker: [UInt8]
        var sequence: UInt64
        /// One per group: known outcomes, `nil` for the groups the follow-up commits.
        var outcomes: [KeyOutcome?]
    }

    /// Appended to a writer instance's id (and so to its marker) for its follow-up commits.
    static let followUpSuffix = ":followup"

    /// The marker of the follow-up commits of `marker`'s transactions: the marker of the instance
    /// `<instance>` + ``followUpSuffix``, so that a follow-up spooled under that instance id replays
    /// through it.
    static func followUpMarker(of marker: [UInt8]) -> [UInt8] { marker + Array(followUpSuffix.utf8) }

    /// Whether `groups` may be committed by a transaction (see the type's documentation).
    func canUseTransaction(_ batch: PushBatch, groups: [KeyGroup], marker: [UInt8], sequence: UInt64) -> Bool {
        guard let ownMarker, marker == ownMarker, sequence > lastOwnSequenceSent else { return false }
        guard maxListLength == 0 || fullPolicy == .dropOldest else { return false }
        return groups.allSatisfy { knownListKeys.contains(key(of: $0, in: batch)) }
    }

    /// Commits `groups` as one `MULTI`/`EXEC` transaction and reads its reply.
    mutating func commitTransaction(
        _ batch: PushBatch,
        groups: [KeyGroup],
        marker: [UInt8],
        sequence: UInt64,
        on connection: RedisConnection
    ) throws(RespError) -> Result {
        lastOwnSequenceSent = sequence
        unresolvedTransaction = UnresolvedTransaction(marker: marker, sequence: sequence, clientID: connection.clientID)
        let trims = maxListLength > 0
        let deletesSavedOutcome = savedOutcomeMayExist
        try connection.append([Self.multi])
        for group in groups {
            try appendPush(batch, group: group, on: connection)
            if trims {
                try connection.append([Self.ltrim, key(of: group, in: batch), Array("0".utf8), Array(String(maxListLength - 1).utf8)])
            }
        }
        try connection.append([Self.set, marker, Array(String(sequence).utf8), Self.ex, Array(String(Self.markerTTLSeconds).utf8)])
        if deletesSavedOutcome { try connection.append([Self.del, marker + Array(":last".utf8)]) }
        try connection.append([Self.exec])
        let queued = 1 + groups.count * (trims ? 2 : 1) + 1 + (deletesSavedOutcome ? 1 : 0)
        var queueError: String?
        for _ in 0..<queued {
            if case .error(let text) = try connection.readReply(), queueError == nil { queueError = text }
        }
        let reply = try connection.readReply()
        unresolvedTransaction = nil
        guard case .array(let results) = reply else {
            // EXECABORT (a command was refused while queueing, e.g. OOM) or another error: nothing ran.
            // The refusal says why (`OOM`, `READONLY`): that is the error reported, not `EXECABORT`.
            if case .error(let text) = reply {
                let refusal = text.hasPrefix("EXECABORT") ? queueError ?? text : text
                throw RespError(code: .server, operation: "EXEC", message: refusal)
            }
            throw RespError(code: .unexpectedReply, operation: "EXEC", message: "\(reply) \(queueError ?? "")")
        }
        if deletesSavedOutcome { savedOutcomeMayExist = false }
        var outcomes: [KeyOutcome?] = []
        outcomes.reserveCapacity(groups.count)
        for index in groups.indices {
            let pushReply = index * (trims ? 2 : 1)
            guard pushReply < results.count, case .integer(var length) = results[pushReply] else {
                outcomes.append(nil)
                continue
            }
            var trimmed: Int64 = 0
            if trims && length > Int64(maxListLength) {
                trimmed = length - Int64(maxListLength)
                length = Int64(maxListLength)
            }
            outcomes.append(.pushed(length: length, trimmed: trimmed))
        }
        return try finish(PendingFollowUp(marker: marker, sequence: sequence, outcomes: outcomes), batch, groups, on: connection)
    }

    /// The next attempt at a batch whose transaction reply was lost: finds out whether it ran (the
    /// marker) and which keys accepted their values (`TYPE`), then finishes it; `nil` when it did not
    /// run and the batch must be committed again (through the script).
    mutating func resolveLostTransaction(
        _ batch: PushBatch,
        groups: [KeyGroup],
        marker: [UInt8],
        sequence: UInt64,
        on connection: RedisConnection
    ) throws(RespError) -> Result? {
        try fenceOff(unresolvedTransaction?.clientID, on: connection)
        let stored = try connection.command([Self.get, marker]).unwrap("GET")
        let applied = stored.string.flatMap { UInt64($0) }.map { $0 >= sequence } ?? false
        guard applied else {
            unresolvedTransaction = nil
            return nil
        }
        // Every reply is read before any is looked at: an error reply (`NOPERM`) must not leave the
        // later ones unread, or the next command on this connection would read a stale reply.
        let types = try connection.pipeline(groups.map { [Self.type, key(of: $0, in: batch)] })
        var outcomes: [KeyOutcome?] = []
        for reply in types {
            let type = try reply.unwrap("TYPE").string ?? ""
            // The length and any trim count of that run are unknown now; only `trimmed` is booked.
            outcomes.append(type == "list" || type == "none" ? .pushed(length: 0, trimmed: 0) : nil)
        }
        unresolvedTransaction = nil
        return try finish(PendingFollowUp(marker: marker, sequence: sequence, outcomes: outcomes), batch, groups, on: connection)
    }

    /// Makes sure a transaction whose reply was lost can no longer run, before the marker tells whether
    /// it ran: `CLIENT KILL ID` of the connection it was sent on.
    ///
    /// A lost reply does not mean the transaction reached Redis. After a command timeout its bytes
    /// may still be on their way (TCP retransmits them after this process closed the socket, to a
    /// remote Redis for seconds) and arrive after the marker was read here: the marker said "never
    /// ran", the script committed the batch, and the late `EXEC` — which does not look at the marker —
    /// would push it a second time. Killing the old client makes Redis drop whatever of it has not run
    /// yet; Redis runs one command at a time, so after the kill nothing of it runs any more and the
    /// marker read next is final. (`WATCH` would not do: sent with the transaction, it would run as
    /// late as the transaction.) A kill that finds no client (`0`: it is gone, and its unsent bytes
    /// with it) needs nothing more. Only on the server that gave the id (the same `run_id`): a Redis
    /// that restarted numbers its clients from 1 again, and another server (after a failover) has its
    /// own numbers, so there the old id may be another client's — and the old connection is gone with
    /// the old process, or on a demoted server that refuses the write. Not covered: a connection whose
    /// id is unknown (`CLIENT ID` or `INFO` refused, Redis before 5), and a refused kill (an ACL without
    /// `CLIENT KILL`); there, as before, only bytes still on their way longer than the command timeout
    /// can be applied twice.
    /// - Throws: ``RespError`` when the connection fails; a refusal is not an error here.
    private func fenceOff(_ clientID: RedisConnection.ClientID?, on connection: RedisConnection) throws(RespError) {
        guard let clientID, let current = connection.clientID, clientID.server == current.server, clientID.id != current.id else { return }
        _ = try connection.command([Self.client, Self.kill, Self.id, Array(String(clientID.id).utf8)])
    }

    /// Commits the follow-up of `pending`, if it has one, and combines the outcomes.
    mutating func finish(
        _ pending: PendingFollowUp,
        _ batch: PushBatch,
        _ groups: [KeyGroup],
        on connection: RedisConnection
    ) throws(RespError) -> Result {
        for (group, outcome) in zip(groups, pending.outcomes) {
            if outcome == nil { forgetKey(of: group, in: batch) }
        }
        guard pending.outcomes.contains(where: { $0 == nil }) else {
            pendingFollowUp = nil
            return .applied(pending.outcomes.map { $0! })
        }
        pendingFollowUp = pending
        let failed = zip(groups, pending.outcomes).filter { $0.1 == nil }.map(\.0)
        let followUp = try commitScript(
            batch,
            groups: failed,
            marker: Self.followUpMarker(of: pending.marker),
            sequence: pending.sequence,
            on: connection
        )
        pendingFollowUp = nil
        guard case .applied(let followUpOutcomes) = followUp else { return .alreadyApplied }
        var next = followUpOutcomes.makeIterator()
        return .applied(pending.outcomes.map { $0 ?? next.next() ?? .lost("no outcome for this key") })
    }

    /// Appends `LPUSH key v1 … vN` with pointers straight into the batch's arena.
    private mutating func appendPush(_ batch: PushBatch, group: KeyGroup, on connection: RedisConnection) throws(RespError) {
        arguments.start(reserving: 2 + group.entryIndices.count)
        try batch.bytes.withUnsafeBufferPointer { (arena) throws(RespError) -> Void in
            arguments.add("LPUSH")
            arguments.add(arena, group.keyStart..<group.keyStart + group.keyLength)
            for entryIndex in group.entryIndices {
                let entry = batch.entries[entryIndex]
                arguments.add(arena, entry.valueStart..<entry.valueStart + entry.valueLength)
            }
            try connection.append(arguments)
        }
    }

    private static let multi = Array("MULTI".utf8)
    private static let exec = Array("EXEC".utf8)
    private static let set = Array("SET".utf8)
    private static let ex = Array("EX".utf8)
    private static let del = Array("DEL".utf8)
    private static let get = Array("GET".utf8)
    private static let type = Array("TYPE".utf8)
    private static let ltrim = Array("LTRIM".utf8)
    private static let client = Array("CLIENT".utf8)
    private static let kill = Array("KILL".utf8)
    private static let id = Array("ID".utf8)
}
