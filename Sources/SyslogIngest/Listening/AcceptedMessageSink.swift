/// Where a listener puts the messages it accepts. It is called on the listener's own thread only.
///
/// The listener calls ``accept(program:message:acceptedAt:)`` for each accepted message (a datagram, or
/// a TCP frame) of one receive
/// batch and then ``endOfBatch()`` once; the sink may block in `endOfBatch()` while downstream is full,
/// which slows the listener down instead of dropping an accepted message.
public protocol AcceptedMessageSink: AnyObject {
    /// One accepted message. The buffers are valid only during the call.
    /// - Parameters:
    ///   - program: the syslog program (the Redis key without its prefix).
    ///   - message: the message, byte-exact.
    ///   - acceptedAt: monotonic nanoseconds when the receive batch arrived.
    func accept(program: UnsafeRawBufferPointer, message: UnsafeRawBufferPointer, acceptedAt: Int64)
    /// The end of one receive batch.
    /// - Returns: `false` when downstream has shut down; the listener stops then.
    func endOfBatch() -> Bool
}
