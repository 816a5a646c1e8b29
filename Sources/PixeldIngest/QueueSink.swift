import RespBridge
import SyslogIngest

/// Collects one listener's accepted messages of a receive batch and hands them to the writer's queue
/// in one go, blocking while the queue is full.
///
/// `@unchecked Sendable`: each instance belongs to exactly one listener and is used on its thread only.
final class QueueSink: AcceptedMessageSink, @unchecked Sendable {
    private let queue: PushQueue
    private let keyPrefix: [UInt8]
    private var batch = PushBatch()

    init(queue: PushQueue, keyPrefix: [UInt8]) {
        self.queue = queue
        self.keyPrefix = keyPrefix
    }

    func accept(program: UnsafeRawBufferPointer, message: UnsafeRawBufferPointer, acceptedAt: Int64) {
        batch.append(keyPrefix: keyPrefix, program: program, value: message, acceptedAt: acceptedAt)
    }

    func endOfBatch() -> Bool {
        queue.enqueue(moving: &batch)
    }
}
