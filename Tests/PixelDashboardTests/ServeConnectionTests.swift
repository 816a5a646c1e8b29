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

    /// An HTTP/1.0 request (without keep-alive, and with it) is answered in HTTP/1.0 with
    /// `Connection: close`, and the server closes the connection after the answer (it was answered
    /// `HTTP/1.1` and left open until the idle timeout, 30 s here); a live stream to an HTTP/1.0
    /// client is not chunked (which it could not read) and ends with the connection. An HTTP/1.1
    /// connection stays open.
    @Test func http10ConnectionsAreClosedAfterTheAnswer() throws {
        let redis = try RedisServer.start()
        let serve = try ServeProcess.start(redis: redis, extra: ["--idle-timeout", "30", "--site", "example.com"])
        defer { serve.process.kill() }
        for request in [
            "GET /healthz HTTP/1.0\r\n\r\n", "GET /api/sites HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n",
            "HEAD /api/sites HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n",
        ] {
            let fd = try Self.connect(serve.port, sending: request)
            defer { close(fd) }
            let (ended, received) = Self.read(fd, untilEndWithin: 5)
            #expect(ended, "\(request.prefix(30)): still open after 5 s: \(received)")
            #expect(received.hasPrefix("HTTP/1.0 200 OK\r\n"), "\(received)")
            #expect(received.lowercased().contains("\r\nconnection: close\r\n"), "\(received)")
        }
        let fd = try Self.connect(serve.port, sending: "GET /api/live?site=example.com HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        defer { close(fd) }
        let (_, live) = Self.read(fd, untilEndWithin: 3, stoppingAt: ": connected")
        #expect(live.hasPrefix("HTTP/1.0 200 OK\r\n") && live.contains("\r\n\r\nretry: 2000\n: connected"), "\(live)")
        #expect(!live.lowercased().contains("transfer-encoding"), "\(live)")

        let kept = try Self.connect(serve.port, sending: "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        defer { close(kept) }
        let (ended, received) = Self.read(kept, untilEndWithin: 1)
        #expect(!ended && received.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(received)")

        // A request pipelined after an HTTP/1.0 one is not answered: one answer, then the end.
        let pipelined = try Self.connect(
            serve.port, sending: "GET /healthz HTTP/1.0\r\n\r\nGET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        )
        defer { close(pipelined) }
        let (closedAfterOne, answers) = Self.read(pipelined, untilEndWithin: 5)
        #expect(closedAfterOne && answers.hasPrefix("HTTP/1.0 200 OK\r\n"), "\(answers)")
        #expect(answers.components(separatedBy: "HTTP/1.").count - 1 == 1, "\(answers)")

        // Nor are bytes that do not parse: no 400 after the answer (into its body, or after its end).
        for garbage in ["BAD\u{1} / HTTP/1.1\r\n\r\n", "GET /healthz HTTP/1.1\r\nContent-Length: x\r\n\r\n"] {
            let fd = try Self.connect(serve.port, sending: "GET /healthz HTTP/1.0\r\n\r\n" + garbage)
            defer { close(fd) }
            let (ended, received) = Self.read(fd, untilEndWithin: 5)
            #expect(ended && received.hasPrefix("HTTP/1.0 200 OK\r\n"), "\(received)")
            #expect(received.components(separatedBy: "HTTP/1.").count - 1 == 1, "\(received)")
        }
    }

    /// An HTTP/1.0 answer written before the request's body ends (a `413` to a login form too
    /// large) ends with a `FIN` (the client reads the answer, then its end): the server shuts its
    /// output and reads on. A full close with the body unread made the kernel send a reset, which
    /// can reach a client before the answer (`ECONNRESET`; on loopback the answer is there first,
    /// and the reset shows as the end instead).
    @Test func anHTTP10AnswerBeforeTheBodyEndsIsNotReset() throws {
        let redis = try RedisServer.start()
        let serve = try ServeProcess.start(redis: redis, extra: ["--site", "example.com"])
        defer { serve.process.kill() }
        let head = "POST /login HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 2000000\r\n\r\n"
        let chunk = [UInt8](repeating: UInt8(ascii: "a"), count: 8192)
        var answers: [String] = []
        for _ in 0..<5 {
            let fd = try Self.connect(serve.port, sending: head)
            defer { close(fd) }
            // About 200 KB of the 2 MB, as long as the server takes them (within 3 s), then silence.
            let deadline = ContinuousClock.now + .seconds(3)
            var sent = 0
            while sent < 200_000, ContinuousClock.now < deadline {
                var pollSet = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                guard poll(&pollSet, 1, 50) > 0 else { continue }
                let count = chunk.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT)) }
                if count < 0 && errno != EAGAIN { break }
                sent += max(count, 0)
            }
            answers.append(Self.readToEnd(fd, within: 5))
        }
        #expect(answers == Array(repeating: "HTTP/1.0 413 … EOF", count: 5), "\(answers)")
    }

    /// A live stream whose client closed its connection gives its slot back at once: with one
    /// stream allowed per client, a new stream opens within 3 s of the close (it was a `503` until
    /// the next keep-alive write, up to 15 s later, found the connection gone).
    @Test func aClosedLiveStreamFreesItsSlotAtOnce() throws {
        let redis = try RedisServer.start()
        let serve = try ServeProcess.start(redis: redis, extra: ["--site", "example.com", "--live-streams-per-client", "1"])
        defer { serve.process.kill() }
        let request = "GET /api/live?site=example.com HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        let first = try Self.connect(serve.port, sending: request)
        let (_, opened) = Self.read(first, untilEndWithin: 3, stoppingAt: ": connected")
        try #require(opened.hasPrefix("HTTP/1.1 200") && opened.contains(": connected"), "\(opened)")
        close(first)
        let closed = ContinuousClock.now
        var answers: [String] = []
        while ContinuousClock.now - closed < .seconds(3) {
            let next = try Self.connect(serve.port, sending: request)
            let (_, received) = Self.read(next, untilEndWithin: 2, stoppingAt: "\r\n")
            close(next)
            answers.append(String(received.prefix(12)))
            if received.hasPrefix("HTTP/1.1 200") { break }
            Thread.sleep(forTimeInterval: 0.2)
        }
        #expect(answers.last == "HTTP/1.1 200", "\(answers.count) tries within \(ContinuousClock.now - closed) of the close: \(answers)")
    }

    /// A request NIO's HTTP parser rejects before any route gets a `400` whose body says what was
    /// wrong (it was empty).
    @Test func malformedRequestsAreToldWhy() throws {
        let redis = try RedisServer.start()
        let serve = try ServeProcess.start(redis: redis, extra: ["--site", "example.com"])
        defer { serve.process.kill() }
        for (request, reason) in [
            ("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: x\r\n\r\n", "Bad request: an invalid Content-Length.\n"),
            ("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Header: 1\r\n\r\n", "Bad request: an invalid character in a header.\n"),
        ] {
            let fd = try Self.connect(serve.port, sending: request)
            defer { close(fd) }
            let (ended, received) = Self.read(fd, untilEndWithin: 5)
            #expect(ended && received.hasPrefix("HTTP/1.1 400 Bad Request\r\n"), "\(received)")
            #expect(received.lowercased().contains("\r\ncontent-type: text/plain; charset=utf-8\r\n"), "\(received)")
            #expect(received.hasSuffix("\r\n\r\n" + reason), "\(received)")
        }
    }

    /// A TCP connection to 127.0.0.1:`port` that has sent `request`.
    static func connect(_ port: Int, sending request: String) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(fd >= 0)
        try #require(connectToLoopback(fd, port: port), "connect: \(String(cString: strerror(errno)))")
        if !request.isEmpty { try #require(send(fd, request, request.utf8.count, 0) == request.utf8.count) }
        return fd
    }

    /// The first 12 bytes `fd` receives within `seconds`, and how it ends: `EOF`, the error
    /// (`ECONNRESET`) or `open`.
    static func readToEnd(_ fd: Int32, within seconds: Double) -> String {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        var end = "open"
        while ContinuousClock.now < deadline {
            var pollSet = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pollSet, 1, 50) >= 0 else { break }
            guard pollSet.revents != 0 else { continue }
            let count = recv(fd, &chunk, chunk.count, 0)
            if count == 0 { end = "EOF" } else if count < 0 { end = errno == ECONNRESET ? "ECONNRESET" : "errno \(errno)" }
            if count <= 0 { break }
            received += chunk.prefix(count)
        }
        return String(decoding: received.prefix(12), as: UTF8.self) + " … " + end
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
