/// Messages waiting to be pushed, stored back to back in one byte buffer (an arena) so that a batch of
/// thousands of messages costs no allocation per message once its buffers have grown.
public struct PushBatch: Sendable {
    /// Where one message's key and value sit in ``bytes``, and when it was accepted.
    public struct Entry: Sendable, Equatable {
        /// Offset of the key in ``PushBatch/bytes``.
        public var keyStart: Int
        /// Length of the key.
        public var keyLength: Int
        /// Offset of the value in ``PushBatch/bytes``.
        public var valueStart: Int
        /// Length of the value.
        public var valueLength: Int
        /// ``PixeldConcurrency/MonotonicClock`` nanoseconds when the message was accepted.
        public var acceptedAt: Int64
    }

    /// Keys and values, back to back.
    public fileprivate(set) var bytes: [UInt8] = []
    /// One entry per message, in arrival order.
    public fileprivate(set) var entries: [Entry] = []

    /// Creates an empty batch.
    public init() {}

    /// Number of messages.
    public var count: Int { entries.count }
    /// `true` when there is no message.
    public var isEmpty: Bool { entries.isEmpty }
    /// Bytes held (keys and values): the measure of a commit's size.
    public var byteCount: Int { bytes.count }
    /// What each message costs beside its key and value: its ``Entry``.
    public static let bookkeepingBytesPerMessage = MemoryLayout<Entry>.stride
    /// Keys, values and each message's ``Entry``: the measure of the queue's bound, so that a flood of
    /// tiny messages cannot hold many times `--buffer-bytes` in entries.
    public var footprintBytes: Int { bytes.count + entries.count * Self.bookkeepingBytesPerMessage }

    /// Appends one message whose key is `keyPrefix` followed by `program`.
    public mutating func append(
        keyPrefix: [UInt8],
        program: UnsafeRawBufferPointer,
        value: UnsafeRawBufferPointer,
        acceptedAt: Int64
    ) {
        let keyStart = bytes.count
        bytes.append(contentsOf: keyPrefix)
        bytes.append(contentsOf: program)
        let valueStart = bytes.count
        bytes.append(contentsOf: value)
        entries.append(
            Entry(
                keyStart: keyStart,
                keyLength: valueStart - keyStart,
                valueStart: valueStart,
                valueLength: value.count,
                acceptedAt: acceptedAt
            )
        )
    }

    /// Appends one message given as byte arrays (tests, spool replay).
    public mutating func append(key: [UInt8], value: [UInt8], acceptedAt: Int64) {
        key.withUnsafeBytes { key in
            value.withUnsafeBytes { value in
                append(keyPrefix: [], program: key, value: value, acceptedAt: acceptedAt)
            }
        }
    }

    /// Appends every message of `other`, keeping their order.
    public mutating func append(contentsOf other: PushBatch) {
        let shift = bytes.count
        bytes.append(contentsOf: other.bytes)
        // No `reserveCapacity(count + other.count)`: it allocates exactly that, so a queue filled by
        // many small appends would be reallocated (and copied) on every one instead of doubling.
        for var entry in other.entries {
            entry.keyStart += shift
            entry.valueStart += shift
            entries.append(entry)
        }
    }

    /// Empties the batch, keeping its buffers for reuse.
    public mutating func removeAll() {
        bytes.removeAll(keepingCapacity: true)
        entries.removeAll(keepingCapacity: true)
    }

    /// The key of `entry` as bytes.
    public func key(of entry: Entry) -> ArraySlice<UInt8> { bytes[entry.keyStart..<entry.keyStart + entry.keyLength] }
    /// The value of `entry` as bytes.
    public func value(of entry: Entry) -> ArraySlice<UInt8> {
        bytes[entry.valueStart..<entry.valueStart + entry.valueLength]
    }
}

/// The ``PushQueue``'s messages: one ``PushBatch`` taken from the front. A take copies out what it
/// moves and advances a head; the taken front is dropped once it is a quarter of the buffer (so the
/// buffer holds at most a third more than what waits, and each byte is moved at most ~3 times).
/// So draining a large queue (`--buffer-bytes` raised for long Redis stalls) costs what each take
/// moves, not the whole rest of the queue per take.
struct PendingMessages {
    private var storage = PushBatch()
    /// The oldest message not yet taken, and where its key starts.
    private var headEntry = 0
    private var headByte = 0

    var isEmpty: Bool { headEntry == storage.entries.count }
    /// Messages waiting.
    var count: Int { storage.entries.count - headEntry }
    /// Bytes waiting (keys and values).
    var byteCount: Int { storage.bytes.count - headByte }
    /// ``PushBatch/footprintBytes`` of what waits.
    var footprintBytes: Int { byteCount + count * PushBatch.bookkeepingBytesPerMessage }
    /// When the oldest waiting message was accepted; call only when not empty.
    var oldestAcceptedAt: Int64 { storage.entries[headEntry].acceptedAt }

    /// Appends every message of `batch`, keeping their order.
    mutating func append(contentsOf batch: PushBatch) { storage.append(contentsOf: batch) }

    /// Moves the oldest messages, as many as fit in `maxBytes` and `maxMessages` (always at least one),
    /// to `destination`, which should be empty; the rest stay, in order. When everything fits and
    /// nothing was taken before, the buffers are swapped, not copied.
    mutating func moveOldest(upToBytes maxBytes: Int, maxMessages: Int, into destination: inout PushBatch) {
        destination.removeAll()
        guard !isEmpty else { return }
        if headEntry == 0 && (byteCount <= maxBytes && count <= maxMessages || count == 1) {
            swap(&storage, &destination)
            return
        }
        var moved = 1
        while moved < min(count, maxMessages) {
            let next = storage.entries[headEntry + moved]
            guard next.valueStart + next.valueLength - headByte <= maxBytes else { break }
            moved += 1
        }
        let end = headEntry + moved
        let cut = end < storage.entries.count ? storage.entries[end].keyStart : storage.bytes.count
        destination.bytes.append(contentsOf: storage.bytes[headByte..<cut])
        destination.entries.reserveCapacity(moved)
        for var entry in storage.entries[headEntry..<end] {
            entry.keyStart -= headByte
            entry.valueStart -= headByte
            destination.entries.append(entry)
        }
        headEntry = end
        headByte = cut
        if isEmpty {
            storage.removeAll()
            headEntry = 0
            headByte = 0
        } else if headByte * 4 >= storage.bytes.count {
            compact()
        }
    }

    /// Drops the taken front: costs the rest's size, paid once the front is a third of it.
    private mutating func compact() {
        storage.bytes.removeSubrange(0..<headByte)
        storage.entries.removeSubrange(0..<headEntry)
        for index in storage.entries.indices {
            storage.entries[index].keyStart -= headByte
            storage.entries[index].valueStart -= headByte
        }
        headEntry = 0
        headByte = 0
    }
}
