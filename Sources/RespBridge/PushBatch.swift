/// Messages waiting to be pushed, stored back to back in one byte buffer (an arena) so that a batch of
/// thousands of messages costs no allocation per message once its buffers have grown.
public struct PushBatch: Sendable {
    /// Where one message's key and value sit in ``bytes``, and when it was accepted.
    public struct Entry: Sendable, Equatable {
        /// Offset of the key in ``PushBatch/bytes``.
        public var keyStart: Int
        /// Length of the key.
        public var keyCount: Int
        /// Offset of the value in ``PushBatch/bytes``.
        public var valueStart: Int
        /// Length of the value.
        public var valueCount: Int
        /// ``PixeldConcurrency/MonotonicClock`` nanoseconds when the message was accepted.
        public var acceptedAt: Int64
    }

    /// Keys and values, back to back.
    public private(set) var bytes: [UInt8] = []
    /// One entry per message, in arrival order.
    public private(set) var entries: [Entry] = []

    /// Creates an empty batch.
    public init() {}

    /// Number of messages.
    public var count: Int { entries.count }
    /// `true` when there is no message.
    public var isEmpty: Bool { entries.isEmpty }
    /// Bytes held (keys and values), the measure of the queue's bound.
    public var byteCount: Int { bytes.count }

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
                keyCount: valueStart - keyStart,
                valueStart: valueStart,
                valueCount: value.count,
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

    /// Moves the oldest messages, as many as fit in `maxBytes` and `maxMessages` (always at least one),
    /// to `destination`, which should be empty; the rest stay here, in order. When everything fits the
    /// two batches' buffers are swapped, not copied.
    mutating func moveOldest(upToBytes maxBytes: Int, maxMessages: Int = .max, into destination: inout PushBatch) {
        destination.removeAll()
        guard byteCount > maxBytes || entries.count > maxMessages, entries.count > 1 else {
            swap(&self, &destination)
            return
        }
        var moved = 1
        while moved < min(entries.count, maxMessages), entries[moved].valueStart + entries[moved].valueCount <= maxBytes {
            moved += 1
        }
        let cut = entries[moved].keyStart
        destination.bytes.append(contentsOf: bytes[0..<cut])
        destination.entries.append(contentsOf: entries[0..<moved])
        bytes.removeSubrange(0..<cut)
        entries.removeSubrange(0..<moved)
        for index in entries.indices {
            entries[index].keyStart -= cut
            entries[index].valueStart -= cut
        }
    }

    /// Empties the batch, keeping its buffers for reuse.
    public mutating func removeAll() {
        bytes.removeAll(keepingCapacity: true)
        entries.removeAll(keepingCapacity: true)
    }

    /// The key of `entry` as bytes.
    public func key(of entry: Entry) -> ArraySlice<UInt8> { bytes[entry.keyStart..<entry.keyStart + entry.keyCount] }
    /// The value of `entry` as bytes.
    public func value(of entry: Entry) -> ArraySlice<UInt8> {
        bytes[entry.valueStart..<entry.valueStart + entry.valueCount]
    }
}
