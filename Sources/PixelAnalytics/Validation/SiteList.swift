/// The sites a consumer accepts hits for (`--site`, repeatable), compared in normalized form:
/// lowercase, without a leading `www.`, a port or a trailing dot, so `--site Example.com` accepts
/// `https://www.example.com:8443/`; an internationalised name in the ASCII form browsers send
/// (`bücher.de` is `xn--bcher-kva.de`).
public struct SiteList: Sendable, Equatable {
    /// The normalized site names, sorted.
    public let names: [String]
    private let set: Set<String>

    /// Creates the list.
    /// - Parameter sites: Host names as an operator writes them (`example.com`, `www.Example.com`,
    ///   or even `https://example.com/`).
    /// - Throws: ``SiteListError`` when a name is empty or not a host name.
    public init(_ sites: [String]) throws(SiteListError) {
        var normalized: Set<String> = []
        for site in sites {
            guard let name = Self.normalize(site) else { throw SiteListError(site: site) }
            normalized.insert(name)
        }
        self.set = normalized
        self.names = normalized.sorted()
    }

    /// Whether `normalizedHost` (as produced while parsing a page URL) is one of the sites.
    public func contains(_ normalizedHost: String) -> Bool {
        set.contains(normalizedHost)
    }

    /// The normalized form of a site name, or `nil` when it is not a host name.
    /// - Parameter site: A host name, optionally with a scheme, `www.`, port or path.
    public static func normalize(_ site: String) -> String? {
        var text = site
        if !text.contains("://") { text = "http://" + text }
        return ASCIIBytes.withBytes(text) { bytes in
            guard let parts = URLParts.parse(bytes), bytes[parts.host.lowerBound] != UInt8(ascii: "[") else {
                return nil
            }
            guard let name = Punycode.asciiHost(URLParts.normalizedHost(bytes, parts.host)) else { return nil }
            return name.utf8.count <= 253 ? name : nil
        }
    }
}

/// A `--site` value that is not a host name.
public struct SiteListError: Error, Sendable, CustomStringConvertible {
    /// The value as given.
    public var site: String
    public var description: String { "'\(site)' is not a site host name (e.g. example.com)" }
}
