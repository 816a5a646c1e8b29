/// A compiled regular expression from the subset that user-agent lists use, matched over bytes
/// without Foundation: literals and escapes (`\/`, `\.`…), `.`, `\d \D \s \S \w \W`, bracket
/// classes with ranges and negation, groups `( | )` (optionally `?`), alternation, `^`, `$`, and
/// the quantifiers `?`, `*`, `+` on single characters or classes.
///
/// Groups are expanded into plain alternatives at compile time, so matching is a small
/// backtracking loop over byte sets. Each alternative also yields its longest run of required
/// literal bytes (``Alternative/literal``), which ``BotDetector`` feeds to a multi-pattern
/// prefilter so that only patterns whose literal occurs in a user agent are ever run.
struct BotPattern: Sendable {
    /// The pattern text as written.
    let source: String
    /// The expanded alternatives; the pattern matches when any of them does.
    let alternatives: [Alternative]

    /// A set of bytes as a 256-bit mask.
    struct ByteSet: Sendable, Equatable {
        var words: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)

        static let all: ByteSet = {
            var set = ByteSet()
            set.invert()
            return set
        }()

        @inline(__always)
        func contains(_ byte: UInt8) -> Bool {
            let bit = UInt64(1) << UInt64(byte & 63)
            switch byte >> 6 {
            case 0: return words.0 & bit != 0
            case 1: return words.1 & bit != 0
            case 2: return words.2 & bit != 0
            default: return words.3 & bit != 0
            }
        }

        mutating func insert(_ byte: UInt8) {
            let bit = UInt64(1) << UInt64(byte & 63)
            switch byte >> 6 {
            case 0: words.0 |= bit
            case 1: words.1 |= bit
            case 2: words.2 |= bit
            default: words.3 |= bit
            }
        }

        mutating func insert(_ range: ClosedRange<UInt8>) {
            for byte in range { insert(byte) }
        }

        mutating func formUnion(_ other: ByteSet) {
            words.0 |= other.words.0
            words.1 |= other.words.1
            words.2 |= other.words.2
            words.3 |= other.words.3
        }

        mutating func invert() {
            words = (~words.0, ~words.1, ~words.2, ~words.3)
        }

        var count: Int {
            words.0.nonzeroBitCount + words.1.nonzeroBitCount + words.2.nonzeroBitCount + words.3.nonzeroBitCount
        }

        static func == (lhs: ByteSet, rhs: ByteSet) -> Bool {
            lhs.words.0 == rhs.words.0 && lhs.words.1 == rhs.words.1 && lhs.words.2 == rhs.words.2
                && lhs.words.3 == rhs.words.3
        }

        /// The one byte, or the lowercase letter of a `[xX]` pair; `nil` for anything else.
        var caselessLiteral: UInt8? {
            switch count {
            case 1:
                for byte in 0...255 where contains(UInt8(byte)) { return ASCIIBytes.lower(UInt8(byte)) }
                return nil
            case 2:
                for byte in UInt8(ascii: "a")...UInt8(ascii: "z")
                where contains(byte) && contains(byte - 32) {
                    return byte
                }
                return nil
            default:
                return nil
            }
        }
    }

    /// One step of an alternative.
    enum Atom: Sendable, Equatable {
        /// One byte from the set, repeated `min`…`max` times (`max == Int.max`: unbounded).
        case bytes(ByteSet, min: Int, max: Int)
        /// `^`: only at offset 0.
        case start
        /// `$`: only at the end.
        case end
    }

    /// A sequence of atoms without alternation.
    struct Alternative: Sendable {
        var atoms: [Atom]
        /// The longest run of required literal bytes, lowercased (may be empty).
        var literal: [UInt8]

        /// Whether the alternative matches somewhere in `text`.
        func matches(_ text: UnsafeBufferPointer<UInt8>) -> Bool {
            if case .start = atoms.first {
                return match(atom: 1, at: 0, in: text)
            }
            for start in 0...text.count where match(atom: 0, at: start, in: text) {
                return true
            }
            return false
        }

        private func match(atom index: Int, at position: Int, in text: UnsafeBufferPointer<UInt8>) -> Bool {
            guard index < atoms.count else { return true }
            switch atoms[index] {
            case .start:
                return position == 0 && match(atom: index + 1, at: position, in: text)
            case .end:
                return position == text.count && match(atom: index + 1, at: position, in: text)
            case .bytes(let set, let min, let max):
                var count = 0
                while count < max && position + count < text.count && set.contains(text[position + count]) {
                    count += 1
                }
                guard count >= min else { return false }
                if min == max { return match(atom: index + 1, at: position + count, in: text) }
                // Greedy with backtracking.
                while count >= min {
                    if match(atom: index + 1, at: position + count, in: text) { return true }
                    count -= 1
                }
                return false
            }
        }
    }

    /// A pattern outside the supported subset.
    struct CompileError: Error, CustomStringConvertible {
        var pattern: String
        var message: String
        var description: String { "bot pattern '\(pattern)': \(message)" }
    }

    /// Compiles `source`.
    /// - Throws: ``CompileError`` for syntax outside the subset.
    init(_ source: String) throws(CompileError) {
        var parser = Parser(bytes: Array(source.utf8), source: source)
        let sequences = try parser.parseAlternation()
        guard parser.index == parser.bytes.count else {
            throw CompileError(pattern: source, message: "unbalanced ')'")
        }
        self.source = source
        self.alternatives = sequences.map { atoms in Alternative(atoms: atoms, literal: Self.longestLiteral(atoms)) }
    }

    /// Whether any alternative matches somewhere in `text`.
    func matches(_ text: UnsafeBufferPointer<UInt8>) -> Bool {
        alternatives.contains { $0.matches(text) }
    }

    static func longestLiteral(_ atoms: [Atom]) -> [UInt8] {
        var best: [UInt8] = []
        var run: [UInt8] = []
        for atom in atoms {
            if case .bytes(let set, 1, 1) = atom, let byte = set.caselessLiteral {
                run.append(byte)
                if run.count > best.count { best = run }
            } else {
                run.removeAll(keepingCapacity: true)
            }
        }
        return best
    }

    /// Recursive-descent parser producing expanded alternatives.
    private struct Parser {
        let bytes: [UInt8]
        let source: String
        var index = 0
        /// Guards against expansion blow-up (a pattern with many nested groups).
        static let maxAlternatives = 256

        func fail(_ message: String) -> CompileError {
            CompileError(pattern: source, message: message + " at offset \(index)")
        }

        mutating func parseAlternation() throws(CompileError) -> [[Atom]] {
            var result = try parseSequence()
            while index < bytes.count && bytes[index] == UInt8(ascii: "|") {
                index += 1
                result += try parseSequence()
                guard result.count <= Self.maxAlternatives else { throw fail("too many alternatives") }
            }
            return result
        }

        /// A sequence up to `|`, `)` or the end, as its expanded alternatives.
        mutating func parseSequence() throws(CompileError) -> [[Atom]] {
            var result: [[Atom]] = [[]]
            while index < bytes.count {
                let byte = bytes[index]
                if byte == UInt8(ascii: "|") || byte == UInt8(ascii: ")") { break }
                var piece: [[Atom]]
                var single: ByteSet?
                switch byte {
                case UInt8(ascii: "("):
                    index += 1
                    if index + 1 < bytes.count && bytes[index] == UInt8(ascii: "?") && bytes[index + 1] == UInt8(ascii: ":") {
                        index += 2
                    }
                    piece = try parseAlternation()
                    guard index < bytes.count && bytes[index] == UInt8(ascii: ")") else { throw fail("missing ')'") }
                    index += 1
                case UInt8(ascii: "^"):
                    index += 1
                    piece = [[.start]]
                case UInt8(ascii: "$"):
                    index += 1
                    piece = [[.end]]
                case UInt8(ascii: "["):
                    single = try parseClass()
                    piece = []
                case UInt8(ascii: "."):
                    index += 1
                    var set = ByteSet.all
                    set = set.removing(0x0A)
                    single = set
                    piece = []
                case UInt8(ascii: "\\"):
                    single = try parseEscape()
                    piece = []
                case UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "?"), UInt8(ascii: "{"):
                    throw fail("quantifier without an operand")
                default:
                    index += 1
                    var set = ByteSet()
                    set.insert(byte)
                    single = set
                    piece = []
                }
                // Quantifier.
                var minimum = 1
                var maximum = 1
                if index < bytes.count {
                    switch bytes[index] {
                    case UInt8(ascii: "?"): (minimum, maximum) = (0, 1)
                    case UInt8(ascii: "*"): (minimum, maximum) = (0, Int.max)
                    case UInt8(ascii: "+"): (minimum, maximum) = (1, Int.max)
                    case UInt8(ascii: "{"): throw fail("counted repeats are not supported")
                    default: break
                    }
                    if minimum != 1 || maximum != 1 {
                        index += 1
                        if index < bytes.count && (bytes[index] == UInt8(ascii: "?") || bytes[index] == UInt8(ascii: "+")) {
                            // Lazy or possessive: same set of matches for a yes/no answer.
                            index += 1
                        }
                    }
                }
                if let single {
                    piece = [[.bytes(single, min: minimum, max: maximum)]]
                } else if minimum == 0 && maximum == 1 {
                    piece.append([])
                } else if minimum != 1 || maximum != 1 {
                    throw fail("repeating a group is not supported")
                }
                var combined: [[Atom]] = []
                for prefix in result {
                    for suffix in piece { combined.append(prefix + suffix) }
                }
                guard combined.count <= Self.maxAlternatives else { throw fail("too many alternatives") }
                result = combined
            }
            return result
        }

        mutating func parseEscape() throws(CompileError) -> ByteSet {
            index += 1
            guard index < bytes.count else { throw fail("trailing '\\'") }
            let byte = bytes[index]
            index += 1
            var set = ByteSet()
            switch byte {
            case UInt8(ascii: "d"): set.insert(UInt8(ascii: "0")...UInt8(ascii: "9"))
            case UInt8(ascii: "D"):
                set.insert(UInt8(ascii: "0")...UInt8(ascii: "9"))
                set.invert()
            case UInt8(ascii: "s"): set = Self.space
            case UInt8(ascii: "S"):
                set = Self.space
                set.invert()
            case UInt8(ascii: "w"): set = Self.word
            case UInt8(ascii: "W"):
                set = Self.word
                set.invert()
            case UInt8(ascii: "t"): set.insert(0x09)
            case UInt8(ascii: "n"): set.insert(0x0A)
            case UInt8(ascii: "r"): set.insert(0x0D)
            case UInt8(ascii: "b"), UInt8(ascii: "B"), UInt8(ascii: "x"), UInt8(ascii: "u"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                throw fail("escape '\\\(Character(Unicode.Scalar(byte)))' is not supported")
            default:
                guard byte < 0x80, !(UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte),
                    !(UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                else { throw fail("unknown escape") }
                set.insert(byte)
            }
            return set
        }

        mutating func parseClass() throws(CompileError) -> ByteSet {
            index += 1
            var set = ByteSet()
            var negated = false
            if index < bytes.count && bytes[index] == UInt8(ascii: "^") {
                negated = true
                index += 1
            }
            var first = true
            while index < bytes.count && (bytes[index] != UInt8(ascii: "]") || first) {
                first = false
                var low: UInt8
                if bytes[index] == UInt8(ascii: "\\") {
                    let escaped = try parseEscape()
                    guard let only = escaped.single else {
                        set.formUnion(escaped)
                        continue
                    }
                    low = only
                } else {
                    low = bytes[index]
                    index += 1
                }
                if index + 1 < bytes.count && bytes[index] == UInt8(ascii: "-") && bytes[index + 1] != UInt8(ascii: "]") {
                    index += 1
                    var high: UInt8
                    if bytes[index] == UInt8(ascii: "\\") {
                        guard let only = try parseEscape().single else { throw fail("bad class range") }
                        high = only
                    } else {
                        high = bytes[index]
                        index += 1
                    }
                    guard low <= high else { throw fail("bad class range") }
                    set.insert(low...high)
                } else {
                    set.insert(low)
                }
            }
            guard index < bytes.count else { throw fail("missing ']'") }
            index += 1
            if negated { set.invert() }
            return set
        }

        static let space: ByteSet = {
            var set = ByteSet()
            for byte: UInt8 in [0x20, 0x09, 0x0A, 0x0B, 0x0C, 0x0D] { set.insert(byte) }
            return set
        }()

        static let word: ByteSet = {
            var set = ByteSet()
            set.insert(UInt8(ascii: "a")...UInt8(ascii: "z"))
            set.insert(UInt8(ascii: "A")...UInt8(ascii: "Z"))
            set.insert(UInt8(ascii: "0")...UInt8(ascii: "9"))
            set.insert(UInt8(ascii: "_"))
            return set
        }()
    }
}

extension BotPattern.ByteSet {
    /// The only member of a one-byte set.
    var single: UInt8? {
        guard count == 1 else { return nil }
        for byte in 0...255 where contains(UInt8(byte)) { return UInt8(byte) }
        return nil
    }

    func removing(_ byte: UInt8) -> BotPattern.ByteSet {
        var copy = BotPattern.ByteSet()
        for value in 0...255 where value != Int(byte) && contains(UInt8(value)) { copy.insert(UInt8(value)) }
        return copy
    }
}
