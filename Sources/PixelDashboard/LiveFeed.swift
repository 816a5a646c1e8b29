public import Logging
public import PixelAnalytics
import PixeldConcurrency
public import RespBridge

#if canImport(Glibc)
import Glibc
#endif

/// The live feed: one dedicated thread holds a Redis connection in `PSUBSCRIBE <prefix>live:*` and
/// fans each message out to the Server-Sent-Events clients of its site.
///
/// The consumer publishes each batch's accepted hits as archive lines (one per line) on
/// `<prefix>live:<site>` in the same `MULTI`/`EXEC` as its ack (`LiveUpdate` in PixelAnalytics):
/// enriched, anonymised JSON objects — never an IP address or a user agent; the clients get them
/// without the visitor ids. (The "visitors in the last 5 minutes" figure does not come
/// from here but from the sorted set the consumer keeps, see ``RollupStore/recentVisitors(site:now:)``.)
///
/// `@unchecked Sendable`: every mutable field is only touched under `lock`; the connection only by
/// the subscriber thread (and ``RedisConnection/interrupt()``, which is thread-safe).
public final class LiveFeed: @unchecked Sendable {
    private let lock = ConditionLock()
    private var subscribers: [String: [Int: AsyncStream<String>.Continuation]] = [:]
    private var nextID = 0
    private var stopping = false
    private var subscribed = false
    private var thread: DedicatedThread?
    private let connection: RedisConnection
    private let channelPattern: String
    /// What precedes the site in a channel name (`pixeld:live:`).
    private let channelPrefix: String
    private let logger: Logger
    /// The most SSE clients at once.
    public let maximumSubscribers: Int

    /// Creates a feed; call ``start()`` to subscribe.
    /// - Parameters:
    ///   - configuration: Where Redis is (the read timeout becomes `quietMilliseconds`: the connection idles).
    ///   - keys: The key layout, whose ``RollupKeys/liveChannel(site:)`` the consumer publishes on.
    ///   - maximumSubscribers: SSE clients at most.
    ///   - quietMilliseconds: How long a read of the subscription waits before it subscribes again.
    ///   - logger: For subscription failures.
    public init(
        configuration: RedisConfiguration, keys: RollupKeys, maximumSubscribers: Int = 256, quietMilliseconds: Int = 60_000, logger: Logger
    ) {
        var configuration = configuration
        configuration.commandTimeoutMilliseconds = quietMilliseconds
        connection = RedisConnection(configuration: configuration, logger: logger)
        channelPattern = keys.liveChannelPattern
        channelPrefix = keys.liveChannel(site: "")
        self.maximumSubscribers = maximumSubscribers
        self.logger = logger
    }

    /// Starts the subscriber thread.
    public func start() {
        lock.withLock {
            guard thread == nil else { return }
            thread = DedicatedThread(name: "pixeld-live") { [self] in self.run() }
        }
    }

    /// Ends every SSE stream and tells the subscriber thread to stop. It does not wait for the thread:
    /// a blocked read may only return at its timeout (a minute), after which the thread exits.
    public func stop() async {
        let streams = lock.withLock {
            stopping = true
            defer { subscribers = [:] }
            return subscribers.values.flatMap(\.values)
        }
        // Outside the lock: `finish()` runs each stream's `onTermination` on this thread, which takes it.
        for continuation in streams { continuation.finish() }
        connection.interrupt()
    }

    /// `true` once the subscription is active (tests wait for it).
    public var isSubscribed: Bool { lock.withLock { subscribed } }

    /// The number of SSE clients connected.
    public var subscriberCount: Int { lock.withLock { subscribers.values.reduce(0) { $0 + $1.count } } }

    /// A stream of the JSON payloads published for `site`; `nil` when too many clients are connected.
    func subscribe(site: String) -> AsyncStream<String>? {
        let (stream, continuation) = AsyncStream<String>.makeStream(bufferingPolicy: .bufferingNewest(256))
        let id: Int? = lock.withLock {
            guard !stopping, subscribers.values.reduce(0, { $0 + $1.count }) < maximumSubscribers else { return nil }
            nextID += 1
            subscribers[site, default: [:]][nextID] = continuation
            return nextID
        }
        guard let id else { return nil }
        continuation.onTermination = { [weak self] _ in
            guard let self else { return }
            self.lock.withLock {
                self.subscribers[site]?[id] = nil
                if self.subscribers[site]?.isEmpty == true { self.subscribers[site] = nil }
            }
        }
        return stream
    }

    /// Handles one published message (from Redis, or directly in tests): one batch's archive lines
    /// for `site`, separated by `\n`; each becomes one event for the site's clients, without its
    /// visitor ids (``ArchiveRecord/withoutVisitorIDs(_:)``).
    func deliver(site: String, payload: String) {
        lock.withLock {
            guard let clients = subscribers[site], !clients.isEmpty else { return }
            for line in payload.split(separator: "\n") {
                let event = ArchiveRecord.withoutVisitorIDs(line)
                for (_, continuation) in clients { continuation.yield(event) }
            }
        }
    }

    private func run() {
        var failures = 0
        while !lock.withLock({ stopping }) {
            do {
                let reply = try connection.command(["PSUBSCRIBE", channelPattern])
                _ = try reply.unwrap("PSUBSCRIBE")
                lock.withLock { subscribed = true }
                failures = 0
                while true {
                    let message = try connection.readReply()
                    guard let parts = message.array, parts.count == 4, parts[0].string == "pmessage",
                        let channel = parts[2].string, channel.hasPrefix(channelPrefix), let payload = parts[3].string
                    else { continue }
                    deliver(site: String(channel.dropFirst(channelPrefix.count)), payload: payload)
                }
            } catch {
                lock.withLock { subscribed = false }
                connection.close()
                if lock.withLock({ stopping }) { break }
                // A quiet minute ends the read (a timeout kills a hiredis context): subscribe again at
                // once, so that the gap in which a hit would find no subscriber stays a round trip.
                if error.code == .timeout { continue }
                logger.info("live feed: subscription failed, retrying", metadata: ["error": "\(error)"])
                failures += 1
                usleep(UInt32(min(5_000_000, 100_000 * failures)))
            }
        }
        connection.close()
    }
}
