import Foundation
import Logging
import PixeldConcurrency
import PixeldTestSupport
@testable import SyslogIngest
import Synchronization
import Testing

/// Real sockets on loopback (port 0) and temp unix paths; no server needed.
@Suite(.serialized) struct DatagramListenerTests {
    /// Collects accepted messages; the listener calls it on its own thread.
    final class CollectingSink: AcceptedMessageSink, @unchecked Sendable {
        private let lock = ConditionLock()
        private var messages: [(String, [UInt8])] = []
        private var times: [(acceptedAt: Int64, routedAt: Int64)] = []
        /// Called with each message's text before it is collected, on the listener's thread (a test
        /// holds the listener up there).
        private let onAccept: @Sendable (String) -> Void
        init(onAccept: @escaping @Sendable (String) -> Void = { _ in }) { self.onAccept = onAccept }
        func accept(program: UnsafeRawBufferPointer, message: UnsafeRawBufferPointer, acceptedAt: Int64) {
            onAccept(String(decoding: message, as: UTF8.self))
            let entry = (String(decoding: program, as: UTF8.self), Array(message))
            let time = (acceptedAt: acceptedAt, routedAt: MonotonicClock.nanoseconds())
            lock.withLock {
                messages.append(entry)
                times.append(time)
            }
        }
        func endOfBatch() -> Bool { true }
        var received: [(String, [UInt8])] { lock.withLock { messages } }
        /// Each message's stamp from the listener, and when the sink saw it.
        var stamps: [(acceptedAt: Int64, routedAt: Int64)] { lock.withLock { times } }
        func wait(for count: Int, seconds: Double = 5) -> Bool {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                if received.count >= count { return true }
                usleep(5_000)
            }
            return received.count >= count
        }
    }

    private func send(_ datagrams: [[UInt8]], toUDP port: Int, host: String = "127.0.0.1") throws {
        let ipv6 = host.contains(":")
        let fd = socket(ipv6 ? AF_INET6 : AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        #expect(fd >= 0)
        defer { close(fd) }
        for datagram in datagrams {
            let sent: Int
            if ipv6 {
                var address = sockaddr_in6()
                address.sin6_family = sa_family_t(AF_INET6)
                address.sin6_port = in_port_t(UInt16(port).bigEndian)
                inet_pton(AF_INET6, host, &address.sin6_addr)
                sent = withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        sendto(fd, datagram, datagram.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in6>.size))
                    }
                }
            } else {
                var address = sockaddr_in()
                address.sin_family = sa_family_t(AF_INET)
                address.sin_port = in_port_t(UInt16(port).bigEndian)
                inet_pton(AF_INET, host, &address.sin_addr)
                sent = withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        sendto(fd, datagram, datagram.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                    }
                }
            }
            #expect(sent == datagram.count)
        }
    }

    /// Sends from an unbound unix datagram socket, as nginx does (the peer address is empty).
    private func send(_ datagrams: [[UInt8]], toUnix path: String) {
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(fd) }
        for datagram in datagrams {
            let sent = withUnixAddress(path) { sendto(fd, datagram, datagram.count, 0, $0, $1) }
            #expect(sent == datagram.count)
        }
    }

    /// Calls `body` with the unix socket address of `path` and its length.
    private func withUnixAddress<Result>(_ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> Result) -> Result {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8) + [0]) }
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
    }

    /// The port a UDP socket bound to port 0 got; records an issue and throws when `address` is not
    /// UDP or still says port 0, so a test cannot pass without sending anything.
    private func boundUDPPort(_ address: ListenAddress, sourceLocation: SourceLocation = #_sourceLocation) throws -> Int {
        var port: Int?
        if case .udp(_, let bound) = address, bound > 0 { port = bound }
        return try #require(port, "not a UDP address with the port it got: \(address)", sourceLocation: sourceLocation)
    }

    private func listener(
        _ address: ListenAddress, rules: IngestRules = IngestRules(),
        busyPerMillisecond: Int = DatagramListener.ArrivalRate.defaultBusyPerMillisecond,
        pauseNanoseconds: Int = DatagramListener.defaultPauseNanoseconds
    ) throws -> (DatagramListener, CollectingSink) {
        let socket = try DatagramSocket(binding: address, receiveBufferBytes: 1 << 20)
        let sink = CollectingSink()
        let listener = DatagramListener(socket: socket, rules: rules, sink: sink, logger: .init(label: "test"))
        listener.busyPerMillisecond = busyPerMillisecond
        listener.pauseNanoseconds = pauseNanoseconds
        listener.start()
        return (listener, sink)
    }

    @Test func udpOnIPv4KeepsLocal3AndCountsTheRest() async throws {
        let (listener, sink) = try listener(.udp(host: "127.0.0.1", port: 0))
        let port = try boundUDPPort(listener.socket.address)
        #expect(port != 0)
        try send(
            [
                Array("<158>Nov 22 10:00:00 web-1 pixel: 1763805600.001,e=pageview".utf8),
                Array("<14>Nov 22 10:00:00 web-1 other: user facility".utf8),
                Array("no pri at all".utf8),
                Array("<158>1 2026-11-22T10:00:00Z web-1 - - - - nil app".utf8),
                Array("<158>Nov 22 10:00:00 web-1 bad*name: x".utf8),
                Array("<158>Nov 22 10:00:00 web-1 pixel: second".utf8),
            ],
            toUDP: port
        )
        #expect(sink.wait(for: 2))
        await listener.stop()
        #expect(sink.received.map(\.0) == ["pixel", "pixel"])
        #expect(sink.received.map { String(decoding: $0.1, as: UTF8.self) } == ["1763805600.001,e=pageview", "second"])
        let stats = listener.statistics
        #expect(stats.received == 6)
        #expect(stats.accepted == 2)
        #expect(stats.dropped(.filtered) == 1)
        #expect(stats.dropped(.malformed) == 1)
        #expect(stats.dropped(.noProgram) == 1)
        #expect(stats.dropped(.badProgram) == 1)
        #expect(stats.received == stats.accepted + stats.droppedTotal)
    }

    /// A busy receiver (here: always, threshold 0) takes what is queued without waiting and pauses
    /// before it waits; bursts and a lone datagram after them all arrive, none lost or left behind.
    @Test func aBusyReceiverPausesAndLosesNothing() async throws {
        let (listener, sink) = try listener(.udp(host: "127.0.0.1", port: 0), busyPerMillisecond: 0)
        let port = try boundUDPPort(listener.socket.address)
        var expected: [String] = []
        for burst in 0..<3 {
            let texts = (0..<400).map { "b\(burst)-\($0)" }
            try send(texts.map { Array("<158>Nov 22 10:00:00 web-1 pixel: \($0)".utf8) }, toUDP: port)
            expected += texts
            #expect(sink.wait(for: expected.count))
            usleep(20_000)
        }
        try send([Array("<158>Nov 22 10:00:00 web-1 pixel: lone".utf8)], toUDP: port)
        expected.append("lone")
        #expect(sink.wait(for: expected.count, seconds: 2))
        await listener.stop()
        #expect(sink.received.map { String(decoding: $0.1, as: UTF8.self) } == expected)
        #expect(listener.statistics.kernelDrops == 0)
        #expect(listener.statistics.pauses > 0)
    }

    /// The kernel's drops show without more traffic: a receiver held up by its sink (as by a full
    /// memory queue) while a burst overflows its small socket buffer, then let go with nothing more
    /// sent, counts exactly the drops `/proc/net/udp` shows for its socket. Every datagram queued
    /// before the buffer filled carries a drop count of 0 (`SO_RXQ_OVFL` is the counter when the
    /// datagram was queued), so without a read of the counter itself the statistic stayed 0.
    @Test func kernelDropsAtTheEndOfABurstAreCountedWithoutMoreTraffic() async throws {
        let socket = try DatagramSocket(binding: .udp(host: "127.0.0.1", port: 0), receiveBufferBytes: 4096)
        let port = try boundUDPPort(socket.address)
        let holding = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        let sink = CollectingSink { text in
            if text == "hold" {
                holding.signal()
                release.wait()
            }
        }
        let listener = DatagramListener(socket: socket, rules: IngestRules(), sink: sink, logger: .init(label: "test"))
        listener.start()
        try send([Array("<158>Nov 22 10:00:00 web-1 pixel: hold".utf8)], toUDP: port)
        try #require(holding.wait(timeout: .now() + 5) == .success, "the listener never took the first datagram")
        let burst = 300
        try send((1...burst).map { Array("<158>Nov 22 10:00:00 web-1 pixel: burst \($0)".utf8) }, toUDP: port)
        let dropped = try #require(kernelUDPDrops(port: port), "no socket on 127.0.0.1:\(port) in /proc/net/udp")
        try #require(dropped > 0, "the burst fitted into the buffer (\(socket.receiveBufferBytes) bytes): nothing to count")
        // While the receiver is still held (as on a full queue, when drops happen), a reader of the
        // statistic (the metrics endpoint) reads the socket's counter itself.
        let whileHeld = listener.statistics.kernelDrops
        release.signal()
        #expect(whileHeld == dropped, "kernel drops read while the receiver was held: \(whileHeld), /proc/net/udp \(dropped)")
        // Nothing more is sent: the count must come from the receiver going idle.
        let counted = Poll.until(timeout: 2, interval: 0.01) { listener.statistics.kernelDrops == dropped }
        let droppedAtTheEnd = kernelUDPDrops(port: port)
        let statistics = listener.statistics
        await listener.stop()
        #expect(counted, "kernel drops \(statistics.kernelDrops), /proc/net/udp \(dropped)")
        #expect(droppedAtTheEnd == dropped, "/proc/net/udp went on from \(dropped) to \(droppedAtTheEnd.map(String.init) ?? "no socket")")
        #expect(statistics.received + statistics.kernelDrops == 1 + burst, "received \(statistics.received), dropped \(statistics.kernelDrops)")
        print("kernel drops after a burst of \(1 + burst): /proc/net/udp \(dropped), listener \(statistics.kernelDrops), received \(statistics.received)")
    }

    /// What a busy receiver takes after a pause is stamped with the pause's start: the ack latency
    /// counts the pause, and the writer's linger (which runs from the stamp) does not add to it.
    @Test func aDatagramTakenAfterAPauseIsStampedWithThePausesStart() async throws {
        let pause: Int64 = 600_000_000
        let (listener, sink) = try listener(
            .udp(host: "127.0.0.1", port: 0), busyPerMillisecond: 0, pauseNanoseconds: Int(pause)
        )
        let port = try boundUDPPort(listener.socket.address)
        try send([Array("<158>Nov 22 10:00:00 web-1 pixel: first".utf8)], toUDP: port)
        #expect(sink.wait(for: 1))
        // The socket is empty now, so the (always busy) receiver pauses; send while it does.
        usleep(100_000)
        let sentAt = MonotonicClock.nanoseconds()
        try send([Array("<158>Nov 22 10:00:00 web-1 pixel: second".utf8)], toUDP: port)
        #expect(sink.wait(for: 2, seconds: 3))
        await listener.stop()
        let stamps = sink.stamps
        try #require(stamps.count == 2)
        #expect(stamps[1].acceptedAt < sentAt, "stamped with the pause's start, before the datagram was sent")
        #expect(stamps[0].routedAt - stamps[0].acceptedAt < pause / 2, "taken without a pause: stamped as it is taken")
        #expect(stamps[1].routedAt - stamps[1].acceptedAt >= pause * 9 / 10, "the pause counts")
        #expect(listener.statistics.pauses >= 1)
    }

    /// The receiver pauses before waiting only at ≥ 5 datagrams per millisecond, measured over
    /// windows of at least a millisecond (idle time included).
    @Test func arrivalRateCountsAsBusyFrom5PerMillisecond() {
        var rate = DatagramListener.ArrivalRate()
        let ms: Int64 = 1_000_000
        let steps: [(count: Int, at: Int64, busy: Bool)] = [
            (3, 10 * ms, false),  // the first window spans everything before
            (4, 10 * ms + ms / 2, false),  // window not over: unchanged
            (2, 11 * ms, true),  // 6 in 1 ms
            (1, 11 * ms + ms / 2, true),  // window not over: unchanged
            (3, 12 * ms, false),  // 4 in 1 ms
            (10, 14 * ms, true),  // 10 in 2 ms
            (1, 100 * ms, false),  // then idle
        ]
        // The first window spans the clock's whole value: 800 days of uptime must not overflow.
        var fresh = DatagramListener.ArrivalRate()
        let busyAfterLongUptime = fresh.busy(adding: 64, at: 800 * 86_400 * 1_000 * ms)
        #expect(!busyAfterLongUptime)
        for step in steps {
            let busy = rate.busy(adding: step.count, at: step.at)
            #expect(busy == step.busy, "\(step)")
        }
    }

    /// Up to 1 ms a busy receiver pauses for the whole linger; above, for whole pause cycles that end
    /// before the linger does, so that the writer's deadline does not race the last pause's hand-over.
    @Test(arguments: [
        (linger: -1, pause: 0), (linger: 0, pause: 0), (linger: 500_000, pause: 500_000),
        (linger: 1_000_000, pause: 1_000_000), (linger: 1_500_000, pause: 600_000),
        (linger: 2_000_000, pause: 850_000), (linger: 3_000_000, pause: 850_000),
        (linger: 2_500_000, pause: 683_333),
    ])
    func aPauseLinesUpWithTheWritersLinger(linger: Int64, pause: Int) {
        #expect(DatagramListener.pauseNanoseconds(forLingerNanoseconds: linger) == pause)
    }

    /// For every linger above 1 ms, the pauses it takes (one per started millisecond), each with up to
    /// 140 µs of overhead (sleep overshoot, wake-up, routing), end before it; none is longer than 1 ms,
    /// and they fill the linger but for the overhead allowance.
    @Test func everyLongerLingerGetsPauseCyclesThatEndBeforeIt() {
        for linger in stride(from: Int64(1_000_001), through: 50_000_000, by: 12_345) {
            let pause = Int64(DatagramListener.pauseNanoseconds(forLingerNanoseconds: linger))
            let pauses = (linger + 999_999) / 1_000_000
            #expect(pauses * (pause + 140_000) < linger, "linger \(linger)")
            #expect(pauses * (pause + 150_000) >= linger - pauses, "linger \(linger)")
            #expect(pause <= 1_000_000, "linger \(linger)")
        }
    }

    @Test func udpOnIPv6() async throws {
        let (listener, sink) = try listener(.udp(host: "::1", port: 0))
        let port = try boundUDPPort(listener.socket.address)
        try send([Array("<158>pixel: over v6".utf8)], toUDP: port, host: "::1")
        #expect(sink.wait(for: 1))
        await listener.stop()
        #expect(sink.received.first?.1 == Array("over v6".utf8))
    }

    @Test func unixSocketFromAnUnboundSenderReplacesAStaleFileAndIsWorldWritable() async throws {
        let path = NSTemporaryDirectory() + "pixeld-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
        // A stale socket file from an earlier run: bound, then closed without unlinking it.
        // Close-on-exec: a child another suite spawns meanwhile must not keep it alive.
        let stale = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        #expect(withUnixAddress(path, { bind(stale, $0, $1) }) == 0)
        close(stale)
        let (listener, sink) = try listener(.unix(path: path, mode: 0o666))
        var info = stat()
        #expect(lstat(path, &info) == 0)
        #expect(info.st_mode & 0o777 == 0o666)
        let nginxLine = Array("<158>Nov 22 10:00:00 web-1 pixel: 1763805600.123,e=pageview&u=%2F".utf8)
        send(Array(repeating: nginxLine, count: 500), toUnix: path)
        #expect(sink.wait(for: 500))
        await listener.stop()
        #expect(sink.received.count == 500)
        #expect(sink.received.allSatisfy { $0.1 == Array("1763805600.123,e=pageview&u=%2F".utf8) })
        #expect(lstat(path, &info) != 0, "the socket file is removed on stop")
    }

    @Test func aUnixSocketPathALiveProcessIsBoundToIsNotTakenOver() async throws {
        let path = NSTemporaryDirectory() + "pixeld-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
        let (listener, sink) = try listener(.unix(path: path, mode: 0o666))
        #expect {
            try DatagramSocket(binding: .unix(path: path, mode: 0o666), receiveBufferBytes: 0)
        } throws: { error in
            "\(error)" == "bind \(path): in use by another process (another pixeld ingest?)"
        }
        send([Array("<158>pixel: still mine".utf8)], toUnix: path)
        #expect(sink.wait(for: 1), "the first listener lost its socket file")
        await listener.stop()
        #expect(sink.received.map(\.1) == [Array("still mine".utf8)])
    }

    /// Two instances starting at the same moment on one path where a stale socket file lies (as after
    /// a crash): each round exactly one binds, the other is refused as above, and the winner still
    /// owns the path (a datagram sent there reaches it). Without the directory lock both could find
    /// the stale file refused, and the second unlink and replace the first one's new socket file.
    @Test func twoInstancesStartingTogetherOnOnePathLeaveOneOwner() async throws {
        final class Round: Sendable {
            let ready = Atomic<Int>(0)
            let results = Mutex<[Result<DatagramSocket, SyslogIngestError>]>([])
        }
        let path = NSTemporaryDirectory() + "pixeld-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
        defer { unlink(path) }
        for round in 0..<20 {
            let stale = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            #expect(withUnixAddress(path, { bind(stale, $0, $1) }) == 0)
            close(stale)
            let state = Round()
            let threads = (0..<2).map { _ in
                DedicatedThread(name: "pixeld-bind") {
                    // Both bind as soon as both are ready (a bounded spin).
                    state.ready.add(1, ordering: .relaxed)
                    var spins = 0
                    while state.ready.load(ordering: .relaxed) < 2 && spins < 1_000_000 {
                        spins += 1
                        sched_yield()
                    }
                    let result = Result { () throws(SyslogIngestError) in
                        try DatagramSocket(binding: .unix(path: path, mode: 0o600), receiveBufferBytes: 0)
                    }
                    state.results.withLock { $0.append(result) }
                }
            }
            for thread in threads { #expect(thread.join(timeoutNanoseconds: 10_000_000_000), "round \(round): a bind hung") }
            let results = state.results.withLock { $0 }
            let winners = results.compactMap { try? $0.get() }
            let refusals = results.compactMap { result -> String? in
                if case .failure(let error) = result { "\(error)" } else { nil }
            }
            #expect(winners.count == 1, "round \(round): \(winners.count) of 2 bound the path")
            #expect(refusals == ["bind \(path): in use by another process (another pixeld ingest?)"], "round \(round)")
            guard winners.count == 1, let winner = winners.first else {
                winners.forEach { $0.close() }
                break
            }
            let sink = CollectingSink()
            let listener = DatagramListener(socket: winner, rules: IngestRules(), sink: sink, logger: .init(label: "test"))
            listener.start()
            send([Array("<158>pixel: round \(round)".utf8)], toUnix: path)
            #expect(sink.wait(for: 1), "round \(round): the winner lost its socket file")
            await listener.stop()
            #expect(!FileManager.default.fileExists(atPath: path), "round \(round): the winner's stop removes its file")
        }
    }

    /// A closing socket removes its file only while it is its own: here the path was taken over in
    /// between (its file removed and bound again), and the new socket's file stays.
    @Test func closingRemovesOnlyItsOwnSocketFile() throws {
        let path = NSTemporaryDirectory() + "pixeld-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
        let old = try DatagramSocket(binding: .unix(path: path, mode: 0o666), receiveBufferBytes: 0)
        unlink(path)
        let new = try DatagramSocket(binding: .unix(path: path, mode: 0o666), receiveBufferBytes: 0)
        old.close()
        #expect(FileManager.default.fileExists(atPath: path), "the new socket's file was removed")
        new.close()
        #expect(!FileManager.default.fileExists(atPath: path))
    }

    /// A request between `net.core.rmem_max` and twice it: the kernel grants rmem_max and reports
    /// twice that, more than was asked for, yet the buffer is short of it; with `CAP_NET_ADMIN` (the
    /// unit's, and root's here) `SO_RCVBUFFORCE` gets the whole request.
    @Test func aReceiveBufferCappedBelowTheRequestIsForced() throws {
        let text = try String(contentsOfFile: "/proc/sys/net/core/rmem_max", encoding: .utf8)
        let cap = try #require(Int(text.trimmingCharacters(in: .whitespacesAndNewlines)))
        // A request must fit the kernel's int: on a host whose cap is that large there is no such case.
        guard cap < 1 << 29 else { return }
        let requested = cap + cap / 2
        let socket = try DatagramSocket(binding: .udp(host: "127.0.0.1", port: 0), receiveBufferBytes: requested)
        defer { socket.close() }
        if Self.hasCapability(12) {  // CAP_NET_ADMIN (a container's root may lack it)
            #expect(socket.grantedReceiveBufferBytes >= requested, "rmem_max \(cap), asked for \(requested), got \(socket.grantedReceiveBufferBytes)")
        } else {
            #expect(socket.grantedReceiveBufferBytes < requested, "not privileged: the cap must show")
        }
    }

    /// `--unix-owner USER[:GROUP]`: names or numbers, looked up when parsed (an unknown one is an
    /// error naming it); the socket file gets them, and a part not given stays as it is.
    @Test func unixOwnerIsParsedOnceAndGivenToTheSocketFile() throws {
        #expect(try UnixOwner(parsing: "0") == UnixOwner(uid: 0, gid: nil))
        #expect(try UnixOwner(parsing: ":0") == UnixOwner(uid: nil, gid: 0))
        #expect(try UnixOwner(parsing: "root:root") == UnixOwner(uid: 0, gid: 0))
        #expect(throws: SyslogIngestError.self) { try UnixOwner(parsing: "no-such-user-x:root") }
        do {
            _ = try UnixOwner(parsing: "root:no-such-group-x")
            Issue.record("an unknown group was taken")
        } catch {
            #expect(error.description == "--unix-owner: unknown group 'no-such-group-x'")
        }
        guard getuid() == 0 else { return }  // chown to another user needs root
        let path = NSTemporaryDirectory() + "pixeld-test-\(getpid())-owner.sock"
        let socket = try DatagramSocket(binding: .unix(path: path, mode: 0o660), receiveBufferBytes: 0)
        defer { socket.close() }
        try socket.changeOwner(to: UnixOwner(parsing: "65534"))
        var info = stat()
        #expect(lstat(path, &info) == 0 && info.st_uid == 65534 && info.st_gid == 0, "uid \(info.st_uid) gid \(info.st_gid)")
        try socket.changeOwner(to: UnixOwner(parsing: ":65534"))
        #expect(lstat(path, &info) == 0 && info.st_uid == 65534 && info.st_gid == 65534, "uid \(info.st_uid) gid \(info.st_gid)")
    }

    /// The largest request the flag takes, 1 GiB, is one byte over the kernel's own limit
    /// (`INT_MAX / 2`): granted that limit, the buffer is not short of the request (no warning).
    @Test func theKernelsLargestReceiveBufferIsNotShortOfOneGiB() throws {
        let socket = try DatagramSocket(binding: .udp(host: "127.0.0.1", port: 0), receiveBufferBytes: 1 << 30)
        defer { socket.close() }
        if Self.hasCapability(12) {
            #expect(socket.grantedReceiveBufferBytes == DatagramSocket.largestReceiveBufferBytes)
            #expect(!socket.receiveBufferIsShort(of: 1 << 30))
        } else {
            #expect(socket.receiveBufferIsShort(of: 1 << 30), "granted \(socket.grantedReceiveBufferBytes)")
        }
    }

    /// Whether this process has capability `number` in its effective set (`CapEff` in /proc/self/status).
    static func hasCapability(_ number: Int) -> Bool {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("CapEff:") }),
            let mask = UInt64(line.dropFirst("CapEff:".count).trimmingCharacters(in: .whitespaces), radix: 16)
        else { return false }
        return mask & (1 << UInt64(number)) != 0
    }

    @Test func oversizeDatagramsAreDroppedNotTruncated() async throws {
        let rules = IngestRules(facilities: .default, programs: ProgramPolicy(), maxMessageBytes: 1000)
        let (listener, sink) = try listener(.udp(host: "127.0.0.1", port: 0), rules: rules)
        let port = try boundUDPPort(listener.socket.address)
        let big = Array("<158>pixel: ".utf8) + Array(repeating: UInt8(ascii: "x"), count: 5000)
        try send([big, Array("<158>pixel: small".utf8)], toUDP: port)
        #expect(sink.wait(for: 1))
        await listener.stop()
        #expect(listener.statistics.dropped(.oversize) == 1)
        #expect(sink.received.map { $0.1 } == [Array("small".utf8)])
    }

    @Test func stopDrainsWhatTheSocketAlreadyHolds() async throws {
        let socket = try DatagramSocket(binding: .udp(host: "127.0.0.1", port: 0), receiveBufferBytes: 4 << 20)
        let port = try boundUDPPort(socket.address)
        // Queue datagrams before the listener runs, then stop it at once: all must be handed over.
        try send((0..<300).map { Array("<158>pixel: \($0)".utf8) }, toUDP: port)
        let sink = CollectingSink()
        let listener = DatagramListener(socket: socket, rules: IngestRules(), sink: sink, logger: .init(label: "test"))
        listener.start()
        await listener.stop()
        #expect(sink.received.count == 300)
        #expect(sink.received.map { String(decoding: $0.1, as: UTF8.self) } == (0..<300).map(String.init))
    }

    /// Senders faster than the sink keep the socket from ever falling empty: the drain at a stop
    /// ends at its deadline (250 ms) rather than when the flood does (up to 5 s here), so SIGTERM keeps
    /// its bound. What was handed over is counted, in order.
    @Test func stopUnderAFloodEndsAtTheDrainDeadline() async throws {
        // A slow sink: 100 µs per message, far below what one sender thread offers.
        let sink = CollectingSink(onAccept: { _ in usleep(100) })
        let socket = try DatagramSocket(binding: .udp(host: "127.0.0.1", port: 0), receiveBufferBytes: 1 << 20)
        let port = try boundUDPPort(socket.address)
        let listener = DatagramListener(socket: socket, rules: IngestRules(), sink: sink, logger: .init(label: "test"))
        listener.start()
        let flooding = Atomic<Bool>(true)
        let sender = DedicatedThread(name: "pixeld-flood") {
            let fd = Glibc.socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
            defer { close(fd) }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let datagram = Array("<158>Nov 22 10:00:00 web-1 pixel: flood".utf8)
            let deadline = MonotonicClock.nanoseconds() + 5_000_000_000
            while flooding.load(ordering: .relaxed) && MonotonicClock.nanoseconds() < deadline {
                _ = withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        sendto(fd, datagram, datagram.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                    }
                }
            }
        }
        defer {
            flooding.store(false, ordering: .relaxed)
            _ = sender.join(timeoutNanoseconds: 10_000_000_000)
        }
        #expect(sink.wait(for: 2_000), "the flood did not arrive")
        let stopAt = MonotonicClock.nanoseconds()
        await listener.stop()
        let stopped = MonotonicClock.nanoseconds() - stopAt
        #expect(stopped < 2_000_000_000, "the drain lasted \(stopped / 1_000_000) ms: as long as the flood")
        #expect(listener.statistics.accepted == sink.received.count)
    }

    @Test(arguments: ["nohost", "1.2.3.4", "[::1", "127.0.0.1:99999", ":5514"])
    func badUDPAddressesFailWithOneLine(text: String) {
        #expect(throws: SyslogIngestError.self) { try ListenAddress.udp(parsing: text) }
    }
}

/// The TCP listener on a real loopback socket: several peers at once, both framings, a garbage peer.
@Suite struct StreamListenerTests {
    private func connect(_ port: Int) -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, "127.0.0.1", &address.sin_addr)
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        #expect(result == 0)
        return fd
    }

    private func write(_ fd: Int32, _ text: String) {
        let bytes = Array(text.utf8)
        #expect(send(fd, bytes, bytes.count, Int32(MSG_NOSIGNAL)) == bytes.count)
    }

    @Test func stopReadsWhatWasSentBeforeIt() async throws {
        let sink = DatagramListenerTests.CollectingSink()
        let listener = try StreamListener(host: "127.0.0.1", port: 0, rules: IngestRules(), sink: sink, logger: .init(label: "test"))
        listener.start()
        let fd = connect(listener.port)
        for _ in 0..<500 where listener.connections == 0 { usleep(10_000) }  // accepted (not in the backlog)
        #expect(listener.connections == 1)
        for index in 0..<2000 { write(fd, "<158>pixel: before-stop-\(index)\n") }  // in the kernel's buffer on return
        await listener.stop()
        close(fd)
        #expect(sink.received.map { String(decoding: $0.1, as: UTF8.self) } == (0..<2000).map { "before-stop-\($0)" })
    }

    @Test func aLastLineWithoutLFIsAMessageWhenThePeerCloses() async throws {
        let sink = DatagramListenerTests.CollectingSink()
        let listener = try StreamListener(host: "127.0.0.1", port: 0, rules: IngestRules(), sink: sink, logger: .init(label: "test"))
        listener.start()
        let fd = connect(listener.port)
        write(fd, "<158>pixel: first\n<158>pixel: hi")  // as `printf '<158>pixel: hi' | nc` sends
        close(fd)
        #expect(sink.wait(for: 2))
        await listener.stop()
        #expect(sink.received.map { String(decoding: $0.1, as: UTF8.self) } == ["first", "hi"])
        #expect(listener.statistics.received == 2 && listener.statistics.accepted == 2)
    }

    /// A peer sends its last line without LF and closes while the listener is held up; the stop's
    /// drain reads the line only after its grace period, and closes the connection without reading
    /// the end of stream: the line is still a message (it was counted `truncated`).
    @Test func aPeerThatClosedBeforeTheStopIsNotTruncated() async throws {
        final class Gate: Sendable {
            let entered = Atomic<Bool>(false)
            let open = Atomic<Bool>(false)
        }
        let gate = Gate()
        let sink = DatagramListenerTests.CollectingSink { text in
            if text == "gate" {
                gate.entered.store(true, ordering: .relaxed)
                for _ in 0..<500 where !gate.open.load(ordering: .relaxed) { usleep(10_000) }
            } else if text == "slow" {
                usleep(400_000)  // past the drain's 250 ms grace
            }
        }
        let listener = try StreamListener(host: "127.0.0.1", port: 0, rules: IngestRules(), sink: sink, logger: .init(label: "test"))
        listener.start()
        let holder = connect(listener.port)  // served first: accepted first
        for _ in 0..<500 where listener.connections < 1 { usleep(10_000) }
        let closer = connect(listener.port)
        for _ in 0..<500 where listener.connections < 2 { usleep(10_000) }
        #expect(listener.connections == 2)
        write(holder, "<158>pixel: gate\n")
        for _ in 0..<500 where !gate.entered.load(ordering: .relaxed) { usleep(10_000) }  // held in the sink
        write(holder, "<158>pixel: slow\n")  // read in the drain, before the closer's line
        write(closer, "<158>pixel: hi")
        close(closer)
        let stopping = Task { await listener.stop() }
        // The gate opens once the stop is asked for: the rest is read by the drain.
        for _ in 0..<500 where !listener.stopRequested.load(ordering: .relaxed) { usleep(10_000) }
        let stopAsked = listener.stopRequested.load(ordering: .relaxed)
        #expect(stopAsked, "stop() was not asked for within 5 s")
        gate.open.store(true, ordering: .relaxed)
        await stopping.value
        close(holder)
        #expect(sink.received.map { String(decoding: $0.1, as: UTF8.self) } == ["gate", "slow", "hi"])
        #expect(listener.statistics.dropped(.truncated) == 0)
    }

    /// A peer that resets its connection (a crash, `SO_LINGER` 0) mid-line: the part is `truncated`,
    /// not a message, although the reset socket then reads as closed.
    @Test func aLineCutShortByAResetIsTruncated() async throws {
        let sink = DatagramListenerTests.CollectingSink()
        let listener = try StreamListener(host: "127.0.0.1", port: 0, rules: IngestRules(), sink: sink, logger: .init(label: "test"))
        listener.start()
        let fd = connect(listener.port)
        for _ in 0..<500 where listener.connections == 0 { usleep(10_000) }
        write(fd, "<158>pixel: whole\n<158>pixel: 1379183721.115,e=pagev")
        #expect(sink.wait(for: 1))
        usleep(50_000)  // the part read and held by the framer
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        close(fd)  // RST
        for _ in 0..<500 where listener.statistics.received < 2 { usleep(10_000) }
        await listener.stop()
        #expect(sink.received.map { String(decoding: $0.1, as: UTF8.self) } == ["whole"])
        #expect(listener.statistics.dropped(.truncated) == 1)
        #expect(listener.statistics.received == 2)
    }

    @Test func anIncompleteFrameIsCountedTruncatedWhenThePeerClosesOrAtStop() async throws {
        let sink = DatagramListenerTests.CollectingSink()
        let listener = try StreamListener(host: "127.0.0.1", port: 0, rules: IngestRules(), sink: sink, logger: .init(label: "test"))
        listener.start()
        let counted = connect(listener.port)
        write(counted, "15 <158>pixel: one40 <158>pixel: cut short")  // the second frame ends early
        close(counted)
        #expect(sink.wait(for: 1))
        for _ in 0..<500 where listener.statistics.received < 2 { usleep(10_000) }
        #expect(listener.statistics.dropped(.truncated) == 1)
        let open = connect(listener.port)  // still sending its line when pixeld stops
        write(open, "<158>pixel: half a li")
        for _ in 0..<500 where listener.connections == 0 { usleep(10_000) }
        usleep(50_000)  // read, and held by the framer
        await listener.stop()
        close(open)
        #expect(sink.received.map { String(decoding: $0.1, as: UTF8.self) } == ["one"])
        #expect(listener.statistics.dropped(.truncated) == 2)
        #expect(listener.statistics.received == 3)
        #expect(listener.statistics.received == listener.statistics.accepted + listener.statistics.droppedTotal)
    }

    @Test func stopEndsWhileAPeerKeepsSending() async throws {
        let sink = DatagramListenerTests.CollectingSink()
        let listener = try StreamListener(host: "127.0.0.1", port: 0, rules: IngestRules(), sink: sink, logger: .init(label: "test"))
        listener.start()
        let fd = connect(listener.port)
        final class Flag: Sendable { let on = Atomic<Bool>(true) }
        let sending = Flag()
        let senderDone = DispatchSemaphore(value: 0)
        let sender = Thread {  // a forwarder with a backlog: sends for as long as it is let
            defer { senderDone.signal() }
            let line = Array("<158>pixel: backlog\n".utf8)
            var sent = 0
            while sending.on.load(ordering: .relaxed) && sent < 50_000_000 {
                let n = send(fd, line, line.count, Int32(MSG_NOSIGNAL))
                if n <= 0 { break }
                sent += n
            }
        }
        sender.start()
        #expect(sink.wait(for: 1000))
        let started = ContinuousClock.now
        await listener.stop()
        let stopping = ContinuousClock.now - started
        sending.on.store(false, ordering: .relaxed)
        // The sender ends before its descriptor is closed: a send after the close could otherwise
        // write into the next test's connection, given the same descriptor number.
        shutdown(fd, Int32(SHUT_RDWR))
        senderDone.wait()
        close(fd)
        #expect(stopping < .seconds(2), "stop() read on for \(stopping) while the peer kept sending")
    }

    /// CPU seconds (user + system) of this process's threads named `name`, from /proc/self/task.
    private func threadCPUSeconds(named name: String) -> Double {
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
        return tasks.reduce(0) { total, task in
            guard let comm = try? String(contentsOfFile: "/proc/self/task/\(task)/comm", encoding: .utf8),
                comm.trimmingCharacters(in: .whitespacesAndNewlines) == name,
                let stat = try? String(contentsOfFile: "/proc/self/task/\(task)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { return total }
            // Fields after "(comm)": state is field 3; utime and stime are fields 14 and 15.
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return total + ((Double(fields[11]) ?? 0) + (Double(fields[12]) ?? 0)) / ticks
        }
    }

    /// At the connection limit the listening socket leaves the poll set: a peer waiting in the
    /// backlog must not keep the loop spinning (it did: poll returned at once, again and again).
    @Test func atTheConnectionLimitAWaitingPeerDoesNotSpinTheListener() async throws {
        let sink = DatagramListenerTests.CollectingSink()
        let listener = try StreamListener(
            host: "127.0.0.1", port: 0, rules: IngestRules(), sink: sink, logger: .init(label: "test"), maxConnections: 1
        )
        listener.start()
        let first = connect(listener.port)
        for _ in 0..<500 where listener.connections == 0 { usleep(10_000) }
        #expect(listener.connections == 1)
        let waiting = connect(listener.port)  // in the backlog: over the limit
        write(waiting, "<158>pixel: waited\n")
        let before = threadCPUSeconds(named: "pixeld-tcp")
        try await Task.sleep(for: .seconds(1))
        let used = threadCPUSeconds(named: "pixeld-tcp") - before
        #expect(used < 0.3, "the listener thread used \(used) s of CPU in 1 s while a peer waited")
        // The first peer leaves: the waiting one is accepted and read.
        close(first)
        #expect(sink.wait(for: 1))
        #expect(sink.received.map { String(decoding: $0.1, as: UTF8.self) } == ["waited"])
        close(waiting)
        await listener.stop()
    }

    /// Four peers have ~100 KiB each waiting when the listener gets to them: the sink's batches each
    /// hold at most one 64-KiB read, not everything one poll round read (which went past
    /// `--buffer-bytes` into the queue, and stayed the size of the sink's buffer).
    @Test func aBatchHoldsOneReadNotAWholeRound() async throws {
        final class BatchSizes: AcceptedMessageSink, @unchecked Sendable {
            let lock = ConditionLock()
            private var current = 0
            private(set) var batches: [Int] = []
            private(set) var total = 0
            let entered = Atomic<Bool>(false)
            let open = Atomic<Bool>(false)
            func accept(program: UnsafeRawBufferPointer, message: UnsafeRawBufferPointer, acceptedAt: Int64) {
                if message.elementsEqual("gate".utf8) {
                    entered.store(true, ordering: .relaxed)
                    for _ in 0..<500 where !open.load(ordering: .relaxed) { usleep(10_000) }
                }
                lock.withLock {
                    current += program.count + message.count
                    total += 1
                }
            }
            func endOfBatch() -> Bool {
                lock.withLock {
                    if current > 0 { batches.append(current) }
                    current = 0
                }
                return true
            }
            var largest: Int { lock.withLock { batches.max() ?? 0 } }
            var count: Int { lock.withLock { total } }
        }
        let sink = BatchSizes()
        let listener = try StreamListener(host: "127.0.0.1", port: 0, rules: IngestRules(), sink: sink, logger: .init(label: "test"))
        listener.start()
        let holder = connect(listener.port)
        var peers: [Int32] = []
        for _ in 0..<4 { peers.append(connect(listener.port)) }
        for _ in 0..<500 where listener.connections < 5 { usleep(10_000) }
        #expect(listener.connections == 5)
        write(holder, "<158>pixel: gate\n")
        for _ in 0..<500 where !sink.entered.load(ordering: .relaxed) { usleep(10_000) }  // held in the sink
        let line = "<158>pixel: " + String(repeating: "x", count: 88) + "\n"  // 101 bytes
        for fd in peers { write(fd, String(repeating: line, count: 1000)) }  // ~99 KiB each, in the kernel
        sink.open.store(true, ordering: .relaxed)
        for _ in 0..<500 where sink.count < 4001 { usleep(10_000) }
        for fd in peers + [holder] { close(fd) }
        await listener.stop()
        #expect(sink.count == 4001)
        #expect(sink.largest <= 64 << 10, "largest batch \(sink.largest) bytes")
    }

    @Test func manyPeersBothFramingsAndAGarbagePeer() async throws {
        let sink = DatagramListenerTests.CollectingSink()
        let listener = try StreamListener(host: "127.0.0.1", port: 0, rules: IngestRules(), sink: sink, logger: .init(label: "test"))
        listener.start()
        let staller = connect(listener.port)
        write(staller, "<158>pixel: never finished")  // no LF: must not hold anyone up
        let garbage = connect(listener.port)
        write(garbage, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        var peers: [Int32] = []
        for peer in 0..<20 {
            let fd = connect(listener.port)
            peers.append(fd)
            for index in 0..<50 {
                let message = "<158>pixel: p\(peer)-\(index)"
                write(fd, peer.isMultiple(of: 2) ? "\(message.utf8.count) \(message)" : message + "\n")
            }
        }
        #expect(sink.wait(for: 1000))
        for fd in peers + [staller, garbage] { close(fd) }
        await listener.stop()
        #expect(sink.received.count == 1001)
        #expect(sink.received.filter { $0.1 == Array("never finished".utf8) }.count == 1, "its close ends the last line")
        for peer in 0..<20 {
            let mine = sink.received.map { String(decoding: $0.1, as: UTF8.self) }.filter { $0.hasPrefix("p\(peer)-") }
            #expect(mine == (0..<50).map { "p\(peer)-\($0)" }, "per-connection order is kept")
        }
        #expect(listener.statistics.dropped(.malformed) == 1)
    }
}
