/// The ingest contract for one datagram: which bytes become the Redis key and value, or why it is dropped.
///
/// ``route(_:)`` applies the rules of DESIGN.md "The ingest contract", in this order:
/// 1. larger than ``maxMessageBytes`` (raw length) → ``DropReason/oversize``;
/// 2. trailing `\n`, `\r`, `\0` stripped; no valid `<PRI>` (0–191) → ``DropReason/malformed``;
/// 3. facility not in ``facilities`` → ``DropReason/filtered``;
/// 4. RFC 5424 (`1 ` after the PRI) or lenient RFC 3164, see ``SyslogParser``; broken RFC 5424 →
///    ``DropReason/malformed``; no program → ``DropReason/noProgram``;
/// 5. program rejected by ``programs`` → ``DropReason/badProgram``;
/// 6. otherwise ``RouteDecision/accept(program:message:)``.
///
/// It is the hot path (100k+ datagrams a second): it reads the buffer in place and never allocates.
public struct IngestRules: Sendable {
    /// The default and usual maximum: the largest UDP payload syslog senders produce.
    public static let defaultMaxMessageBytes = 65535
    /// The largest accepted ``maxMessageBytes`` setting, 16 MiB.
    public static let maxMessageBytesLimit = 16 << 20

    /// The facilities kept.
    public let facilities: FacilityFilter
    /// The program checks and the key prefix.
    public let programs: ProgramPolicy
    /// Datagrams longer than this many bytes are dropped as ``DropReason/oversize``.
    public let maxMessageBytes: Int

    /// Creates the rules.
    /// - Parameters:
    ///   - facilities: The facilities kept; `local3` by default.
    ///   - programs: The program checks and key prefix; any valid program, no prefix by default.
    ///   - maxMessageBytes: The largest datagram accepted, in bytes; must be in
    ///     `1...maxMessageBytesLimit` (check user input with ``validatedMaxMessageBytes(_:)`` first).
    public init(
        facilities: FacilityFilter = .default,
        programs: ProgramPolicy = ProgramPolicy(),
        maxMessageBytes: Int = IngestRules.defaultMaxMessageBytes
    ) {
        precondition(
            (1...Self.maxMessageBytesLimit).contains(maxMessageBytes),
            "maxMessageBytes out of range; validate it with IngestRules.validatedMaxMessageBytes(_:)"
        )
        self.facilities = facilities
        self.programs = programs
        self.maxMessageBytes = maxMessageBytes
    }

    /// Checks a user-supplied maximum message size.
    /// - Parameter value: The requested maximum, in bytes.
    /// - Returns: `value`, when it is in `1...maxMessageBytesLimit`.
    /// - Throws: ``SyslogIngestConfigError`` with one line naming the value and the range.
    public static func validatedMaxMessageBytes(_ value: Int) throws(SyslogIngestConfigError) -> Int {
        guard (1...Self.maxMessageBytesLimit).contains(value) else {
            throw SyslogIngestConfigError(
                code: .invalidMaxMessageBytes,
                message: "invalid maximum message size \(value); expected 1...\(Self.maxMessageBytesLimit) bytes"
            )
        }
        return value
    }

    /// Decides what to do with one datagram, without allocating.
    /// - Parameter datagram: The datagram exactly as received (trailing `\n`, `\r`, `\0` included).
    /// - Returns: The program and message as byte ranges into `datagram`, or the reason to drop it.
    public func route(_ datagram: UnsafeRawBufferPointer) -> RouteDecision {
        guard datagram.count <= self.maxMessageBytes else { return .drop(.oversize) }

        var cursor = ByteCursor(datagram, end: SyslogParser.contentEnd(of: datagram))
        let priority: Priority
        do {
            priority = try SyslogParser.scanPriority(&cursor)
        } catch {
            return .drop(.malformed)
        }
        guard self.facilities.allows(priority.facility) else { return .drop(.filtered) }

        let fields: SyslogFields
        do {
            fields = try SyslogParser.scanBody(cursor)
        } catch {
            return .drop(error.code == .noProgram ? .noProgram : .malformed)
        }
        guard self.programs.accepts(programBytes: UnsafeRawBufferPointer(rebasing: datagram[fields.program])) else {
            return .drop(.badProgram)
        }
        return .accept(program: fields.program, message: fields.message)
    }
}
