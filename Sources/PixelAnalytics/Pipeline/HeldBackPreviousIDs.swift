/// The previous day's visitor ids of a batch's archive lines, held back until its visits are resolved.
///
/// In the half hour after midnight (UTC) a hit also carries the id its visitor had under the previous
/// day's key (``EnrichedHit/previousVisitorID``), so that a visit in progress at midnight goes on
/// under the new id. Written into every such line — the archive is kept for months — that id would
/// link the two days of every visitor seen in that half hour, which daily ids exist to prevent. So the
/// consumer renders the lines without it (``appendLine(_:visitHit:to:buffer:)``), and once
/// ``RollupBatch/encodedCommand(states:)`` has said which hits belong to a visit that began the day
/// before, ``insert(continued:into:live:)`` adds it to those lines only, as their last member
/// `pvid`: what `pixeld replay` needs to continue the same visits (whichever of their hits it reads
/// first: it reads them in time order, the consumer in arrival order), and nothing more.
public struct HeldBackPreviousIDs: Sendable {
    /// One held-back id: the hit (numbered as ``RollupBatch/add(_:archivedOn:)`` numbers them) and where its
    /// line's closing `}` is.
    private struct Held: Sendable {
        var visitHit: Int
        var buffer: Int
        var offset: Int
        var id: String
    }

    private var held: [Held] = []

    /// Nothing held back.
    public init() {}

    /// Whether no id is held back.
    public var isEmpty: Bool { held.isEmpty }

    /// Appends `outcome`'s archive line (``ArchiveRecord/appendLine(_:to:previousVisitorID:)``) to
    /// `buffers[buffer]`, holding back its previous day's id when it has one.
    /// - Parameters:
    ///   - outcome: the hit.
    ///   - visitHit: what ``RollupBatch/add(_:archivedOn:)`` returned for it.
    ///   - buffers: the batch's line buffers.
    ///   - buffer: the index of the buffer the line goes to.
    public mutating func appendLine(_ outcome: HitOutcome, visitHit: Int?, to buffers: inout [[UInt8]], buffer: Int) {
        guard let visitHit, case .accepted(let hit) = outcome, let id = hit.previousVisitorID else {
            ArchiveRecord.appendLine(outcome, to: &buffers[buffer])
            return
        }
        ArchiveRecord.appendLine(outcome, to: &buffers[buffer], previousVisitorID: false)
        held.append(Held(visitHit: visitHit, buffer: buffer, offset: buffers[buffer].count - 2, id: id))  // before "}\n"
    }

    /// Adds `"pvid"` to the lines of the hits in `continued`, and moves the line locations of `live`
    /// that point behind an insertion.
    /// - Parameters:
    ///   - continued: visit hits, ascending, as ``RollupBatch/encodedCommand(states:)`` returns them.
    ///   - buffers: the buffers ``appendLine(_:visitHit:to:buffer:)`` wrote into.
    ///   - live: the batch's live update, whose line locations point into `buffers`.
    public func insert(continued: [Int], into buffers: inout [[UInt8]], live: inout LiveUpdate) {
        guard !held.isEmpty, !continued.isEmpty else { return }
        let wanted = Set(continued)
        let inserts = held.filter { wanted.contains($0.visitHit) }
        for buffer in Set(inserts.map(\.buffer)) {
            let here = inserts.filter { $0.buffer == buffer }  // ascending offsets: appended in order
            let old = buffers[buffer]
            var new: [UInt8] = []
            new.reserveCapacity(old.count + here.count * 48)
            var from = 0
            // Per insertion, its offset in `old` and the bytes inserted up to and including it.
            var shifts: [(offset: Int, total: Int)] = []
            for entry in here {
                new += old[from..<entry.offset]
                let before = new.count
                var member = JSONText(capacity: 48)
                member.member("pvid", entry.id)
                new += member.bytes
                shifts.append((entry.offset, (shifts.last?.total ?? 0) + new.count - before))
                from = entry.offset
            }
            new += old[from...]
            buffers[buffer] = new
            // An offset moves by what was inserted before it (a line's own member is before its end).
            live.moveLines(in: buffer) { offset in
                var low = 0, high = shifts.count
                while low < high {
                    let middle = (low + high) / 2
                    if shifts[middle].offset < offset { low = middle + 1 } else { high = middle }
                }
                return offset + (low == 0 ? 0 : shifts[low - 1].total)
            }
        }
    }
}
