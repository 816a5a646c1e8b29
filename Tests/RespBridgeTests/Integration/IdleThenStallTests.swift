import Foundation
import Logging
import PixeldConcurrency
import PixeldTestSupport
import RespBridge
import Testing

/// A stall that begins while the writer's connection has been idle for over a second (a quiet
/// site): the first failure used to be taken for a connection Redis closed for idleness — not
/// counted, not shown — so the commit under way was spooled behind the spilled batches after one
/// timeout, and `/healthz`'s state read `ok` with no commit waiting for a whole command timeout.
@Suite(.serialized, .enabled(if: TestEnvironment.canRun("redis-server")))
struct IdleThenStallTests {
    private let logger = Logger(label: "idle-then-stall")

    private func push(_ range: Range<Int>, into queue: PushQueue) {
        var batch = PushBatch()
        for index in range { batch.append(key: Array("pixel".utf8), value: Array("\(index)".utf8), acceptedAt: MonotonicClock.nanoseconds()) }
        queue.enqueue(batch)
    }

    /// Redis closed the idle connection (`CLIENT KILL`), then stalls for less than two command
    /// timeouts while spills fill the spool: the commit under way still reaches Redis first.
    @Test func aStallOfOneTimeoutAfterAnIdleCloseKeepsTheOrder() async throws {
        let server = try RedisServer.start()
        let directory = try TempDirectory(prefix: "pixeld-idle-stall")
        let spool = try Spool(directory: directory.path, maxBytes: 64 << 20, sync: .never)
        var configuration = try RedisConfiguration(url: server.url)
        configuration.commandTimeoutMilliseconds = 2000
        let queue = PushQueue(capacityBytes: 8192)
        let writer = LPushWriter(queue: queue, redis: configuration, spool: spool, logger: logger)
        writer.start()
        push(0..<10, into: queue)
        #expect(Poll.until(timeout: 5, interval: 0.01) { writer.statistics.pushed == 10 })
        usleep(1_300_000)  // idle for over a second
        _ = try server.command(["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"])
        _ = try server.command(["CLIENT", "PAUSE", "3000", "ALL"])
        push(10..<20, into: queue)
        usleep(50_000)
        push(20..<120, into: queue)  // more than half the queue: spilled while the commit waits
        #expect(Poll.until(timeout: 15, interval: 0.05) { writer.statistics.pushed == 120 })
        await writer.shutdown(timeoutNanoseconds: 5_000_000_000)
        let values = try server.lrange("pixel").reversed().map { $0 }
        #expect(values == (0..<120).map(String.init), "not in order (\(values.count) of 120): \(values)")
        withExtendedLifetime(directory) {}
    }

    /// After a second of idleness, a stall: the commit is `slow` from a second in until its timeout
    /// makes Redis `failing` — never back to a plain `ok` without a commit waiting in between.
    @Test func aStallAfterIdlenessNeverReadsOkUntilItFails() async throws {
        let server = try RedisServer.start()
        var configuration = try RedisConfiguration(url: server.url)
        configuration.commandTimeoutMilliseconds = 2000
        let queue = PushQueue(capacityBytes: 1 << 20)
        let statistics = WriterStatistics()
        let writer = LPushWriter(queue: queue, redis: configuration, statistics: statistics, logger: logger)
        writer.start()
        push(0..<1, into: queue)
        #expect(Poll.until(timeout: 5, interval: 0.01) { statistics.pushed == 1 })
        usleep(1_300_000)
        _ = try server.command(["CLIENT", "PAUSE", "5000", "ALL"])
        let start = MonotonicClock.nanoseconds()
        push(1..<2, into: queue)
        var states: [String] = []
        while MonotonicClock.nanoseconds() - start < 4_500_000_000 {
            let state: String
            switch statistics.redis {
            case .failing: state = "failing"
            case .ok, .unknown: state = (statistics.commitWaitingNanoseconds ?? 0) >= 1_000_000_000 ? "slow" : statistics.commitWaitingNanoseconds == nil ? "ok" : "waiting"
            }
            if states.last != state { states.append(state) }
            if state == "failing" { break }
            usleep(20_000)
        }
        // (`ok` until the writer takes the message, at most its linger later.)
        #expect(Array(states.drop { $0 == "ok" }) == ["waiting", "slow", "failing"], "states during the stall: \(states)")
        await writer.shutdown(timeoutNanoseconds: 10_000_000_000)
        #expect(statistics.pushed == 2)
    }
}
