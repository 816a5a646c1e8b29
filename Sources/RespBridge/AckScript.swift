/// The ack of a ``ReliableListConsumer`` batch: one Lua script that checks the fence (the heartbeat
/// holds this run's token, and the ``ReliableListConsumer/Condition`` holds), renews the
/// heartbeat, runs the handler's commands in order, moves the dead letters and removes the batch
/// from the tail of the processing list — atomically, as one script does.
///
/// A script rather than `MULTI`/`EXEC` so that consumers keep draining when Redis is over
/// `maxmemory`: Redis 7 refuses every command queued inside a `MULTI` then, while a script flagged
/// `allow-oom` runs whole. Acking frees far more than it writes (the events leave the processing
/// list; rollups grow by a few fields), so a full Redis empties itself instead of stalling until
/// someone raises `maxmemory`. It also needs no `WATCH` and no guard key: nothing can run between
/// the check of the fence and the writes.
///
/// A command that fails inside the script (`WRONGTYPE` on a rollup key) does not stop the others,
/// as inside `EXEC`: it is run with `redis.pcall`, and its error comes back in the reply. A
/// malformed ack (a count that does not add up) writes nothing.
///
/// `EVAL` with the whole text each time rather than `EVALSHA`: a Redis restarted or flushed since
/// the last batch cannot answer `NOSCRIPT` to an ack already in flight. Redis hashes the text (a few
/// KiB with the rollup function) once per batch.
struct AckScript: Sendable {
    /// The script text.
    let source: [UInt8]

    /// Most arguments of a plain command in an ack: Lua's `unpack` takes at most ~8,000 values.
    static let maximumArguments = 7_000

    /// The script, with `functions` (name → the body of `function(A, o, n)`, whose `n` arguments
    /// are `A[o + 1]` … `A[o + n]`) callable as `@name` commands.
    init(functions: [String: String]) {
        var library = ""
        for (name, body) in functions.sorted(by: { $0.key < $1.key }) {
            precondition(!name.isEmpty && name.allSatisfy { $0 == "_" || ($0.isASCII && $0.isLetter) || ($0.isASCII && $0.isNumber) }, "ack function name \(name)")
            library += "functions['\(name)'] = function(A, o, n)\n\(body)\nend\n"
        }
        source = Array((Self.head + library + Self.body).utf8)
    }

    /// KEYS: 1 the heartbeat, 2 the processing list, 3 the dead-letter list, 4 the condition's key
    /// (only with a condition). ARGV: 1 the run's token, 2 the heartbeat TTL in seconds, 3 the events
    /// acked (removed from the processing list's tail), 4 the condition's value (a missing key counts
    /// as `"0"`), 5 the number of dead letters `n`, then the `n` values, then per command its name,
    /// the number of its arguments and the arguments; a name `@f` calls `functions['f']` with them
    /// (in place: `ARGV`, the index before the first, and their number).
    private static let head = """
        #!lua flags=allow-oom
        -- pixeld consumer ack (RespBridge/AckScript.swift)
        local functions = {}

        """

    /// Replies `{-1}` when the heartbeat is not this run's, `{0}` when the condition does not hold,
    /// `{-2, error}` when it could not be checked (nothing written in these three cases), else `{1}`
    /// followed by the name and error text of each command that failed.
    private static let body = """
        local function count(text)
          local n = tonumber(text)
          if n and n >= 0 and n == math.floor(n) then return n end
        end
        local dead = count(ARGV[5])
        if not (tonumber(ARGV[2]) and count(ARGV[3]) and dead and 5 + dead <= #ARGV) then
          return redis.error_reply('ERR pixeld ack: bad header')
        end
        local first = 6 + dead
        local i = first
        while i <= #ARGV do
          local name, n = ARGV[i], count(ARGV[i + 1])
          if not n or i + 1 + n > #ARGV then return redis.error_reply('ERR pixeld ack: bad command at ' .. i) end
          if string.sub(name, 1, 1) == '@' then
            if not functions[string.sub(name, 2)] then return redis.error_reply('ERR pixeld ack: no function ' .. name) end
          elseif n >= \(maximumArguments) then
            return redis.error_reply('ERR pixeld ack: too many arguments for ' .. name)
          end
          i = i + 2 + n
        end

        if redis.pcall('GET', KEYS[1]) ~= ARGV[1] then return {-1} end
        if #KEYS > 3 then
          local value = redis.pcall('GET', KEYS[4])
          if type(value) == 'table' then return {-2, 'condition on ' .. KEYS[4] .. ': ' .. tostring(value.err)} end
          if (value or '0') ~= ARGV[4] then return {0} end
        end

        local reply = {1}
        local function note(name, ok, result)
          local failure
          if not ok then
            failure = type(result) == 'table' and result.err or result
          elseif type(result) == 'table' then
            failure = result.err
          end
          if failure then
            reply[#reply + 1] = name
            reply[#reply + 1] = tostring(failure)
          end
        end
        note('EXPIRE', true, redis.pcall('EXPIRE', KEYS[1], ARGV[2]))
        i = first
        while i <= #ARGV do
          local name, n = ARGV[i], tonumber(ARGV[i + 1])
          if string.sub(name, 1, 1) == '@' then
            note(name, pcall(functions[string.sub(name, 2)], ARGV, i + 1, n))
          else
            note(name, true, redis.pcall(name, unpack(ARGV, i + 2, i + 1 + n)))
          end
          i = i + 2 + n
        end
        for d = 6, 5 + dead, 1000 do
          note('LPUSH', true, redis.pcall('LPUSH', KEYS[3], unpack(ARGV, d, math.min(d + 999, 5 + dead))))
        end
        note('LTRIM', true, redis.pcall('LTRIM', KEYS[2], 0, -tonumber(ARGV[3]) - 1))
        return reply
        """

    /// The `EVAL` of one ack, encoded as RESP.
    func command(
        heartbeat: String, processingList: String, deadList: String, token: String, heartbeatSeconds: Int, count: Int,
        condition: ReliableListConsumer.Condition?, deadLetters: [[UInt8]], commands: [ReliableListConsumer.Command]
    ) -> [UInt8] {
        let keys = condition == nil ? 3 : 4
        var arguments = 3 + keys + 5 + deadLetters.count
        var size = source.count + 256
        for value in deadLetters { size += value.count + 16 }
        for command in commands {
            arguments += 2 + command.argumentCount
            size += command.encodedSize + 32
        }
        var out = RESPWriter(capacity: size)
        out.header(arguments)
        out.bulk(Self.eval)
        out.bulk(source)
        out.bulk(number: keys)
        out.bulk(heartbeat.utf8)
        out.bulk(processingList.utf8)
        out.bulk(deadList.utf8)
        if let condition { out.bulk(condition.key.utf8) }
        out.bulk(token.utf8)
        out.bulk(number: heartbeatSeconds)
        out.bulk(number: count)
        out.bulk((condition?.value ?? "").utf8)
        out.bulk(number: deadLetters.count)
        for value in deadLetters { out.bulk(value) }
        for command in commands { command.encodeForAck(into: &out) }
        return out.bytes
    }

    private static let eval = Array("EVAL".utf8)

    /// What Redis did with an ack.
    enum Verdict: Equatable {
        /// Applied; each command that failed inside it, by name, with Redis's error text.
        case applied(failures: [Failure])
        /// Refused, nothing written: the heartbeat does not hold this run's token.
        case heartbeatNotOurs
        /// Refused, nothing written: the condition does not hold.
        case conditionFailed
        /// Refused, nothing written: the condition could not be checked (its key holds another type).
        case conditionUnchecked(String)
    }

    /// A command that failed inside an applied ack.
    struct Failure: Equatable {
        var command: String
        var error: String
    }

    /// Reads the script's reply.
    /// - Throws: ``RespError`` for an error reply (the script did not run, or refused a malformed
    ///   ack: nothing written) or a reply of another shape.
    static func verdict(of reply: RESPValue) throws(RespError) -> Verdict {
        let items = try reply.unwrap("EVAL ack").array ?? []
        switch items.first?.int {
        case 1:
            var failures: [Failure] = []
            var index = 1
            while index + 1 < items.count {
                failures.append(Failure(command: items[index].string ?? "?", error: items[index + 1].string ?? "?"))
                index += 2
            }
            return .applied(failures: failures)
        case -1: return .heartbeatNotOurs
        case 0: return .conditionFailed
        case -2: return .conditionUnchecked(items.count > 1 ? items[1].string ?? "?" : "?")
        default: throw RespError(code: .unexpectedReply, operation: "EVAL ack", message: "\(reply)")
        }
    }
}

/// RESP written into one buffer: an array header, then bulk strings (`$<length>\r\n<bytes>\r\n`).
struct RESPWriter {
    private(set) var bytes: [UInt8] = []

    init(capacity: Int) { bytes.reserveCapacity(capacity) }

    /// `*<count>\r\n`.
    mutating func header(_ count: Int) { line(UInt8(ascii: "*"), count) }

    mutating func bulk(_ value: some Collection<UInt8>) {
        line(UInt8(ascii: "$"), value.count)
        bytes.append(contentsOf: value)
        bytes.append(UInt8(ascii: "\r"))
        bytes.append(UInt8(ascii: "\n"))
    }

    mutating func bulk(number: Int) {
        var length = number < 0 ? 2 : 1
        var rest = number.magnitude / 10
        while rest > 0 {
            length += 1
            rest /= 10
        }
        line(UInt8(ascii: "$"), length)
        decimal(number)
        bytes.append(UInt8(ascii: "\r"))
        bytes.append(UInt8(ascii: "\n"))
    }

    /// Bytes already encoded as bulk strings, copied as they are.
    mutating func raw(_ encoded: [UInt8]) { bytes.append(contentsOf: encoded) }

    private mutating func line(_ kind: UInt8, _ value: Int) {
        bytes.append(kind)
        decimal(value)
        bytes.append(UInt8(ascii: "\r"))
        bytes.append(UInt8(ascii: "\n"))
    }

    /// Appends the decimal digits of `value`, with no allocation.
    private mutating func decimal(_ value: Int) {
        if value < 0 { bytes.append(UInt8(ascii: "-")) }
        var rest = value.magnitude
        let first = bytes.count
        repeat {
            bytes.append(UInt8(ascii: "0") + UInt8(rest % 10))
            rest /= 10
        } while rest > 0
        bytes[first...].reverse()
    }
}
