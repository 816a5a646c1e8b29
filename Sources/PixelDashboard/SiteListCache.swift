import Logging
import RespBridge
import Synchronization

/// The site list of a dashboard without `--site`, kept for ``lifetime`` seconds: discovering it is a
/// `SCAN` of the whole keyspace, which `/` and `/api/sites` (anyone's) must not cost on every request.
/// One discovery at a time: requests while it runs wait for its result; a failed one is not kept (the
/// next request tries again). A scan that stopped at its limit is logged as a warning, once.
final class SiteListCache: Sendable {
    /// Seconds a discovered list is served before the next request discovers it again.
    let lifetime: Double
    private let discover: @Sendable () async throws(RespError) -> SiteDiscovery
    private let logger: Logger
    private let state = Mutex(State())

    private struct State {
        var sites: [String] = []
        /// When the kept list was discovered (the clock at the start of its discovery).
        var discoveredAt: Double?
        var running: Task<Result<[String], RespError>, Never>?
        var warned = false
    }

    /// - Parameters:
    ///   - lifetime: Seconds a list is kept.
    ///   - logger: For the warning about an incomplete list.
    ///   - discover: Finds the sites (``RollupStore/discoverSites(limit:maxRounds:)``).
    init(
        lifetime: Double = 60, logger: Logger, discover: @escaping @Sendable () async throws(RespError) -> SiteDiscovery
    ) {
        self.lifetime = lifetime
        self.logger = logger
        self.discover = discover
    }

    /// The kept list if it is younger than ``lifetime`` at `now`, else that of the discovery running
    /// or of a new one.
    /// - Throws: ``RespError`` when the discovery this call waited for failed.
    func sites(now: Double) async throws(RespError) -> [String] {
        let task = state.withLock { state -> Task<Result<[String], RespError>, Never>? in
            if let at = state.discoveredAt, now >= at, now - at < lifetime { return nil }
            if let running = state.running { return running }
            let task = Task { await self.refresh(startedAt: now) }
            state.running = task
            return task
        }
        guard let task else { return state.withLock { $0.sites } }
        return try await task.value.get()
    }

    private func refresh(startedAt now: Double) async -> Result<[String], RespError> {
        let result: Result<SiteDiscovery, RespError>
        do {
            result = .success(try await discover())
        } catch {
            result = .failure(error)
        }
        let warn = state.withLock { state -> Bool in
            state.running = nil
            guard case .success(let found) = result else { return false }
            state.sites = found.sites
            state.discoveredAt = now
            defer { state.warned = state.warned || !found.complete }
            return !found.complete && !state.warned
        }
        if warn, case .success(let found) = result {
            logger.warning(
                "site discovery stopped before the end of the keyspace: sites may be missing from / and /api/sites; list them with --site",
                metadata: ["sites": "\(found.sites.count)", "scan.rounds": "\(found.rounds)"]
            )
        }
        return result.map(\.sites)
    }
}
