import PixeldConcurrency

#if canImport(Glibc)
import Glibc
#endif

/// Commits one batch to Redis exactly once: its `LPUSH`es run inside one Lua script that first checks
/// the writer's commit marker, so a batch re-sent after its reply was lost (connection killed
/// mid-flight, or replayed from the spool after a crash) is recognised and skipped — or, in the
/// common case described below, in one `MULTI`/`EXEC` transaction.
///
/// Identity: every batch carries its writer instance's id (random per process start) and a sequence
/// number that only grows. The marker `pixeld:writer:<instance>` holds the last applied sequence;
/// the script applies a batch only if its sequence is greater, then stores it — atomically, because a
/// Lua script runs in isolation and its effects reach the AOF and replicas as one unit.
///
/// Per-key isolation: each key's `LPUSH` runs under `redis.pcall`, so a permanent error on one key
/// (`WRONGTYPE`, `NOPERM`) is reported for that key alone and the other keys are still pushed.
///
/// The common case — a new batch of this writer, keys that took their last push, no `hold` limit —
/// skips Lua and commits as one `MULTI`/`EXEC` transaction instead: see
/// `BatchCommitter+Transaction.swift` for when exactly, and for how the same guarantees are kept.
struct BatchCommitter {
    /// The outcome of one key's push within a committed batch.
    enum KeyOutcome: Equatable {
        /// Pushed; the list's new length and how many of its oldest values were trimmed to keep it
        /// at its maximum length.
        case pushed(length: Int64, trimmed: Int64)
        /// The key refused the push permanently (the error text); its values went to `<key>:dead`.
        case deadLettered(String)
        /// The key and its dead-letter list both refused; the values are lost (the error text).
        case lost(String)
    }

    /// The outcome of one commit.
    enum Result: Equatable {
        /// An older batch than the last one applied: it was applied before, its outcome is no longer
        /// known (only spool records replayed after a crash get here).
        case alreadyApplied
        /// Applied — now, or by an earlier attempt whose reply was lost (the saved outcome is returned
        /// then); one outcome per key group, in group order.
        case applied([KeyOutcome])
    }

    /// How long the commit marker lives after the last commit: long enough for any retry or spool
    /// replay of the same writer instance to find it.
    static let markerTTLSeconds = 7 * 24 * 3600

    /// The commit script. KEYS: marker, marker's saved outcome, then one list per group. ARGV: sequence,
    /// marker TTL, maximum list length (0 = none), full policy (`hold` or `drop-oldest`), dead-letter
    /// suffix, then per list its value count and values.
    ///
    /// The shebang makes Redis refuse the whole script with `-OOM` before it runs when memory is full,
    /// and the `hold` check happens before any write, so a batch is either applied entirely — each key
    /// pushed or, on a permanent error for that key, dead-lettered to `<key>:dead` — or not at all; it
    /// is never split into follow-up commits (only the transaction's may be: see
    /// `BatchCommitter+Transaction.swift`). Returns -1 for a batch older than the last one applied,
    /// else per list `{length, trimmed, 0}`, `{dead length, 0, 1, error}` or `{0, 0, 2, error}`; the
    /// outcome of the last batch is saved, so a retry whose first reply was lost gets it again.
    /// Under `hold` an empty list takes a batch whatever its size: a spool record written under a larger
    /// limit (or none) would otherwise wait for room that never comes.
    static let script = """
        #!lua
        local seq = tonumber(ARGV[1])
        local last = tonumber(redis.call('GET', KEYS[1]) or '-1')
        if seq < last then return -1 end
        if seq == last then
          local saved = redis.call('GET', KEYS[2])
          if saved then return cjson.decode(saved) end
          return -1
        end
        local maxlen = tonumber(ARGV[3])
        local policy = ARGV[4]
        if maxlen > 0 and policy == 'hold' then
          local pos = 6
          for i = 3, #KEYS do
            local n = tonumber(ARGV[pos])
            local len = redis.pcall('LLEN', KEYS[i])
            if type(len) == 'number' and len > 0 and len + n > maxlen then
              return redis.error_reply('FULL list ' .. KEYS[i] .. ' is at its maximum length ' .. maxlen)
            end
            pos = pos + n + 1
          end
        end
        local function push(key, first, n)
          local length = 0
          local j = 0
          while j < n do
            local m = math.min(n - j, 4000)
            local r = redis.pcall('LPUSH', key, unpack(ARGV, first + j, first + j + m - 1))
            if type(r) == 'table' and r.err then return nil, r.err end
            length = r
            j = j + m
          end
          return length, nil
        end
        local results = {}
        local pos = 6
        for i = 3, #KEYS do
          local n = tonumber(ARGV[pos])
          local length, err = push(KEYS[i], pos + 1, n)
          if err == nil then
            local trimmed = 0
            if maxlen > 0 and policy ~= 'hold' and length > maxlen then
              redis.call('LTRIM', KEYS[i], 0, maxlen - 1)
              trimmed = length - maxlen
              length = maxlen
            end
            results[#results + 1] = {length, trimmed, 0}
          else
            local deadLength, deadErr = push(KEYS[i] .. ARGV[5], pos + 1, n)
            if deadErr == nil then
              results[#results + 1] = {deadLength, 0, 1, err}
            else
              results[#results + 1] = {0, 0, 2, err .. '; ' .. deadErr}
            end
          end
          pos = pos + n + 1
        end
        redis.call('SET', KEYS[1], seq, 'EX', ARGV[2])
        redis.call('SET', KEYS[2], cjson.encode(results), 'EX', ARGV[2])
        return results
        """

    /// What to do when a list reaches its maximum length.
    enum FullPolicy: String, Sendable {
        /// Keep the batch (retry, and spool during long waits) until the consumer makes room.
        case hold
        /// Push anyway and trim the oldest values, counting them.
        case dropOldest = "drop-oldest"
    }

    private var scriptSHA: [UInt8]?
    /// The arguments of the command being appended, reused across commits. (A class: a copy of
    /// the committer shares it, which is safe, as commits run one at a time on the writer thread.)
    let arguments = CommandArguments()
    private var numbers: [UInt8] = []
    private var numberRanges: [Range<Int>] = []

    let maxListLength: Int
    let fullPolicy: FullPolicy
    private let deadLetterSuffix: String

    // Fast-path state (BatchCommitter+Transaction.swift).
    /// The marker of this process's writer instance; only its new batches may skip the script.
    let ownMarker: [UInt8]?
    /// The highest sequence sent under ``ownMarker``, by either path.
    var lastOwnSequenceSent: UInt64 = 0
    /// Keys whose last push succeeded, at most ``knownKeyLimit``.
    private(set) var knownListKeys = Set<[UInt8]>()
    private static let knownKeyLimit = 1024
    /// A transaction sent whose reply was not read.
    var unresolvedTransaction: UnresolvedTransaction?
    /// A transaction applied with refused keys whose follow-up has not been committed yet.
    var pendingFollowUp: PendingFollowUp?
    /// Whether a script commit may have saved an outcome under ``ownMarker``'s `:last` key.
    var savedOutcomeMayExist = false

    /// Creates a committer.
    /// - Parameters:
    ///   - maxListLength: the most values a list may hold; 0 for no limit.
    ///   - fullPolicy: what happens at the limit.
    ///   - deadLetterSuffix: appended to a key to name its dead-letter list.
    ///   - ownMarker: the marker key of this process's writer instance, whose new batches may be
    ///     committed without Lua; `nil` always uses the script.
    init(
        maxListLength: Int = 0,
        fullPolicy: FullPolicy = .hold,
        deadLetterSuffix: String = ":dead",
        ownMarker: [UInt8]? = nil
    ) {
        self.maxListLength = maxListLength
        self.fullPolicy = fullPolicy
        self.deadLetterSuffix = deadLetterSuffix
        self.ownMarker = ownMarker
    }

    /// The commit marker key of a writer instance.
    static func markerKey(instanceID: String) -> [UInt8] { Array("pixeld:writer:\(instanceID)".utf8) }

    /// Sends the commit of `groups` (keys and entry indices into `batch`) as batch number `sequence` of
    /// the writer instance whose marker key is `marker`, and reads its reply.
    ///
    /// A new batch of this writer whose keys all took their last push goes as a transaction (unless
    /// `allowingTransaction` is `false`: a spool replay); anything else, and every retry, through the
    /// script. A retry of a transaction whose reply was lost, or
    /// whose follow-up is outstanding, is finished as described in `BatchCommitter+Transaction.swift`.
    /// - Throws: ``RespError``: a connection failure (the batch may or may not have been applied: send
    ///   it again with the same sequence), or a server error for the whole commit (`OOM`, `BUSY`,
    ///   `LOADING`…: nothing was applied).
    mutating func commit(
        _ batch: PushBatch,
        groups: [KeyGroup],
        marker: [UInt8],
        sequence: UInt64,
        on connection: RedisConnection,
        allowingTransaction: Bool = true
    ) throws(RespError) -> Result {
        if let unresolved = unresolvedTransaction {
            if unresolved.marker == marker && unresolved.sequence == sequence {
                if let result = try resolveLostTransaction(batch, groups: groups, marker: marker, sequence: sequence, on: connection) {
                    return result
                }
            } else if unresolved.marker == marker {
                // A later batch of the same marker: the writer gave that one up (spool full, or
                // shutdown). Commits under other markers (spilled batches, follow-ups, a previous run's
                // records) may come first while it waits in the spool: its replay still resolves it.
                unresolvedTransaction = nil
            }
        }
        if let pending = pendingFollowUp {
            if pending.marker == marker && pending.sequence == sequence {
                return try finish(pending, batch, groups, on: connection)
            }
            pendingFollowUp = nil
        }
        if allowingTransaction && canUseTransaction(batch, groups: groups, marker: marker, sequence: sequence) {
            return try commitTransaction(batch, groups: groups, marker: marker, sequence: sequence, on: connection)
        }
        let result = try commitScript(batch, groups: groups, marker: marker, sequence: sequence, on: connection)
        if case .applied(let outcomes) = result {
            for (group, outcome) in zip(groups, outcomes) {
                if case .pushed = outcome { rememberKey(of: group, in: batch) } else { forgetKey(of: group, in: batch) }
            }
        }
        return result
    }

    /// The key of `group` as bytes.
    func key(of group: KeyGroup, in batch: PushBatch) -> [UInt8] {
        Array(batch.bytes[group.keyStart..<group.keyStart + group.keyLength])
    }

    /// Notes that `group`'s key took a push: its next batches may go as a transaction.
    mutating func rememberKey(of group: KeyGroup, in batch: PushBatch) {
        guard knownListKeys.count < Self.knownKeyLimit else { return }
        knownListKeys.insert(key(of: group, in: batch))
    }

    /// Notes that `group`'s key refused a push: its next batches go through the script.
    mutating func forgetKey(of group: KeyGroup, in batch: PushBatch) {
        knownListKeys.remove(key(of: group, in: batch))
    }

    /// Commits through the script (see the type's documentation).
    mutating func commitScript(
        _ batch: PushBatch,
        groups: [KeyGroup],
        marker: [UInt8],
        sequence: UInt64,
        on connection: RedisConnection
    ) throws(RespError) -> Result {
        if marker == ownMarker {
            lastOwnSequenceSent = max(lastOwnSequenceSent, sequence)
            savedOutcomeMayExist = true
        }
        if scriptSHA == nil { try loadScript(on: connection) }
        var reply = try send(batch, groups: groups, marker: marker, sequence: sequence, on: connection)
        if case .error(let text) = reply, text.hasPrefix("NOSCRIPT") {
            // Redis restarted and forgot the script; it did not run, so sending again is safe.
            try loadScript(on: connection)
            reply = try send(batch, groups: groups, marker: marker, sequence: sequence, on: connection)
        }
        switch reply {
        case .integer(-1):
            return .alreadyApplied
        case .array(let outcomes) where outcomes.count == groups.count:
            var parsed: [KeyOutcome] = []
            for outcome in outcomes {
                guard let fields = outcome.array, fields.count >= 3, let kind = fields[2].int else {
                    throw RespError(code: .unexpectedReply, operation: "EVALSHA", message: "\(outcome)")
                }
                let text = fields.count > 3 ? (fields[3].string ?? "") : ""
                switch kind {
                case 0: parsed.append(.pushed(length: fields[0].int ?? 0, trimmed: fields[1].int ?? 0))
                case 1: parsed.append(.deadLettered(text))
                default: parsed.append(.lost(text))
                }
            }
            return .applied(parsed)
        case .error(let text):
            throw RespError(code: .server, operation: "EVALSHA", message: text)
        default:
            throw RespError(code: .unexpectedReply, operation: "EVALSHA", message: "\(reply)")
        }
    }

    private mutating func loadScript(on connection: RedisConnection) throws(RespError) {
        let reply = try connection.command(["SCRIPT", "LOAD", Self.script]).unwrap("SCRIPT LOAD")
        guard let sha = reply.bytes else {
            throw RespError(code: .unexpectedReply, operation: "SCRIPT LOAD", message: "\(reply)")
        }
        scriptSHA = sha
    }

    /// Builds `EVALSHA sha numkeys marker key… seq ttl count values… count values…` with pointers straight
    /// into the batch's arena, appends it and reads the reply.
    private mutating func send(
        _ batch: PushBatch,
        groups: [KeyGroup],
        marker markerKey: [UInt8],
        sequence: UInt64,
        on connection: RedisConnection
    ) throws(RespError) -> RESPValue {
        // Numbers as text, in one buffer that is not touched again until the command is appended.
        numbers.removeAll(keepingCapacity: true)
        numberRanges.removeAll(keepingCapacity: true)
        func addNumber(_ value: some BinaryInteger) {
            let start = numbers.count
            numbers.append(contentsOf: String(value).utf8)
            numberRanges.append(start..<numbers.count)
        }
        addNumber(groups.count + 2)  // numkeys
        addNumber(sequence)
        addNumber(Self.markerTTLSeconds)
        addNumber(maxListLength)
        let policyStart = numbers.count
        numbers.append(contentsOf: fullPolicy.rawValue.utf8)
        numberRanges.append(policyStart..<numbers.count)
        let suffixStart = numbers.count
        numbers.append(contentsOf: deadLetterSuffix.utf8)
        numberRanges.append(suffixStart..<numbers.count)
        let savedStart = numbers.count
        numbers.append(contentsOf: markerKey)
        numbers.append(contentsOf: ":last".utf8)
        let savedKey = savedStart..<numbers.count
        for group in groups { addNumber(group.entryIndices.count) }

        // EVALSHA sha numkeys marker saved key… seq ttl maxlen policy suffix (count values…)…, for
        // `groups` only: a follow-up commits some of the batch's keys.
        let count = 5 + groups.count + 5 + groups.count + groups.reduce(0) { $0 + $1.entryIndices.count }
        arguments.start(reserving: count)
        let sha = scriptSHA!
        return try sha.withUnsafeBufferPointer { (sha) throws(RespError) -> RESPValue in
            try markerKey.withUnsafeBufferPointer { (marker) throws(RespError) -> RESPValue in
                try numbers.withUnsafeBufferPointer { (digits) throws(RespError) -> RESPValue in
                    try batch.bytes.withUnsafeBufferPointer { (arena) throws(RespError) -> RESPValue in
                        arguments.add("EVALSHA")
                        arguments.add(sha, 0..<sha.count)
                        arguments.add(digits, numberRanges[0])
                        arguments.add(marker, 0..<marker.count)
                        arguments.add(digits, savedKey)
                        for group in groups { arguments.add(arena, group.keyStart..<group.keyStart + group.keyLength) }
                        for argument in 1...5 { arguments.add(digits, numberRanges[argument]) }
                        for (groupIndex, group) in groups.enumerated() {
                            arguments.add(digits, numberRanges[6 + groupIndex])
                            for entryIndex in group.entryIndices {
                                let entry = batch.entries[entryIndex]
                                arguments.add(arena, entry.valueStart..<entry.valueStart + entry.valueLength)
                            }
                        }
                        precondition(arguments.count == count)
                        try connection.append(arguments)
                        return try connection.readReply()
                    }
                }
            }
        }
    }

}

/// The entries of one key within a batch.
struct KeyGroup {
    /// Offset of the key in the batch's arena.
    var keyStart: Int
    /// Length of the key.
    var keyLength: Int
    /// Indices into the batch's entries, in arrival order.
    var entryIndices: [Int]

    /// Groups `batch` by key, in the order of each key's first entry, reusing `groups`' storage.
    /// Keys are usually few (one per program): up to ``linearScanLimit`` groups, a linear scan with
    /// `memcmp` finds an entry's group, with no hashing and no allocation. Past that — a batch of many
    /// distinct keys, which whoever sends the datagrams can make — a dictionary keyed by the key's
    /// bytes does, so that grouping stays linear in the batch rather than quadratic in its keys.
    static func group(_ batch: PushBatch, into groups: inout [KeyGroup]) {
        for index in groups.indices { groups[index].entryIndices.removeAll(keepingCapacity: true) }
        var used = 0
        // Filled once there are more than `linearScanLimit` groups (an empty dictionary allocates nothing).
        var byKey: [ArraySlice<UInt8>: Int] = [:]
        func key(_ start: Int, _ count: Int) -> ArraySlice<UInt8> { batch.bytes[start..<start + count] }
        batch.bytes.withUnsafeBytes { bytes in
            let base = bytes.baseAddress!
            for (entryIndex, entry) in batch.entries.enumerated() {
                var found = -1
                if used > linearScanLimit {
                    found = byKey[key(entry.keyStart, entry.keyLength)] ?? -1
                } else {
                    for candidate in 0..<used
                    where groups[candidate].keyLength == entry.keyLength
                        && memcmp(base + groups[candidate].keyStart, base + entry.keyStart, entry.keyLength) == 0
                    {
                        found = candidate
                        break
                    }
                }
                if found < 0 {
                    if used == groups.count { groups.append(KeyGroup(keyStart: 0, keyLength: 0, entryIndices: [])) }
                    groups[used].keyStart = entry.keyStart
                    groups[used].keyLength = entry.keyLength
                    found = used
                    used += 1
                    if used > linearScanLimit {
                        // The groups so far the first time, then each new one.
                        for group in (byKey.isEmpty ? 0 : used - 1)..<used {
                            byKey[key(groups[group].keyStart, groups[group].keyLength)] = group
                        }
                    }
                }
                groups[found].entryIndices.append(entryIndex)
            }
        }
        if groups.count > used { groups.removeLast(groups.count - used) }
    }

    /// How many groups are looked for by a linear scan before ``group(_:into:)`` hashes the keys.
    static let linearScanLimit = 8
}
