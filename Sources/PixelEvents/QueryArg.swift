/// One `name=value` pair of a query string, after percent-decoding.
///
/// Both parts are valid Unicode: bytes that were not valid UTF-8 after decoding are replaced by
/// U+FFFD. A segment without `=` has an empty ``value``.
public struct QueryArg: Sendable, Equatable, Hashable {
    /// The decoded name (the part before the first `=`).
    public var name: String
    /// The decoded value (the part after the first `=`, or `""` when there is no `=`).
    public var value: String

    /// Creates a pair.
    /// - Parameters:
    ///   - name: The decoded name.
    ///   - value: The decoded value.
    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }
}
