/// A Redis reply as read by ``RESPConnection``: RESP2, bytes kept exactly.
public enum RESP: Equatable, Sendable, CustomStringConvertible {
    /// `+OK`
    case simpleString(String)
    /// `-ERR …`
    case error(String)
    /// `:42`
    case integer(Int64)
    /// `$n` followed by exactly n bytes.
    case bulkString([UInt8])
    /// `$-1` or `*-1`.
    case null
    /// `*n` followed by n replies.
    case array([RESP])

    /// The text of a simple or bulk string (bulk decoded as UTF-8, invalid sequences repaired).
    public var string: String? {
        switch self {
        case .simpleString(let text): return text
        case .bulkString(let bytes): return String(decoding: bytes, as: UTF8.self)
        default: return nil
        }
    }

    /// The bytes of a bulk string (or of a simple string's UTF-8).
    public var bytes: [UInt8]? {
        switch self {
        case .bulkString(let bytes): return bytes
        case .simpleString(let text): return Array(text.utf8)
        default: return nil
        }
    }

    /// The value of an integer reply.
    public var integer: Int64? {
        if case .integer(let value) = self { return value }
        return nil
    }

    /// The elements of an array reply.
    public var array: [RESP]? {
        if case .array(let elements) = self { return elements }
        return nil
    }

    /// Whether this is an error reply.
    public var isError: Bool {
        if case .error = self { return true }
        return false
    }

    public var description: String {
        switch self {
        case .simpleString(let text): return "+\(text)"
        case .error(let text): return "-\(text)"
        case .integer(let value): return ":\(value)"
        case .bulkString(let bytes): return "$\(String(reflecting: String(decoding: bytes, as: UTF8.self)))"
        case .null: return "(nil)"
        case .array(let elements): return "[" + elements.map(\.description).joined(separator: ", ") + "]"
        }
    }
}
