#if canImport(Glibc)
import Glibc
#endif
import PixelAnalytics
import Testing

/// Builds a tiny MaxMind DB (the writer side of the format, for tests only).
enum MMDBWriter {
    static func map(_ pairs: [(String, [UInt8])]) -> [UInt8] {
        precondition(pairs.count < 29)
        var out: [UInt8] = [UInt8(7 << 5 | pairs.count)]
        for (key, value) in pairs { out += string(key) + value }
        return out
    }

    static func string(_ text: String) -> [UInt8] {
        let bytes = Array(text.utf8)
        precondition(bytes.count < 29)
        return [UInt8(2 << 5 | bytes.count)] + bytes
    }

    static func uint(_ value: Int, type: Int) -> [UInt8] {
        var bytes: [UInt8] = []
        var rest = value
        while rest > 0 {
            bytes.insert(UInt8(rest & 0xFF), at: 0)
            rest >>= 8
        }
        if type <= 7 { return [UInt8(type << 5 | bytes.count)] + bytes }
        return [UInt8(bytes.count), UInt8(type - 7)] + bytes
    }

    /// A database mapping each prefix (address bytes and prefix length) to a country code.
    static func database(ipVersion: Int, recordSize: Int, prefixes: [([UInt8], Int, String)]) -> [UInt8] {
        // Data section: one record per country; the second refers to its key through a pointer.
        var data: [UInt8] = []
        var offsets: [String: Int] = [:]
        for (_, _, code) in prefixes where offsets[code] == nil {
            offsets[code] = data.count
            data += map([("country", map([("iso_code", string(code))])), ("registered_country", map([("iso_code", string("ZZ"))]))])
        }
        // Tree.
        var nodes: [[Int?]] = [[nil, nil]]
        var leaves: [(node: Int, bit: Int, code: String)] = []
        for (address, length, code) in prefixes {
            var bits: [Int] = []
            let full = ipVersion == 6 && address.count == 4 ? [UInt8](repeating: 0, count: 12) + address : address
            let total = ipVersion == 6 && address.count == 4 ? length + 96 : length
            for index in 0..<total { bits.append(Int(full[index / 8] >> (7 - UInt8(index % 8))) & 1) }
            var node = 0
            for bit in bits.dropLast() {
                if let next = nodes[node][bit] {
                    node = next
                } else {
                    nodes.append([nil, nil])
                    nodes[node][bit] = nodes.count - 1
                    node = nodes.count - 1
                }
            }
            leaves.append((node, bits.last!, code))
        }
        let nodeCount = nodes.count
        var records = nodes.map { $0.map { $0 ?? nodeCount } }
        for leaf in leaves { records[leaf.node][leaf.bit] = nodeCount + 16 + offsets[leaf.code]! }
        var tree: [UInt8] = []
        for record in records {
            switch recordSize {
            case 24:
                for value in record { tree += [UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)] }
            case 28:
                let (left, right) = (record[0], record[1])
                tree += [UInt8(left >> 16 & 0xFF), UInt8(left >> 8 & 0xFF), UInt8(left & 0xFF)]
                tree.append(UInt8((left >> 24 & 0x0F) << 4 | (right >> 24 & 0x0F)))
                tree += [UInt8(right >> 16 & 0xFF), UInt8(right >> 8 & 0xFF), UInt8(right & 0xFF)]
            default:
                for value in record {
                    tree += [UInt8(value >> 24 & 0xFF), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)]
                }
            }
        }
        let metadata = map([
            ("node_count", uint(nodeCount, type: 6)), ("record_size", uint(recordSize, type: 5)),
            ("ip_version", uint(ipVersion, type: 5)), ("database_type", string("Test-Country")),
            ("binary_format_major_version", uint(2, type: 5)),
        ])
        return tree + [UInt8](repeating: 0, count: 16) + data + [0xAB, 0xCD, 0xEF] + Array("MaxMind.com".utf8) + metadata
    }
}

@Suite struct GeoIPDatabaseTests {
    static let prefixes: [([UInt8], Int, String)] = [
        ([203, 0, 113, 0], 24, "DE"), ([198, 51, 100, 0], 25, "US"), ([192, 0, 2, 128], 25, "FR"),
    ]

    @Test(arguments: [(4, 24), (6, 24), (6, 28), (4, 32)])
    func lookups(_ ipVersion: Int, _ recordSize: Int) throws {
        let database = try GeoIPDatabase(
            bytes: MMDBWriter.database(ipVersion: ipVersion, recordSize: recordSize, prefixes: Self.prefixes)
        )
        #expect(database.country(ip: "203.0.113.77") == "DE")
        #expect(database.country(ip: "198.51.100.1") == "US")
        #expect(database.country(ip: "198.51.100.200") == nil)
        #expect(database.country(ip: "192.0.2.200") == "FR")
        #expect(database.country(ip: "192.0.2.1") == nil)
        #expect(database.country(ip: "10.0.0.1") == nil)
        #expect(database.country(ip: "not an ip") == nil)
        #expect(database.country(ip: "2001:db8::1") == nil)
    }

    @Test func garbageIsRefused() {
        #expect(throws: GeoIPDatabase.Failure.self) { try GeoIPDatabase(bytes: Array("hello".utf8)) }
        var truncated = MMDBWriter.database(ipVersion: 4, recordSize: 24, prefixes: Self.prefixes)
        truncated.removeFirst(300)
        #expect(throws: GeoIPDatabase.Failure.self) { try GeoIPDatabase(bytes: truncated) }
        // Corrupt but plausible: lookups return something or nothing, and never trap.
        var shifted = MMDBWriter.database(ipVersion: 6, recordSize: 28, prefixes: Self.prefixes)
        shifted.removeFirst(40)
        if let database = try? GeoIPDatabase(bytes: shifted) {
            for ip in ["203.0.113.77", "198.51.100.1", "192.0.2.200", "2001:db8::1", "0.0.0.0", "255.255.255.255"] {
                _ = database.country(ip: ip)
            }
        }
    }

    /// Against a real database when one is given: `PIXELD_GEOIP_TEST_DB=GeoLite2-City.mmdb`.
    @Test(.enabled(if: getenv("PIXELD_GEOIP_TEST_DB") != nil))
    func realDatabase() throws {
        let database = try GeoIPDatabase(path: String(cString: getenv("PIXELD_GEOIP_TEST_DB")!))
        #expect(database.country(ip: "8.8.8.8") == "US")
        #expect(database.country(ip: "2a00:1450:4001:80b::200e") != nil)
        #expect(database.country(ip: "127.0.0.1") == nil)
    }
}
