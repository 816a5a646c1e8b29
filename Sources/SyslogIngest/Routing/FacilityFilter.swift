/// The set of facilities whose messages are kept (any severity). The default keeps `local3` only.
///
/// Stored as a 24-bit mask, so ``allows(_:)`` is one AND and never allocates.
public struct FacilityFilter: Sendable, Hashable, CustomStringConvertible {
    /// Keeps `local3`, the facility pixeld's nginx snippet logs with.
    public static let `default` = FacilityFilter([.local3])
    /// Keeps every facility.
    public static let all = FacilityFilter(Facility.allCases)

    private let mask: UInt32

    /// Creates a filter keeping exactly `facilities`.
    /// - Parameter facilities: The facilities to keep; may be empty (then everything is filtered).
    public init(_ facilities: some Sequence<Facility>) {
        var mask: UInt32 = 0
        for facility in facilities {
            mask |= 1 << facility.rawValue
        }
        self.mask = mask
    }

    /// Parses a comma-separated list such as `"local3,local4"` or `"LOCAL3, daemon"`; `"*"` or `"all"` keeps
    /// every facility. Names are those of ``Facility/init(name:)``; spaces around names are ignored.
    /// - Parameter spec: The list, as given on the command line.
    /// - Throws: ``SyslogIngestConfigError`` naming the first unknown or empty item.
    public init(parsing spec: String) throws(SyslogIngestConfigError) {
        let items = spec.split(separator: ",", omittingEmptySubsequences: false).map {
            String($0.drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed())
        }
        if items.count == 1, items[0] == "*" || items[0].lowercased() == "all" {
            self = .all
            return
        }
        var facilities: [Facility] = []
        for item in items {
            guard !item.isEmpty else {
                throw SyslogIngestConfigError(
                    code: .emptyFacilityList,
                    message: "empty syslog facility in \(spec.debugDescription); "
                        + "expected a comma-separated list such as \"local3,local4\""
                )
            }
            guard let facility = Facility(name: item) else {
                let known = Facility.allCases.map(\.name).joined(separator: ", ")
                throw SyslogIngestConfigError(
                    code: .unknownFacility,
                    message: "unknown syslog facility \(item.debugDescription)"
                        + (items.count > 1 ? " in \(spec.debugDescription)" : "")
                        + "; known facilities: \(known), their codes 0–23, or \"all\""
                )
            }
            facilities.append(facility)
        }
        self.init(facilities)
    }

    /// Whether messages of `facility` are kept.
    /// - Parameter facility: The message's facility.
    /// - Returns: `true` when the facility is in the filter.
    public func allows(_ facility: Facility) -> Bool {
        self.mask & (1 << facility.rawValue) != 0
    }

    /// The kept facilities, in code order.
    public var facilities: [Facility] { Facility.allCases.filter(self.allows) }

    /// The kept facilities as a comma-separated list, parseable by ``init(parsing:)``: `"local3,local4"`.
    public var description: String { self.facilities.map(\.name).joined(separator: ",") }
}
