/// The state of one visit, kept in Redis under `pixeld:visit:SITE:VID` between batches with the
/// visitor's other recent visits (``encode(_:)``).
///
/// Stored as a MessagePack array of ten elements — first hit ms, last hit ms, hits, bounce
/// `"1"`/`"0"`, the Redis key base of the day it started (`pixeld:site:S:D:`), that day's expire-at
/// unix time as text, source, UTM source, medium, campaign — the shape the format-1 rollup script
/// wrote with Lua's `cmsgpack`, so state written by an older consumer is read as it was meant.
struct VisitState: Equatable {
    /// First and last hit, in milliseconds since the epoch.
    var first: Int
    var last: Int
    /// Hits so far (pageviews and custom events).
    var hits: Int
    /// Whether the visit currently counts as a bounce (one hit, a pageview).
    var bounce: Bool
    /// Key base of the day the visit started: its visits, bounces and duration count there.
    var base: String
    /// When that day's rollups expire (unix time).
    var expireAt: Int
    /// The visit's source and campaign, from its first hit: its pageviews count for them.
    var source: String
    var utmSource: String
    var utmMedium: String
    var utmCampaign: String

    /// Whether a hit at `milliseconds` continues this visit: within `idle` of its first or last hit.
    func continues(at milliseconds: Int, idle: Int) -> Bool {
        Self.continues(first: first, last: last, at: milliseconds, idle: idle)
    }

    /// The visit rule, shared with ``ArchiveReport``: a hit at `milliseconds` continues a visit whose
    /// hits span `first`…`last` when it lies within `idle` of them (hits may arrive out of order).
    static func continues(first: Int, last: Int, at milliseconds: Int, idle: Int) -> Bool {
        milliseconds <= last + idle && milliseconds >= first - idle
    }

    /// The MessagePack form.
    var encoded: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(encodedSizeEstimate)
        append(to: &out)
        return out
    }

    /// At least the bytes of ``encoded``.
    var encodedSizeEstimate: Int {
        64 + base.utf8.count + source.utf8.count + utmSource.utf8.count + utmMedium.utf8.count + utmCampaign.utf8.count
    }

    /// Appends ``encoded`` to `out`.
    func append(to out: inout [UInt8]) {
        out.append(0x9A)  // fixarray of 10
        MessagePack.append(first, to: &out)
        MessagePack.append(last, to: &out)
        MessagePack.append(hits, to: &out)
        MessagePack.append(bounce ? "1" : "0", to: &out)
        MessagePack.append(base, to: &out)
        MessagePack.append(String(expireAt), to: &out)
        MessagePack.append(source, to: &out)
        MessagePack.append(utmSource, to: &out)
        MessagePack.append(utmMedium, to: &out)
        MessagePack.append(utmCampaign, to: &out)
    }

    /// Decodes the MessagePack form; `nil` for anything else (a state nobody can read starts a new visit).
    /// - Parameter knownBases: key bases the caller already holds (a batch's site days): a state whose
    ///   base is one of them shares that string instead of allocating its own.
    init?(encoded bytes: [UInt8], knownBases: [String] = []) {
        var reader = MessagePack.Reader(bytes)
        guard reader.arrayHeader() == 10 else { return nil }
        self.init(readingFieldsFrom: &reader, knownBases: knownBases)
        guard reader.isAtEnd else { return nil }
    }

    /// Reads the ten fields that follow a state's array header.
    private init?(readingFieldsFrom reader: inout MessagePack.Reader, knownBases: [String]) {
        guard let first = reader.integer(), let last = reader.integer(), let hits = reader.integer(),
            let bounce = reader.string(), let base = reader.string(reusing: knownBases),
            let expireAt = reader.string().flatMap({ Int($0) }),
            let source = reader.string(), let utmSource = reader.string(),
            let utmMedium = reader.string(), let utmCampaign = reader.string()
        else { return nil }
        self.init(
            first: first, last: last, hits: hits, bounce: bounce == "1", base: base, expireAt: expireAt,
            source: source, utmSource: utmSource, utmMedium: utmMedium, utmCampaign: utmCampaign
        )
    }

    init(
        first: Int, last: Int, hits: Int, bounce: Bool, base: String, expireAt: Int,
        source: String, utmSource: String, utmMedium: String, utmCampaign: String
    ) {
        self.first = first
        self.last = last
        self.hits = hits
        self.bounce = bounce
        self.base = base
        self.expireAt = expireAt
        self.source = source
        self.utmSource = utmSource
        self.utmMedium = utmMedium
        self.utmCampaign = utmCampaign
    }
}

extension VisitState {
    /// Visits kept per visitor: the one in progress and the most recent earlier ones, which hits
    /// that arrive late (spooled somewhere, or from another nginx) may still continue. Past this many
    /// the oldest is forgotten, and a hit that would have continued it starts a visit of its own.
    static let keptPerVisitor = 4

    /// A visitor's visits (oldest first, at most ``keptPerVisitor``) as stored: one visit alone is its
    /// ten-element array, the shape older consumers wrote and read; several are an array of those arrays.
    static func encode(_ visits: [VisitState]) -> [UInt8] {
        precondition(!visits.isEmpty && visits.count <= keptPerVisitor, "\(visits.count) visits to store")
        if visits.count == 1 { return visits[0].encoded }
        var out: [UInt8] = []
        out.reserveCapacity(visits.reduce(1) { $0 + $1.encodedSizeEstimate })
        out.append(0x90 | UInt8(visits.count))  // fixarray
        for visit in visits { visit.append(to: &out) }
        return out
    }

    /// A visitor's visits from ``encode(_:)``'s form, oldest first; `nil` for anything else, or more
    /// than ``keptPerVisitor`` of them (what this version never writes).
    /// - Parameter knownBases: As for ``init(encoded:knownBases:)``.
    static func decodeVisits(_ bytes: [UInt8], knownBases: [String] = []) -> [VisitState]? {
        var reader = MessagePack.Reader(bytes)
        guard let count = reader.arrayHeader() else { return nil }
        var visits: [VisitState] = []
        if reader.nextIsArray {
            guard count <= keptPerVisitor else { return nil }
            visits.reserveCapacity(keptPerVisitor + 1)
            for _ in 0..<count {
                guard reader.arrayHeader() == 10, let visit = VisitState(readingFieldsFrom: &reader, knownBases: knownBases)
                else { return nil }
                visits.append(visit)
            }
        } else {
            guard count == 10, let visit = VisitState(readingFieldsFrom: &reader, knownBases: knownBases) else { return nil }
            visits.reserveCapacity(keptPerVisitor + 1)
            visits.append(visit)
        }
        return reader.isAtEnd && !visits.isEmpty ? visits : nil
    }
}

/// The part of MessagePack that visit states use: arrays, integers, strings (and doubles holding
/// whole numbers, which Lua's `cmsgpack` may write for large integers).
enum MessagePack {
    static func append(_ value: Int, to out: inout [UInt8]) {
        switch value {
        case 0...0x7F:
            out.append(UInt8(value))
        case -32 ..< 0:
            out.append(UInt8(bitPattern: Int8(value)))
        case 0...Int(UInt32.max):
            out.append(0xCE)
            appendBigEndian(UInt64(value), bytes: 4, to: &out)
        case 0...:
            out.append(0xCF)
            appendBigEndian(UInt64(value), bytes: 8, to: &out)
        default:
            out.append(0xD3)
            appendBigEndian(UInt64(bitPattern: Int64(value)), bytes: 8, to: &out)
        }
    }

    static func append(_ text: String, to out: inout [UInt8]) {
        let count = text.utf8.count
        if count < 32 {
            out.append(0xA0 | UInt8(count))
        } else if count <= 0xFF {
            out.append(0xD9)
            out.append(UInt8(count))
        } else if count <= 0xFFFF {
            out.append(0xDA)
            appendBigEndian(UInt64(count), bytes: 2, to: &out)
        } else {
            out.append(0xDB)
            appendBigEndian(UInt64(count), bytes: 4, to: &out)
        }
        out.append(contentsOf: text.utf8)
    }

    private static func appendBigEndian(_ value: UInt64, bytes: Int, to out: inout [UInt8]) {
        for shift in stride(from: (bytes - 1) * 8, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
    }

    /// Reads values in order; every read returns `nil` on a type mismatch or truncation.
    struct Reader {
        private let bytes: [UInt8]
        private var offset = 0

        init(_ bytes: [UInt8]) { self.bytes = bytes }

        var isAtEnd: Bool { offset == bytes.count }

        /// Whether the next value is an array (without reading it).
        var nextIsArray: Bool {
            guard offset < bytes.count else { return false }
            return (0x90...0x9F).contains(bytes[offset]) || bytes[offset] == 0xDC || bytes[offset] == 0xDD
        }

        private mutating func byte() -> UInt8? {
            guard offset < bytes.count else { return nil }
            defer { offset += 1 }
            return bytes[offset]
        }

        private mutating func bigEndian(_ count: Int) -> UInt64? {
            guard count <= bytes.count - offset else { return nil }
            var value: UInt64 = 0
            for index in offset ..< offset + count { value = value << 8 | UInt64(bytes[index]) }
            offset += count
            return value
        }

        mutating func arrayHeader() -> Int? {
            guard let tag = byte() else { return nil }
            switch tag {
            case 0x90...0x9F: return Int(tag & 0x0F)
            case 0xDC: return bigEndian(2).map { Int($0) }
            case 0xDD: return bigEndian(4).map { Int($0) }
            default: return nil
            }
        }

        mutating func integer() -> Int? {
            guard let tag = byte() else { return nil }
            switch tag {
            case 0x00...0x7F: return Int(tag)
            case 0xE0...0xFF: return Int(Int8(bitPattern: tag))
            case 0xCC: return bigEndian(1).map { Int($0) }
            case 0xCD: return bigEndian(2).map { Int($0) }
            case 0xCE: return bigEndian(4).map { Int($0) }
            case 0xCF: return bigEndian(8).flatMap { Int(exactly: $0) }
            case 0xD0: return bigEndian(1).map { Int(Int8(truncatingIfNeeded: $0)) }
            case 0xD1: return bigEndian(2).map { Int(Int16(truncatingIfNeeded: $0)) }
            case 0xD2: return bigEndian(4).map { Int(Int32(truncatingIfNeeded: $0)) }
            case 0xD3: return bigEndian(8).map { Int(Int64(bitPattern: $0)) }
            case 0xCA: return bigEndian(4).flatMap { Int(exactly: Float(bitPattern: UInt32($0))) }
            case 0xCB: return bigEndian(8).flatMap { Int(exactly: Double(bitPattern: $0)) }
            default: return nil
            }
        }

        /// The next string; one of `candidates` when it has the same bytes (no new string then).
        mutating func string(reusing candidates: [String] = []) -> String? {
            guard let tag = byte() else { return nil }
            let count: Int
            switch tag {
            case 0xA0...0xBF: count = Int(tag & 0x1F)
            case 0xD9: guard let n = bigEndian(1) else { return nil }; count = Int(n)
            case 0xDA: guard let n = bigEndian(2) else { return nil }; count = Int(n)
            case 0xDB: guard let n = bigEndian(4) else { return nil }; count = Int(n)
            default: return nil
            }
            guard count <= bytes.count - offset else { return nil }
            defer { offset += count }
            let text = bytes[offset ..< offset + count]
            if let known = candidates.first(where: { $0.utf8.elementsEqual(text) }) { return known }
            return String(decoding: text, as: UTF8.self)
        }
    }
}
