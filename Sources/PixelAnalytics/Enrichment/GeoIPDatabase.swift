#if canImport(Glibc)
import Glibc
#endif

/// Country lookups in a MaxMind DB file (`GeoLite2-Country.mmdb`, `GeoIP2-City.mmdb`, DB-IP's
/// country lite…), read in pure Swift: the binary search tree and the data section, nothing else.
/// `pixeld consume --geoip FILE` uses it for hits without a CDN country header.
///
/// The file is read into memory once and never changes, so lookups are safe from any thread.
/// Format: https://maxmind.github.io/MaxMind-DB/ (record sizes 24, 28 and 32; IPv4 and IPv6 trees;
/// IPv4 addresses in an IPv6 tree are looked up under `::a.b.c.d`).
public final class GeoIPDatabase: Sendable {
    private let bytes: [UInt8]
    private let nodeCount: Int
    private let recordSize: Int
    private let ipVersion: Int
    private let dataStart: Int
    private let ipv4Start: Int

    /// A file that is not a MaxMind DB this reader understands.
    public struct Failure: Error, Sendable, CustomStringConvertible {
        /// What is wrong.
        public var description: String
    }

    private static let metadataMarker: [UInt8] = [0xAB, 0xCD, 0xEF] + Array("MaxMind.com".utf8)

    /// Reads `path`.
    /// - Throws: ``Failure`` when it cannot be read or is not a MaxMind DB.
    public convenience init(path: String) throws(Failure) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw Failure(description: "open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count == 0 { break }
            if count < 0 {
                if errno == EINTR { continue }
                throw Failure(description: "read \(path): \(String(cString: strerror(errno)))")
            }
            bytes.append(contentsOf: chunk[0..<count])
        }
        try self.init(bytes: bytes)
    }

    /// Parses a database held in memory.
    /// - Throws: ``Failure`` when the bytes are not a MaxMind DB.
    public init(bytes: [UInt8]) throws(Failure) {
        self.bytes = bytes
        // The metadata follows the last marker, within the last 128 KiB.
        let marker = Self.metadataMarker
        var metadataStart: Int?
        var index = bytes.count - marker.count
        let limit = max(0, bytes.count - 131_072)
        while index >= limit {
            if bytes[index] == marker[0] && bytes[index..<(index + marker.count)].elementsEqual(marker) {
                metadataStart = index + marker.count
                break
            }
            index -= 1
        }
        guard let metadataStart else { throw Failure(description: "no MaxMind DB metadata marker") }
        var reader = Reader(bytes: bytes, base: metadataStart, limit: bytes.count)
        var nodeCount = -1
        var recordSize = -1
        var ipVersion = -1
        do {
            let (type, size) = try reader.header()
            guard type == 7 else { throw Failure(description: "metadata is not a map") }
            for _ in 0..<size {
                let key = try reader.string()
                switch key {
                case "node_count": nodeCount = try reader.unsigned()
                case "record_size": recordSize = try reader.unsigned()
                case "ip_version": ipVersion = try reader.unsigned()
                default: try reader.skip()
                }
            }
        } catch let failure as Failure {
            throw failure
        } catch {
            throw Failure(description: "bad metadata")
        }
        guard [24, 28, 32].contains(recordSize), ipVersion == 4 || ipVersion == 6, nodeCount > 0 else {
            throw Failure(description: "unsupported tree (record size \(recordSize), IP version \(ipVersion))")
        }
        let treeSize = recordSize * 2 / 8 * nodeCount
        guard treeSize + 16 <= metadataStart - marker.count else { throw Failure(description: "search tree larger than the file") }
        self.nodeCount = nodeCount
        self.recordSize = recordSize
        self.ipVersion = ipVersion
        self.dataStart = treeSize + 16
        var node = 0
        if ipVersion == 6 {
            for _ in 0..<96 where node < nodeCount {
                node = Self.record(bytes, node: node, bit: 0, recordSize: recordSize)
            }
        }
        self.ipv4Start = node
    }

    private static func record(_ bytes: [UInt8], node: Int, bit: Int, recordSize: Int) -> Int {
        let base = node * recordSize * 2 / 8
        switch recordSize {
        case 24:
            let offset = base + bit * 3
            return Int(bytes[offset]) << 16 | Int(bytes[offset + 1]) << 8 | Int(bytes[offset + 2])
        case 28:
            if bit == 0 {
                return (Int(bytes[base + 3]) & 0xF0) << 20 | Int(bytes[base]) << 16 | Int(bytes[base + 1]) << 8
                    | Int(bytes[base + 2])
            }
            return (Int(bytes[base + 3]) & 0x0F) << 24 | Int(bytes[base + 4]) << 16 | Int(bytes[base + 5]) << 8
                | Int(bytes[base + 6])
        default:
            let offset = base + bit * 4
            return Int(bytes[offset]) << 24 | Int(bytes[offset + 1]) << 16 | Int(bytes[offset + 2]) << 8
                | Int(bytes[offset + 3])
        }
    }

    /// The ISO 3166 country code of `ip` (`country.iso_code`, else `registered_country.iso_code`).
    /// - Parameter ip: An IPv4 or IPv6 address as text.
    /// - Returns: `nil` when the address is not in the database, not an address, or the database is
    ///   broken at that record.
    public func country(ip: String) -> String? {
        var address = [UInt8](repeating: 0, count: 16)
        let length: Int
        if address.withUnsafeMutableBytes({ inet_pton(AF_INET, ip, $0.baseAddress) }) == 1 {
            length = 4
        } else if address.withUnsafeMutableBytes({ inet_pton(AF_INET6, ip, $0.baseAddress) }) == 1 {
            guard ipVersion == 6 else { return nil }
            length = 16
        } else {
            return nil
        }
        var node = length == 4 ? ipv4Start : 0
        for bitIndex in 0..<(length * 8) {
            guard node < nodeCount else { break }
            let bit = Int(address[bitIndex / 8] >> (7 - UInt8(bitIndex % 8))) & 1
            guard (node + 1) * recordSize * 2 / 8 <= dataStart - 16 else { return nil }
            node = Self.record(bytes, node: node, bit: bit, recordSize: recordSize)
        }
        guard node > nodeCount else { return nil }
        let offset = node - nodeCount - 16
        guard offset >= 0, dataStart + offset < bytes.count else { return nil }
        var reader = Reader(bytes: bytes, base: dataStart, limit: bytes.count)
        reader.position = dataStart + offset
        return try? reader.countryCode()
    }

    /// A cursor over MaxMind DB data (section 'Output Data Section' of the spec).
    private struct Reader {
        let bytes: [UInt8]
        /// Where pointers count from.
        let base: Int
        let limit: Int
        var position: Int = 0
        var depth = 0

        init(bytes: [UInt8], base: Int, limit: Int) {
            self.bytes = bytes
            self.base = base
            self.limit = limit
            self.position = base
        }

        struct Broken: Error {}

        mutating func byte() throws(Broken) -> Int {
            guard position < limit else { throw Broken() }
            defer { position += 1 }
            return Int(bytes[position])
        }

        /// Type and size of the next value, following pointers.
        mutating func header() throws(Broken) -> (type: Int, size: Int) {
            let control = try byte()
            var type = control >> 5
            if type == 1 {
                try followPointer(control)
                return try header()
            }
            if type == 0 { type = 7 + (try byte()) }
            var size = control & 0x1F
            if type == 1 { throw Broken() }
            switch size {
            case 29: size = 29 + (try byte())
            case 30: size = 285 + ((try byte()) << 8 | (try byte()))
            case 31: size = 65_821 + ((try byte()) << 16 | (try byte()) << 8 | (try byte()))
            default: break
            }
            return (type, size)
        }

        /// Moves to the value a pointer points at (pointers never point at pointers).
        mutating func followPointer(_ control: Int) throws(Broken) {
            depth += 1
            guard depth < 32 else { throw Broken() }
            let sizeBits = (control >> 3) & 3
            let value = control & 7
            let target: Int
            switch sizeBits {
            case 0: target = value << 8 | (try byte())
            case 1: target = (value << 16 | (try byte()) << 8 | (try byte())) + 2048
            case 2: target = (value << 24 | (try byte()) << 16 | (try byte()) << 8 | (try byte())) + 526_336
            default: target = (try byte()) << 24 | (try byte()) << 16 | (try byte()) << 8 | (try byte())
            }
            guard base + target < limit else { throw Broken() }
            position = base + target
        }

        mutating func string() throws(Broken) -> String {
            // A map key may be a pointer: read it where it points and come back.
            let control = try byte()
            if control >> 5 == 1 {
                var copy = self
                try copy.followPointer(control)
                let text = try copy.string()
                position += (control >> 3) & 3 + 1
                return text
            }
            position -= 1
            let (type, size) = try header()
            guard type == 2, position + size <= limit else { throw Broken() }
            defer { position += size }
            return String(decoding: bytes[position..<(position + size)], as: UTF8.self)
        }

        mutating func unsigned() throws(Broken) -> Int {
            let (type, size) = try header()
            guard [5, 6, 9, 10].contains(type), size <= 8, position + size <= limit else { throw Broken() }
            var value = 0
            for _ in 0..<size { value = value << 8 | (try byte()) }
            return value
        }

        /// Skips one value (following a pointer does not move past it).
        mutating func skip() throws(Broken) {
            let control = try byte()
            if control >> 5 == 1 {
                // A pointer's own bytes: skip them without following.
                let sizeBits = (control >> 3) & 3
                position += sizeBits + 1
                return
            }
            position -= 1
            let (type, size) = try header()
            switch type {
            case 7:
                for _ in 0..<size {
                    try skip()
                    try skip()
                }
            case 11:
                for _ in 0..<size { try skip() }
            case 14:
                break  // boolean: the size is the value
            case 3:
                position += 8
            case 15:
                position += 4
            default:
                position += size
            }
            guard position <= limit else { throw Broken() }
        }

        /// `country.iso_code`, else `registered_country.iso_code`, of the map at the cursor.
        mutating func countryCode() throws(Broken) -> String? {
            var fallback: String?
            let (type, size) = try header()
            guard type == 7 else { return nil }
            for _ in 0..<size {
                let key = try string()
                if key == "country" || key == "registered_country" {
                    var copy = self
                    copy.depth = 0
                    let code = try copy.isoCode()
                    if key == "country", let code { return code }
                    fallback = fallback ?? code
                }
                try skip()
            }
            return fallback
        }

        mutating func isoCode() throws(Broken) -> String? {
            let (type, size) = try header()
            guard type == 7 else { return nil }
            for _ in 0..<size {
                if try string() == "iso_code" { return try string() }
                try skip()
            }
            return nil
        }
    }
}
