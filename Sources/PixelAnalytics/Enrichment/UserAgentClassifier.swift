/// Browser family, operating system family and device class from a user agent (and the screen
/// width the tracker sends as `w`): coarse on purpose — families, not versions — so the
/// breakdowns stay small and nothing in them narrows a visitor down.
public enum UserAgentClassifier {
    /// The three families of one user agent.
    public struct Families: Sendable, Equatable {
        /// `Chrome`, `Firefox`, `Safari`, `Edge`, `Opera`, `Samsung Internet`, … or `Other`.
        public var browser: String
        /// `Windows`, `macOS`, `iOS`, `Android`, `Linux`, `ChromeOS`, … or `Other`.
        public var os: String
        /// `desktop`, `mobile`, `tablet`, or `(unknown)` when nothing tells.
        public var device: String
    }

    /// Device class from the screen width alone (Plausible's breakpoints).
    /// - Parameter width: CSS pixels (`screen.width`).
    public static func device(forWidth width: Int) -> String {
        if width < 576 { return "mobile" }
        if width < 992 { return "tablet" }
        return "desktop"
    }

    /// Classifies a user agent.
    /// - Parameters:
    ///   - userAgent: The `User-Agent` header; `nil` when the log format has none.
    ///   - screenWidth: The `w` argument, when sent and valid.
    public static func classify(userAgent: String?, screenWidth: Int?) -> Families {
        guard let userAgent, !userAgent.isEmpty else {
            return Families(browser: "(unknown)", os: "(unknown)", device: screenWidth.map(device(forWidth:)) ?? "(unknown)")
        }
        return refine(classify(userAgent: userAgent), screenWidth: screenWidth)
    }

    /// The families from the user agent alone (cacheable per user agent).
    static func classify(userAgent: String) -> Families {
        ASCIIBytes.withBytes(userAgent) { bytes in
            let os = self.os(bytes)
            return Families(browser: browser(bytes), os: os, device: device(bytes, os: os))
        }
    }

    /// The widest screen (`screen.width`, which iPadOS gives in portrait) of an iPad: the 12.9"
    /// iPad Pro's 1024. No Mac reports so narrow a screen at its default scaling.
    static let widestIPadScreen = 1024

    /// Applies the screen width: iPadOS asks for desktop sites with a Macintosh user agent, and a
    /// narrow screen tells — an iPad (iOS, tablet) up to ``widestIPadScreen``, an iPhone (iOS, mobile)
    /// below 576, as iOS sends the same user agent for both; on other desktop
    /// systems, a narrow screen is a tablet or a phone by Plausible's breakpoints.
    static func refine(_ families: Families, screenWidth: Int?) -> Families {
        guard families.device == "desktop", let width = screenWidth, width > 0 else { return families }
        if families.os == "macOS" && width <= widestIPadScreen {
            // (An iPhone asking for desktop sites sends the same user agent: a phone's width.)
            var refined = families
            refined.os = "iOS"
            refined.device = device(forWidth: width) == "mobile" ? "mobile" : "tablet"
            return refined
        }
        let byWidth = device(forWidth: width)
        guard byWidth != "desktop", families.os == "macOS" || families.os == "Linux" || families.os == "Other" else {
            return families
        }
        var refined = families
        refined.device = byWidth
        return refined
    }

    static func browser(_ ua: UnsafeBufferPointer<UInt8>) -> String {
        func has(_ needle: StaticString) -> Bool { ASCIIBytes.contains(ua, needle) }
        if has("Edg/") || has("EdgA/") || has("EdgiOS/") || has("Edge/") { return "Edge" }
        if has("OPR/") || has("Opera") || has("OPT/") { return "Opera" }
        if has("SamsungBrowser/") { return "Samsung Internet" }
        if has("YaBrowser/") { return "Yandex Browser" }
        if has("Vivaldi/") { return "Vivaldi" }
        if has("UCBrowser/") { return "UC Browser" }
        if has("DuckDuckGo/") || has("Ddg/") { return "DuckDuckGo" }
        if has("FBAN/") || has("FBAV/") { return "Facebook" }
        if has("Instagram") { return "Instagram" }
        if has("FxiOS/") || has("Firefox/") { return "Firefox" }
        if has("CriOS/") || has("Chrome/") || has("Chromium/") { return "Chrome" }
        if has("MSIE ") || has("Trident/") { return "Internet Explorer" }
        if has("Safari/") || (has("AppleWebKit/") && (has("iPhone") || has("iPad") || has("Macintosh"))) {
            return "Safari"
        }
        return "Other"
    }

    static func os(_ ua: UnsafeBufferPointer<UInt8>) -> String {
        func has(_ needle: StaticString) -> Bool { ASCIIBytes.contains(ua, needle) }
        if has("Windows Phone") { return "Windows Phone" }
        if has("Windows") { return "Windows" }
        if has("iPhone") || has("iPad") || has("iPod") { return "iOS" }
        if has("Android") { return "Android" }
        if has("CrOS") { return "ChromeOS" }
        if has("Macintosh") || has("Mac OS X") { return "macOS" }
        if has("Linux") || has("X11") { return "Linux" }
        if has("FreeBSD") || has("OpenBSD") || has("NetBSD") { return "BSD" }
        return "Other"
    }

    static func device(_ ua: UnsafeBufferPointer<UInt8>, os: String) -> String {
        func has(_ needle: StaticString) -> Bool { ASCIIBytes.contains(ua, needle) }
        if has("iPad") || has("Tablet") || has("Kindle") || has("Silk/") { return "tablet" }
        if os == "Android" { return has("Mobile") ? "mobile" : "tablet" }
        if has("Mobi") || has("iPhone") || has("iPod") || os == "Windows Phone" { return "mobile" }
        return "desktop"
    }
}
