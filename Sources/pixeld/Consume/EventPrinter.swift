import Logging
import PixelEvents
import RespBridge

#if canImport(Glibc)
import Glibc
#endif

/// Turns a batch of raw events into JSON lines on standard output (one object per line, flushed before
/// the batch is acked) and sorts out the values that cannot be decoded as dead letters.
struct EventPrinter: Sendable {
    let logger: Logger

    func handle(_ batch: [[UInt8]]) throws -> ReliableListConsumer.Outcome {
        var output: [UInt8] = []
        output.reserveCapacity(batch.count * 256)
        var dead: [[UInt8]] = []
        for value in batch {
            do {
                let event = try PixelEventDecoder.decode(value)
                event.appendJSONLine(to: &output)
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
        return .init(deadLetters: dead)
    }

    /// Writes everything to standard output, or throws so that the batch is not acked.
    private func write(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { Glibc.write(STDOUT_FILENO, $0.baseAddress, $0.count) }
            if written < 0 {
                if errno == EINTR { continue }
                throw PrintError(errno: errno)
            }
            offset += written
        }
    }

    struct PrintError: Error, CustomStringConvertible {
        let errno: Int32
        var description: String { "write to stdout failed: \(String(cString: strerror(errno)))" }
    }
}
