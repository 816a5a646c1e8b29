private import CMaxMindDB

#if canImport(Glibc)
import Glibc
#endif

/// Country lookups in a MaxMind DB file (`GeoLite2-Country.mmdb`, `GeoIP2-City.mmdb`, DB-IP's
/// country lite…) through Debian's libmaxminddb (`libmaxminddb-dev`).
/// `pixeld consume --geoip FILE` uses it for hits without a CDN country header.
///
/// The only owner of an `MMDB_s` in pixeld, and the only file that imports CMaxMindDB. The file is
/// memory-mapped once (`MMDB_MODE_MMAP`) and unmapped in `deinit`. IPv4 addresses in an IPv6 tree are
/// looked up under `::a.b.c.d`, as the format requires (https://maxmind.github.io/MaxMind-DB/).
///
/// `@unchecked Sendable`: the `MMDB_s` is written only by `MMDB_open` in `init` and `MMDB_close` in
/// `deinit`. In between, libmaxminddb reads it through `const MMDB_s *` only (the IPv4 start node is
/// computed inside `MMDB_open` since 1.4; Debian 12 ships 1.7.1), and documents lookups on one opened
/// handle as thread-safe; every result is copied into a Swift `String` before ``country(ip:)``
/// returns. So any number of threads may call ``country(ip:)`` at once.
public final class GeoIPDatabase: @unchecked Sendable {
    /// Allocated here so its address is stable: lookup results (`MMDB_entry_s`) point back at it.
    private let handle: UnsafeMutablePointer<MMDB_s>

    /// A file that cannot be opened or is not a MaxMind DB libmaxminddb accepts.
    public struct Failure: Error, Sendable, CustomStringConvertible {
        /// What is wrong, on one line: the failing call, the file and libmaxminddb's (or the OS's) reason.
        public var description: String
    }

    /// `"\xAB\xCD\xEFMaxMind.com"`, which precedes the metadata.
    private static let metadataMarkerLength = 14
    /// The NUL bytes between the search tree and the data section.
    private static let separatorLength = 16

    /// Opens and memory-maps `path`.
    /// - Throws: ``Failure`` when it cannot be read or is not a MaxMind DB.
    public convenience init(path: String) throws(Failure) {
        try self.init(opening: path, name: path)
    }

    /// Opens a database held in memory (libmaxminddb reads only files: the bytes go to a temporary
    /// file, which is unlinked as soon as it is mapped).
    /// - Throws: ``Failure`` when the bytes are not a MaxMind DB.
    public convenience init(bytes: [UInt8]) throws(Failure) {
        let directory = getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
        var template = Array("\(directory)/pixeld-geoip-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { throw Failure(description: "mkstemp \(directory): \(Self.osError(errno))") }
        let path = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        defer { unlink(path) }
        var written = 0
        while written < bytes.count {
            let count = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + written, $0.count - written) }
            if count < 0 {
                if errno == EINTR { continue }
                let code = errno
                close(fd)
                throw Failure(description: "write \(path): \(Self.osError(code))")
            }
            written += count
        }
        close(fd)
        try self.init(opening: path, name: "\(bytes.count) bytes")
    }

    private init(opening path: String, name: String) throws(Failure) {
        let handle = UnsafeMutablePointer<MMDB_s>.allocate(capacity: 1)
        handle.initialize(to: MMDB_s())
        let status = MMDB_open(path, UInt32(MMDB_MODE_MMAP), handle)
        guard status == MMDB_SUCCESS else {
            let code = errno
            handle.deinitialize(count: 1)
            handle.deallocate()
            var reason = String(cString: MMDB_strerror(status))
            if status == MMDB_FILE_OPEN_ERROR || status == MMDB_IO_ERROR { reason += ": \(Self.osError(code))" }
            // What MMDB_open means by it; the generic text talks about lookup paths and array indexes.
            if status == MMDB_LOOKUP_PATH_DOES_NOT_MATCH_DATA_ERROR { reason = "the metadata lacks a required key" }
            throw Failure(description: "MMDB_open \(name): \(reason)")
        }
        if let problem = Self.layoutProblem(handle.pointee) {
            MMDB_close(handle)
            handle.deinitialize(count: 1)
            handle.deallocate()
            throw Failure(description: "MMDB_open \(name): \(problem) (truncated, or not a MaxMind DB)")
        }
        self.handle = handle
    }

    deinit {
        MMDB_close(handle)
        handle.deinitialize(count: 1)
        handle.deallocate()
    }

    /// What libmaxminddb 1.7 leaves unchecked: the search tree and its 16-NUL separator must end before
    /// the metadata marker (the library only bounds them by the file's end, metadata included).
    private static func layoutProblem(_ mmdb: MMDB_s) -> String? {
        let treeSize = Int(mmdb.metadata.node_count) * Int(mmdb.full_record_byte_size)
        let markerOffset = (mmdb.metadata_section - metadataMarkerLength) - mmdb.file_content
        guard treeSize + separatorLength <= markerOffset else {
            return "search tree of \(mmdb.metadata.node_count) nodes runs into the metadata"
        }
        let separator = UnsafeBufferPointer(start: mmdb.file_content + treeSize, count: separatorLength)
        guard separator.allSatisfy({ $0 == 0 }) else {
            return "no 16 NUL bytes after the search tree of \(mmdb.metadata.node_count) nodes"
        }
        return nil
    }

    private static func osError(_ code: Int32) -> String {
        String(cString: strerror(code))
    }

    /// The ISO 3166 country code of `ip` (`country.iso_code`, else `registered_country.iso_code`).
    /// - Parameter ip: An IPv4 or IPv6 address as text (nginx's `$remote_addr`).
    /// - Returns: `nil` when the address is not in the database, not an address, an IPv6 address in
    ///   an IPv4-only database, or the database is broken at that record.
    public func country(ip: String) -> String? {
        var mmdbError = MMDB_SUCCESS
        var result: MMDB_lookup_result_s
        // inet_pton, not MMDB_lookup_string: strict dotted quads, and no getaddrinfo allocation per hit.
        var v4 = sockaddr_in()
        if inet_pton(AF_INET, ip, &v4.sin_addr) == 1 {
            v4.sin_family = sa_family_t(AF_INET)
            result = withUnsafePointer(to: &v4) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { MMDB_lookup_sockaddr(handle, $0, &mmdbError) }
            }
        } else {
            var v6 = sockaddr_in6()
            guard inet_pton(AF_INET6, ip, &v6.sin6_addr) == 1 else { return nil }
            v6.sin6_family = sa_family_t(AF_INET6)
            result = withUnsafePointer(to: &v6) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { MMDB_lookup_sockaddr(handle, $0, &mmdbError) }
            }
        }
        guard mmdbError == MMDB_SUCCESS, result.found_entry else { return nil }
        return Self.isoCode(&result.entry, in: "country") ?? Self.isoCode(&result.entry, in: "registered_country")
    }

    /// `key.iso_code` of the record at `entry`, copied out of the mapping.
    private static func isoCode(_ entry: inout MMDB_entry_s, in key: String) -> String? {
        var data = MMDB_entry_data_s()
        guard cmaxminddb_get_value2(&entry, &data, key, "iso_code") == MMDB_SUCCESS, data.has_data,
            data.type == UInt32(MMDB_DATA_TYPE_UTF8_STRING), let text = data.utf8_string
        else { return nil }
        let count = Int(data.data_size)
        return text.withMemoryRebound(to: UInt8.self, capacity: count) {
            String(decoding: UnsafeBufferPointer(start: $0, count: count), as: UTF8.self)
        }
    }
}
