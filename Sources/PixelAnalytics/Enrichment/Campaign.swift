import PixelEvents

/// Campaign parameters of a page URL: `utm_source`, `utm_medium`, `utm_campaign`, and `ref`
/// (or `source`) as a fallback source, the way Plausible reads them.
public struct Campaign: Sendable, Equatable {
    /// `utm_source`, or `ref`/`source` when there is no `utm_source`.
    public var source: String?
    /// `utm_medium`.
    public var medium: String?
    /// `utm_campaign`.
    public var name: String?

    /// Creates a campaign.
    public init(source: String? = nil, medium: String? = nil, name: String? = nil) {
        self.source = source
        self.medium = medium
        self.name = name
    }

    /// Reads the parameters from a raw query string (`a=1&utm_source=x`), percent-decoded, trimmed and
    /// cleaned like every dimension; empty values (after trimming) count as absent.
    /// - Parameter query: The page URL's query without `?`.
    public init(query: String) {
        guard !query.isEmpty, query.contains("utm_") || query.contains("ref=") || query.contains("source=") else {
            return
        }
        var fallback: String?
        for arg in QueryString.parse(query) {
            let value = DimensionText.trimmed(arg.value)
            guard !value.isEmpty else { continue }
            switch arg.name {
            case "utm_source": if source == nil { source = DimensionText.clean(value) }
            case "utm_medium": if medium == nil { medium = DimensionText.clean(value) }
            case "utm_campaign": if name == nil { name = DimensionText.clean(value) }
            case "ref", "source": if fallback == nil { fallback = DimensionText.clean(value) }
            default: continue
            }
        }
        if source == nil { source = fallback }
    }
}
