import Crypto

/// The random 32-byte key of one UTC day, from which that day's visitor ids are derived.
///
/// It exists only in Redis (`pixeld:key:YYYY-MM-DD`, created with `SET … NX EXAT` so every consumer
/// shares the first one written, and gone at 01:00 UTC two days after its day began) and in the
/// consumers' memory, with the SipHash key derived from it — kept there to put it back should Redis
/// lose it (``restoreCommand(_:prefix:)``). Neither is ever logged, archived or written anywhere
/// else: once the key has expired, nobody — the operator included — can tell whether a given IP
/// address and browser made a given visit.
///
/// `description` and the mirror (`dump`) deliberately hide the key.
public struct DailyKey: Sendable, CustomStringConvertible, CustomReflectable {
    /// The key's length in bytes.
    public static let byteCount = 32
    /// When the key of `day` expires (Unix seconds): 01:00 UTC two days after its day began. Hits of
    /// the day are accepted until 24 h after it ends (`--max-age-hours` ≤ 24), and sessions of the
    /// next day that began before midnight look it up; the hour is margin for a backlog. An absolute
    /// time, not a TTL from creation: a key created early (a hit from a clock that runs ahead) would
    /// otherwise expire while its day's hits still come, and a second key would split its visitors.
    public static func expiresAt(_ day: Day) -> Int { (day.number + 2) * 86_400 + 3600 }

    /// The day the key belongs to.
    public let day: Day
    /// The key as Redis holds it, to put back there (never shown: see `description`, `customMirror`).
    private let bytes: [UInt8]
    /// The SipHash key of the day's visitor ids (``VisitorID``): the first 16 bytes of
    /// HMAC-SHA256(daily key, ``visitorHashLabel``). The daily key itself is not kept.
    let visitorHash: SipHash24
    /// What the visitor id key is derived with (HMAC's message), so that it differs from any other
    /// key a future version might derive from the same daily key.
    static let visitorHashLabel = Array("pixeld visitor id: SipHash-2-4-128".utf8)

    /// Wraps key bytes read from Redis.
    /// - Parameters:
    ///   - day: The key's day.
    ///   - bytes: Exactly ``byteCount`` bytes.
    /// - Returns: `nil` when `bytes` has the wrong length.
    public init?(day: Day, bytes: some Collection<UInt8>) {
        guard bytes.count == Self.byteCount else { return nil }
        self.day = day
        self.bytes = Array(bytes)
        let derived = Array(HMAC<SHA256>.authenticationCode(for: Self.visitorHashLabel, using: SymmetricKey(data: Array(bytes))))
        func word(_ start: Int) -> UInt64 {
            (0..<8).reduce(0) { $0 | UInt64(derived[start + $1]) << (8 * UInt64($1)) }
        }
        visitorHash = SipHash24(k0: word(0), k1: word(8))
    }

    /// A new random key (from the system's cryptographic generator) as bytes, to offer with
    /// `SET … NX`.
    public static func randomBytes() -> [UInt8] {
        SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) }
    }

    /// The Redis key that holds the key of `day`: `<prefix>key:YYYY-MM-DD`.
    public static func redisKey(for day: Day, prefix: String = RollupKeys.defaultPrefix) -> String {
        prefix + "key:" + day.description
    }

    public var description: String { "DailyKey(\(day), <hidden>)" }

    public var customMirror: Mirror { Mirror(self, children: ["day": day]) }

    /// A Lua script that, for each day given, creates the key if asked and missing (`SET NX EX`)
    /// and returns it: `KEYS` = the Redis keys, `ARGV` = for each key `create` (`1`/`0`), the
    /// random candidate and its expiry (Unix seconds). Replies one bulk string (or nil) per key.
    /// Runs when Redis is over `maxmemory` too (`allow-oom`: one small key a day), or a consumer
    /// could not take the first hit of a day while Redis is full, and so could not drain it.
    public static let fetchScript = """
        #!lua flags=allow-oom
        local out = {}
        for i = 1, #KEYS do
          if ARGV[3 * i - 2] == '1' then
            redis.call('SET', KEYS[i], ARGV[3 * i - 1], 'NX', 'EXAT', ARGV[3 * i])
          end
          out[i] = redis.call('GET', KEYS[i])
        end
        return out
        """

    /// Whether `other` (a key read from Redis) is this key.
    public func isKey(_ other: some Collection<UInt8>) -> Bool {
        other.elementsEqual(bytes)
    }

    /// A Lua script that puts each key given back in Redis if it is gone (`SET NX EXAT`, as it was
    /// created: a Redis restarted without persistence, a flush, a failover to a replica without it,
    /// an eviction) and returns, per key, `1` if it did (else `0`) and the key Redis holds now:
    /// `KEYS` = the Redis keys, `ARGV` = for each key its bytes and expiry (Unix seconds). Without it,
    /// a consumer started after the loss made a new key while the running ones kept the old one, and
    /// every visitor of the day counted twice from then on. `allow-oom`, as ``fetchScript``.
    public static let restoreScript = """
        #!lua flags=allow-oom
        local out = {}
        for i = 1, #KEYS do
          local set = redis.call('SET', KEYS[i], ARGV[2 * i - 1], 'NX', 'EXAT', ARGV[2 * i])
          out[2 * i - 1] = set and 1 or 0
          out[2 * i] = redis.call('GET', KEYS[i])
        end
        return out
        """

    /// The `EVAL` command of ``restoreScript`` for `keys`.
    public static func restoreCommand(_ keys: [DailyKey], prefix: String = RollupKeys.defaultPrefix) -> [[UInt8]] {
        var command: [[UInt8]] = [Array("EVAL".utf8), Array(restoreScript.utf8), Array(String(keys.count).utf8)]
        for key in keys { command.append(Array(redisKey(for: key.day, prefix: prefix).utf8)) }
        for key in keys {
            command.append(key.bytes)
            command.append(Array(String(expiresAt(key.day)).utf8))
        }
        return command
    }

    /// The `EVAL` command that fetches (and for `create` days creates) the keys of `days`.
    /// - Parameters:
    ///   - days: Each day with whether its key may be created (days of incoming hits) or only read
    ///     (the previous day, for sessions crossing midnight).
    ///   - prefix: The key prefix.
    public static func fetchCommand(_ days: [(day: Day, create: Bool)], prefix: String = RollupKeys.defaultPrefix)
        -> [[UInt8]]
    {
        var command: [[UInt8]] = [Array("EVAL".utf8), Array(fetchScript.utf8), Array(String(days.count).utf8)]
        for entry in days { command.append(Array(redisKey(for: entry.day, prefix: prefix).utf8)) }
        for entry in days {
            command.append(entry.create ? [UInt8(ascii: "1")] : [UInt8(ascii: "0")])
            command.append(entry.create ? randomBytes() : [])
            command.append(Array(String(expiresAt(entry.day)).utf8))
        }
        return command
    }
}

/// The daily keys a batch needs, by day, and the days whose key Redis did not hold when last asked.
public struct DailyKeys: Sendable {
    private var keys: [Day: DailyKey] = [:]
    /// When Redis last answered that it held no key for a day that was only read (see
    /// ``toLoad(_:now:)``), by day.
    private var misses: [Day: Double] = [:]

    /// How long, in seconds, a day's key that Redis did not hold is not asked for again when only read
    /// — the day before a hit's, for the first `sessionIdleSeconds` after midnight, which nobody
    /// makes unless a hit of that day came: without it, each batch of that half hour asked again.
    /// Another consumer may make it later (a late hit of that day): it is read again after this long.
    public static let missRecheckSeconds: Double = 10

    /// An empty set.
    public init() {}

    /// The key of `day`, if known.
    public subscript(day: Day) -> DailyKey? {
        keys[day]
    }

    /// Adds or replaces a key.
    public mutating func insert(_ key: DailyKey) {
        keys[key.day] = key
        misses[key.day] = nil
    }

    /// Notes that Redis held no key for `day` at `now` (seconds since the epoch).
    public mutating func recordMiss(_ day: Day, now: Double) {
        misses[day] = now
    }

    /// Of `days` (as ``daysNeeded(for:sessionIdleSeconds:)`` gives them), those whose keys must be
    /// read from Redis at `now`: the days whose key is not known, except those only read whose key
    /// Redis did not hold less than ``missRecheckSeconds`` ago (the clock set back counts as long
    /// ago). A day whose key may be created is always asked for.
    public func toLoad(_ days: [(day: Day, create: Bool)], now: Double) -> [(day: Day, create: Bool)] {
        days.filter { entry in
            guard keys[entry.day] == nil else { return false }
            guard !entry.create, let missed = misses[entry.day] else { return true }
            return !(0..<Self.missRecheckSeconds).contains(now - missed)
        }
    }

    /// Removes the keys that Redis no longer holds at `now` (seconds since the epoch): past
    /// ``DailyKey/expiresAt(_:)``, no id of that day can be made, by anyone — this cache included.
    public mutating func removeExpired(now: Double) {
        keys = keys.filter { Double(DailyKey.expiresAt($0.key)) > now }
        misses = misses.filter { (0..<Self.missRecheckSeconds).contains(now - $0.value) }
    }

    /// The days whose keys processing hits at `timestamps` needs: each hit's day (created if
    /// missing) and, for hits within `sessionIdleSeconds` after midnight, the day before (read only).
    public static func daysNeeded(for timestamps: [Double], sessionIdleSeconds: Double)
        -> [(day: Day, create: Bool)]
    {
        var create: Set<Day> = []
        var read: Set<Day> = []
        for timestamp in timestamps {
            let day = Day(timestamp: timestamp)
            create.insert(day)
            if timestamp - day.startTimestamp < sessionIdleSeconds { read.insert(day.previous) }
        }
        return create.sorted().map { ($0, true) } + read.subtracting(create).sorted().map { ($0, false) }
    }
}
