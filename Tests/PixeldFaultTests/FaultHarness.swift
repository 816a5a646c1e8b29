import Foundation
import PixeldTestSupport

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// The fault suite's own tools: sequence-numbered pixel messages, paced senders (UDP and TCP), a
// `pixeld ingest` wrapper with /metrics scraping and /proc sampling, exact loss/duplicate counting,
// and a TCP proxy that loses Redis replies on purpose. Loopback only; every wait is bounded.

// MARK: - Messages

/// Pixel hits numbered so that loss, duplicates and order can be counted exactly.
enum PixelMessage {
    /// The value nginx would log (`$msec,$args`): `1763805600.001,seq=000001`, padded with `&pad=…` to
    /// about `padTo` bytes when asked.
    static func value(seq: Int, padTo: Int = 0) -> String {
        let seconds = 1_763_805_600 + seq / 1000
        let milliseconds = seq % 1000
        var text = "\(seconds).\(zeroPadded(milliseconds, 3)),seq=\(zeroPadded(seq, 6))"
        if padTo > text.utf8.count + 5 {
            text += "&pad=" + String(repeating: "x", count: padTo - text.utf8.count - 5)
        }
        return text
    }

    /// The RFC 3164 datagram nginx sends for it: `<158>pixel: VALUE` (local3.info).
    static func syslog(seq: Int, program: String = "pixel", padTo: Int = 0) -> [UInt8] {
        Array("<158>\(program): \(value(seq: seq, padTo: padTo))".utf8)
    }

    static func zeroPadded(_ number: Int, _ width: Int) -> String {
        let digits = String(number)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }

    /// The number after `seq` in a stored value (`seq=000123`) or a JSON line (`"seq":"000123"`).
    static func seq(in bytes: [UInt8]) -> Int? {
        let s = UInt8(ascii: "s"), e = UInt8(ascii: "e"), q = UInt8(ascii: "q")
        var index = 0
        while index + 3 < bytes.count {
            if bytes[index] == s && bytes[index + 1] == e && bytes[index + 2] == q {
                var cursor = index + 3
                var skipped = 0
                while cursor < bytes.count, skipped < 3, bytes[cursor] == UInt8(ascii: "=") || bytes[cursor] == UInt8(ascii: "\"")
                    || bytes[cursor] == UInt8(ascii: ":")
                {
                    cursor += 1
                    skipped += 1
                }
                var number = 0
                var digits = 0
                while cursor < bytes.count, bytes[cursor] >= UInt8(ascii: "0"), bytes[cursor] <= UInt8(ascii: "9"), digits < 12 {
                    number = number * 10 + Int(bytes[cursor] - UInt8(ascii: "0"))
                    cursor += 1
                    digits += 1
                }
                if skipped > 0 && digits > 0 { return number }
            }
            index += 1
        }
        return nil
    }
}

// MARK: - Counting

/// Exact accounting of which expected sequence numbers arrived, how often, and in which order.
struct Tally {
    /// Expected sequence numbers.
    let expected: Int
    /// Distinct expected sequence numbers found.
    var delivered = 0
    /// Extra copies of sequence numbers already found.
    var duplicated = 0
    /// Values that carry no sequence number or one that was not expected.
    var unexpected = 0
    /// Whether the expected sequence numbers appear in ascending order (first occurrences).
    var inOrder = true
    /// Some of the missing sequence numbers, for failure messages.
    var missingSample: [Int] = []
    /// Some duplicated sequence numbers, for failure messages.
    var duplicatedSample: [Int] = []

    var lost: Int { expected - delivered }

    /// - Parameters:
    ///   - values: values in arrival order (oldest first).
    ///   - expected: the sequence numbers that must arrive exactly once.
    init(_ values: [[UInt8]], expected: Set<Int>) {
        self.expected = expected.count
        var seen = Set<Int>()
        seen.reserveCapacity(values.count)
        var previous = Int.min
        for value in values {
            guard let seq = PixelMessage.seq(in: value), expected.contains(seq) else {
                unexpected += 1
                continue
            }
            if seen.insert(seq).inserted {
                if seq < previous { inOrder = false }
                previous = seq
            } else {
                duplicated += 1
                if duplicatedSample.count < 5 { duplicatedSample.append(seq) }
            }
        }
        delivered = seen.count
        missingSample = Array(expected.subtracting(seen).sorted().prefix(5))
    }

    /// Sequence numbers `range` expected.
    init(_ values: [[UInt8]], expected range: ClosedRange<Int>) {
        self.init(values, expected: Set(range))
    }

    var summary: String {
        "delivered \(delivered) of \(expected), lost \(lost) (e.g. \(missingSample)), duplicated \(duplicated) (e.g. \(duplicatedSample)), unexpected \(unexpected), in order \(inOrder)"
    }
}

/// Prints the scenario's one summary line, `FAULT name: k=v k=v…`, and returns it.
@discardableResult
func reportFault(_ name: String, _ fields: KeyValuePairs<String, Any>) -> String {
    let line = "FAULT \(name): " + fields.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
    // Straight to file descriptor 1, unbuffered, so the line is there even if a later test crashes.
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
    return line
}

/// Milliseconds since `start` (monotonic).
func milliseconds(since start: ContinuousClock.Instant) -> Int {
    let elapsed = ContinuousClock.now - start
    return Int(elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000)
}

// MARK: - Redis helpers

extension RedisServer {
    /// The whole list in arrival order (oldest first: the reverse of `LRANGE`), fetched in chunks.
    func arrivalOrder(_ key: String) throws -> [[UInt8]] {
        let connection = try connect(timeout: 30)
        var values: [[UInt8]] = []
        var start = 0
        let chunk = 10_000
        for _ in 0..<1000 {
            let reply = try connection.command(["LRANGE", key, String(start), String(start + chunk - 1)])
            guard let elements = reply.array else { throw TestSupportError("LRANGE \(key) replied \(reply)") }
            values += elements.compactMap(\.bytes)
            if elements.count < chunk { break }
            start += chunk
        }
        return values.reversed()
    }

    /// `LPUSH key` of `values` in pipelined chunks, the first value ending up oldest (at the tail).
    func prefill(_ key: String, _ values: [String]) throws {
        let connection = try connect(timeout: 30)
        var index = 0
        while index < values.count {
            let end = min(values.count, index + 1000)
            let reply = try connection.command(bytes: [Array("LPUSH".utf8), Array(key.utf8)] + values[index..<end].map { Array($0.utf8) })
            if reply.isError { throw TestSupportError("LPUSH \(key): \(reply)") }
            index = end
        }
    }

    /// `EXISTS key == 1`.
    func exists(_ key: String) throws -> Bool {
        try command(["EXISTS", key]).integer == 1
    }
}

// MARK: - Senders

/// Sends syslog messages to pixeld; used by one thread at a time.
protocol SyslogSender: AnyObject, Sendable {
    /// Sends one message; `false` when the peer is gone (the stream stops then).
    func send(_ message: [UInt8]) -> Bool
    func close()
}

/// UDP datagrams from an unconnected socket to 127.0.0.1:`port`, as nginx sends them.
final class UDPSyslogSender: SyslogSender, @unchecked Sendable {
    // @unchecked Sendable: used by one thread at a time (handed to a PacedStream).
    private let fd: Int32
    private var address = sockaddr_in()

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue | SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw TestSupportError("socket(udp) failed: errno \(errno)") }
        var size: Int32 = 1 << 20
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
    }

    func send(_ message: [UInt8]) -> Bool {
        for _ in 0..<100 {
            let sent = message.withUnsafeBytes { bytes in
                withUnsafePointer(to: &address) { pointer in
                    pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        sendto(fd, bytes.baseAddress, bytes.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                    }
                }
            }
            if sent >= 0 { return true }
            if errno == EINTR || errno == ENOBUFS || errno == EAGAIN {
                usleep(200)
                continue
            }
            return false
        }
        return false
    }

    func close() { systemClose(fd) }
    deinit { close() }
}

/// One TCP connection to pixeld's `--tcp` listener, LF framing (`<158>pixel: …\n`), as rsyslog sends.
/// A full socket (pixeld applying backpressure) blocks the writer, at most `sendTimeout` seconds.
final class TCPSyslogSender: SyslogSender, @unchecked Sendable {
    // @unchecked Sendable: used by one thread at a time (handed to a PacedStream).
    private let fd: Int32
    private var closed = false
    private var buffer: [UInt8] = []

    init(port: Int, sendTimeout: Int = 20) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue | SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw TestSupportError("socket(tcp) failed: errno \(errno)") }
        guard connectToLoopback(fd, port: port) else {
            let code = errno
            systemClose(fd)
            throw TestSupportError("connect(tcp 127.0.0.1:\(port)) failed: errno \(code)")
        }
        var timeout = timeval(tv_sec: sendTimeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    func send(_ message: [UInt8]) -> Bool {
        buffer.removeAll(keepingCapacity: true)
        buffer += message
        buffer.append(UInt8(ascii: "\n"))
        var offset = 0
        while offset < buffer.count {
            let written = buffer.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if written < 0 {
                if errno == EINTR { continue }
                return false
            }
            offset += written
        }
        return true
    }

    func close() {
        guard !closed else { return }
        closed = true
        systemClose(fd)
    }

    deinit { close() }
}

/// Sends messages `seqs` at a steady rate on a background thread (bounded in count and time).
final class PacedStream: @unchecked Sendable {
    // @unchecked Sendable: mutable state is guarded by `lock`; the sender is used by the thread only.
    private let lock = NSLock()
    private var sentCount = 0
    private var stopRequested = false
    private var finished = false
    private var failure: String?
    private var lastSendAt: ContinuousClock.Instant?
    let total: Int
    let startedAt = ContinuousClock.now

    /// - Parameters:
    ///   - sender: where to send; closed when the stream ends.
    ///   - seqs: sequence numbers to send, in order.
    ///   - rate: messages per second.
    ///   - message: the bytes of one message.
    init(sender: any SyslogSender, seqs: [Int], rate: Int, message: @escaping @Sendable (Int) -> [UInt8]) {
        total = seqs.count
        let deadline = Double(seqs.count) / Double(rate) * 3 + 30
        let thread = Thread { [self] in
            let start = ContinuousClock.now
            var index = 0
            while index < seqs.count {
                if isStopRequested { break }
                let elapsed = ContinuousClock.now - start
                let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
                if seconds > deadline {
                    record(failure: "paced stream ran out of time after \(index) of \(seqs.count)")
                    break
                }
                let due = min(seqs.count, Int(seconds * Double(rate)) + 1)
                while index < due {
                    guard sender.send(message(seqs[index])) else {
                        record(failure: "send failed at message \(index) (errno \(errno))")
                        index = seqs.count
                        break
                    }
                    index += 1
                    lock.withLock {
                        sentCount = index
                        lastSendAt = .now
                    }
                }
                if index < seqs.count { usleep(1000) }
            }
            sender.close()
            lock.withLock { finished = true }
        }
        thread.name = "pixeld-fault-sender"
        thread.start()
    }

    private var isStopRequested: Bool { lock.withLock { stopRequested } }
    private func record(failure text: String) { lock.withLock { failure = text } }

    /// Messages sent so far (each `send` returned before this count included it).
    var sent: Int { lock.withLock { sentCount } }
    /// When the last message was sent.
    var lastSent: ContinuousClock.Instant? { lock.withLock { lastSendAt } }
    /// Why the stream stopped early, if it did.
    var error: String? { lock.withLock { failure } }
    var isFinished: Bool { lock.withLock { finished } }

    /// Asks the thread to stop after the message in hand.
    func stop() { lock.withLock { stopRequested = true } }

    /// Waits until `sent` reaches `count` (or the stream ends).
    @discardableResult
    func waitUntilSent(_ count: Int, timeout: TimeInterval) -> Bool {
        Poll.until(timeout: timeout, interval: 0.002) { sent >= count || isFinished }
        return sent >= count
    }

    /// Waits for the stream to end.
    @discardableResult
    func wait(timeout: TimeInterval) -> Bool {
        Poll.until(timeout: timeout, interval: 0.005) { isFinished }
    }
}

// MARK: - pixeld ingest

/// `/metrics` of a pixeld ingest, parsed.
struct IngestMetrics {
    struct Sample {
        var name: String
        var labels: [String: String]
        var value: Double
    }

    var samples: [Sample] = []

    init(text: String) {
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
            let head = line[..<space]
            var name = String(head)
            var labels: [String: String] = [:]
            if let brace = head.firstIndex(of: "{"), head.hasSuffix("}") {
                name = String(head[..<brace])
                let inner = head[head.index(after: brace)..<head.index(before: head.endIndex)]
                for pair in inner.split(separator: ",") {
                    let parts = pair.split(separator: "=", maxSplits: 1)
                    guard parts.count == 2 else { continue }
                    labels[String(parts[0])] = String(parts[1]).trimmingCharacters(in: CharacterSet(charactersIn: "\""))
                }
            }
            samples.append(Sample(name: name, labels: labels, value: value))
        }
    }

    /// The sum over all series of `name` (0 when absent).
    func sum(_ name: String) -> Int {
        Int(samples.filter { $0.name == name }.reduce(0) { $0 + $1.value })
    }

    /// The series of `name` with `label=value`.
    func value(_ name: String, _ label: String, _ value: String) -> Int {
        Int(samples.first { $0.name == name && $0.labels[label] == value }?.value ?? 0)
    }

    func has(_ name: String) -> Bool { samples.contains { $0.name == name } }

    var received: Int { sum("pixeld_ingest_datagrams_total") }
    var pushed: Int { sum("pixeld_redis_pushed_total") }
    var queued: Int { sum("pixeld_queue_messages") }
    var queueBytes: Int { sum("pixeld_queue_bytes") }
    var spooled: Int { sum("pixeld_spool_messages") }
    var deadLettered: Int { sum("pixeld_redis_dead_lettered_total") }
    var recovered: Int { sum("pixeld_redis_recovered_total") }
    var reconnects: Int { sum("pixeld_redis_reconnects_total") }
    var kernelDrops: Int { sum("pixeld_ingest_kernel_drops_total") }
    var spoolWriteErrors: Int { sum("pixeld_spool_write_errors_total") }
    var droppedTotal: Int { sum("pixeld_ingest_dropped_total") }
    func dropped(_ reason: String) -> Int { value("pixeld_ingest_dropped_total", "reason", reason) }

    /// `received == pushed + queued + spooled + dead_lettered + Σ dropped`.
    var invariantHolds: Bool { received == pushed + queued + spooled + deadLettered + droppedTotal }
    var invariantText: String {
        "received \(received) vs pushed \(pushed) + queued \(queued) + spooled \(spooled) + dead_lettered \(deadLettered) + dropped \(droppedTotal) = \(pushed + queued + spooled + deadLettered + droppedTotal)"
    }
}

/// Memory figures from `/proc/PID/status`, in KiB.
struct ProcMemory {
    var rssKiB = 0
    var peakKiB = 0

    init?(pid: Int32) {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") {
            let parts = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard parts.count >= 2, let value = Int(parts[1]) else { continue }
            if parts[0] == "VmRSS:" { rssKiB = value }
            if parts[0] == "VmHWM:" { peakKiB = value }
        }
    }
}

/// The CPU seconds (user + system) `pid` has used, from `/proc/PID/stat` (clock ticks of 1/100 s).
func cpuSeconds(pid: Int32) -> Double? {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else { return nil }
    // After "(comm)": state is field 3, utime and stime fields 14 and 15.
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
    return (user + system) / 100
}

/// A `pixeld ingest` child on free loopback ports with `/metrics`, killed when released.
final class IngestUnderTest {
    let process: PixeldProcess
    let metricsPort: Int
    let udpPort: Int?
    let tcpPort: Int?
    let arguments: [String]

    /// Starts `pixeld ingest [--udp …] [--tcp …] --redis URL --metrics … EXTRA` and waits for "ingest ready".
    /// A port taken by someone else between choosing and binding is retried with new ones.
    /// `openFileLimit` and `fileSizeLimit`: as ``PixeldProcess/start(_:environment:openFileLimit:fileSizeLimit:)`` takes them.
    init(
        redisURL: String, udp: Bool = true, tcp: Bool = false, extra: [String] = [], openFileLimit: Int? = nil,
        fileSizeLimit: Int? = nil
    ) throws {
        var lastError: (any Error)?
        for _ in 0..<3 {
            let udpPort = udp ? try PortAllocator.freeUDPPort() : nil
            let tcpPort = tcp ? try PortAllocator.freeTCPPort() : nil
            let metricsPort = try PortAllocator.freeTCPPort()
            var arguments = ["ingest"]
            if let udpPort { arguments += ["--udp", "127.0.0.1:\(udpPort)"] }
            if let tcpPort { arguments += ["--tcp", "127.0.0.1:\(tcpPort)"] }
            arguments += ["--redis", redisURL, "--metrics", "127.0.0.1:\(metricsPort)"] + extra
            let process = try PixeldProcess.start(arguments, openFileLimit: openFileLimit, fileSizeLimit: fileSizeLimit)
            do {
                try process.waitForStderr(containing: "ingest ready", timeout: 20)
                self.process = process
                self.udpPort = udpPort
                self.tcpPort = tcpPort
                self.metricsPort = metricsPort
                self.arguments = arguments
                return
            } catch {
                lastError = error
                process.process.stop(timeout: 2)
                if !process.stderrText.contains("in use") { break }
            }
        }
        throw lastError ?? TestSupportError("pixeld ingest did not start")
    }

    var pid: Int32 { process.pid }

    /// GET /metrics.
    func scrape() throws -> IngestMetrics {
        IngestMetrics(text: try httpGet(port: metricsPort, path: "/metrics"))
    }

    /// Waits until nothing is queued or spooled and every received message is accounted for
    /// (`received == pushed + dead_lettered + dropped`), with at least `received` messages in.
    /// - Returns: the metrics a little later (nothing should move any more by then).
    /// - Throws: ``TestSupportError`` with the last metrics seen when that does not happen within
    ///   `timeout` seconds (e.g. pixeld stopped receiving, or a message is neither pushed nor counted).
    @discardableResult
    func waitUntilQuiescent(received minimum: Int = 0, timeout: TimeInterval = 30) throws -> IngestMetrics {
        var last: IngestMetrics?
        let quiet = Poll.until(timeout: timeout, interval: 0.05) {
            guard let current = try? scrape() else { return false }
            last = current
            return current.received >= minimum && current.queued == 0 && current.spooled == 0
                && current.received == current.pushed + current.deadLettered + current.droppedTotal
        }
        guard quiet else {
            let state = last.map { "\($0.invariantText), kernel drops \($0.kernelDrops)" } ?? "no /metrics answer"
            throw TestSupportError(
                "pixeld ingest not quiescent with at least \(minimum) received within \(timeout) s: \(state)\(process.process.tail)"
            )
        }
        // A second look a little later: nothing should move any more.
        Thread.sleep(forTimeInterval: 0.2)
        return try scrape()
    }

    /// Current and peak resident memory of the process.
    var memory: ProcMemory? { ProcMemory(pid: process.pid) }

    /// SIGTERM and wait; the exit status.
    func stop(timeout: TimeInterval = 15) throws -> Int32 {
        process.terminate()
        return try process.waitForExit(timeout: timeout)
    }

    deinit {
        process.process.stop(timeout: 5)
    }
}

// MARK: - Background helpers

/// Runs `body` on a background thread every `interval` seconds until stopped (at most `maxRounds`).
final class Repeater: @unchecked Sendable {
    // @unchecked Sendable: state guarded by `lock`.
    private let lock = NSLock()
    private var stopRequested = false
    private var done = false
    private var roundsRun = 0

    init(interval: TimeInterval, maxRounds: Int, _ body: @escaping @Sendable () -> Void) {
        let thread = Thread { [self] in
            for _ in 0..<maxRounds {
                if lock.withLock({ stopRequested }) { break }
                body()
                lock.withLock { roundsRun += 1 }
                Thread.sleep(forTimeInterval: interval)
            }
            lock.withLock { done = true }
        }
        thread.name = "pixeld-fault-repeater"
        thread.start()
    }

    var rounds: Int { lock.withLock { roundsRun } }

    /// Stops and waits for the thread (bounded).
    func stop() {
        lock.withLock { stopRequested = true }
        Poll.until(timeout: 10, interval: 0.01) { lock.withLock { done } }
    }
}

/// A locked value shared between a test and its helper threads.
final class Shared<Value: Sendable>: @unchecked Sendable {
    // @unchecked Sendable: `value` only touched under `lock`.
    private let lock = NSLock()
    private var value: Value
    init(_ value: Value) { self.value = value }
    var current: Value { lock.withLock { value } }
    func update(_ body: (inout Value) -> Void) { lock.withLock { body(&value) } }
}
