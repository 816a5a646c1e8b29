import Foundation
import Logging
import PixelAnalytics
import Synchronization
@testable import PixelDashboard
import PixeldTestSupport
import RespBridge
import Testing

@Suite struct RollupStoreTests {
    @Test("fields that Swift's String equality takes as one (NFC and NFD café) are added, not overwritten")
    func canonicallyEqualFieldsAddUp() throws {
        let nfc = Array("caf\u{E9}".utf8), nfd = Array("cafe\u{301}".utf8)
        #expect(nfc != nfd)  // two fields in Redis
        let reply = RESPValue.array([.bulk(nfc), .bulk(Array("10".utf8)), .bulk(nfd), .bulk(Array("3".utf8)), .bulk(Array("x".utf8)), .bulk(Array("1".utf8))])
        #expect(try RollupStore.rollupHash(reply, operation: "HGETALL").counts == ["caf\u{E9}": 13, "x": 1])
    }
}

@Suite struct EscapeAndLiveFeedTests {
    @Test("CSV: the formula guard and the quoting look at bytes, not characters")
    func csvLooksAtBytes() {
        // "=" followed by a combining mark: one Character "=́", but the cell starts with "=".
        #expect(Escape.csv("=\u{301}HYPERLINK(1)") == "'=\u{301}HYPERLINK(1)")
        #expect(Escape.csv("-\u{200D}2+3") == "'-\u{200D}2+3")
        // "\r\n" is one Character, neither "\r" nor "\n": still quoted.
        #expect(Escape.csv("a\r\nb") == "\"a\r\nb\"")
        // A quote with a combining mark is one Character, but its quote is doubled all the same.
        #expect(Escape.csv("a\"\u{301},=HYPERLINK(1)") == "\"a\"\"\u{301},=HYPERLINK(1)\"")
        #expect(Escape.csv("plain") == "plain")
    }

    /// A viewer with the token gets the archive line without the visitor ids; a viewer without it
    /// (of a public site) only the minute, event, path and source: nothing that tells one visitor's
    /// hits from another's (browser, OS, device, country, campaign, properties, the millisecond).
    @Test("each live client gets as much of a hit as its detail allows")
    func liveDetail() async throws {
        let feed = LiveFeed(
            configuration: try RedisConfiguration(url: "redis://127.0.0.1:1/0"), keys: RollupKeys(), logger: Logger(label: "test")
        )
        let full = try feed.subscribe(site: "example.com", client: "owner", detail: .full)
        let minimal = try feed.subscribe(site: "example.com", client: "anyone", detail: .minimal)
        let hit = EnrichedHit(
            timestampText: "1795362198.810", timestamp: 1_795_362_198.81, site: "example.com", visitorID: String(repeating: "a", count: 32),
            previousVisitorID: String(repeating: "b", count: 32), event: "signup", path: "/pricing", source: "Newsletter",
            campaign: Campaign(source: "newsletter", medium: "email", name: "spring"), browser: "Firefox", os: "Linux",
            device: "desktop", country: "DE", props: #"{"plan":"pro"}"#
        )
        let line = ArchiveRecord.line(.accepted(hit))
        let dropped = ArchiveRecord.line(.dropped(DroppedHit(timestampText: "1795362199.000", timestamp: 1_795_362_199, reason: .listedBot, site: "example.com")))
        feed.deliver(site: "example.com", payload: line + "\n" + dropped + "\nnot json")
        await feed.stop()
        let fullEvents = await elements(of: full)
        let minimalEvents = await elements(of: minimal)
        #expect(fullEvents == [ArchiveRecord.withoutVisitorIDs(line[...]), dropped, "not json"])
        #expect(fullEvents.first?.contains(#""country":"DE""#) == true && fullEvents.first?.contains(#""vid""#) == false)
        #expect(minimalEvents == [#"{"ts":1795362180,"event":"signup","path":"/pricing","source":"Newsletter"}"#])
    }

    @Test("stop() ends the streams of connected clients and returns (their termination takes the same lock)")
    func stopWithSubscribersReturns() async throws {
        let feed = LiveFeed(
            configuration: try RedisConfiguration(url: "redis://127.0.0.1:1/0"), keys: RollupKeys(), logger: Logger(label: "test")
        )
        let streams = [
            try feed.subscribe(site: "example.com", client: "test", detail: .full),
            try feed.subscribe(site: "other.example", client: "test", detail: .minimal),
        ]
        #expect(streams.count == 2 && feed.subscriberCount == 2)
        let stopped = Atomic<Bool>(false)
        Task {
            await feed.stop()
            stopped.store(true, ordering: .relaxed)
        }
        let deadline = ContinuousClock.now + .seconds(5)
        while !stopped.load(ordering: .relaxed) && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        guard stopped.load(ordering: .relaxed) else {
            Issue.record("stop() did not return")  // (and holds the feed's lock: nothing more to check)
            return
        }
        #expect(feed.subscriberCount == 0)
        for stream in streams { #expect(await elements(of: stream).isEmpty) }
    }

    /// A client that leaves (its stream's reader cancelled, as when its connection ends) while a
    /// message is delivered to it does not deadlock the feed: cancelling takes the reading task's
    /// lock and then, in the stream's termination, the feed's; a delivery that resumed that reader
    /// while holding the feed's lock took them the other way round. Two plain threads, one
    /// delivering and one subscribing and cancelling readers, must both finish.
    @Test func aClientLeavingDuringADeliveryDoesNotDeadlock() throws {
        let feed = LiveFeed(
            configuration: try RedisConfiguration(url: "redis://127.0.0.1:1/0"), keys: RollupKeys(), logger: Logger(label: "test")
        )
        let payload = Array(repeating: #"{"ts":1,"path":"/"}"#, count: 50).joined(separator: "\n")
        let delivering = Atomic<Bool>(true)
        let finished = DispatchGroup()
        finished.enter()
        Thread {
            while delivering.load(ordering: .relaxed) { feed.deliver(site: "example.com", payload: payload) }
            finished.leave()
        }.start()
        finished.enter()
        Thread {
            for _ in 0..<2_000 {
                usleep(100)
                // Refused past the per-client limit, until the readers cancelled before have ended.
                guard let stream = try? feed.subscribe(site: "example.com", client: "test", detail: .full) else { continue }
                let reader = Task { for await _ in stream {} }
                usleep(100)
                reader.cancel()
            }
            delivering.store(false, ordering: .relaxed)
            finished.leave()
        }.start()
        // On a deadlock the two threads stay blocked for the rest of the run; the test fails instead of hanging.
        #expect(finished.wait(timeout: .now() + 30) == .success, "the feed deadlocked")
    }

    /// Viewers without the token (`.minimal`) take at most ``LiveFeed/maximumAnonymous`` of the
    /// feed's streams, from however many addresses: the rest stay for the token's holders.
    @Test func anonymousViewersLeaveTheTokenHoldersTheirShare() async throws {
        let feed = LiveFeed(
            configuration: try RedisConfiguration(url: "redis://127.0.0.1:1/0"), keys: RollupKeys(), maximumSubscribers: 4,
            maximumAnonymous: 3, logger: Logger(label: "test")
        )
        var streams: [AsyncStream<String>] = []
        /// Why a subscription of `detail` from `client` was refused, or `nil` when it was not (its stream kept open).
        func refusal(_ client: String, _ detail: LiveFeed.Detail) -> String? {
            do throws(LiveFeed.Refusal) {
                streams.append(try feed.subscribe(site: "example.com", client: client, detail: detail))
                return nil
            } catch {
                return error.description
            }
        }
        for index in 0..<3 { #expect(refusal("anyone-\(index)", .minimal) == nil) }
        #expect(refusal("anyone-3", .minimal) == "too many live clients without the token")
        #expect(refusal("owner", .full) == nil)
        #expect(refusal("owner", .full) == "too many live clients")
        #expect(feed.subscriberCount == 4)
        await feed.stop()
        for stream in streams { #expect(await elements(of: stream).isEmpty) }
    }
}

@Suite struct RedisReaderTests {
    /// A Redis that accepts connections and never answers: the first request holds the only
    /// connection, the second waits, and the third is refused at once as `.busy` (a 503), instead of
    /// piling up.
    @Test func aFullQueueRefusesAtOnce() async throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var listening = true
        defer { if listening { close(fd) } }
        let port = bindToLoopback(fd)
        try #require(port != nil && listen(fd, 8) == 0)
        var configuration = try RedisConfiguration(url: "redis://127.0.0.1:\(port!)/0")
        // Long enough that the first request (read, then one retry) holds the connection throughout,
        // however slow the machine; the listening socket is closed at the end to release it.
        configuration.commandTimeoutMilliseconds = 5000
        let reader = RedisReader(configuration: configuration, threads: 1, maxQueued: 1, logger: Logger(label: "test"))
        let ping: [[[UInt8]]] = [[Array("PING".utf8)]]
        let first = Task { try? await reader.pipeline(ping) }
        try await Task.sleep(for: .seconds(1))
        let second = Task { try? await reader.pipeline(ping) }
        try await Task.sleep(for: .seconds(1))
        let started = ContinuousClock.now
        do {
            _ = try await reader.pipeline(ping)
            Issue.record("a third request was queued")
        } catch {
            #expect(error.code == .busy, "\(error)")
        }
        #expect(ContinuousClock.now - started < .milliseconds(500))
        // A health check is queued all the same: busy is not down.
        let health = Task { () -> RespError.Code? in
            do {
                _ = try await reader.pipeline(ping, beyondLimit: true)
                return nil
            } catch {
                return (error as? RespError)?.code
            }
        }
        // The connections waiting in the backlog are reset: every request ends now.
        close(fd)
        listening = false
        #expect(await health.value != RespError.Code.busy)
        _ = await (first.value, second.value)
        await reader.stop()
    }
}
