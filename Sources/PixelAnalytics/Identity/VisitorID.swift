import Crypto

/// An anonymous, daily visitor id: the first 128 bits of HMAC-SHA256(daily key, site ‖ 0 ‖ IP ‖ 0 ‖
/// user agent), as 32 lowercase hex digits.
///
/// The same browser on the same network visiting the same site on the same UTC day gets the same
/// id; on another day or another site it gets an unrelated one. Without the day's key (which lives
/// 48 h, only in Redis) an id cannot be tied back to an IP address or user agent, not even by
/// trying every IPv4 address. The IP address and user agent are read only here and never stored.
public enum VisitorID {
    /// The id for one hit.
    /// - Parameters:
    ///   - key: The key of the hit's day.
    ///   - site: The normalized site.
    ///   - ip: The client address as logged (`$remote_addr`).
    ///   - userAgent: The `User-Agent` header as logged.
    public static func make(key: DailyKey, site: String, ip: String, userAgent: String) -> String {
        // HMAC-SHA256 = SHA256(key ⊕ opad ‖ SHA256(key ⊕ ipad ‖ message)), from the two states
        // `DailyKey` prepared, with one `update(bufferPointer:)` each: swift-crypto's `HMAC` and
        // `update(data:)` are generic over `DataProtocol` and cost more than the hashing itself.
        var inner = key.innerHash
        let total = site.utf8.count + ip.utf8.count + userAgent.utf8.count + 2
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: total) { message in
            var end = 0
            func append(_ part: String) {
                ASCIIBytes.withBytes(part) { bytes in
                    for byte in bytes {
                        message[end] = byte
                        end += 1
                    }
                }
            }
            append(site)
            message[end] = 0
            end += 1
            append(ip)
            message[end] = 0
            end += 1
            append(userAgent)
            inner.update(bufferPointer: UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: message[..<end])))
        }
        var outer = key.outerHash
        inner.finalize().withUnsafeBytes { outer.update(bufferPointer: $0) }
        return outer.finalize().withUnsafeBytes { raw in
            String(unsafeUninitializedCapacity: 32) { out in
                let digits: StaticString = "0123456789abcdef"
                let table = digits.utf8Start
                for index in 0..<16 {
                    out[2 * index] = table[Int(raw[index] >> 4)]
                    out[2 * index + 1] = table[Int(raw[index] & 0xF)]
                }
                return 32
            }
        }
    }
}
