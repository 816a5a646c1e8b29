// Small helpers for reading contiguous bytes without copies.

extension UnsafeBufferPointer<UInt8> {
    /// A view of `self[range]` with indices rebased to zero.
    @inline(__always)
    func slice(_ range: Range<Int>) -> UnsafeBufferPointer<UInt8> {
        UnsafeBufferPointer(rebasing: self[range])
    }

    /// The index of the first `byte` in `start..<end`, or `end`.
    @inline(__always)
    func firstIndex(of byte: UInt8, from start: Int, to end: Int) -> Int {
        var index = start
        while index < end && self[index] != byte {
            index += 1
        }
        return index
    }
}

/// Runs `body` over the contiguous bytes of `bytes`, copying only when the collection is not contiguous.
@inline(__always)
func withContiguousBytes<Result>(
    _ bytes: some Collection<UInt8>,
    _ body: (UnsafeBufferPointer<UInt8>) throws(PixelDecodeError) -> Result
) throws(PixelDecodeError) -> Result {
    // withContiguousStorageIfAvailable is not typed-throws, so carry the error out by hand.
    var failure: PixelDecodeError?
    let fast: Result?? = bytes.withContiguousStorageIfAvailable { buffer -> Result? in
        do throws(PixelDecodeError) {
            return try body(buffer)
        } catch {
            failure = error
            return nil
        }
    }
    if let failure {
        throw failure
    }
    if let fast, let value = fast {
        return value
    }
    let copy = Array(bytes)
    return try copy.withUnsafeBufferPointer { buffer throws(PixelDecodeError) in try body(buffer) }
}
