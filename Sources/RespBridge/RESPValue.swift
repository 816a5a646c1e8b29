/// A Redis reply, copied out of hiredis into Swift-owned memory.
public enum RESPValue: Sendable, Equatable {
    /// `+OK` and other status replies.
    case status(String)
    /// `-ERR …` error replies. The text starts with the error prefix (`WRONGTYPE`, `LOADING`, …).
    case error(String)
    /// `:n` integer replies.
    case integer(Int64)
    /// `$n` bulk strings, exactly as stored.
    case bulk([UInt8])
    /// Null bulk string or null array.
    case null
    /// `*n` arrays.
    case array([RESPValue])

    /// The integer, for integer replies.
    public var int: Int64? {
        if case .integer(let value) = self { return value }
        return nil
    }

    /// The bytes of a bulk or status reply.
    public var bytes: [UInt8]? {
        switch self {
        case .bulk(let bytes): return bytes
        case .status(let text): return Array(text.utf8)
        default: return nil
        }
    }

    /// A bulk or status reply decoded as UTF-8 (invalid bytes repaired).
    public var string: String? { bytes.map { String(decoding: $0, as: UTF8.self) } }

    /// The elements of an array reply.
    public var array: [RESPValue]? {
        if case .array(let values) = self { return values }
        return nil
    }

    /// Throws a ``RespError`` with code `.server` when this is an error reply, else returns it.
    /// - Parameter operation: the command, for the error text.
    @discardableResult
    public func unwrap(_ operation: String) throws(RespError) -> RESPValue {
        if case .error(let text) = self {
            throw RespError(code: .server, operation: operation, message: text)
        }
        return self
    }
}
