import Hummingbird
import Synchronization

/// Bounds how fast anyone can guess the token: a client (see ``DashboardRequestContext/client(of:)``)
/// with ``maximumFailures`` wrong tokens — login form, `Authorization: Bearer`, or cookie — within
/// ``windowSeconds`` of its first one is answered `429` on every credential it sends until that window
/// ends. Requests without a credential (public sites, `/healthz`) are never held.
///
/// At most ``maximumClients`` clients are tracked; when that many have failed within their windows,
/// every new client is held too, so guesses from many addresses are bounded as a whole.
final class CredentialThrottle: Sendable {
    static let maximumFailures = 10
    static let windowSeconds = 60.0
    static let maximumClients = 10_000

    private struct Window {
        var start: Double
        var failures: Int
    }

    private let windows = Mutex([String: Window]())
    private let clock: @Sendable () -> Double

    /// - Parameter clock: Seconds since the epoch.
    init(clock: @escaping @Sendable () -> Double) {
        self.clock = clock
    }

    /// Seconds until `client` may try again (at least 1), or `nil` when it may now.
    func heldSeconds(_ client: String) -> Int? {
        let now = clock()
        return windows.withLock { windows -> Int? in
            guard let window = windows[client] else {
                return windows.count >= Self.maximumClients ? Self.prune(&windows, now: now) : nil
            }
            let end = window.start + Self.windowSeconds
            guard now < end else {
                windows[client] = nil
                return nil
            }
            return window.failures >= Self.maximumFailures ? max(1, Int((end - now).rounded(.up))) : nil
        }
    }

    /// Counts a wrong token from `client`.
    func recordFailure(_ client: String) {
        let now = clock()
        windows.withLock { windows in
            if let window = windows[client], now < window.start + Self.windowSeconds {
                windows[client]?.failures = window.failures + 1
            } else if windows.count < Self.maximumClients || Self.prune(&windows, now: now) == nil {
                windows[client] = Window(start: now, failures: 1)
            }
        }
    }

    /// Drops the windows that have ended; when the table is still full, the seconds until the
    /// oldest window ends (new clients are held until then), else `nil`.
    private static func prune(_ windows: inout [String: Window], now: Double) -> Int? {
        windows = windows.filter { now < $0.value.start + windowSeconds }
        guard windows.count >= maximumClients, let oldest = windows.values.map(\.start).min() else { return nil }
        return max(1, Int((oldest + windowSeconds - now).rounded(.up)))
    }
}

/// Applies ``CredentialThrottle`` to every request that carries a credential: held clients get `429`
/// with `Retry-After`; a wrong Bearer token or cookie counts as a failure (the login form counts its
/// own, in ``Dashboard/login(_:client:)``), and a wrong cookie is cleared, so that a browser holding
/// one from an old token fails once, not on every request.
struct CredentialThrottleMiddleware: RouterMiddleware {
    let throttle: CredentialThrottle
    let auth: TokenCheck

    @concurrent
    func handle(
        _ request: Request, context: DashboardRequestContext,
        next: @concurrent (Request, DashboardRequestContext) async throws -> Response
    ) async throws -> Response {
        let login = request.method == .post && request.uri.path == "/login"
        let bearer = request.headers[.authorization] != nil
        let cookie = request.cookies[TokenCheck.cookieName] != nil
        guard login || bearer || cookie else { return try await next(request, context) }
        let client = context.client(of: request)
        if let seconds = throttle.heldSeconds(client) {
            var response = Dashboard.response(
                "too many wrong tokens from this address; try again in \(seconds) s\n", type: "text/plain; charset=utf-8",
                status: .tooManyRequests
            )
            response.headers[.retryAfter] = String(seconds)
            return response
        }
        guard (bearer || cookie) && !auth.isAuthenticated(request) else { return try await next(request, context) }
        throttle.recordFailure(client)
        var response: Response
        do {
            response = try await next(request, context)
        } catch let error as any HTTPResponseError {
            response = try error.response(from: request, context: context)
        }
        if cookie {
            response.setCookie(Cookie(name: TokenCheck.cookieName, value: "", maxAge: 0, path: "/", httpOnly: true, sameSite: .strict))
        }
        return response
    }
}
