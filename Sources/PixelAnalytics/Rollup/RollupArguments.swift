/// Where ``RollupBatch`` writes the rollup script's arguments: one array per argument
/// (``ArgumentArrays``, for `RedisConnection.command`), or straight into one buffer of RESP bulk
/// strings (``RESPArguments``, what the consumer's ack passes to the rollup: no allocation per argument).
protocol RollupArgumentSink {
    /// Appends one argument.
    mutating func append(_ argument: some Collection<UInt8>)
    /// Appends one argument, the decimal text of `value`.
    mutating func append(number value: Int)
}

/// Each argument its own byte array.
struct ArgumentArrays: RollupArgumentSink {
    var arguments: [[UInt8]] = []

    mutating func append(_ argument: some Collection<UInt8>) { arguments.append(Array(argument)) }
    mutating func append(number value: Int) { arguments.append(Array(String(value).utf8)) }
}

/// The arguments as RESP bulk strings (`$<length>\r\n<bytes>\r\n`) in one buffer; ``command()`` puts
/// the array header in front.
struct RESPArguments: RollupArgumentSink {
    private(set) var count = 0
    /// The arguments, without the array header.
    private(set) var body: [UInt8] = []

    init(capacity: Int) { body.reserveCapacity(capacity) }

    mutating func append(_ argument: some Collection<UInt8>) {
        count += 1
        Self.appendHeader(UInt8(ascii: "$"), argument.count, to: &body)
        body.append(contentsOf: argument)
        body.append(UInt8(ascii: "\r"))
        body.append(UInt8(ascii: "\n"))
    }

    mutating func append(number value: Int) {
        Self.withDecimal(value) { append($0) }
    }

    /// The whole command: the array header, then the appended arguments.
    func command() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(body.count + 24)
        Self.appendHeader(UInt8(ascii: "*"), count, to: &out)
        out += body
        return out
    }

    private static func appendHeader(_ kind: UInt8, _ value: Int, to out: inout [UInt8]) {
        out.append(kind)
        withDecimal(value) { out.append(contentsOf: $0) }
        out.append(UInt8(ascii: "\r"))
        out.append(UInt8(ascii: "\n"))
    }

    /// Calls `body` with the decimal text of `value` (at most 20 bytes, on the stack).
    private static func withDecimal(_ value: Int, _ body: (UnsafeBufferPointer<UInt8>) -> Void) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { digits in
            var start = 20
            var rest = value.magnitude
            repeat {
                start -= 1
                digits[start] = UInt8(ascii: "0") + UInt8(rest % 10)
                rest /= 10
            } while rest > 0
            if value < 0 {
                start -= 1
                digits[start] = UInt8(ascii: "-")
            }
            body(UnsafeBufferPointer(rebasing: digits[start..<20]))
        }
    }
}
