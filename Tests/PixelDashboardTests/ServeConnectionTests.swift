import Foundation
import PixeldTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `pixeld serve`'s connections, against the real binary and a real Redis.
@Suite(.enabled(if: TestEnvironment.canRun("redis-server", "curl")))
struct ServeConnectionTests {
    /// `--idle-timeout` (1 s here): a connection that sends nothing, one that sends half a header,
    /// one that trickles a header a byte at a time (the timeout bounds the whole header, not the
    /// pause between bytes) and one kept alive after its response are closed about a second later
    /// (without an idle timeout all four stayed open for as long as the client liked, each holding a
    /// descriptor); a live-feed stream, which is never idle, stays open.
    @Test func idleConnectionsAreClosed() throws {
        let redis = try RedisServer.start()
        let serve = try ServeProcess.start(redis: redis, extra: ["--idle-timeout", "1", "--site", "example.com"])
        defer { serve.process.kill() }
        let silent = try Self.connect(serve.port, sending: "")
        let halfHeader = try Self.connect(serve.port, sending: "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        let keptAlive = try Self.connect(serve.port, sending: "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        let live = try Self.connect(serve.port, sending: "GET /api/live?site=example.com HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        let trickling = try Self.connect(serve.port, sending: "G")
        defer { for fd in [silent, halfHeader, keptAlive, live, trickling] { close(fd) } }
        let started = ContinuousClock.now
        // A byte every 100 ms for up to 4 s (the header never ends); a failed send: closed.
        var trickleClosedAfter: Duration?
        for byte in Array("ET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ".utf8) + Array(repeating: UInt8(ascii: "a"), count: 40) {
            Thread.sleep(forTimeInterval: 0.1)
            var one = byte
            if send(trickling, &one, 1, Int32(MSG_NOSIGNAL)) != 1 || Self.read(trickling, untilEndWithin: 0.001).0 {
                trickleClosedAfter = ContinuousClock.now - started
                break
            }
        }
        #expect(trickleClosedAfter != nil, "trickling a header: still open after \(ContinuousClock.now - started)")
        for (name, fd) in [("silent", silent), ("half a header", halfHeader), ("kept alive", keptAlive)] {
            let (ended, received) = Self.read(fd, untilEndWithin: 4)
            #expect(ended, "\(name): still open \(ContinuousClock.now - started) after connecting")
            if fd == keptAlive { #expect(received.hasPrefix("HTTP/1.1 200"), "\(received)") }
        }
        let (ended, received) = Self.read(live, untilEndWithin: 0.5)
        #expect(!ended && received.contains(": connected"), "the live stream, \(ContinuousClock.now - started) in: \(received)")
    }

    /// `HEAD` is answered as `GET` without the body (uptime monitors check with it; it was a 404
    /// on every route). The live feed's `HEAD` leaves no stream slot taken: with one stream allowed
    /// per client, a stream opens after two `HEAD`s.
    @Test func headIsAnsweredLikeGet() throws {
        let redis = try RedisServer.start()
        let serve = try ServeProcess.start(redis: redis, extra: ["--site", "example.com", "--live-streams-per-client", "1"])
        defer { serve.process.kill() }
        for path in ["/healthz", "/", "/api/sites", "/api/stats?site=example.com", "/api/live?site=example.com", "/api/live?site=example.com"] {
            let head = try ChildProcess.run("curl", ["-s", "-I", "-o", "/dev/null", "-w", "%{http_code} %{size_download}", serve.url(path)], timeout: 10)
            #expect(head.stdout == "200 0", "HEAD \(path): \(head.stdout)")
        }
        #expect(try ChildProcess.run("curl", ["-s", "-I", "-o", "/dev/null", "-w", "%{http_code}", serve.url("/nosuch")], timeout: 10).stdout == "404")
        let live = try Self.connect(serve.port, sending: "GET /api/live?site=example.com HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        defer { close(live) }
        let (_, received) = Self.read(live, untilEndWithin: 2, stoppingAt: ": connected")
        #expect(received.hasPrefix("HTTP/1.1 200") && received.contains(": connected"), "\(received)")
    }

    /// A TCP connection to 127.0.0.1:`port` that has sent `request`.
    static func connect(_ port: Int, sending request: String) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(fd >= 0)
        try #require(connectToLoopback(fd, port: port), "connect: \(String(cString: strerror(errno)))")
        if !request.isEmpty { try #require(send(fd, request, request.utf8.count, 0) == request.utf8.count) }
        return fd
    }

    /// Reads `fd` until the server closes it (`true`), `seconds` pass (`false`), or what came
    /// contains `marker`; and what came.
    static func read(_ fd: Int32, untilEndWithin seconds: Double, stoppingAt marker: String? = nil) -> (Bool, String) {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while ContinuousClock.now < deadline {
            var pollSet = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pollSet, 1, 50) >= 0 else { break }
            guard pollSet.revents != 0 else { continue }
            let count = recv(fd, &chunk, chunk.count, 0)
            if count <= 0 { return (true, String(decoding: received, as: UTF8.self)) }
            received += chunk.prefix(count)
            if let marker, String(decoding: received, as: UTF8.self).contains(marker) { break }
        }
        return (false, String(decoding: received, as: UTF8.self))
    }
}
