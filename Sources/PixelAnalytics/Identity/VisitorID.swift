/// An anonymous, daily visitor id: SipHash-2-4-128(day's visitor key, site ‖ 0 ‖ IP ‖ 0 ‖ user
/// agent), as 32 lowercase hex digits; the day's visitor key is derived from the random daily key
/// (``DailyKey``).
///
/// The same browser on the same network visiting the same site on the same UTC day gets the same
/// id; on another day or another site it gets an unrelated one. Without the day's key (which lives
/// 48 h, only in Redis) an id cannot be tied back to an IP address or user agent, not even by
/// trying every IPv4 address. The IP address and user agent are read only here and never stored.
///
/// (Before commit 8e0f91c the id was HMAC-SHA256, truncated to 128 bits. SipHash is a keyed PRF made for
/// such short inputs and runs without allocating; swift-crypto's HMAC copied its hash states on
/// the heap for every hit.)
public enum VisitorID {
    /// The id for one hit.
    /// - Parameters:
    ///   - key: The key of the hit's day.
    ///   - site: The normalized site.
    ///   - ip: The client address as logged (`$remote_addr`).
    ///   - userAgent: The `User-Agent` header as logged.
    public static func make(key: DailyKey, site: String, ip: String, userAgent: String) -> String {
        let total = site.utf8.count + ip.utf8.count + userAgent.utf8.count + 2
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: total) { message in
            var end = 0
            func append(_ part: String) {
                ASCIIBytes.withBytes(part) { bytes in
                    guard let source = bytes.baseAddress else { return }
                    (message.baseAddress! + end).update(from: source, count: bytes.count)
                    end += bytes.count
                }
            }
            append(site)
            message[end] = 0
            end += 1
            append(ip)
            message[end] = 0
            end += 1
            append(userAgent)
            return key.visitorHash.hexTag(UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: message[..<end])))
        }
    }
}
