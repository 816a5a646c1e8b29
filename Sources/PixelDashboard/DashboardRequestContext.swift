public import Hummingbird
import NIOCore

/// The request context of the dashboard's routes: Hummingbird's basic one plus the address of the
/// connected peer, which the live feed counts each client's streams by.
public struct DashboardRequestContext: RequestContext {
    /// Hummingbird's per-request storage.
    public var coreContext: CoreRequestContextStorage
    /// The peer's IP address (behind a reverse proxy: the proxy's, see ``client(of:)``), a unix
    /// socket peer's path, or `""` when there is none (an unnamed unix socket; Hummingbird's router tests).
    let clientAddress: String
    /// The connection the request arrived on (the live feed closes a stuck one at shutdown).
    let connection: any Channel

    /// Creates the context of a request that arrived on `source`'s connection.
    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        connection = source.channel
        let peer = source.channel.remoteAddress
        clientAddress = peer?.ipAddress ?? peer?.pathname ?? ""
    }
}

extension DashboardRequestContext {
    /// The client a request counts for: the `X-Real-IP` header when the peer is on this machine (a
    /// loopback address or a unix socket: the nginx of `deploy/nginx-dashboard.conf`, which sets it),
    /// else the peer. Behind the proxy every request comes from 127.0.0.1, and one limit would then
    /// hold for all viewers together; from elsewhere the header is anyone's to write and is ignored.
    func client(of request: Request) -> String {
        Self.client(peer: clientAddress, realIP: request.headers[HTTPFields.Element.Name("X-Real-IP")!])
    }

    /// ``client(of:)`` for a peer address and the header's value (`nil` when absent).
    static func client(peer: String, realIP: String?) -> String {
        guard let realIP, !realIP.isEmpty, realIP.utf8.count <= 64, isLocal(peer) else { return peer }
        return realIP
    }

    /// Whether `peer` is on this machine: 127.0.0.0/8, `::1`, either mapped into IPv6, or a unix socket path.
    static func isLocal(_ peer: String) -> Bool {
        var address = Substring(peer)
        if address.hasPrefix("::ffff:") { address = address.dropFirst(7) }
        return address == "::1" || address.hasPrefix("127.") || address.hasPrefix("/")
    }
}
