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
/// `<prefix>live:<site>` in the same script as its ack (`LiveUpdate` in PixelAnalytics):
/// enriched, anonymised JSON objects — never an IP address or a user agent; a client gets them
/// without the visitor ids, or only a hit's minute, event, path and source (see ``Detail``). (The "visitors in the last 5 minutes" figure does not come
/// from here but from the sorted set the consumer keeps, see ``RollupStore/recentVisitors(site:now:)``.)
///
/// `@unchecked Sendable`: every mutable field is only touched under `lock`; the connection only by
/// the subscriber thread (and ``RedisConnection/interrupt()``, which is thread-safe).
public final class LiveFeed: @unchecked Sendable {
    private let lock = ConditionLock()
    private var subscribers: [String: [Int: (continuation: AsyncStream<String>.Continuation, detail: Detail)]] = [:]
    /// Open streams per client address (``DashboardRequestContext``'s); an address leaves with its last stream.
    private var streamsPerClient: [String: Int] = [:]
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
    /// The most SSE streams at once from one client address, so that one client cannot take every slot.
    public let maximumPerClient: Int
    /// The most SSE streams at once without the token (``Detail/minimal``: viewers of a public site),
    /// so that the rest of ``maximumSubscribers`` stays for the token's holders.
    public let maximumAnonymous: Int

    /// ``maximumSubscribers``' default.
    public static let defaultMaximumSubscribers = 256
    /// ``maximumPerClient``'s default.
    public static let defaultMaximumPerClient = 16
    /// ``maximumAnonymous``' default: three quarters of ``defaultMaximumSubscribers``.
    public static let defaultMaximumAnonymous = defaultMaximumSubscribers * 3 / 4

    /// How much of each hit a client gets.
    enum Detail: Sendable {
        /// The archive line without the visitor ids (``ArchiveRecord/withoutVisitorIDs(_:)``): for a
        /// viewer with the token, or any viewer when no token is configured.
        case full
        /// The minute, event, path and source (``ArchiveRecord/minimalLiveEvent(_:)``): for a viewer
        /// of a public site without the token, who could otherwise tell one visitor's hits from
        /// another's by browser, country and the millisecond, and follow each through the site.
        case minimal
    }

    /// Why ``subscribe(site:client:detail:)`` gave no stream; its description is the `503`'s message.
    enum Refusal: Error, CustomStringConvertible {
        /// ``maximumSubscribers`` streams are open, or the feed is stopping.
        case full
        /// ``maximumAnonymous`` streams without the token are open (and the stream asked for is one).
        case anonymousFull
        /// ``maximumPerClient`` streams are open from the client's address.
        case clientFull(limit: Int)

        var description: String {
            switch self {
            case .full: "too many live clients"
            case .anonymousFull: "too many live clients without the token"
            case .clientFull(let limit): "too many live streams from this client address (at most \(limit))"
            }
        }
    }

    /// Creates a feed; call ``start()`` to subscribe.
    /// - Parameters:
    ///   - configuration: Where Redis is (the read timeout becomes `quietMilliseconds`: the connection idles).
    ///   - keys: The key layout, whose ``RollupKeys/liveChannel(site:)`` the consumer publishes on.
    ///   - maximumSubscribers: SSE clients at most.
    ///   - maximumPerClient: SSE streams at most from one client address.
    ///   - maximumAnonymous: SSE streams at most without the token (``Detail/minimal``).
    ///   - quietMilliseconds: How long a read of the subscription waits before it subscribes again.
    ///   - logger: For subscription failures.
    public init(
        configuration: RedisConfiguration, keys: RollupKeys, maximumSubscribers: Int = defaultMaximumSubscribers,
        maximumPerClient: Int = defaultMaximumPerClient, maximumAnonymous: Int = defaultMaximumAnonymous,
        quietMilliseconds: Int = 60_000, logger: Logger
    ) {
        var configuration = configuration
        configuration.commandTimeoutMilliseconds = quietMilliseconds
        connection = RedisConnection(configuration: configuration, logger: logger)
        channelPattern = keys.liveChannelPattern
        channelPrefix = keys.liveChannel(site: "")
        self.maximumSubscribers = maximumSubscribers
        self.maximumPerClient = maximumPerClient
        self.maximumAnonymous = maximumAnonymous
        self.logger = logger
    }

    /// Starts the subscriber thread.
    public func start() {
        lock.withLock {
            guard thread == nil else { return }
            thread = DedicatedThread(name: "pixeld-live") { [self] in self.run() }
        }
    }

    /// Ends every SSE stream and tells the subscriber thread to stop: its blocked read returns at once
    /// (``RedisConnection/interrupt()`` shuts the socket down) and the thread exits. It does not wait
    /// for the thread.
    public func stop() async {
        let streams = lock.withLock {
            stopping = true
            defer { subscribers = [:] }
            return subscribers.values.flatMap(\.values).map(\.continuation)
        }
        // Outside the lock: `finish()` runs each stream's `onTermination` on this thread, which takes it.
        for continuation in streams { continuation.finish() }
        connection.interrupt()
    }

    /// `true` once the subscription is active (tests wait for it).
    public var isSubscribed: Bool { lock.withLock { subscribed } }

    /// The number of SSE clients connected.
    public var subscriberCount: Int { lock.withLock { subscribers.values.reduce(0) { $0 + $1.count } } }

    /// A stream of the hits published for `site`, each a JSON object with `detail`'s members, for a
    /// client at address `client`.
    /// - Throws: ``Refusal`` when ``maximumSubscribers`` streams are open, ``maximumAnonymous`` ones
    ///   for a `.minimal` stream, or ``maximumPerClient`` from `client`.
    func subscribe(site: String, client: String, detail: Detail) throws(Refusal) -> AsyncStream<String> {
        let (stream, continuation) = AsyncStream<String>.makeStream(bufferingPolicy: .bufferingNewest(256))
        let id = try lock.withLock { () throws(Refusal) -> Int in
            let open = subscribers.values.flatMap(\.values)
            guard !stopping, open.count < maximumSubscribers else { throw .full }
            guard detail == .full || open.count(where: { $0.detail == .minimal }) < maximumAnonymous else { throw .anonymousFull }
            guard streamsPerClient[client, default: 0] < maximumPerClient else { throw .clientFull(limit: maximumPerClient) }
            streamsPerClient[client, default: 0] += 1
            nextID += 1
            subscribers[site, default: [:]][nextID] = (continuation, detail)
            return nextID
        }
        continuation.onTermination = { [weak self] _ in
            guard let self else { return }
            self.lock.withLock {
                self.subscribers[site]?[id] = nil
                if self.subscribers[site]?.isEmpty == true { self.subscribers[site] = nil }
                self.streamsPerClient[client, default: 1] -= 1
                if self.streamsPerClient[client] == 0 { self.streamsPerClient[client] = nil }
            }
        }
        return stream
    }

    /// Handles one published message (from Redis, or directly in tests): one batch's archive lines
    /// for `site`, separated by `\n`; each becomes one event for the site's clients, as much of it
    /// as each client's ``Detail`` allows (a line that has no minimal form, unreadable, reaches only
    /// the `.full` clients).
    ///
    /// It yields outside the lock: a yield resumes the stream's reader, which takes that task's lock,
    /// while a client that leaves has its reader cancelled under that task's lock and its
    /// `onTermination` then takes the feed's (the other order: a deadlock). A stream that ends
    /// meanwhile ignores what it is given.
    func deliver(site: String, payload: String) {
        guard let clients = lock.withLock({ subscribers[site] }), !clients.isEmpty else { return }
        // Each form only when some client gets it.
        let anyFull = clients.values.contains { $0.detail == .full }
        let anyMinimal = clients.values.contains { $0.detail == .minimal }
        for line in payload.split(separator: "\n") {
            let full = anyFull ? ArchiveRecord.withoutVisitorIDs(line) : ""
            let minimal = anyMinimal ? ArchiveRecord.minimalLiveEvent(line) : nil
            for (_, client) in clients {
                switch client.detail {
                case .full: client.continuation.yield(full)
                case .minimal: if let minimal { client.continuation.yield(minimal) }
                }
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
                if failures > 0 { logger.info("live feed: subscribed again") }
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
                // One warning per outage (streams stay open, and get hits again once it subscribes).
                if failures == 0 {
                    logger.warning("live feed: subscription failed, retrying; open streams get no hits until it succeeds", metadata: ["error": "\(error)"])
                } else {
                    logger.debug("live feed: subscription failed again", metadata: ["error": "\(error)"])
                }
                failures += 1
                usleep(UInt32(min(5_000_000, 100_000 * failures)))
            }
        }
        connection.close()
    }
}
