import Hummingbird

/// Answers a request for a path that no route has: a `404` page in the dashboard's layout for a
/// browser (Hummingbird's own `404` has an empty body), and under `/api/` the API's JSON error.
/// A `404` with a message of its own (an unknown site, the live feed off) passes unchanged.
struct NotFoundMiddleware<Context: RequestContext>: RouterMiddleware {
    @concurrent
    func handle(
        _ request: Request, context: Context, next: @concurrent (Request, Context) async throws -> Response
    ) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError where error.status == .notFound && error.body == nil {
            guard !request.uri.path.hasPrefix("/api/") else {
                throw HTTPError(.notFound, message: "no such endpoint (the endpoints are listed in docs/dashboard.md)")
            }
            return try await Dashboard.htmlErrors {
                throw HTTPError(.notFound, message: "There is no page at this address; the dashboard starts at /.")
            }
        }
    }
}
