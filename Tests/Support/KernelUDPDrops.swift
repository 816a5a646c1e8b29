import Foundation

/// The kernel's drop counter (`sk_drops`: datagrams refused on a full receive buffer) of the UDP
/// socket bound to 127.0.0.1:`port`, from `/proc/net/udp`; `nil` when there is no such socket (or no
/// `/proc`). Independent of pixeld: what it did not receive and the kernel did not drop is its loss.
public func kernelUDPDrops(port: Int) -> Int? {
    guard let text = try? String(contentsOfFile: "/proc/net/udp", encoding: .utf8) else { return nil }
    // local_address is the network-order address printed as a host-order number (0100007F on
    // little-endian machines), then the port.
    let wanted = String(format: "%08X:%04X", UInt32(0x7F00_0001).bigEndian, port)
    for line in text.split(separator: "\n").dropFirst() {
        let fields = line.split(separator: " ")
        guard fields.count >= 13, fields[1] == wanted else { continue }
        return Int(fields[fields.count - 1])
    }
    return nil
}
