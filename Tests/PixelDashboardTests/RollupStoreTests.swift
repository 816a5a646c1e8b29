@testable import PixelDashboard
import RespBridge
import Testing

@Suite struct RollupStoreTests {
    @Test("fields that Swift's String equality takes as one (NFC and NFD café) are added, not overwritten")
    func canonicallyEqualFieldsAddUp() throws {
        let nfc = Array("caf\u{E9}".utf8), nfd = Array("cafe\u{301}".utf8)
        #expect(nfc != nfd)  // two fields in Redis
        let reply = RESPValue.array([.bulk(nfc), .bulk(Array("10".utf8)), .bulk(nfd), .bulk(Array("3".utf8)), .bulk(Array("x".utf8)), .bulk(Array("1".utf8))])
        #expect(try RollupStore.hash(reply, operation: "HGETALL") == ["caf\u{E9}": 13, "x": 1])
    }
}
