import Foundation
import PixeldTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The `--metrics` endpoint of a real `pixeld ingest` (consume serves the same code) against clients
/// that connect and send nothing: liveness probes must not queue behind them.
@Suite(.serialized, .enabled(if: TestEnvironment.canRun("redis-server")))
struct MetricsServerTests {
    /// A TCP connection to 127.0.0.1:`port` that sends nothing; its receive timeout is `seconds`.
    private func idleConnection(port: Int, seconds: Int) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue | SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw TestSupportError("socket failed: errno \(errno)") }
        var time = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
        guard connectToLoopback(fd, port: port) else {
            close(fd)
            throw TestSupportError("connect(127.0.0.1:\(port)) failed: errno \(errno)")
        }
        return fd
    }

    /// A real ingest (Redis up) with `count` idle connections to its metrics port, made at the
    /// returned time and accepted by the server by the time this returns.
    private func ingestWithIdleConnections(
        _ count: Int
    ) throws -> (redis: RedisServer, ingest: IngestUnderTest, idle: [Int32], connectedAt: Date) {
        let redis = try RedisServer.start()
        let ingest = try IngestUnderTest(redisURL: redis.url)
        let connectedAt = Date()
        var idle: [Int32] = []
        do {
            for _ in 0..<count { idle.append(try idleConnection(port: ingest.metricsPort, seconds: 6)) }
        } catch {
            idle.forEach { close($0) }
            throw error
        }
        usleep(100_000)  // the server has accepted them and waits for their requests
        return (redis, ingest, idle, connectedAt)
    }

    /// Five idle connections (one at a time, each held /healthz up for its 2 s deadline: 10.08 s).
    /// Now /healthz and /metrics answer at once beside them, and the server still closes each idle
    /// connection at its deadline (a read sees the end of the stream ~2 s after the connect).
    @Test func idleConnectionsDoNotHoldHealthzUp() throws {
        let (redis, ingest, idle, connectedAt) = try ingestWithIdleConnections(5)
        defer { idle.forEach { close($0) } }

        var waits: [String: Double] = [:]
        for path in ["/healthz", "/metrics", "/healthz"] {
            let started = Date()
            let body = try httpGet(port: ingest.metricsPort, path: path, timeout: 15)
            let waited = Date().timeIntervalSince(started)
            waits[path] = max(waits[path] ?? 0, waited)
            #expect(!body.isEmpty, "\(path): empty body")
            #expect(waited < 0.5, "\(path) took \(waited) s beside 5 idle connections")
        }

        // Each idle connection is closed by the server at its deadline: end of stream, not our timeout.
        var closedAfter: [Double] = []
        for fd in idle {
            var byte: UInt8 = 0
            let count = recv(fd, &byte, 1, 0)
            let error = errno
            closedAfter.append(Date().timeIntervalSince(connectedAt))
            #expect(count == 0 || (count < 0 && error == ECONNRESET), "an idle connection read \(count) (errno \(error)), not the end of the stream")
        }
        #expect(closedAfter.allSatisfy { $0 >= 1.5 && $0 < 3.5 }, "idle connections closed after \(closedAfter) s (deadline 2 s)")
        print("metrics beside 5 idle connections: slowest /healthz \(waits["/healthz"] ?? -1) s, /metrics \(waits["/metrics"] ?? -1) s; idle ones closed after \(closedAfter) s")
        #expect(try ingest.stop() == 0, "\(ingest.process.process.tail)")
        withExtendedLifetime(redis) {}
    }

    /// A request whose lines end in a bare `\n` (`printf 'GET /healthz HTTP/1.0\n\n' | nc …`) is
    /// answered at once; it used to wait out the 2 s deadline and be closed unanswered.
    @Test func bareLineFeedRequestsAreAnswered() throws {
        let redis = try RedisServer.start()
        let ingest = try IngestUnderTest(redisURL: redis.url)
        for path in ["/healthz", "/metrics"] {
            let started = Date()
            let body = try httpGet(port: ingest.metricsPort, path: path, timeout: 5, lineEnding: "\n")
            let waited = Date().timeIntervalSince(started)
            #expect(!body.isEmpty, "\(path): empty body")
            #expect(waited < 0.5, "\(path) with bare line feeds took \(waited) s")
        }
        #expect(try ingest.stop() == 0, "\(ingest.process.process.tail)")
        withExtendedLifetime(redis) {}
    }

    /// Past 32 open connections, each new one closes the oldest idle one: 40 idle clients leave
    /// /healthz answered at once, and the first 8 (plus the one the probe took) closed before their
    /// deadline.
    @Test func moreIdleConnectionsThanTheLimitCloseTheOldest() throws {
        let (redis, ingest, idle, connectedAt) = try ingestWithIdleConnections(40)
        defer { idle.forEach { close($0) } }
        let started = Date()
        let health = try httpGet(port: ingest.metricsPort, path: "/healthz", timeout: 15)
        let waited = Date().timeIntervalSince(started)
        #expect(health.contains("\"status\":\"ok\""), "\(health)")
        #expect(waited < 0.5, "/healthz took \(waited) s beside 40 idle connections")
        // The oldest 9 were closed to make room (8 for the other idle ones, 1 for the probe).
        for fd in idle.prefix(9) {
            var byte: UInt8 = 0
            #expect(recv(fd, &byte, 1, 0) <= 0)
        }
        let closedAfter = Date().timeIntervalSince(connectedAt)
        #expect(closedAfter < 1.5, "the oldest idle connections were closed only after \(closedAfter) s")
        #expect(try ingest.stop() == 0, "\(ingest.process.process.tail)")
        withExtendedLifetime(redis) {}
    }
}
