import Hummingbird
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// Sets a strict Content-Security-Policy and the other hardening headers on every response,
/// error responses included (errors are turned into responses here so they get the headers too).
struct SecurityHeadersMiddleware<Context: RequestContext>: RouterMiddleware {
    static var policy: String {
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
            + "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    }

    @concurrent
    func handle(
        _ request: Request, context: Context, next: @concurrent (Request, Context) async throws -> Response
    ) async throws -> Response {
        var response: Response
        do {
            response = try await next(request, context)
        } catch let error as any HTTPResponseError {
            response = try error.response(from: request, context: context)
        } catch {
            context.logger.error("request failed", metadata: ["error": "\(error)"])
            response = Dashboard.response("internal error\n", type: "text/plain; charset=utf-8", status: .internalServerError)
        }
        response.headers[.contentSecurityPolicy] = Self.policy
        response.headers[HTTPFields.Element.Name("X-Content-Type-Options")!] = "nosniff"
        // No Referer to other sites; to this one, so that its own form posts carry their Origin (with
        // `no-referrer` a browser sends `Origin: null` even for a same-origin POST).
        response.headers[HTTPFields.Element.Name("Referrer-Policy")!] = "same-origin"
        response.headers[HTTPFields.Element.Name("X-Frame-Options")!] = "DENY"
        response.headers[HTTPFields.Element.Name("Cross-Origin-Opener-Policy")!] = "same-origin"
        if response.headers[.cacheControl] == nil { response.headers[.cacheControl] = "no-store" }
        return response
    }
}

/// The read-only token: as `Authorization: Bearer <token>`, or the cookie the login form sets
/// (the token's bytes in hex, so any token fits a cookie value).
struct TokenCheck: Sendable {
    static let cookieName = "pixeld_token"
    let token: String?

    func isAuthenticated(_ request: Request) -> Bool {
        guard let token else { return true }
        if let header = request.headers[.authorization] {
            let parts = header.split(separator: " ", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == "bearer", Self.equal(String(parts[1]), token) { return true }
        }
        if let cookie = request.cookies[Self.cookieName], Self.equal(cookie.value, Self.cookieValue(token)) { return true }
        return false
    }

    static func cookieValue(_ token: String) -> String {
        token.utf8.map { Escape.hex2($0) }.joined()
    }

    /// Compares without an early exit, so the time taken does not tell how much of a guess matched.
    static func equal(_ given: String, _ expected: String) -> Bool {
        let a = Array(given.utf8)
        let b = Array(expected.utf8)
        var difference = UInt8(a.count == b.count ? 0 : 1)
        for index in 0..<max(a.count, b.count) {
            difference |= (index < a.count ? a[index] : 0) ^ (index < b.count ? b[index] : 0)
        }
        return difference == 0
    }
}

/// The guard against DNS rebinding when no token is set: a web page can point its own host name at
/// 127.0.0.1 and then read a loopback dashboard through its visitor's browser, which sends the
/// page's name as `Host`. Only requests for an IP address, `localhost` or a name the operator gave
/// (`pixeld serve --allowed-host`) are answered: the browser of a rebinding page sends none of these.
public struct HostCheck: Sendable {
    /// The names answered besides IP addresses and `localhost`, normalized by ``name(_:)``.
    let allowedHosts: Set<String>

    /// A check that answers `allowedHosts` (normalized with ``name(_:)``) too.
    init(allowedHosts: [String]) {
        self.allowedHosts = Set(allowedHosts.compactMap(Self.name))
    }

    /// Whether a request for `authority` (the `Host` header, with or without a port) is answered.
    /// A request without one is: a browser always sends `Host`, so only other clients omit it
    /// (HTTP/1.0 health probes such as HAProxy's `option httpchk`), and no rebinding page can.
    func allows(_ authority: String?) -> Bool {
        guard let authority else { return true }
        if authority.hasPrefix("[") {
            // An IPv6 literal: [address] or [address]:port.
            guard let close = authority.firstIndex(of: "]") else { return false }
            let rest = authority[authority.index(after: close)...]
            guard rest.isEmpty || Self.isPort(rest) else { return false }
            return Self.isAddress(String(authority[authority.index(after: authority.startIndex)..<close]), family: AF_INET6)
        }
        var host = Substring(authority)
        if let colon = authority.lastIndex(of: ":") {
            guard Self.isPort(authority[colon...]) else { return false }
            host = authority[..<colon]
        }
        if Self.isAddress(String(host), family: AF_INET) { return true }
        guard let name = Self.name(String(host)) else { return false }
        return name == "localhost" || allowedHosts.contains(name)
    }

    /// `text` as a host name to compare a `Host` with: lowercase, without a final dot; `nil` unless
    /// it is dot-separated labels of 1–63 letters, digits and hyphens (not first or last), at most
    /// 253 bytes in all (no port, no scheme, no wildcard), whose last label is not all digits (`8080`,
    /// `10.1`: a port or a number, which browsers read as an IPv4 address, never a host name) unless
    /// it is an IPv4 address.
    public static func name(_ text: String) -> String? {
        var name = text.lowercased()
        if name.hasSuffix(".") { name.removeLast() }
        guard (1...253).contains(name.utf8.count) else { return nil }
        let labels = name.split(separator: ".", omittingEmptySubsequences: false)
        for label in labels {
            guard (1...63).contains(label.utf8.count), label.first != "-", label.last != "-",
                label.utf8.allSatisfy({ ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D })
            else { return nil }
        }
        // An IPv4 address passes as itself (always allowed anyway); `8080` alone does not.
        guard let last = labels.last, !last.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) || isAddress(name, family: AF_INET) else {
            return nil
        }
        return name
    }

    /// `:` and 1–5 digits.
    static func isPort(_ text: Substring) -> Bool {
        text.first == ":" && (2...6).contains(text.utf8.count) && text.dropFirst().utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 }
    }

    /// Whether `text` is an address of `family` (`AF_INET`: four decimal parts only, as browsers
    /// send an IPv4 host after normalizing it).
    static func isAddress(_ text: String, family: Int32) -> Bool {
        var buffer = (UInt64(0), UInt64(0))
        return withUnsafeMutableBytes(of: &buffer) { inet_pton(family, text, $0.baseAddress) == 1 }
    }
}

/// Answers a request whose `Host` ``HostCheck`` refuses with `421 Misdirected Request` and one
/// plain-text line naming the flag.
struct HostCheckMiddleware<Context: RequestContext>: RouterMiddleware {
    let check: HostCheck

    @concurrent
    func handle(
        _ request: Request, context: Context, next: @concurrent (Request, Context) async throws -> Response
    ) async throws -> Response {
        guard check.allows(request.head.authority) else {
            return Dashboard.response(
                "this host name is not served: without --token, pixeld serve answers only requests for an IP address, "
                    + "localhost or a name given with --allowed-host (PIXELD_ALLOWED_HOST)\n",
                type: "text/plain; charset=utf-8", status: .misdirectedRequest
            )
        }
        return try await next(request, context)
    }
}

/// Refuses with `403` a `POST` that another site's page sent (the login form and `/logout` are the
/// only ones), before anything counts or acts on it: any page the owner visits could otherwise post
/// wrong tokens to `/login` from the owner's address until ``CredentialThrottle`` holds it, or log
/// the owner out. A browser says where a request comes from: `Sec-Fetch-Site`, where it sends one,
/// decides (`same-origin` and `none` are answered; the `Origin` beside it may be `null`, as under a
/// `no-referrer` policy); else an `Origin` whose `host[:port]` is not the request's `Host`, or `null`,
/// is refused. A request with neither header (curl, an older browser) is answered.
struct SameOriginPostMiddleware<Context: RequestContext>: RouterMiddleware {
    @concurrent
    func handle(
        _ request: Request, context: Context, next: @concurrent (Request, Context) async throws -> Response
    ) async throws -> Response {
        guard request.method != .post || Self.isSameOrigin(request) else {
            return Dashboard.response("cross-site request refused\n", type: "text/plain; charset=utf-8", status: .forbidden)
        }
        return try await next(request, context)
    }

    /// Whether `Sec-Fetch-Site`, or without it `Origin`, does not say `request` came from another origin.
    static func isSameOrigin(_ request: Request) -> Bool {
        if let site = request.headers[HTTPFields.Element.Name("Sec-Fetch-Site")!]?.lowercased() {
            return site == "same-origin" || site == "none"
        }
        guard let origin = request.headers[.origin] else { return true }
        guard let host = request.head.authority, let scheme = origin.firstRange(of: "://") else { return false }  // `null`, no Host
        return origin[scheme.upperBound...].lowercased() == host.lowercased()
    }
}
