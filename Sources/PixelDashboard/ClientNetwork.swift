import Hummingbird

#if canImport(Glibc)
import Glibc
#endif

// Apart from DashboardRequestContext.swift, which imports NIOCore: its C module has an `in6_addr` too.
extension DashboardRequestContext {
    /// What a client's limits are counted by (live-feed streams, wrong tokens): ``network(of:)`` of
    /// ``client(of:)``.
    func clientNetwork(of request: Request) -> String {
        Self.network(of: client(of: request))
    }

    /// The key a client address is counted under: an IPv6 address's first 64 bits
    /// (`2001:db8:1:2::/64`), as one host usually holds a whole /64 and could otherwise take one slot
    /// per address; anything else (IPv4, loopback, mapped, a socket path) as it is.
    static func network(of client: String) -> String {
        guard client.contains(":") else { return client }
        var address = in6_addr()
        guard inet_pton(AF_INET6, client, &address) == 1 else { return client }
        let bytes = withUnsafeBytes(of: address) { Array($0.prefix(8)) }
        if bytes.allSatisfy({ $0 == 0 }) { return client }  // ::1, ::ffff:192.0.2.1: no network's /64
        return stride(from: 0, to: 8, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }
            .joined(separator: ":") + "::/64"
    }
}
