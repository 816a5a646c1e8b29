/// What to do with one datagram: push it, or drop it and count why.
public enum RouteDecision: Sendable, Equatable {
    /// Push `message` onto the list named by the key prefix plus `program`.
    ///
    /// Both ranges are byte offsets into the buffer that was passed to ``IngestRules/route(_:)``, so the caller
    /// copies exactly those bytes and nothing is allocated while routing. `message` may be empty.
    case accept(program: Range<Int>, message: Range<Int>)
    /// Drop the datagram and count it under this reason.
    case drop(DropReason)
}
