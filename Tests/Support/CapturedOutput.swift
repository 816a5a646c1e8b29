public import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Everything a child process wrote to one pipe, read on a dedicated thread into a locked buffer
/// so the child never blocks on a full pipe.
public final class CapturedOutput: @unchecked Sendable {
    // @unchecked Sendable: `bytes` and `finished` are only touched while `lock` is held; the reader
    // thread owns the file descriptor until it closes it.
    private let lock = NSLock()
    private var bytes: [UInt8] = []
    private var finished = false

    /// Starts reading `fd` (which this object then owns and closes) on a new thread until end of
    /// file.
    init(readingDescriptor fd: Int32, name: String) {
        let thread = Thread { [self] in
            self.readLoop(fd: fd)
            systemClose(fd)
        }
        thread.name = "pixeld-test-\(name)"
        thread.start()
    }

    private func readLoop(fd: Int32) {
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count > 0 {
                lock.lock()
                bytes.append(contentsOf: chunk[0..<count])
                lock.unlock()
            } else if count < 0 && errno == EINTR {
                continue
            } else {
                break
            }
        }
        lock.lock()
        finished = true
        lock.unlock()
    }

    /// The bytes read so far.
    public var data: [UInt8] {
        lock.lock()
        defer { lock.unlock() }
        return bytes
    }

    /// The bytes read so far as UTF-8 (invalid sequences repaired).
    public var text: String {
        String(decoding: data, as: UTF8.self)
    }

    /// Whether the pipe reached end of file (every writer closed it).
    public var isFinished: Bool {
        lock.lock()
        defer { lock.unlock() }
        return finished
    }

    /// The complete (newline-terminated) lines read so far, without their `\n`.
    public var lines: [String] {
        let snapshot = data
        guard let lastNewline = snapshot.lastIndex(of: UInt8(ascii: "\n")) else { return [] }
        return snapshot[..<lastNewline]
            .split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
            .map { String(decoding: $0, as: UTF8.self) }
    }

    /// The complete lines read so far as raw bytes, without their `\n`.
    public var rawLines: [[UInt8]] {
        let snapshot = data
        guard let lastNewline = snapshot.lastIndex(of: UInt8(ascii: "\n")) else { return [] }
        return snapshot[..<lastNewline]
            .split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
            .map(Array.init)
    }

    /// Waits up to `timeout` seconds for end of file.
    @discardableResult
    public func waitForEnd(timeout: TimeInterval) -> Bool {
        Poll.until(timeout: timeout, interval: 0.01) { isFinished }
    }
}
