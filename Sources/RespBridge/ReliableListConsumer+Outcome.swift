// What a handler of ``ReliableListConsumer`` hands back — an ``ReliableListConsumer/Outcome`` of
// ``ReliableListConsumer/Command``s under an optional ``ReliableListConsumer/Condition``, or
// ``ReliableListConsumer/HandlerCannotContinue`` — and the consumer's ``ReliableListConsumer/Options``.
extension ReliableListConsumer {
    /// Thrown by a handler when retrying cannot help (its output is gone: a closed pipe): the consumer
    /// stops with ``failure`` set to `description`, and the batch goes back to the list unacked.
    public struct HandlerCannotContinue: Error, CustomStringConvertible {
        /// Why, in one line: the consumer's ``ReliableListConsumer/failure``.
        public let description: String
        /// A failure that `description` explains in one line.
        public init(_ description: String) { self.description = description }
    }

    /// What the handler decided for a batch.
    public struct Outcome: Sendable {
        /// Values to move to the dead-letter list `L:dead` in the ack.
        public var deadLetters: [[UInt8]]
        /// Extra commands to apply atomically with the ack (e.g. rollups), in order, inside the ack's
        /// script (``AckScript``).
        public var commands: [Command]
        /// Apply the ack only if this holds when Redis runs it; else nothing is applied and the
        /// events are handled again (see ``Condition``).
        public var condition: Condition?
        /// Creates an outcome whose commands are given as arguments.
        public init(deadLetters: [[UInt8]] = [], commands: [[[UInt8]]] = [], condition: Condition? = nil) {
            self.deadLetters = deadLetters
            self.commands = commands.map(Command.init(arguments:))
            self.condition = condition
        }
        /// Creates an outcome.
        public init(deadLetters: [[UInt8]] = [], ackCommands: [Command], condition: Condition? = nil) {
            self.deadLetters = deadLetters
            self.commands = ackCommands
            self.condition = condition
        }
    }

    /// A condition on an ack: `key` must hold `value` (a missing key counts as `"0"`) when Redis runs
    /// the ack, or Redis applies none of it (counted in ``ackConflicts``) and the events are prepared for
    /// and handled again — optimistic locking for state that several consumers share, read by a
    /// request that Redis answered before the previous ack. The ack's script compares the value
    /// before it writes anything, so nothing can change it in between.
    public struct Condition: Sendable, Equatable {
        /// The key compared.
        public var key: String
        /// The value it must hold.
        public var value: String
        /// Creates a condition.
        public init(key: String, value: String) {
            self.key = key
            self.value = value
        }
    }

    /// One command of an ack: its arguments, or a call of one of ``Options/ackFunctions`` with
    /// arguments already encoded as RESP (a large call written straight into one buffer, with no
    /// array per argument).
    public struct Command: Sendable {
        fileprivate enum Form {
            case arguments([[UInt8]])
            case call(count: Int, encoded: [UInt8])
        }
        fileprivate let form: Form
        /// The command's name (`@function` for a call), for logs.
        public let name: String

        /// A command given as its arguments, the name first; at most 7,000 arguments (Lua's
        /// `unpack` limit: the ack is a script).
        public init(arguments: [[UInt8]]) {
            precondition(!arguments.isEmpty && arguments.count <= AckScript.maximumArguments, "an ack command with \(arguments.count) arguments")
            form = .arguments(arguments)
            name = String(decoding: arguments[0], as: UTF8.self)
        }

        /// A call of the ack function `function` (a key of ``Options/ackFunctions``) with `count`
        /// arguments, given as RESP bulk strings one after the other (`$<length>\r\n<bytes>\r\n`
        /// each, no array header).
        public init(function: String, count: Int, encodedArguments: [UInt8]) {
            precondition(count >= 0, "an ack function call with \(count) arguments")
            form = .call(count: count, encoded: encodedArguments)
            name = "@" + function
        }

        /// The arguments after the name.
        var argumentCount: Int {
            switch form {
            case .arguments(let arguments): arguments.count - 1
            case .call(let count, _): count
            }
        }

        var encodedSize: Int {
            switch form {
            case .arguments(let arguments): arguments.reduce(0) { $0 + $1.count + 16 }
            case .call(_, let encoded): encoded.count
            }
        }

        /// Its name, the number of its arguments, then the arguments (the ack script's layout).
        func encodeForAck(into out: inout RESPWriter) {
            switch form {
            case .arguments(let arguments):
                out.bulk(arguments[0])
                out.bulk(number: arguments.count - 1)
                for argument in arguments.dropFirst() { out.bulk(argument) }
            case .call(let count, let encoded):
                out.bulk(name.utf8)
                out.bulk(number: count)
                out.raw(encoded)
            }
        }
    }

    /// Options.
    public struct Options: Sendable {
        /// Events taken per batch at most.
        public var batchSize = 512
        /// How long one `BLMOVE` waits, in seconds; bounds how long a stop request may take.
        public var blockSeconds = 1
        /// Heartbeat TTL in seconds; a processing list whose heartbeat expired is recovered.
        public var heartbeatSeconds = 15
        /// How long ``ReliableListConsumer/stop()`` waits for Redis, in seconds, before it abandons the
        /// consumer's Redis calls; `nil`: as long as they take (each may wait the command timeout).
        public var shutdownTimeoutSeconds: Int?
        /// Lua functions an ack may call (``Command/init(function:count:encodedArguments:)``), by
        /// name (letters, digits, `_`): each the body of a `function(A, o, n)` whose `n` arguments
        /// are `A[o + 1]` … `A[o + n]` (the ack's own arguments, not copied), and which may return
        /// `redis.error_reply(…)` (counted as a failed command, like an error it raises).
        /// They run inside the ack script, under `maxmemory` too (see ``AckScript``), so they must
        /// not grow Redis by much more than the ack frees.
        public var ackFunctions: [String: String] = [:]
        /// Creates default options.
        public init() {}
    }
}
