public import Logging
import PixeldConcurrency
public import RespBridge

/// A small pool of blocking Redis connections, each owned by its own ``DedicatedThread``, so that the
/// dashboard's reads never block the Swift cooperative pool (hiredis calls block; the pool has as
/// many threads as cores).
///
/// `@unchecked Sendable`: the ``WorkQueue`` is thread-safe; each connection is only used by the
/// thread that owns it.
public final class RedisReader: @unchecked Sendable {
    private struct Job {
        let commands: [[[UInt8]]]
        let complete: @Sendable (Result<[RESPValue], RespError>) -> Void
    }

    private let queue: WorkQueue<Job>
    private var threads: [DedicatedThread] = []
    private let connections: [RedisConnection]

    /// Starts `threads` connections (connected lazily, on the first command).
    /// - Parameters:
    ///   - configuration: Where Redis is.
    ///   - threads: How many connections and threads, 1…16.
    ///   - maxQueued: Requests that may wait for a connection; more fail at once with `.busy` (a
    ///     `503`), so that a flood of slow requests (long ranges, a Redis that stopped answering)
    ///     cannot pile up without bound.
    ///   - logger: For connection failures.
    public init(configuration: RedisConfiguration, threads: Int = 2, maxQueued: Int = 64, logger: Logger) {
        queue = WorkQueue(maxQueued: maxQueued)
        let count = max(1, min(16, threads))
        connections = (0..<count).map { _ in RedisConnection(configuration: configuration, logger: logger) }
        for (index, connection) in connections.enumerated() {
            self.threads.append(DedicatedThread(name: "pixeld-dash-\(index)") { [self] in self.work(connection) })
        }
    }

    /// Sends `commands` in one pipeline on one of the pool's connections and returns the replies.
    /// A connection Redis closed (a restart, its idle `timeout`) is reconnected and the pipeline
    /// sent once more; a timeout or a failed connect is not retried (it would only double the wait).
    /// When Redis does not answer, every request waiting for a connection at that moment fails with
    /// the same error at once: a stalled Redis costs each request at most about one command timeout,
    /// rather than one per request ahead of it in the queue.
    /// - Throws: ``RespError`` when Redis cannot be reached, too many requests wait already
    ///   (`.busy`), or the pool is stopped (`.closed`).
    /// - Parameter beyondLimit: queue it even when `maxQueued` requests wait (`/healthz`).
    public func pipeline(_ commands: [[[UInt8]]], beyondLimit: Bool = false) async throws(RespError) -> [RESPValue] {
        let result = await withCheckedContinuation { (continuation: CheckedContinuation<Result<[RESPValue], RespError>, Never>) in
            switch queue.submit(Job(commands: commands) { continuation.resume(returning: $0) }, beyondLimit: beyondLimit) {
            case nil: break
            case .full?:
                continuation.resume(returning: .failure(RespError(code: .busy, operation: "pipeline", message: "too many requests waiting for Redis")))
            case .stopped?:
                continuation.resume(returning: .failure(RespError(code: .closed, operation: "pipeline", message: "reader stopped")))
            }
        }
        return try result.get()
    }

    /// Stops the threads after the jobs in hand; later calls fail with `.closed`.
    public func stop() async {
        queue.stop()
        for thread in threads { await thread.finished() }
    }

    private func work(_ connection: RedisConnection) {
        while let job = queue.next() {
            let result = Self.send(job.commands, on: connection)
            job.complete(result)
            if case .failure(let error) = result, error.connectionIsDead {
                for waiting in queue.takeWaiting() { waiting.complete(.failure(error)) }
            }
        }
        connection.close()
    }

    /// The replies to `commands`, with one retry on a new connection when Redis had closed this one.
    private static func send(_ commands: [[[UInt8]]], on connection: RedisConnection) -> Result<[RESPValue], RespError> {
        do {
            return .success(try connection.pipeline(commands))
        } catch let first where ![.eof, .io, .closed].contains(first.code) {
            return .failure(first)
        } catch {
            do {
                return .success(try connection.pipeline(commands))
            } catch {
                return .failure(error)
            }
        }
    }
}
