import Foundation
import PixeldTestSupport
import Testing

/// The whole pipeline with real processes: nginx (deploy/nginx-syslog.conf) or logger →
/// `pixeld ingest` → redis-server → `pixeld consume`. Each test starts and stops its own.
@Suite(
    "pixeld end to end",
    .serialized,
    .enabled(if: TestEnvironment.canRun("redis-server", "redis-cli", "nginx", "logger", "curl"))
)
struct PipelineTests {
    static let hits = 1000

    @Test("nginx → UDP → ingest → Redis byte-equal to nginx's own log → consume prints every event")
    func nginxOverUDP() throws {
        try nginxScenario(unix: false)
    }

    @Test("nginx → unix datagram socket → ingest → Redis byte-equal → consume prints every event")
    func nginxOverUnixSocket() throws {
        // nginx refuses a line when the socket's 10-datagram queue is full, i.e. when the receive
        // thread did not run for ~10 requests: on this shared VM a stall of the host does that to a
        // whole run now and then (nginx's own unix-socket test in SupportTests failed in the same
        // minutes). Every attempt checks that each line the kernel accepted arrives, byte-equal and in
        // order; only the ≤ 5 % refusal bound gets up to three attempts.
        for attempt in 1...3 {
            let refused = try nginxScenario(unix: true, checkRefusals: attempt == 3)
            if refused <= Self.hits / 20 { return }
            print("nginx over the unix socket, attempt \(attempt): nginx refused \(refused) of \(Self.hits) lines; again")
        }
    }

    /// Returns how many lines nginx could not send (unix socket only).
    @discardableResult
    private func nginxScenario(unix: Bool, checkRefusals: Bool = true) throws -> Int {
        let count = Self.hits
        let tag = unix ? "unix" : "udp"
        let pipeline = try IngestPipeline(unix: unix)
        let logs = try TempDirectory(prefix: "pixeld-logs")
        let nginx = try NginxServer.start(
            renderedFrom: TestEnvironment.deployNginxConf,
            httpPort: try PortAllocator.freeTCPPort(),
            syslogUDP: unix ? nil : "127.0.0.1:\(pipeline.udpPort)",
            syslogUnix: unix ? pipeline.unixPath : nil,
            extraLogFile: logs.appending("pixel.log").path
        )
        let queries = pixelQueries(count: count, tag: tag)
        // A unix datagram socket queues only net.unix.max_dgram_qlen (10) datagrams and nginx drops
        // a line when it is full, so that variant runs one request at a time at 250/s: the queue
        // fills only if the receive thread does not run for 40 ms. (curl 7.88 waits 1000 / rate ms,
        // rounded down, between transfers, so a rate that divides 1000 is the rate you get. Unpaced, curl sent the 1000
        // requests in about 0.2 s, so a stall of 2 ms filled it; one fresh-clone CI run saw nginx
        // refuse 7-17 % of the lines in all three attempts.)
        let urls = queries.map { nginx.pixelURL(query: $0) }
        let statuses = try unix ? fetchAll(urls, perSecond: 250) : fetchAll(urls, parallel: 8)
        #expect(statuses.count == count && statuses.allSatisfy { $0 == "200" }, "HTTP statuses: \(Set(statuses))")

        // nginx writes its file log in the request's log phase, which may come after curl has the
        // whole response: wait for the lines (bounded) rather than read the file once.
        let fileLines = try nginx.extraLogLines(waitingFor: count)
        try #require(fileLines.count == count, "nginx file log has \(fileLines.count) lines")
        #expect(Set(fileLines.map { text($0).split(separator: ",", maxSplits: 1).last.map(String.init) ?? "" }) == Set(queries))

        let nginxSendFailures = nginx.errorLog.components(separatedBy: "send() to syslog failed").count - 1
        // Over the unix socket, a line nginx could not send (the kernel's queue of
        // net.unix.max_dgram_qlen = 10 datagrams was full: nginx logs "send() to syslog failed") never
        // reached pixeld. With the debug build on a shared 2-core machine a few percent may be refused
        // (the unix-socket loss at rate is measured against a do-nothing receiver in BENCHMARKS.md);
        // what this test holds pixeld to: every line the kernel accepted arrives, byte-equal, in
        // order, and refusals stay the exception (≤ 5 %). Over UDP: every line.
        let refused = unix ? nginxSendFailures : 0
        if checkRefusals { #expect(refused <= count / 20, "nginx reported \(refused) failed syslog sends of \(count)") }
        let redis = pipeline.redis
        let length = try redis.waitForLength("pixel", atLeast: count - refused, timeout: 20)
        // Give duplicates, if any, a moment to show up before counting.
        Thread.sleep(forTimeInterval: 0.3)
        let stored = try redis.lrangeRaw("pixel")
        // LPUSH puts the newest at the head: reversed, the list is in arrival order.
        let arrival = Array(stored.reversed())
        let (missing, unexpected) = multisetDifference(expected: fileLines, actual: arrival)
        let complete = stored.count == count - refused && missing.count == refused && unexpected.isEmpty
        #expect(
            complete,
            """
            Redis list pixel reached \(length), then \(stored.count) of \(count) values; \(missing.count) of nginx's \
            lines missing (first: \(missing.prefix(3).map(text))), \(unexpected.count) values nginx never logged \
            (first: \(unexpected.prefix(3).map(text))); nginx's error log reports \(nginxSendFailures) failed \
            syslog sends (\(unix ? "unix socket queue full: net.unix.max_dgram_qlen" : "UDP send error")).
            ingest:\(pipeline.ingest.process.tail)
            """
        )
        // One nginx worker logs each request to syslog and to the file in turn, and one socket keeps
        // datagram order, so arrival order is nginx's order.
        // (With refused lines: arrival order is nginx's order with those lines left out.)
        if unexpected.isEmpty && missing.count == refused {
            var next = 0
            for (position, line) in arrival.enumerated() {
                while next < fileLines.count && fileLines[next] != line { next += 1 }
                if next == fileLines.count {
                    Issue.record("Redis order differs from nginx's at element \(position): \(text(line))")
                    break
                }
                next += 1
            }
        }

        // consume: one JSON line per stored value, args decoded, ts = $msec, in arrival order.
        let consumer = try PixeldProcess.start(["consume", "pixel", "--redis", redis.url])
        let lines = try consumer.waitForStdoutLines(count: stored.count, timeout: 30)
        #expect(lines.count == stored.count)
        let events = try lines.map(ConsumedEvent.init(line:))
        let storedIndices = arrival.compactMap(hitIndex)
        let byIndex: ([String: String], [String: String]) -> Bool = { ($0["i"] ?? "") < ($1["i"] ?? "") }
        let printedArgs: [[String: String]] = events.map(\.args).sorted(by: byIndex)
        let wantedArgs: [[String: String]] = storedIndices.compactMap(Int.init).map { expectedArgs(index: $0, tag: tag) }
        #expect(printedArgs == wantedArgs.sorted(by: byIndex))
        var loggedTime: [String: Double] = [:]
        for line in fileLines {
            if let index = hitIndex(line), let time = Double(text(line).prefix { $0 != "," }) {
                loggedTime[index] = time
            }
        }
        let wrongTime = events.first { event in
            guard let index = event.args["i"], let time = loggedTime[index] else { return true }
            return abs(time - event.ts) > 0.0005
        }
        #expect(wrongTime == nil, "event with wrong ts: \(String(describing: wrongTime))")
        #expect(events.compactMap { $0.args["i"] } == storedIndices, "consume order differs from arrival order")

        let drained = try Poll.until(timeout: 10) { try redis.llen("pixel") == 0 }
        let remaining = try redis.llen("pixel")
        #expect(drained, "pixel still holds \(remaining) values after consume printed them all")
        #expect(try redis.llen("pixel:dead") == 0)

        consumer.terminate()
        #expect(try consumer.waitForExit(timeout: 10) == 0, "consume:\(consumer.process.tail)")
        #expect(try pipeline.stopIngest() == 0, "ingest:\(pipeline.ingest.process.tail)")
        return refused
    }

    enum Transport: String, CaseIterable, Sendable, CustomTestStringConvertible {
        case udp4, udp6, unix
        var testDescription: String { rawValue }
    }

    static let loggerCases: [(String, Transport)] = [
        ("--rfc5424", .udp4), ("--rfc3164", .udp4),
        ("--rfc5424", .udp6), ("--rfc3164", .udp6),
        ("--rfc5424", .unix), ("--rfc3164", .unix),
    ]

    /// `logger` arguments that send to `pipeline` over `transport`.
    private func loggerTarget(_ transport: Transport, _ pipeline: IngestPipeline) -> [String] {
        switch transport {
        case .udp4: return ["-d", "-n", "127.0.0.1", "-P", String(pipeline.udpPort)]
        case .udp6: return ["-d", "-n", "::1", "-P", String(pipeline.udp6Port ?? 0)]
        case .unix: return ["-d", "-u", pipeline.unixPath ?? "/nonexistent"]
        }
    }

    @Test("logger messages of facility local3 arrive under their tag, byte-exact and in order", arguments: loggerCases)
    func loggerArrives(format: String, transport: Transport) throws {
        let pipeline = try IngestPipeline(ipv6: true, unix: true)
        let program = "e2e_\(transport.rawValue)_\(format.dropFirst(5))"
        let messages = [
            "e=pageview&u=https%3A%2F%2Fexample.com%2F",
            "h\u{E9}llo w\u{F6}rld: [1] {\"k\": \"v\"}  two  spaces, trailing tab\t.",
            "1379183721.115,foo=bar&baz=1",
        ]
        for message in messages {
            try ChildProcess.run(
                "logger",
                [format] + loggerTarget(transport, pipeline) + ["-p", "local3.info", "-t", program, "--", message],
                timeout: 10
            )
        }
        let length = try pipeline.redis.waitForLength(program, atLeast: messages.count, timeout: 5)
        let keys = try pipeline.redis.keys()
        #expect(length == messages.count, "keys: \(keys); ingest:\(pipeline.ingest.process.tail)")
        let stored = try pipeline.redis.lrangeRaw(program)
        #expect(stored.reversed().map(text) == messages)
        #expect(Array(stored.reversed()) == messages.map { Array($0.utf8) })
        #expect(try pipeline.stopIngest() == 0)
    }

    @Test("messages of other facilities never arrive", arguments: [Transport.udp4, .unix])
    func otherFacilitiesAreDropped(transport: Transport) throws {
        let pipeline = try IngestPipeline(unix: true)
        let sends: [(format: String, priority: String, tag: String)] = [
            ("--rfc5424", "local4.info", "f_local4"),
            ("--rfc3164", "local4.info", "f_local4"),
            ("--rfc5424", "user.notice", "f_user"),
            ("--rfc3164", "user.notice", "f_user"),
            ("--rfc3164", "local2.err", "f_local2"),
        ]
        for send in sends {
            try ChildProcess.run(
                "logger",
                [send.format] + loggerTarget(transport, pipeline)
                    + ["-p", send.priority, "-t", send.tag, "--", "must not arrive (\(send.priority))"],
                timeout: 10
            )
        }
        // Sent after the others on the same socket: once it is in Redis, they were processed.
        try ChildProcess.run(
            "logger",
            ["--rfc3164"] + loggerTarget(transport, pipeline) + ["-p", "local3.warning", "-t", "marker", "--", "done"],
            timeout: 10
        )
        #expect(try pipeline.redis.waitForLength("marker", atLeast: 1, timeout: 5) == 1)
        #expect(try pipeline.redis.lrange("marker") == ["done"])
        for tag in Set(sends.map(\.tag)) {
            #expect(try pipeline.redis.command(["EXISTS", tag]) == .integer(0), "\(tag) arrived")
        }
        #expect(try pipeline.stopIngest() == 0)
    }
}
