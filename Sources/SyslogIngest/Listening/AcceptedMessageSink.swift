/// Where a listener puts the messages it accepts. It is called on the listener's own thread only.
///
/// The listener calls ``accept(program:message:acceptedAt:)`` for each accepted datagram of one receive
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
    /// After ``endOfBatch()``: a time (monotonic nanoseconds) before which the messages accepted so
    /// far will not leave, and a message accepted until then would leave with them; `nil` if there is
    /// none (they leave as soon as possible). A UDP listener may wait until shortly before it instead
    /// of waking for every datagram.
    func nextDepartureDeadline() -> Int64?
    /// The listener pauses to let datagrams gather until about ``nextDepartureDeadline()``; the sink
    /// should hold the departure for them should the listener wake a little late.
    func gatheringBegins()
    /// The gathered datagrams were handed over (or none came): ends ``gatheringBegins()``.
    func gatheringEnds()
}

extension AcceptedMessageSink {
    /// No deadline: the messages leave as soon as possible.
    public func nextDepartureDeadline() -> Int64? { nil }
    /// Nothing to hold.
    public func gatheringBegins() {}
    /// Nothing to hold.
    public func gatheringEnds() {}
}
