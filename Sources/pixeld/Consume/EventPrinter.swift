import Logging
import PixelAnalytics
import PixeldConcurrency
import PixelEvents
import RespBridge
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Turns a batch of raw events into JSON lines (one object per line) on standard output or in a file,
/// written before the batch is acked, and sorts out the values that cannot be decoded as dead letters.
///
/// With a file, output is exactly-once: the file's length after each batch is stored in Redis in the
/// same script as the ack (`<list>:output:<consumer-id>`), and at start and after any failure
/// (``prepare(_:)``) the file is cut back to the last acknowledged length before the unacked batch is
/// handled again. Standard output cannot be
/// cut back, so there a consumer killed between writing and acking prints that batch again.
final class EventPrinter: @unchecked Sendable {
    // `@unchecked Sendable`: used only by the consumer thread after `open`.
    private let logger: Logger
    private let fd: Int32
    private let path: String?
    private let offsetKey: [UInt8]?
    private var offset: Int = 0
    /// Decodes and writes JSON lines without a `PixelEvent` per event; its scratch is reused.
    private var encoder = PixelEventLineEncoder()
    /// One batch's output, reused from batch to batch.
    private var output: [UInt8] = []

    /// Writes to standard output.
    init(logger: Logger) {
        self.logger = logger
        self.fd = STDOUT_FILENO
        self.path = nil
        self.offsetKey = nil
    }

    /// Appends to `path`, exactly once; ``prepare(_:)`` must run before the first batch.
    /// - Parameter offsetKey: where the acknowledged length is recorded, with each ack.
    init(logger: Logger, path: String, offsetKey: String) throws {
        self.logger = logger
        self.path = path
        self.offsetKey = Array(offsetKey.utf8)
        let fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw HandlerFailure("open \(path): \(String(cString: strerror(errno)))") }
        self.fd = fd
        // A regular file has one writer: a second consumer on it (another id, or this id once Redis has
        // handed it over from a stalled run) would cut back and append over the first one's lines.
        // Devices such as /dev/null are shared freely.
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return }
        do {
            try LockFile.lock(fd)
        } catch {
            close(fd)
            throw HandlerFailure(
                error.isHeldElsewhere
                    ? "another pixeld consume is writing \(path); each consumer needs a file of its own"
                    : "flock \(path): \(String(cString: strerror(error.code)))"
            )
        }
    }

    /// Makes the file agree with Redis: cuts it back to the length recorded with the last ack (so the
    /// unacked batch that is about to be handled again is written once), or records the current length
    /// as the starting point the first time. Runs at start and after every failure.
    func prepare(_ connection: RedisConnection) throws {
        guard let path, let offsetKey else { return }
        var info = stat()
        fstat(fd, &info)
        let size = Int(info.st_size)
        let reply = try connection.command([Array("GET".utf8), offsetKey]).unwrap("GET")
        guard let acknowledged = reply.string.flatMap({ Int($0) }) else {
            let set = [Array("SET".utf8), offsetKey, Array(String(size).utf8), Array("NX".utf8)]
            try connection.command(ReliableListConsumer.allowingOOM(set)).unwrap("SET")
            offset = size
            _ = lseek(fd, off_t(offset), SEEK_SET)
            return
        }
        if size > acknowledged {
            logger.info(
                "cutting output back to the last acknowledged batch",
                metadata: ["file": "\(path)", "from": "\(size)", "to": "\(acknowledged)"]
            )
            guard ftruncate(fd, off_t(acknowledged)) == 0 else {
                throw HandlerFailure("truncate \(path): \(String(cString: strerror(errno)))")
            }
        } else if size < acknowledged {
            logger.warning(
                "output file is shorter than acknowledged (replaced, or lost in a machine crash); appending",
                metadata: ["file": "\(path)", "size": "\(size)", "acknowledged": "\(acknowledged)"]
            )
        }
        offset = min(size, acknowledged)
        _ = lseek(fd, off_t(offset), SEEK_SET)
    }

    func handle(_ batch: [[UInt8]]) throws -> ReliableListConsumer.Outcome {
        output.removeAll(keepingCapacity: true)
        output.reserveCapacity(batch.count * 256)
        let dead = DeadLetters.sortOut(batch, logger: logger) { (value) throws(PixelDecodeError) in
            try encoder.appendJSONLine(of: value, to: &output)
            output.append(UInt8(ascii: "\n"))
        }
        return .init(deadLetters: dead, commands: try emit(output))
    }

    /// Writes `output` (complete lines) and returns the commands that record the new file length with
    /// the ack (none for standard output).
    func emit(_ output: [UInt8]) throws -> [[[UInt8]]] {
        try write(output)
        guard let offsetKey else { return [] }
        offset += output.count
        return [[Array("SET".utf8), offsetKey, Array(String(offset).utf8)]]
    }

    /// Writes everything, or throws so that the batch is not acked.
    private func write(_ bytes: [UInt8]) throws {
        var written = 0
        while written < bytes.count {
            let result = bytes[written...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if result < 0 {
                if errno == EINTR { continue }
                let failed = errno
                let text = "write \(path ?? "stdout"): \(String(cString: strerror(failed)))"
                if path != nil { _ = ftruncate(fd, off_t(offset)) }  // leave no partial batch behind
                // The reader of a pipe went away (`pixeld consume pixel | head`): no retry brings it
                // back, so the consumer stops (SIGPIPE, ignored, would have ended the process).
                if failed == EPIPE { throw ReliableListConsumer.HandlerCannotContinue(text + " (the reader is gone)") }
                throw HandlerFailure(text)
            }
            written += result
        }
    }

}

/// A handler's failure, with what failed: the batch is not acked, and is handled again.
struct HandlerFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The values of a batch that cannot be decoded: they go to the dead-letter list with the ack.
enum DeadLetters {
    /// The dead-letter list the log lines name (`PROGRAM:dead`), set once at start.
    static func name(list: String) { state.withLock { $0.list = list } }

    private struct State {
        var list: String?
        var count = ThrottledCount()
    }
    private static let state = Mutex(State())

    /// Bytes of a value quoted in the log (the rest is elided).
    static let sampleBytes = 64

    /// Runs `decode` on each value of `batch`, in order; the values it throws for are returned. The
    /// log says so in one warning at the first, then in one warning a minute at most, with the number
    /// since the previous one (`events`, in `redis.key`; pixeld_consume_dead_lettered_total counts
    /// them all), the reason and a short sample of the batch's first; each batch in between at debug.
    /// A batch sorted out again (its ack refused, or the handler failed) is counted here again.
    static func sortOut(
        _ batch: [[UInt8]], logger: Logger, _ decode: ([UInt8]) throws(PixelDecodeError) -> Void
    ) -> [[UInt8]] {
        var dead: [[UInt8]] = []
        var first: (value: [UInt8], error: PixelDecodeError)?
        for value in batch {
            do {
                try decode(value)
            } catch {
                dead.append(value)
                if first == nil { first = (value, error) }
            }
        }
        let (due, list) = state.withLock { ($0.count.add(dead.count, now: MonotonicClock.nanoseconds()), $0.list) }
        guard due != nil || !dead.isEmpty else { return dead }
        // `events`: since the previous warning when one is due, else this batch's.
        var metadata: Logger.Metadata = ["events": "\(due ?? dead.count)"]
        if let list { metadata["redis.key"] = "\(list)" }
        if let first {
            metadata["reason"] = "\(first.error.reason)"
            metadata["detail"] = "\(first.error.detail)"
            metadata["sample"] = "\(sample(first.value))"
        }
        if due != nil {
            logger.warning("undecodable events sent to the dead-letter list", metadata: metadata)
        } else {
            logger.debug("undecodable events sent to the dead-letter list", metadata: metadata)
        }
        return dead
    }

    /// The first ``sampleBytes`` of `value` as text, bytes outside printable ASCII as `\xHH`, `…` after a cut.
    static func sample(_ value: [UInt8]) -> String {
        var text = ""
        for byte in value.prefix(sampleBytes) {
            if byte >= 0x20 && byte < 0x7F && byte != UInt8(ascii: "\\") {
                text.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                let hex = String(byte, radix: 16, uppercase: true)
                text += (hex.count < 2 ? "\\x0" : "\\x") + hex
            }
        }
        return value.count > sampleBytes ? text + "…" : text
    }
}
