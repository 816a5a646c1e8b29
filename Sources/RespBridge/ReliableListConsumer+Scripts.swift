// The Lua scripts of ``ReliableListConsumer``: each moves events or checks the heartbeat atomically,
// fenced by the heartbeat's token, and runs under `maxmemory` too (`allow-oom`). The ack's script is
// ``AckScript``.
extension ReliableListConsumer {
    /// Moves up to ARGV[1] events from the tail of KEYS[1] (the oldest) to the head of KEYS[2], exactly
    /// as that many `LMOVE KEYS[1] KEYS[2] RIGHT LEFT` would — same order in both lists, atomically —
    /// but with one `LRANGE`, one `LTRIM` and one `LPUSH` per 1,000 events instead of a command per
    /// event. Returns the moved events newest first (as `LRANGE` gives them). Fenced: moves nothing
    /// and replies an error starting `FENCED` unless the heartbeat KEYS[3] holds this run's token
    /// ARGV[2] (nothing may go into a processing list that another run of this id owns). Like every
    /// script of the consumer, it runs when Redis is over `maxmemory` too (`allow-oom`): moving events
    /// between lists adds nothing, and consumers must keep draining a full Redis.
    private static let takeScript = """
        #!lua flags=allow-oom
        if redis.pcall('GET', KEYS[3]) ~= ARGV[2] then return redis.error_reply('FENCED heartbeat not ours') end
        local listKind = redis.call('TYPE', KEYS[1])['ok']
        if listKind ~= 'none' and listKind ~= 'list' then return redis.error_reply('NOTALIST ' .. KEYS[1] .. ' is a ' .. listKind) end
        local kind = redis.call('TYPE', KEYS[2])['ok']
        if kind ~= 'none' and kind ~= 'list' then return redis.error_reply('WRONGTYPE ' .. KEYS[2] .. ' is a ' .. kind) end
        local vals = redis.call('LRANGE', KEYS[1], -tonumber(ARGV[1]), -1)
        local m = #vals
        if m == 0 then return vals end
        redis.call('LTRIM', KEYS[1], 0, -m - 1)
        local chunk = {}
        for i = m, 1, -1 do
          chunk[#chunk + 1] = vals[i]
          if #chunk == 1000 or i == 1 then
            redis.call('LPUSH', KEYS[2], unpack(chunk))
            chunk = {}
          end
        end
        return vals
        """

    private static let returnScript = """
        local n = 0
        while redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'RIGHT') do n = n + 1 end
        return n
        """

    /// On stop: `returnScript` for our own processing list KEYS[1], the heartbeat KEYS[3] deleted (a
    /// restart with this id need not wait for it) and our id ARGV[2] removed from the set KEYS[4]
    /// (``consumersKey``), only while the heartbeat holds our token ARGV[1].
    static let giveBackScript = """
        #!lua flags=allow-oom
        if redis.pcall('GET', KEYS[3]) ~= ARGV[1] then return 0 end
        redis.call('DEL', KEYS[3])
        redis.call('SREM', KEYS[4], ARGV[2])

        """ + returnScript

    /// `returnScript` for another consumer's processing list KEYS[1], only while its heartbeat KEYS[3]
    /// is missing — checked in the same script, so that the consumer cannot come back and ack in between
    /// — and its id ARGV[1] removed from the set KEYS[4] (``consumersKey``).
    static let recoverScript = """
        #!lua flags=allow-oom
        if redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
        redis.call('SREM', KEYS[4], ARGV[1])

        """ + returnScript

    /// `command` inside a script that Redis runs when it is over `maxmemory` too (`EVAL` flagged
    /// `allow-oom`; the reply is the command's): for the few small writes a handler's `prepare` may
    /// make (a file's first recorded length), so that a consumer started while Redis is full drains
    /// it all the same. At most 7,000 arguments (Lua's `unpack`).
    public static func allowingOOM(_ command: [[UInt8]]) -> [[UInt8]] {
        precondition(command.count <= AckScript.maximumArguments, "a command of \(command.count) arguments")
        return [eval, allowingOOMScript, [UInt8(ascii: "0")]] + command
    }

    private static let allowingOOMScript = Array("#!lua flags=allow-oom\nreturn redis.call(unpack(ARGV))".utf8)

    static let eval = Array("EVAL".utf8)
    static let takeScriptBytes = Array(takeScript.utf8)

    /// Renews the heartbeat KEYS[1] when it holds this run's token ARGV[1] (returns 1; with ARGV[4] =
    /// "1", replaces the token by ARGV[3] and returns 2); renews it when it holds ARGV[3] already (an
    /// earlier call wrote it, and its reply was lost: returns 2); writes ARGV[3] when it is missing
    /// (returns 0); leaves another run's (returns -1). Unless it returns -1, adds the consumer id ARGV[5]
    /// to the set KEYS[2] (``consumersKey``). Runs under `maxmemory` too (`allow-oom`): the heartbeat
    /// must not lapse because Redis is full.
    static let heartbeatScript = """
        #!lua flags=allow-oom
        local beat = redis.pcall('GET', KEYS[1])
        if beat ~= ARGV[1] and beat ~= ARGV[3] and type(beat) == 'string' then return -1 end
        redis.call('SADD', KEYS[2], ARGV[5])
        if beat == ARGV[3] then
          redis.call('EXPIRE', KEYS[1], ARGV[2])
          return 2
        end
        if beat == ARGV[1] then
          if ARGV[4] == '1' then
            redis.call('SET', KEYS[1], ARGV[3], 'EX', ARGV[2])
            return 2
          end
          redis.call('EXPIRE', KEYS[1], ARGV[2])
          return 1
        end
        redis.call('SET', KEYS[1], ARGV[3], 'EX', ARGV[2])
        return 0
        """
}
