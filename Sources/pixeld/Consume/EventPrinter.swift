import Logging
import PixelEvents
import RespBridge

#if canImport(Glibc)
import Glibc
#endif

/// Turns a batch of raw events into JSON lines (one object per line) on standard output or in a file,
/// written before the batch is acked, and sorts out the values that cannot be decoded as dead letters.
///
/// With a file, output is exactly-once: the file's length after each batch is stored in Redis in the
/// same `MULTI`/`EXEC` as the ack (`<list>:output:<consumer-id>`), and at start and after any failure
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
        let fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw OutputError("open \(path): \(String(cString: strerror(errno)))") }
        self.fd = fd
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
            try connection.command([Array("SET".utf8), offsetKey, Array(String(size).utf8), Array("NX".utf8)]).unwrap("SET")
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
                throw OutputError("truncate \(path): \(String(cString: strerror(errno)))")
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
        var dead: [[UInt8]] = []
        for value in batch {
            do {
                try encoder.appendJSONLine(of: value, to: &output)
                output.append(UInt8(ascii: "\n"))
            } catch {
                dead.append(value)
                logger.warning(
                    "undecodable event sent to the dead-letter list",
                    metadata: ["reason": "\(error.reason)", "detail": "\(error.detail)"]
                )
            }
        }
        try write(output)
        var commands: [[[UInt8]]] = []
        if let offsetKey {
            offset += output.count
            commands.append([Array("SET".utf8), offsetKey, Array(String(offset).utf8)])
        }
        return .init(deadLetters: dead, commands: commands)
    }

    /// Writes everything, or throws so that the batch is not acked.
    private func write(_ bytes: [UInt8]) throws {
        var written = 0
        while written < bytes.count {
            let result = bytes[written...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if result < 0 {
                if errno == EINTR { continue }
                let error = OutputError("write \(path ?? "stdout"): \(String(cString: strerror(errno)))")
                if path != nil { _ = ftruncate(fd, off_t(offset)) }  // leave no partial batch behind
                throw error
            }
            written += result
        }
    }

    struct OutputError: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }
}
