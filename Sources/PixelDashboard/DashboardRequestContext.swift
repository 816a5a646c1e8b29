public import Hummingbird
import NIOCore

/// The request context of the dashboard's routes: Hummingbird's basic one plus the address of the
/// connected peer, which the live feed counts each client's streams by.
public struct DashboardRequestContext: RequestContext {
    /// Hummingbird's per-request storage.
    public var coreContext: CoreRequestContextStorage
    /// The peer's IP address (behind a reverse proxy: the proxy's), a unix socket peer's path, or
    /// `""` when there is none (an unnamed unix socket; Hummingbird's router tests).
    let clientAddress: String

    /// Creates the context of a request that arrived on `source`'s connection.
    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        let peer = source.channel.remoteAddress
        clientAddress = peer?.ipAddress ?? peer?.pathname ?? ""
    }
}
