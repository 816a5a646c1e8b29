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

    static func array(_ items: [[UInt8]]) -> [UInt8] {
        precondition(items.count < 29)
        return [UInt8(items.count), UInt8(11 - 7)] + items.joined()
    }

    /// A pointer (size 0: 11 bits) to `offset` in the data section.
    static func pointer(_ offset: Int) -> [UInt8] {
        precondition(offset < 2048)
        return [UInt8(1 << 5 | offset >> 8), UInt8(offset & 0xFF)]
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

    /// A database mapping each prefix (address bytes and prefix length) to a country code, with the
    /// metadata libmaxminddb requires (https://maxmind.github.io/MaxMind-DB/, "Database Metadata").
    /// - Parameters:
    ///   - registeredOnly: codes whose record has only `registered_country`, no `country`.
    ///   - editMetadata: changes the metadata pairs, to build databases libmaxminddb must refuse.
    static func database(
        ipVersion: Int, recordSize: Int, prefixes: [([UInt8], Int, String)], registeredOnly: Set<String> = [],
        editMetadata: ([(String, [UInt8])]) -> [(String, [UInt8])] = { $0 }
    ) -> [UInt8] {
        // Data section: one record per country, `country` before `registered_country` (`ZZ`). Later
        // records refer to the first one's `country` key and `registered_country` map through pointers.
        var data: [UInt8] = []
        var offsets: [String: Int] = [:]
        var countryKey: Int?
        var registeredMap: Int?
        for (_, _, code) in prefixes where offsets[code] == nil {
            offsets[code] = data.count
            if registeredOnly.contains(code) {
                data += map([("registered_country", map([("iso_code", string(code))]))])
                continue
            }
            data.append(UInt8(7 << 5 | 2))
            if let countryKey {
                data += pointer(countryKey)
            } else {
                countryKey = data.count
                data += string("country")
            }
            data += map([("iso_code", string(code))]) + string("registered_country")
            if let registeredMap {
                data += pointer(registeredMap)
            } else {
                registeredMap = data.count
                data += map([("iso_code", string("ZZ"))])
            }
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
        let metadata = map(
            editMetadata([
                ("node_count", uint(nodeCount, type: 6)), ("record_size", uint(recordSize, type: 5)),
                ("ip_version", uint(ipVersion, type: 5)), ("database_type", string("Test-Country")),
                ("languages", array([string("en")])), ("binary_format_major_version", uint(2, type: 5)),
                ("binary_format_minor_version", uint(0, type: 5)), ("build_epoch", uint(1_700_000_000, type: 9)),
                ("description", map([("en", string("pixeld test"))])),
            ])
        )
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

    @Test(arguments: [(4, 24), (6, 32)])
    func registeredCountryFallback(_ ipVersion: Int, _ recordSize: Int) throws {
        let database = try GeoIPDatabase(
            bytes: MMDBWriter.database(
                ipVersion: ipVersion, recordSize: recordSize, prefixes: Self.prefixes + [([100, 64, 0, 0], 10, "JP")],
                registeredOnly: ["JP"]
            )
        )
        #expect(database.country(ip: "100.100.1.1") == "JP")
        #expect(database.country(ip: "100.128.0.1") == nil)
        #expect(database.country(ip: "203.0.113.77") == "DE")  // `country` wins over `registered_country`
    }

    @Test func opensAFileAndLooksUpFromManyThreads() async throws {
        let directory = getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
        let path = "\(directory)/pixeld-geoip-test-\(getpid()).mmdb"
        let bytes = MMDBWriter.database(ipVersion: 6, recordSize: 28, prefixes: Self.prefixes)
        let file = try #require(fopen(path, "wb"))
        #expect(fwrite(bytes, 1, bytes.count, file) == bytes.count)
        fclose(file)
        defer { unlink(path) }
        let database = try GeoIPDatabase(path: path)
        let mismatches = await withTaskGroup(of: Int.self) { group in
            for worker in 0..<8 {
                group.addTask {
                    var wrong = 0
                    for round in 0..<2000 {
                        let (ip, code) = (round + worker) % 2 == 0 ? ("203.0.113.9", "DE") : ("192.0.2.129", "FR")
                        if database.country(ip: ip) != code { wrong += 1 }
                    }
                    return wrong
                }
            }
            return await group.reduce(0, +)
        }
        #expect(mismatches == 0)
    }

    @Test func openFailuresSayWhatAndWhereOnOneLine() throws {
        let missing = "/nonexistent/pixeld/GeoLite2-Country.mmdb"
        let error = try #require(throws: GeoIPDatabase.Failure.self) { try GeoIPDatabase(path: missing) }
        #expect(error.description.hasPrefix("MMDB_open \(missing): "))
        #expect(error.description.contains("No such file or directory"))
        #expect(!error.description.contains("\n"))
    }

    @Test func garbageIsRefused() throws {
        let hello = try #require(throws: GeoIPDatabase.Failure.self) { try GeoIPDatabase(bytes: Array("hello".utf8)) }
        #expect(hello.description.hasPrefix("MMDB_open "))
        #expect(hello.description.contains("invalid metadata"))
        #expect(!hello.description.contains("\n"))
        #expect(throws: GeoIPDatabase.Failure.self) { try GeoIPDatabase(bytes: []) }
        #expect(throws: GeoIPDatabase.Failure.self) { try GeoIPDatabase(bytes: [UInt8](repeating: 0, count: 4096)) }
        var truncated = MMDBWriter.database(ipVersion: 4, recordSize: 24, prefixes: Self.prefixes)
        truncated.removeFirst(300)
        #expect(throws: GeoIPDatabase.Failure.self) { try GeoIPDatabase(bytes: truncated) }
        // Metadata libmaxminddb refuses: a required key missing, a wrong type, an unknown record size or version.
        let edits: [([(String, [UInt8])]) -> [(String, [UInt8])]] = [
            { $0.filter { $0.0 != "build_epoch" } },
            { $0.filter { $0.0 != "node_count" } },
            { $0.map { $0.0 == "node_count" ? ($0.0, MMDBWriter.string("many")) : $0 } },
            { $0.map { $0.0 == "record_size" ? ($0.0, MMDBWriter.uint(20, type: 5)) : $0 } },
            { $0.map { $0.0 == "ip_version" ? ($0.0, MMDBWriter.uint(5, type: 5)) : $0 } },
            { $0.map { $0.0 == "binary_format_major_version" ? ($0.0, MMDBWriter.uint(3, type: 5)) : $0 } },
            // More nodes than the file holds: the tree would run into the data and metadata.
            { $0.map { $0.0 == "node_count" ? ($0.0, MMDBWriter.uint(100_000, type: 6)) : $0 } },
        ]
        for edit in edits {
            let bytes = MMDBWriter.database(ipVersion: 4, recordSize: 24, prefixes: Self.prefixes, editMetadata: edit)
            #expect(throws: GeoIPDatabase.Failure.self) { try GeoIPDatabase(bytes: bytes) }
        }
        // Shifted: the 16 NULs no longer follow the search tree.
        var shifted = MMDBWriter.database(ipVersion: 6, recordSize: 28, prefixes: Self.prefixes)
        shifted.removeFirst(40)
        #expect(throws: GeoIPDatabase.Failure.self) { try GeoIPDatabase(bytes: shifted) }
        // Corrupt but plausible (one flipped byte in the tree or the data): the open may succeed, and then
        // lookups return something or nothing, and never trap.
        let valid = MMDBWriter.database(ipVersion: 6, recordSize: 28, prefixes: Self.prefixes)
        var opened = 0
        for offset in stride(from: 0, to: valid.count, by: 5) {
            var corrupt = valid
            corrupt[offset] ^= 0xFF
            guard let database = try? GeoIPDatabase(bytes: corrupt) else { continue }
            opened += 1
            for ip in ["203.0.113.77", "198.51.100.1", "192.0.2.200", "2001:db8::1", "0.0.0.0", "255.255.255.255"] {
                _ = database.country(ip: ip)
            }
        }
        #expect(opened > 0)
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
