/// One command's arguments as hiredis's `redisAppendCommandArgv` takes them — a pointer and a length
/// per argument — pointing into buffers the caller holds, so that a batch's values are never copied
/// before hiredis formats the command. The writer's `LPUSH` and `EVALSHA` are built this way.
///
/// The two arrays are reused from command to command, grow as needed and are freed with the
/// instance. The pointers added must stay valid until ``RedisConnection/append(_:)`` returns:
/// build and append within the same `withUnsafeBufferPointer` calls.
final class CommandArguments {
    private(set) var argv: UnsafeMutablePointer<UnsafePointer<CChar>?>
    private(set) var lengths: UnsafeMutablePointer<Int>
    private var capacity: Int
    /// Arguments added since ``start(reserving:)``.
    private(set) var count = 0

    init(capacity: Int = 64) {
        self.capacity = capacity
        argv = .allocate(capacity: capacity)
        lengths = .allocate(capacity: capacity)
    }

    deinit {
        argv.deallocate()
        lengths.deallocate()
    }

    /// Starts a new command of at most `arguments` arguments.
    func start(reserving arguments: Int) {
        count = 0
        guard arguments > capacity else { return }
        argv.deallocate()
        lengths.deallocate()
        capacity = max(arguments, capacity * 2)
        argv = .allocate(capacity: capacity)
        lengths = .allocate(capacity: capacity)
    }

    /// Adds a literal argument, such as the command's name (static text: its pointer stays valid).
    func add(_ literal: StaticString) {
        precondition(literal.hasPointerRepresentation, "a literal of more than one character")
        append(UnsafeRawPointer(literal.utf8Start), literal.utf8CodeUnitCount)
    }

    /// Adds the bytes `range` of `buffer`.
    func add(_ buffer: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) {
        append(UnsafeRawPointer(buffer.baseAddress! + range.lowerBound), range.count)
    }

    private func append(_ bytes: UnsafeRawPointer, _ length: Int) {
        precondition(count < capacity, "more arguments than start(reserving:) said")
        argv[count] = bytes.assumingMemoryBound(to: CChar.self)
        lengths[count] = length
        count += 1
    }
}
