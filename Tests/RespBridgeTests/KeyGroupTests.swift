@testable import RespBridge
import Testing

/// ``KeyGroup/group(_:into:)``: one group per distinct key, in the order of each key's first entry,
/// each with its entries in arrival order — for a few keys (the linear scan) and for many (past
/// ``KeyGroup/linearScanLimit`` it finds groups through a dictionary instead).
struct KeyGroupTests {
    /// One entry per key, valued by its index.
    private func batch(_ keys: [String]) -> PushBatch {
        var batch = PushBatch()
        for (index, key) in keys.enumerated() { batch.append(key: Array(key.utf8), value: Array("\(index)".utf8), acceptedAt: 0) }
        return batch
    }

    /// Each group's key and the indices of its entries.
    private func described(_ groups: [KeyGroup], of batch: PushBatch) -> [Group] {
        groups.map { group in
            Group(
                key: String(decoding: batch.bytes[group.keyStart..<group.keyStart + group.keyLength], as: UTF8.self),
                entries: group.entryIndices
            )
        }
    }

    /// What the grouping must give, worked out the plain way.
    private func expected(_ keys: [String]) -> [Group] {
        var groups: [Group] = []
        var position: [String: Int] = [:]
        for (index, key) in keys.enumerated() {
            if let at = position[key] {
                groups[at].entries.append(index)
            } else {
                position[key] = groups.count
                groups.append(Group(key: key, entries: [index]))
            }
        }
        return groups
    }

    private struct Group: Equatable, CustomStringConvertible {
        var key: String
        var entries: [Int]
        var description: String { "\(key)\(entries)" }
    }

    @Test func aFewKeysGroupInTheOrderOfTheirFirstEntry() {
        let keys = ["b", "a", "b", "c", "a", "b"]
        var groups: [KeyGroup] = []
        KeyGroup.group(batch(keys), into: &groups)
        #expect(described(groups, of: batch(keys)) == [Group(key: "b", entries: [0, 2, 5]), Group(key: "a", entries: [1, 4]), Group(key: "c", entries: [3])])
    }

    /// Distinct keys up to and past the linear scan's limit, repeated interleaved (keys that are
    /// prefixes of one another, and of equal length, among them), then a smaller batch into the same
    /// storage: exactly its own groups.
    @Test(arguments: [KeyGroup.linearScanLimit, KeyGroup.linearScanLimit + 1, 100, 26_000])
    func manyDistinctKeysGroupExactlyAndInOrder(distinct: Int) {
        // Each key first in a scrambled order, then 3 more entries per key, interleaved differently.
        var keys: [String] = []
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next(_ bound: Int) -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int((state >> 33) % UInt64(bound))
        }
        let firsts = (0..<distinct).map { ($0 * 7919) % distinct }
        for (index, first) in firsts.enumerated() {
            keys.append("k\(first)")
            // Now and then a repeat of a key seen already, among the first appearances.
            if index % 3 == 2 { keys.append("k\(firsts[next(index + 1)])") }
        }
        for _ in 0..<(3 * distinct) { keys.append("k\(next(distinct))") }
        let big = batch(keys)
        var groups: [KeyGroup] = []
        KeyGroup.group(big, into: &groups)
        let want = expected(keys)
        #expect(want.count == distinct)
        let got = described(groups, of: big)
        let firstDifference = zip(got, want).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(got.count, want.count)
        let same = got == want
        #expect(same, "\(got.count) groups for \(want.count); first difference at \(firstDifference): \(got.dropFirst(firstDifference).first.map(String.init(describing:)) ?? "-") for \(want.dropFirst(firstDifference).first.map(String.init(describing:)) ?? "-")")

        let smallKeys = ["k1", "k10", "k1", "x", "k10"]
        let small = batch(smallKeys)
        KeyGroup.group(small, into: &groups)
        #expect(described(groups, of: small) == expected(smallKeys))
    }
}
