import PixelEvents
import Testing

@Suite("Query string parsing")
struct QueryStringTests {
    @Test(
        "percent-decoding, plus, empty and bare segments",
        arguments: [
            ("", [] as [QueryArg]),
            ("&", []),
            ("a", qargs(["a": ""])),
            ("a=", qargs(["a": ""])),
            ("=b", qargs(["": "b"])),
            ("a=1&&b=2&", qargs(["a": "1", "b": "2"])),
            ("a=b=c", qargs(["a": "b=c"])),
            ("a+b=c+d++", qargs(["a b": "c d  "])),
            ("%2B=%2b", qargs(["+": "+"])),
            ("p=%2F%2f", qargs(["p": "//"])),
            ("a=%zz", qargs(["a": "%zz"])),
            ("a=%4", qargs(["a": "%4"])),
            ("a=%", qargs(["a": "%"])),
            ("a=%%41", qargs(["a": "%A"])),
            ("a=%4g%41", qargs(["a": "%4gA"])),
            ("a=%00", qargs(["a": "\u{0}"])),
            ("a=%26b&c=%3D", qargs(["a": "&b", "c": "="])),
            ("a=1;b=2", qargs(["a": "1;b=2"])),
        ]
    )
    func decoding(input: String, expected: [QueryArg]) {
        #expect(QueryString.parse(input) == expected)
        #expect(QueryString.parse(Array(input.utf8)) == expected)
    }

    @Test(
        "percent-encoded UTF-8 becomes characters, invalid UTF-8 becomes U+FFFD",
        arguments: [
            ("a=%C3%A9", "é"),
            ("a=%c3%a9", "é"),
            ("a=%E2%9C%93", "✓"),
            ("a=%F0%9F%98%80", "😀"),
            ("a=%E6%97%A5%E6%9C%AC", "日本"),
            ("a=caf%C3%A9+cr%C3%A8me", "café crème"),
            ("a=%FF", "\u{FFFD}"),
            ("a=%C3", "\u{FFFD}"),
            ("a=%C3x", "\u{FFFD}x"),
            ("a=%ED%A0%80", "\u{FFFD}\u{FFFD}\u{FFFD}"),
        ]
    )
    func unicode(input: String, expected: String) {
        #expect(QueryString.parse(input) == [QueryArg(name: "a", value: expected)])
    }

    @Test("repeated names are kept in order")
    func repeatedNames() {
        #expect(
            QueryString.parse("k=1&e=x&k=2&k=&k")
                == qargs(["k": "1", "e": "x", "k": "2", "k": "", "k": ""])
        )
    }

    @Test("decodeComponent")
    func component() {
        #expect(QueryString.decodeComponent("a+b%20c%zz".utf8) == "a b c%zz")
        #expect(QueryString.decodeComponent([UInt8]()) == "")
    }
}
