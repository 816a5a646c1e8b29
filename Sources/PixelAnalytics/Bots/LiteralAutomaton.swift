/// An Aho–Corasick automaton over ASCII-case-folded byte strings: one pass over a text reports
/// every pattern that occurs in it, whatever the number of patterns.
///
/// Built once (a few thousand literals, a few milliseconds); the transition table is dense over a
/// compressed alphabet (bytes that occur in no pattern share one class), so a scan is one table
/// load per input byte with no allocation.
struct LiteralAutomaton: Sendable {
    /// Byte → alphabet class.
    private let classes: [UInt8]
    private let classCount: Int
    /// `state * classCount + class` → next state.
    private let transitions: [UInt32]
    /// Per state, the range in ``outputs`` of the patterns that end there (through failure links too).
    private let outputStart: [UInt32]
    private let outputs: [UInt32]

    /// Builds the automaton.
    /// - Parameter patterns: Non-empty byte strings; matched ASCII-case-insensitively. The index of
    ///   each is what ``forEachMatch(in:_:)`` reports.
    init(_ patterns: [[UInt8]]) {
        // Alphabet.
        var classes = [UInt8](repeating: 0, count: 256)
        var next: Int = 1
        for pattern in patterns {
            for raw in pattern {
                let byte = ASCIIBytes.lower(raw)
                if classes[Int(byte)] == 0 {
                    precondition(next < 255, "too many distinct bytes in bot literals")
                    classes[Int(byte)] = UInt8(next)
                    next += 1
                }
            }
        }
        for upper in UInt8(ascii: "A")...UInt8(ascii: "Z") {
            classes[Int(upper)] = classes[Int(upper | 0x20)]
        }
        let classCount = next
        // Trie.
        var trie: [[Int32]] = [[Int32](repeating: -1, count: classCount)]
        var ends: [[UInt32]] = [[]]
        for (number, pattern) in patterns.enumerated() where !pattern.isEmpty {
            var state = 0
            for raw in pattern {
                let symbol = Int(classes[Int(ASCIIBytes.lower(raw))])
                if trie[state][symbol] < 0 {
                    trie[state][symbol] = Int32(trie.count)
                    trie.append([Int32](repeating: -1, count: classCount))
                    ends.append([])
                }
                state = Int(trie[state][symbol])
            }
            ends[state].append(UInt32(number))
        }
        // Failure links, breadth first, resolving every missing transition.
        let stateCount = trie.count
        var fail = [Int](repeating: 0, count: stateCount)
        var table = [UInt32](repeating: 0, count: stateCount * classCount)
        var queue: [Int] = []
        queue.reserveCapacity(stateCount)
        for symbol in 0..<classCount {
            let child = Int(trie[0][symbol])
            if child > 0 {
                table[symbol] = UInt32(child)
                queue.append(child)
            }
        }
        var head = 0
        while head < queue.count {
            let state = queue[head]
            head += 1
            ends[state] += ends[fail[state]]
            for symbol in 0..<classCount {
                let child = Int(trie[state][symbol])
                if child > 0 {
                    fail[child] = Int(table[fail[state] * classCount + symbol])
                    table[state * classCount + symbol] = UInt32(child)
                    queue.append(child)
                } else {
                    table[state * classCount + symbol] = table[fail[state] * classCount + symbol]
                }
            }
        }
        // The class of bytes in no pattern (0) must always lead back to the root's transition.
        var outputStart: [UInt32] = []
        outputStart.reserveCapacity(stateCount + 1)
        var outputs: [UInt32] = []
        for state in 0..<stateCount {
            outputStart.append(UInt32(outputs.count))
            outputs += ends[state]
        }
        outputStart.append(UInt32(outputs.count))
        self.classes = classes
        self.classCount = classCount
        self.transitions = table
        self.outputStart = outputStart
        self.outputs = outputs
    }

    /// Calls `body` with the index of every pattern occurring in `text` (possibly several times for
    /// one pattern); `body` returns `false` to stop the scan.
    func forEachMatch(in text: UnsafeBufferPointer<UInt8>, _ body: (Int) -> Bool) {
        classes.withUnsafeBufferPointer { classes in
            transitions.withUnsafeBufferPointer { table in
                outputStart.withUnsafeBufferPointer { starts in
                    var state = 0
                    for byte in text {
                        state = Int(table[state &* classCount &+ Int(classes[Int(byte)])])
                        let first = Int(starts[state])
                        let last = Int(starts[state + 1])
                        if first != last {
                            for position in first..<last where !body(Int(outputs[position])) { return }
                        }
                    }
                }
            }
        }
    }
}
