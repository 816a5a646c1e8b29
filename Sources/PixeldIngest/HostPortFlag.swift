import ArgumentParser
package import SyslogIngest

extension ListenAddress {
    /// A `HOST:PORT` flag (`--listen`, `--metrics`) checked at start, as ingest checks its listeners:
    /// a numeric IPv4 or bracketed IPv6 address, or `localhost`, and a port in 0…65535.
    /// - Throws: `ValidationError` with the one-line explanation, naming the flag.
    package static func flagValue(_ text: String, flag: String) throws -> (host: String, port: Int) {
        do {
            return try Self.parseHostPort(text, flag: flag)
        } catch {
            throw ValidationError(error.description)
        }
    }
}
