@testable import PixelAnalytics
import Testing

/// The rollup's RESP writer (`RESPArguments`), byte for byte: numbers at the edges of `Int`, an
/// empty argument, multi-byte text, and the array header counting every argument.
@Suite struct RollupArgumentsTests {
    @Test func encodesEachArgumentAsABulkString() {
        var sink = RESPArguments(capacity: 0)
        sink.append("EVALSHA".utf8)
        for value in [0, -1, 7, Int.min, Int.max] { sink.append(number: value) }
        sink.append([UInt8]())
        sink.append("növ".utf8)
        let expected =
            "*8\r\n$7\r\nEVALSHA\r\n" + "$1\r\n0\r\n" + "$2\r\n-1\r\n" + "$1\r\n7\r\n"
            + "$20\r\n-9223372036854775808\r\n" + "$19\r\n9223372036854775807\r\n" + "$0\r\n\r\n" + "$4\r\nnöv\r\n"
        #expect(sink.command() == Array(expected.utf8))
        #expect(sink.count == 8)
    }

    @Test func arraysGetTheSameArguments() {
        var arrays = ArgumentArrays()
        for value in [0, -1, Int.min] { arrays.append(number: value) }
        arrays.append("x".utf8)
        #expect(arrays.arguments == [Array("0".utf8), Array("-1".utf8), Array("-9223372036854775808".utf8), Array("x".utf8)])
    }
}
