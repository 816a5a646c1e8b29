import Hummingbird
import Synchronization

/// Bounds how fast anyone can guess the token: a client (see ``DashboardRequestContext/client(of:)``,
/// counted by ``DashboardRequestContext/network(of:)``: an IPv6 client by its /64) with ``maximumFailures`` wrong
/// tokens — login form, `Authorization: Bearer`, or cookie — within ``windowSeconds`` of its first one
/// is answered `429` on every credential it sends, the right one too (else a guess would still tell),
/// until that window ends. Requests without a credential (public sites, `/healthz`) are never held.
///
/// At most ``maximumClients`` clients are tracked; when that many have failed within their windows,
/// every new client is held too, until the earliest window ends, so guesses from many addresses are
/// bounded as a whole. The table lives in memory: restarting `pixeld serve` clears it.
final class CredentialThrottle: Sendable {
    static let maximumFailures = 10
    static let windowSeconds = 60.0
    static let maximumClients = 10_000

    private struct Window {
        var start: Double
        var failures: Int
    }

    private struct State {
        var windows: [String: Window] = [:]
        /// When the earliest window ends: nothing can be pruned before.
        var earliestEnd = Double.infinity
    }

    private let state = Mutex(State())
    private let clock: @Sendable () -> Double

    /// - Parameter clock: Seconds since the epoch.
    init(clock: @escaping @Sendable () -> Double) {
        self.clock = clock
    }

    /// Seconds until `client` may try again (at least 1), or `nil` when it may now.
    func heldSeconds(_ client: String) -> Int? {
        let now = clock()
        let client = DashboardRequestContext.network(of: client)
        return state.withLock { state -> Int? in
            guard let window = state.windows[client] else {
                return state.windows.count >= Self.maximumClients ? Self.prune(&state, now: now) : nil
            }
            let end = window.start + Self.windowSeconds
            guard now < end else {
                state.windows[client] = nil
                return nil
            }
            return window.failures >= Self.maximumFailures ? Self.seconds(until: end, now: now) : nil
        }
    }

    /// Counts a wrong token from `client`.
    func recordFailure(_ client: String) {
        let now = clock()
        let client = DashboardRequestContext.network(of: client)
        state.withLock { state in
            if let window = state.windows[client], now < window.start + Self.windowSeconds {
                state.windows[client]?.failures = window.failures + 1
            } else if state.windows.count < Self.maximumClients || Self.prune(&state, now: now) == nil {
                state.windows[client] = Window(start: now, failures: 1)
                state.earliestEnd = min(state.earliestEnd, now + Self.windowSeconds)
            }
        }
    }

    /// Drops the windows that have ended (at most once per window length: the table is walked only
    /// once its earliest window has ended); when the table is still full, the seconds until the
    /// earliest window ends (new clients are held until then), else `nil`.
    private static func prune(_ state: inout State, now: Double) -> Int? {
        if now >= state.earliestEnd {
            state.windows = state.windows.filter { now < $0.value.start + windowSeconds }
            state.earliestEnd = (state.windows.values.map(\.start).min() ?? .infinity) + windowSeconds
        }
        guard state.windows.count >= maximumClients else { return nil }
        return seconds(until: state.earliestEnd, now: now)
    }

    private static func seconds(until end: Double, now: Double) -> Int {
        max(1, Int((end - now).rounded(.up)))
    }

    /// The answer to a held client: `429` with `Retry-After: seconds`.
    static func heldResponse(seconds: Int) -> Response {
        var response = Dashboard.response(
            "too many wrong tokens from this address; try again in \(seconds) s\n", type: "text/plain; charset=utf-8",
            status: .tooManyRequests
        )
        response.headers[.retryAfter] = String(seconds)
        return response
    }
}

/// Applies ``CredentialThrottle`` to every request that carries a credential: held clients get `429`
/// with `Retry-After`; a wrong Bearer token or cookie counts as a failure, and a wrong cookie is
/// cleared, so that a browser holding one from an old token fails once, not on every request. The
/// login form is left to ``Dashboard/login(_:client:)``, which holds, counts and sets the cookie itself.
struct CredentialThrottleMiddleware: RouterMiddleware {
    let throttle: CredentialThrottle
    let auth: TokenCheck

    @concurrent
    func handle(
        _ request: Request, context: DashboardRequestContext,
        next: @concurrent (Request, DashboardRequestContext) async throws -> Response
    ) async throws -> Response {
        // The route the router matched, not the path's text: it also routes `/login/` and `//login` there.
        let login = request.method == .post && context.endpointPath == "/login"
        // Only a Bearer header is a credential here: a Basic one is for a proxy in front (auth_basic).
        let bearer = request.headers[.authorization].map { $0.prefix(7).lowercased() == "bearer " } ?? false
        let cookie = request.cookies[TokenCheck.cookieName] != nil
        guard !login, bearer || cookie else { return try await next(request, context) }
        let client = context.client(of: request)
        if let seconds = throttle.heldSeconds(client) { return CredentialThrottle.heldResponse(seconds: seconds) }
        guard !auth.isAuthenticated(request) else { return try await next(request, context) }
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
