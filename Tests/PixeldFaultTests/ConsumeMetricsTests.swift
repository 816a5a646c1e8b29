import Foundation
import PixeldTestSupport
import Testing

/// `pixeld consume --metrics`: what the consumer did, in Prometheus text, and a health check that
/// follows Redis.
@Suite(.serialized, .enabled(if: TestEnvironment.canRun("redis-server")))
struct ConsumeMetricsTests {
    @Test func consumeServesItsCountersAndAHealthCheckThatFollowsRedis() throws {
        let redis = try RedisServer.start()
        try redis.prefill("pixel", (1...50).map { PixelMessage.value(seq: $0) } + ["not an event"])
        let port = try PortAllocator.freeTCPPort()
        let consume = try PixeldProcess.start(["consume", "pixel", "--redis", redis.url, "--metrics", "127.0.0.1:\(port)"])
        defer { consume.process.stop(timeout: 5) }
        let drained = try Poll.until(timeout: 20, interval: 0.02) { try redis.llen("pixel") == 0 && redis.llen("pixel:dead") == 1 }
        #expect(drained, "\(consume.process.tail)")
        var metrics = ""
        let counted = Poll.until(timeout: 5, interval: 0.05) {
            metrics = (try? httpGet(port: port, path: "/metrics")) ?? ""
            return metrics.contains("pixeld_consume_events_total 51")
        }
        #expect(counted, "\(metrics)")
        #expect(metrics.contains("pixeld_consume_dead_lettered_total 1"), "\(metrics)")
        #expect(try httpGet(port: port, path: "/healthz") == "ok\n")
        redis.stop()
        let unhealthy = Poll.until(timeout: 10, interval: 0.1) { (try? httpGet(port: port, path: "/healthz")) == "redis not answering\n" }
        #expect(unhealthy, "/healthz still ok with Redis stopped")
        try redis.restart()
        #expect(Poll.until(timeout: 10, interval: 0.1) { (try? httpGet(port: port, path: "/healthz")) == "ok\n" }, "/healthz not ok again")
        consume.terminate()
        #expect(try consume.waitForExit(timeout: 10) == 0, "\(consume.process.tail)")
    }

    /// A consumer that cannot write its output (here /dev/full: every write fails with ENOSPC) keeps
    /// retrying its batch: counted in pixeld_consume_handler_failures_total, and /healthz says so
    /// instead of "ok" while Redis answers.
    @Test func aConsumerThatCannotHandleItsBatchIsUnhealthy() throws {
        let redis = try RedisServer.start()
        try redis.prefill("pixel", (1...20).map { PixelMessage.value(seq: $0) })
        let port = try PortAllocator.freeTCPPort()
        let consume = try PixeldProcess.start([
            "consume", "pixel", "--redis", redis.url, "--metrics", "127.0.0.1:\(port)", "--output", "/dev/full", "--consumer-id", "full",
        ])
        defer { consume.process.stop(timeout: 5) }
        var health = ""
        let unhealthy = Poll.until(timeout: 20, interval: 0.05) {
            health = (try? httpGet(port: port, path: "/healthz")) ?? ""
            return health == "batches failing (see the log), none acked since\n"
        }
        #expect(unhealthy, "/healthz: \(health)\n\(consume.process.tail)")
        var metrics = ""
        let counted = Poll.until(timeout: 10, interval: 0.05) {
            metrics = (try? httpGet(port: port, path: "/metrics")) ?? ""
            let line = metrics.split(separator: "\n").first { $0.hasPrefix("pixeld_consume_handler_failures_total ") }
            return (line.flatMap { Int($0.split(separator: " ").last ?? "") } ?? 0) >= 2
        }
        #expect(counted, "\(metrics)")
        #expect(try redis.llen("pixel") + redis.llen("pixel:processing:full") == 20)
    }
}
