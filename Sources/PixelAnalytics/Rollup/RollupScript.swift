import Crypto

/// The Lua script that applies one batch's rollups and visit state. The consumer runs it as a
/// function of its ack's script (`ReliableListConsumer.Options.ackFunctions`), so the numbers change
/// exactly when the batch is acknowledged: a consumer killed before the ack leaves no trace and the
/// batch is processed again from scratch; after it, the batch is gone from the processing list.
/// (`pixeld replay` runs it on its own, with `EVALSHA`.) Being part of the ack, it runs when Redis
/// is over `maxmemory` too.
///
/// The visits are worked out by the consumer (``RollupBatch``) from the state it read before; the
/// script only applies the result, so Redis's work grows with the distinct keys, fields and visitors
/// of a batch, not with its hits, and no per-hit logic runs inside Redis.
///
/// Arguments (`EVALSHA sha 0 ARGV…`, or the call's arguments in the ack; no `KEYS`: the key names are built by the consumer under its
/// prefix, so the script needs a standalone Redis, not a cluster):
/// 1. the format version (`2`); 2. the breakdown cap; 3. the visit state TTL in s;
/// 4. `n` hashes, then per hash: key, capped `1`/`0`, expire-at unix time, `m` fields, then `m` ×
///    (field, increment) in first-seen order;
/// 5. `n` HyperLogLogs, then `n` × (key, expire-at, count, ids…);
/// 6. `n` visit state keys to delete, then the keys;
/// 7. `n` visit states to write, then `n` × (key, MessagePack value, see `VisitState`).
///
/// The script validates every argument before writing anything, so a malformed batch fails whole.
/// Capped hashes take a new field only while they hold fewer than `cap` fields; later values go to
/// `(other)`.
///
/// Redis keeps a hash of up to `hash-max-listpack-entries` (512) short fields as a *listpack*, one
/// block it scans field by field on every `HINCRBY`: on this project's benchmark machine an update
/// cost 2.8 µs on a 60-field hash and 7.4 µs on a 400-field one, against 1.0–1.3 µs on a hashtable,
/// which made `HINCRBY` the largest part of an ack. So before it increments a breakdown that may
/// hold more than 64 fields after the batch, the script makes it a hashtable: Redis converts a hash
/// for good once a field is longer than `hash-max-listpack-value` (64 by default), so the script
/// writes a 1,025-byte field (a control byte and dashes: no breakdown value can equal it, since
/// ``DimensionText`` replaces control bytes and caps lengths at 512) before the increments and
/// deletes it after them, and deletes it again in later batches should a failed script have left
/// it. (An RDB load makes small hashes listpacks again; the next batch converts them again. With
/// `hash-max-listpack-value` above 1,024 nothing converts, and each batch pays that write for
/// nothing.) Hashes that stay under 64 fields — most breakdowns of a small site — stay compact.
public enum RollupScript {
    /// The script, reading its `n` arguments as `A[o + 1]` … `A[o + n]`.
    private static let body = """
        -- pixeld rollup script, format 2
        if A[o + 1] ~= '2' then return redis.error_reply('pixeld rollup: unknown format ' .. tostring(A[o + 1])) end
        local cap = tonumber(A[o + 2])
        local visitTTL = tonumber(A[o + 3])
        if not (cap and visitTTL) then return redis.error_reply('pixeld rollup: bad header') end
        -- Validate the layout before any write.
        local i = 4
        local hashes = tonumber(A[o + i])
        if not hashes then return redis.error_reply('pixeld rollup: bad hash count') end
        local hashStart = i + 1
        i = hashStart
        for _ = 1, hashes do
          local fields = tonumber(A[o + i + 3])
          if not (fields and tonumber(A[o + i + 2])) then return redis.error_reply('pixeld rollup: bad hash') end
          for f = i + 5, i + 3 + fields * 2, 2 do
            if not tonumber(A[o + f]) then return redis.error_reply('pixeld rollup: bad increment') end
          end
          i = i + 4 + fields * 2
        end
        local hlls = tonumber(A[o + i])
        if not hlls then return redis.error_reply('pixeld rollup: bad hll count') end
        local hllStart = i + 1
        i = hllStart
        for _ = 1, hlls do
          local count = tonumber(A[o + i + 2])
          if not (count and tonumber(A[o + i + 1])) then return redis.error_reply('pixeld rollup: bad hll') end
          i = i + 3 + count
        end
        local deletes = tonumber(A[o + i])
        if not deletes then return redis.error_reply('pixeld rollup: bad delete count') end
        local deleteStart = i + 1
        i = deleteStart + deletes
        local writes = tonumber(A[o + i])
        if not writes then return redis.error_reply('pixeld rollup: bad write count') end
        local writeStart = i + 1
        i = writeStart + writes * 2
        if i - 1 ~= n then return redis.error_reply('pixeld rollup: argument count mismatch') end

        for d = deleteStart, deleteStart + deletes - 1 do redis.call('DEL', A[o + d]) end
        for w = writeStart, writeStart + writes * 2 - 1, 2 do
          redis.call('SET', A[o + w], A[o + w + 1], 'EX', visitTTL)
        end

        i = hllStart
        for _ = 1, hlls do
          local key, count = A[o + i], tonumber(A[o + i + 2])
          local first = i + 3
          while first < i + 3 + count do
            local last = math.min(first + 499, i + 2 + count)
            redis.call('PFADD', key, unpack(A, o + first, o + last))
            first = last + 1
          end
          redis.call('EXPIREAT', key, A[o + i + 1])
          i = i + 3 + count
        end

        -- Capped hashes take a new field only while they hold fewer than `cap` fields, in the order
        -- the fields first appeared in the batch; later new values go to `(other)`.
        -- A capped hash that may hold more than `compact` fields is made a hashtable first (see
        -- RollupScript.swift: a listpack scans its fields on every HINCRBY).
        local compact = 64
        local wide = '\\1' .. string.rep('-', 1024)
        i = hashStart
        for _ = 1, hashes do
          local key, capped, fields = A[o + i], A[o + i + 1] == '1', tonumber(A[o + i + 3])
          local size = capped and redis.call('HLEN', key) or 0
          local large = capped and math.min(size + fields, cap + 1) > compact
          if large and redis.call('OBJECT', 'ENCODING', key) ~= 'hashtable' then redis.call('HSET', key, wide, 0) end
          local checked = capped and size + fields > cap
          local other = 0
          for f = i + 4, i + 3 + fields * 2, 2 do
            local field, by = A[o + f], tonumber(A[o + f + 1])
            if checked and redis.call('HEXISTS', key, field) == 0 then
              if size < cap then size = size + 1 else field = nil; other = other + by end
            end
            if field and by ~= 0 then redis.call('HINCRBY', key, field, by) end
          end
          if other ~= 0 then redis.call('HINCRBY', key, '\(RollupKeys.otherField)', other) end
          if large then redis.call('HDEL', key, wide) end
          redis.call('EXPIREAT', key, A[o + i + 2])
          i = i + 4 + fields * 2
        end
        return hashes
        """

    /// The script text, for `EVALSHA` (`pixeld replay`).
    public static let source = "local A, o, n = ARGV, 0, #ARGV\n" + body

    /// The script as the consumer's ack calls it: the body of `function(A, o, n)` (see
    /// `ReliableListConsumer.Options.ackFunctions`).
    public static let functionBody = body

    /// The SHA-1 of ``source``, for `EVALSHA`.
    public static let sha1: String = {
        let digest = Insecure.SHA1.hash(data: Array(source.utf8))
        let hex: [Character] = Array("0123456789abcdef")
        var text = ""
        for byte in digest {
            text.append(hex[Int(byte >> 4)])
            text.append(hex[Int(byte & 0xF)])
        }
        return text
    }()

    /// `SCRIPT LOAD <source>`: send it (on any connection) before a batch's `EVALSHA`, so a Redis
    /// restarted since the last batch knows the script again.
    public static var loadCommand: [[UInt8]] {
        [Array("SCRIPT".utf8), Array("LOAD".utf8), Array(source.utf8)]
    }
}
