/// Why ``IngestRules/route(_:)`` dropped a datagram. The raw value is the metric label
/// (`pixeld_ingest_dropped_total{reason="no_program"}`).
///
/// More reasons may be added (for example by the spool); switch with a `default` branch outside this module.
public enum DropReason: String, Sendable, CaseIterable, CustomStringConvertible {
    /// Not a syslog message: no valid `<PRI>`, or a broken RFC 5424 header or structured data.
    case malformed
    /// The facility is not one the ``FacilityFilter`` keeps.
    case filtered
    /// A well-formed message without a program: RFC 5424 APP-NAME `-`, or an empty RFC 3164 TAG.
    case noProgram = "no_program"
    /// The program is not 1–64 bytes of `[A-Za-z0-9_.:/-]`, or not in the configured allow-list.
    case badProgram = "bad_program"
    /// Larger than the configured maximum message size; never forwarded truncated.
    case oversize
    /// A TCP connection closed inside a frame: the peer ended it within an octet-counted frame, or it
    /// was closed mid-message (read error, or at shutdown after the drain); never forwarded truncated.
    case truncated

    /// The metric label, the same as `rawValue`.
    public var description: String { self.rawValue }
}
