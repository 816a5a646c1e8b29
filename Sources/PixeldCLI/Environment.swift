import ArgumentParser

#if canImport(Glibc)
import Glibc
#endif

/// The `PIXELD_*` environment variables, consulted for every flag the command line left unset.
/// Only the command-line front end (this target, shared by the `pixeld` and `pixeld-ingest`
/// executables, not a product) reads the environment; the libraries get plain configuration values.
package enum Environment {
    /// The value of `PIXELD_<FLAG>` for a flag such as `max-message-bytes`.
    package static func value(forFlag flag: String) -> String? {
        let name = "PIXELD_" + flag.uppercased().replacingOccurrences(of: "-", with: "_")
        guard let raw = getenv(name) else { return nil }
        let value = String(cString: raw)
        return value.isEmpty ? nil : value
    }

    /// `value` if the command line set it, else the environment's, else `fallback`.
    package static func resolve(_ value: String?, flag: String, default fallback: String) -> String {
        value ?? Self.value(forFlag: flag) ?? fallback
    }

    /// A whole number in `range`: `value` if the command line set it, else `PIXELD_<FLAG>`, else
    /// `fallback`.
    /// - Throws: `ValidationError` naming the flag and the range when the text is not such a number.
    package static func integer(_ value: Int?, flag: String, default fallback: Int, range: ClosedRange<Int>) throws -> Int {
        let text = value.map(String.init) ?? Self.value(forFlag: flag) ?? String(fallback)
        guard let number = Int(text), range.contains(number) else {
            throw ValidationError("--\(flag): '\(text)' must be a whole number in \(range.lowerBound)…\(range.upperBound)")
        }
        return number
    }

    /// An on/off flag: `true` if the command line set it, else `PIXELD_<FLAG>` read as `1`/`true`/
    /// `yes`/`on` or `0`/`false`/`no`/`off` (any case), else `false`.
    /// - Throws: `ValidationError` naming the variable when it holds anything else.
    package static func flag(_ value: Bool, flag: String) throws -> Bool {
        if value { return true }
        guard let text = Self.value(forFlag: flag) else { return false }
        switch text.lowercased() {
        case "1", "true", "yes", "on": return true
        case "0", "false", "no", "off": return false
        default:
            let name = "PIXELD_" + flag.uppercased().replacingOccurrences(of: "-", with: "_")
            throw ValidationError("\(name)='\(text)' (--\(flag)) must be 1, true, yes, on, 0, false, no or off")
        }
    }

    /// Whether a flag was given, on the command line (`value` not `nil`) or as `PIXELD_<FLAG>`.
    package static func isGiven(_ value: Any?, flag: String) -> Bool {
        value != nil || Self.value(forFlag: flag) != nil
    }

    /// Refuses flags that would be accepted and have no effect, so an operator who gives them is not
    /// left believing they do something.
    /// - Parameters:
    ///   - flags: Each flag (`--spool-sync`) and whether it was given (see ``isGiven(_:flag:)``).
    ///   - missing: What they need and was not given, with why (`--spool: without it nothing is spooled`).
    /// - Throws: `ValidationError` naming the given flags, in one line, when any was given.
    package static func refuse(_ flags: [(String, Bool)], needing missing: String) throws {
        let given = flags.filter(\.1).map(\.0)
        guard !given.isEmpty else { return }
        throw ValidationError(
            "\(given.joined(separator: ", ")) (flag or PIXELD_* variable) \(given.count == 1 ? "needs" : "need") \(missing)"
        )
    }

    /// `values` if the command line set any, else the environment's (space-separated).
    package static func resolve(_ values: [String], flag: String) -> [String] {
        if !values.isEmpty { return values }
        return value(forFlag: flag)?.split(separator: " ").map(String.init) ?? []
    }
}

extension String {
    fileprivate func replacingOccurrences(of target: String, with replacement: String) -> String {
        split(separator: Character(target), omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
