/// SipHash-2-4 with a 128-bit output (Aumasson & Bernstein, "SipHash: a fast short-input PRF",
/// 2012; the reference implementation's `siphash.c` with `outlen` 16): a keyed pseudorandom
/// function made for short inputs, which is what a visitor id hashes (site, IP address, user agent:
/// ~150 bytes). Without the 128-bit key its output cannot be told from random or inverted.
///
/// One call hashes one contiguous message; only the returned hex string is allocated.
struct SipHash24: Sendable {
    /// The key as two little-endian words (`k0` = bytes 0–7, `k1` = bytes 8–15).
    let k0: UInt64
    let k1: UInt64

    /// The 16-byte tag of `message` as 32 lowercase hex digits, in the reference's byte order (first
    /// output word, then second, each little-endian) — what `vectors_sip128` lists.
    func hexTag(_ message: UnsafeRawBufferPointer) -> String {
        let (first, second) = words(message)
        return String(unsafeUninitializedCapacity: 32) { out in
            let digits: StaticString = "0123456789abcdef"
            let table = digits.utf8Start
            for index in 0..<16 {
                let byte = UInt8(truncatingIfNeeded: (index < 8 ? first : second) >> (8 * UInt64(index % 8)))
                out[2 * index] = table[Int(byte >> 4)]
                out[2 * index + 1] = table[Int(byte & 0xF)]
            }
            return 32
        }
    }

    /// The tag's two output words.
    private func words(_ message: UnsafeRawBufferPointer) -> (UInt64, UInt64) {
        var v0: UInt64 = 0x736f_6d65_7073_6575 ^ k0
        var v1: UInt64 = 0x646f_7261_6e64_6f6d ^ k1 ^ 0xEE
        var v2: UInt64 = 0x6c79_6765_6e65_7261 ^ k0
        var v3: UInt64 = 0x7465_6462_7974_6573 ^ k1

        @inline(__always) func round() {
            v0 &+= v1; v1 = v1.rotatedLeft(13); v1 ^= v0; v0 = v0.rotatedLeft(32)
            v2 &+= v3; v3 = v3.rotatedLeft(16); v3 ^= v2
            v0 &+= v3; v3 = v3.rotatedLeft(21); v3 ^= v0
            v2 &+= v1; v1 = v1.rotatedLeft(17); v1 ^= v2; v2 = v2.rotatedLeft(32)
        }
        @inline(__always) func compress(_ word: UInt64) {
            v3 ^= word
            round()
            round()
            v0 ^= word
        }

        let count = message.count
        let whole = count & ~7
        var offset = 0
        while offset < whole {
            compress(UInt64(littleEndian: message.loadUnaligned(fromByteOffset: offset, as: UInt64.self)))
            offset += 8
        }
        // The last word: the remaining 0–7 bytes, and the message length's low byte on top.
        var last = UInt64(truncatingIfNeeded: count) << 56
        for index in 0..<(count - whole) {
            last |= UInt64(message[whole + index]) << (8 * UInt64(index))
        }
        compress(last)

        v2 ^= 0xEE
        for _ in 0..<4 { round() }
        let first = v0 ^ v1 ^ v2 ^ v3
        v1 ^= 0xDD
        for _ in 0..<4 { round() }
        return (first, v0 ^ v1 ^ v2 ^ v3)
    }
}

/// The key words are a day's secret: neither `print`, `dump` nor any `Mirror` shows them.
extension SipHash24: CustomStringConvertible, CustomReflectable {
    var description: String { "SipHash24(<hidden>)" }
    var customMirror: Mirror { Mirror(self, children: [:]) }
}

extension UInt64 {
    @inline(__always) fileprivate func rotatedLeft(_ count: UInt64) -> UInt64 {
        (self << count) | (self >> (64 - count))
    }
}
