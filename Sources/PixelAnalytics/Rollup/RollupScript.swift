import Crypto

/// The Lua script that applies one batch's rollups and visit state, run with `EVALSHA` inside the
/// consumer's ack `MULTI`/`EXEC`, so the numbers change exactly when the batch is acknowledged: a
/// consumer killed before `EXEC` leaves no trace and the batch is processed again from scratch;
/// after `EXEC`, the batch is gone from the processing list. Visit state is read inside the
/// script, so a re-processed batch sees the same state the first attempt did.
///
/// Arguments (`EVALSHA sha 0 ARGV…`; no `KEYS`: the script builds its key names from the prefix, so
/// it needs a standalone Redis, not a cluster):
/// 1. the format version (`1`); 2. the prefix; 3. the breakdown cap; 4. the visit timeout in ms;
///    5. the visit state TTL in s; 6. the prefix of visit state keys (`pixeld:visit:`; a replay
///    uses its own, so that it neither sees nor disturbs live visits);
/// 7. `n` counters, then `n` × (key, field, increment, capped `1`/`0`, expire-at unix time);
/// 8. `n` HyperLogLogs, then `n` × (key, expire-at, count, ids…);
/// 9. `n` hits, then `n` × (site, day base, expire-at, vid, previous vid, time ms, pageview `1`/`0`,
///    path, source, utm source, utm medium, utm campaign) in arrival order.
///
/// The script validates every argument before writing anything, so a malformed batch fails whole.
/// Capped hashes take a new field only while they hold fewer than `cap` fields; later values go to
/// `(other)`. It computes in Lua tables and writes each hash field and each visit's state once per
/// batch (`MGET`/`SET … EX` of msgpack strings, `HINCRBY` per field), so Redis's work grows with
/// the distinct keys and visitors of a batch, not with its hits.
public enum RollupScript {
    /// The script text.
    public static let source = """
        -- pixeld rollup script, format 1
        if ARGV[1] ~= '1' then return redis.error_reply('pixeld rollup: unknown format ' .. tostring(ARGV[1])) end
        local prefix = ARGV[2]
        local cap = tonumber(ARGV[3])
        local idle = tonumber(ARGV[4])
        local visitTTL = tonumber(ARGV[5])
        local visitPrefix = ARGV[6]
        if not (cap and idle and visitTTL) then return redis.error_reply('pixeld rollup: bad header') end
        -- Validate the layout before any write.
        local i = 7
        local counters = tonumber(ARGV[i])
        if not counters then return redis.error_reply('pixeld rollup: bad counter count') end
        local counterStart = i + 1
        i = counterStart + counters * 5
        for c = counterStart, i - 1, 5 do
          if not (tonumber(ARGV[c + 2]) and tonumber(ARGV[c + 4])) then return redis.error_reply('pixeld rollup: bad counter') end
        end
        local hlls = tonumber(ARGV[i])
        if not hlls then return redis.error_reply('pixeld rollup: bad hll count') end
        local hllStart = i + 1
        i = hllStart
        for _ = 1, hlls do
          local count = tonumber(ARGV[i + 2])
          if not (count and tonumber(ARGV[i + 1])) then return redis.error_reply('pixeld rollup: bad hll') end
          i = i + 3 + count
        end
        local hits = tonumber(ARGV[i])
        if not hits then return redis.error_reply('pixeld rollup: bad hit count') end
        local hitStart = i + 1
        i = hitStart + hits * 12
        if i - 1 ~= #ARGV then return redis.error_reply('pixeld rollup: argument count mismatch') end
        for h = hitStart, i - 1, 12 do
          if not (tonumber(ARGV[h + 2]) and tonumber(ARGV[h + 5])) then return redis.error_reply('pixeld rollup: bad hit') end
        end

        -- Everything is computed in Lua tables first and written once per key at the end: one
        -- HINCRBY per (key, field) whatever the number of hits, one GET/SET per visitor.
        local expiries = {}
        local pending, pendingOrder = {}, {}
        local function incr(key, field, by, capped, at)
          local p = pending[key]
          if not p then
            p = { capped = capped, fields = {}, order = {} }
            pending[key] = p
            pendingOrder[#pendingOrder + 1] = key
          end
          if p.fields[field] == nil then
            p.fields[field] = 0
            p.order[#p.order + 1] = field
          end
          p.fields[field] = p.fields[field] + by
          expiries[key] = at
        end

        for c = counterStart, counterStart + counters * 5 - 1, 5 do
          incr(ARGV[c], ARGV[c + 1], tonumber(ARGV[c + 2]), ARGV[c + 3] == '1', ARGV[c + 4])
        end

        i = hllStart
        for _ = 1, hlls do
          local key, at, count = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
          local first = i + 3
          while first < i + 3 + count do
            local last = math.min(first + 499, i + 2 + count)
            redis.call('PFADD', key, unpack(ARGV, first, last))
            first = last + 1
          end
          expiries[key] = at
          i = i + 3 + count
        end

        local function campaign(base, at, us, um, uc)
          if us ~= '' then incr(base .. 'bd:utm_sources', us, 1, true, at) end
          if um ~= '' then incr(base .. 'bd:utm_mediums', um, 1, true, at) end
          if uc ~= '' then incr(base .. 'bd:utm_campaigns', uc, 1, true, at) end
        end

        -- Visit state: {first ms, last ms, hits, bounce '1'/'0', day base, expire-at, source, utm
        -- source, medium, campaign}, msgpack-encoded in one string per visitor, read with MGET.
        local visits, loaded, touched, gone = {}, {}, {}, {}
        local function load(keys)
          for first = 1, #keys, 500 do
            local chunk = { unpack(keys, first, math.min(first + 499, #keys)) }
            local values = redis.call('MGET', unpack(chunk))
            for n, key in ipairs(chunk) do
              loaded[key] = true
              if values[n] then visits[key] = cmsgpack.unpack(values[n]) end
            end
          end
        end
        local wanted, seen = {}, {}
        for h = hitStart, hitStart + hits * 12 - 1, 12 do
          if ARGV[h + 3] ~= '' then
            local key = visitPrefix .. ARGV[h] .. ':' .. ARGV[h + 3]
            if not seen[key] then seen[key] = true; wanted[#wanted + 1] = key end
          end
        end
        load(wanted)

        for h = hitStart, hitStart + hits * 12 - 1, 12 do
          local site, base, at, vid, pvid = ARGV[h], ARGV[h + 1], ARGV[h + 2], ARGV[h + 3], ARGV[h + 4]
          local ts, pv, path = tonumber(ARGV[h + 5]), ARGV[h + 6] == '1', ARGV[h + 7]
          local src, us, um, uc = ARGV[h + 8], ARGV[h + 9], ARGV[h + 10], ARGV[h + 11]
          if vid == '' then
            -- No visitor id (no IP/user agent logged): pageviews by the hit's own source, no visit.
            if pv then
              incr(base .. 'bd:sources', src, 1, true, at)
              campaign(base, at, us, um, uc)
            end
          else
            local key = visitPrefix .. site .. ':' .. vid
            local s = visits[key]
            if not s and pvid ~= '' then
              -- A visit that started before midnight, under yesterday's key.
              local old = visitPrefix .. site .. ':' .. pvid
              if not loaded[old] then load({ old }) end
              local p = visits[old]
              if p and ts <= p[2] + idle and ts >= p[1] - idle then
                visits[old] = nil
                gone[old] = true
                touched[old] = nil
                s = p
              end
            end
            if s and ts <= s[2] + idle and ts >= s[1] - idle then
              -- The visit goes on.
              local f, l = s[1], s[2]
              local nf, nl = math.min(f, ts), math.max(l, ts)
              local delta = (nl - nf) - (l - f)
              if delta ~= 0 then incr(s[5] .. 'totals', 'duration_ms', delta, false, s[6]) end
              if s[4] == '1' then incr(s[5] .. 'totals', 'bounces', -1, false, s[6]) end
              s[1], s[2], s[3], s[4] = nf, nl, s[3] + 1, '0'
              if pv then
                incr(base .. 'bd:sources', s[7], 1, true, at)
                campaign(base, at, s[8], s[9], s[10])
              end
            else
              -- A new visit (or the previous one timed out).
              local bounce = '0'
              incr(base .. 'totals', 'visits', 1, false, at)
              if pv then
                bounce = '1'
                incr(base .. 'totals', 'bounces', 1, false, at)
              end
              incr(base .. 'bd:entry_pages', path, 1, true, at)
              incr(base .. 'bd:source_visits', src, 1, true, at)
              if pv then
                incr(base .. 'bd:sources', src, 1, true, at)
                campaign(base, at, us, um, uc)
              end
              s = { ts, ts, 1, bounce, base, at, src, us, um, uc }
            end
            visits[key] = s
            gone[key] = nil
            touched[key] = true
          end
        end

        for key in pairs(gone) do redis.call('DEL', key) end
        for key in pairs(touched) do redis.call('SET', key, cmsgpack.pack(visits[key]), 'EX', visitTTL) end

        -- Capped hashes take a new field only while they hold fewer than `cap` fields, in the order
        -- the fields first appeared in the batch; later new values go to `(other)`.
        for _, key in ipairs(pendingOrder) do
          local p = pending[key]
          local size = p.capped and redis.call('HLEN', key) or 0
          local checked = p.capped and size + #p.order > cap
          local other = 0
          for _, field in ipairs(p.order) do
            local by = p.fields[field]
            if checked and redis.call('HEXISTS', key, field) == 0 then
              if size < cap then size = size + 1 else field = nil; other = other + by end
            end
            if field and by ~= 0 then redis.call('HINCRBY', key, field, by) end
          end
          if other ~= 0 then redis.call('HINCRBY', key, '(other)', other) end
        end

        for key, at in pairs(expiries) do redis.call('EXPIREAT', key, at) end
        return hits
        """

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
