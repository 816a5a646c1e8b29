/// Internationalised domain names in the ASCII form browsers send (`bücher.de` → `xn--bcher-kva.de`):
/// RFC 3492's Punycode per label, `xn--` before it. Site names are compared in this form, since
/// `location.href`, and so every hit's page URL, carries the host that way.
enum Punycode {
    /// `host` with each label that is not ASCII lowercased and encoded; ASCII labels unchanged.
    /// `nil` when a label cannot be encoded (too long for an Int's arithmetic).
    static func asciiHost(_ host: String) -> String? {
        guard !host.utf8.allSatisfy({ $0 < 0x80 }) else { return host }
        var labels: [String] = []
        for label in host.split(separator: ".", omittingEmptySubsequences: false) {
            if label.utf8.allSatisfy({ $0 < 0x80 }) {
                labels.append(String(label))
            } else {
                guard let encoded = encode(String(label).lowercased()) else { return nil }
                labels.append("xn--" + encoded)
            }
        }
        return labels.joined(separator: ".")
    }

    /// RFC 3492 §6.3: the basic code points, a `-` if there were any, then the others as
    /// variable-length deltas in base 36 with an adaptive bias.
    static func encode(_ text: String) -> String? {
        let base = 36, tMin = 1, tMax = 26, skew = 38, damp = 700
        let input = text.unicodeScalars.map { Int($0.value) }
        var output = input.filter { $0 < 0x80 }.map { Character(Unicode.Scalar(UInt8($0))) }
        let basic = output.count
        var handled = basic
        if basic > 0 { output.append("-") }
        var codePoint = 0x80, delta = 0, bias = 72

        func adapt(_ delta: Int, _ points: Int, _ first: Bool) -> Int {
            var delta = first ? delta / damp : delta / 2
            delta += delta / points
            var k = 0
            while delta > ((base - tMin) * tMax) / 2 {
                delta /= base - tMin
                k += base
            }
            return k + (base - tMin + 1) * delta / (delta + skew)
        }
        func digit(_ value: Int) -> Character {
            Character(Unicode.Scalar(UInt8(value < 26 ? 97 + value : 22 + value)))  // a–z, then 0–9
        }

        while handled < input.count {
            guard let next = input.filter({ $0 >= codePoint }).min() else { return nil }
            let (step, overflow) = (next - codePoint).multipliedReportingOverflow(by: handled + 1)
            guard !overflow, delta <= Int.max - step else { return nil }
            delta += step
            codePoint = next
            for scalar in input {
                if scalar < codePoint { delta += 1 }
                guard scalar == codePoint else { continue }
                var q = delta
                var k = base
                while true {
                    let t = k <= bias ? tMin : (k >= bias + tMax ? tMax : k - bias)
                    if q < t { break }
                    output.append(digit(t + (q - t) % (base - t)))
                    q = (q - t) / (base - t)
                    k += base
                }
                output.append(digit(q))
                bias = adapt(delta, handled + 1, handled == basic)
                delta = 0
                handled += 1
            }
            delta += 1
            codePoint += 1
        }
        return String(output)
    }
}
