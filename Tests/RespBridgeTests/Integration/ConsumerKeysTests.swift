import Logging
import PixeldTestSupport
import RespBridge
import Testing

/// ``ConsumerKeys``: the names of the keys a consumer keeps beside its list, as README, DESIGN.md and
/// ingest's key-space check (`ProgramPolicy`) spell them; and ``KeyScan``, the one `SCAN` walk.
@Suite(.serialized)
struct ConsumerKeysTests {
    @Test func theKeysOfAConsumerOfAList() {
        let keys = ConsumerKeys(list: "pixel", consumerID: "c1")
        #expect(keys.processingList == "pixel:processing:c1")
        #expect(keys.heartbeat == "pixel:consumer:c1")
        #expect(keys.deadList == "pixel:dead")
        #expect(keys.consumers == "pixeld:consumers:pixel")
        #expect(keys.outputLength == "pixel:output:c1")
        #expect(keys.archiveLengths == "pixel:archive:c1")
        #expect(keys.processingList(of: "c2") == "pixel:processing:c2" && keys.heartbeat(of: "c2") == "pixel:consumer:c2")
        #expect(keys.processingPrefix == "pixel:processing:")
    }

    /// A walk of 2,500 matching keys among 3,000 takes several calls (1,000 keys each at most) and
    /// finds each of them, and nothing else.
    @Test(.enabled(if: TestEnvironment.canRun("redis-server")))
    func aScanFindsEveryMatchingKeyAcrossCalls() throws {
        let server = try RedisServer.start()
        for start in stride(from: 0, to: 3_000, by: 500) {
            let keys = (start..<start + 500).flatMap { [$0 < 2_500 ? "in:\($0)" : "out:\($0)", "x"] }
            _ = try server.command(["MSET"] + keys)
        }
        let connection = RedisConnection(configuration: try RedisConfiguration(url: server.url), logger: Logger(label: "test"))
        let found = try connection.scanKeys(matching: "in:*").map { String(decoding: $0, as: UTF8.self) }
        #expect(Set(found) == Set((0..<2_500).map { "in:\($0)" }))
        #expect(try server.calls(of: "scan") >= 3)
    }
}
