import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import PixelAnalytics
@testable import PixelDashboard
import PixeldTestSupport
import RespBridge
import Testing

/// Real Redis data produced by the real consumer from known traffic: a Redis server, raw hits in
/// the `pixel` list as nginx's `pixel_json` format logs them, and `pixeld consume pixel --site …`
/// run until the rollups hold every hit. Shared by the suites (started once).
final class DashboardFixture: Sendable {
    static let site = "example.com"
    static let privateSite = "secret.example"
    static let token = "test-token-0123456789"
    /// A path a visitor controls; must appear escaped and never run.
    static let hostilePath = "/<script>document.title='pwned'</script>"
    /// A `utm_campaign` a visitor controls, made to break out of an attribute and add an element with
    /// an event handler; must appear escaped (the UTM campaigns table) and never as markup.
    static let hostileCampaign = "\"><img src=x onerror=alert(1)>"
    static let expectedPageviews = 6
    static let expectedPrivatePageviews = 2

    let redis: RedisServer
    /// The consumer's `--archive` directory (for the filtered views).
    let archive: TempDirectory
    let from: Day
    let to: Day

    nonisolated(unsafe) private static var cached: Result<DashboardFixture, any Error>?
    private static let lock = NSLock()

    static func shared() throws -> DashboardFixture {
        try lock.withLock {
            if cached == nil {
                cached = Result { try DashboardFixture() }
                // A static is never deinitialized: let go of it at exit, so that its Redis is stopped and
                // its directories removed.
                atexit { DashboardFixture.lock.withLock { DashboardFixture.cached = nil } }
            }
            return try cached!.get()
        }
    }

    static let chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
    static let firefox = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0"
    static let iphone =
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
    static let googlebot = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"

    static func encode(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? text
    }

    /// One raw hit as nginx's `pixel_json` log format writes it.
    static func line(ts: Double, ip: String, ua: String, url: String, referrer: String = "", event: String = "pageview") -> String {
        var args = "e=\(event)&u=" + encode(url) + "&w=1280"
        if !referrer.isEmpty { args += "&r=" + encode(referrer) }
        let fields: [String: Any] = ["ts": ts, "rid": UUID().uuidString, "args": args, "ip": ip, "ua": ua, "ref": referrer]
        let data = try! JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys])
        return String(decoding: data, as: UTF8.self)
    }

    private init() throws {
        redis = try RedisServer.start()
        archive = try TempDirectory(prefix: "pixeld-dash-archive")
        let start = Date().timeIntervalSince1970 - 1800
        from = Day(timestamp: start)
        to = Day(timestamp: start + 1200)
        let site = "https://" + Self.site
        let lines = [
            Self.line(ts: start, ip: "10.0.0.1", ua: Self.chrome, url: site + "/", referrer: "https://www.google.com/search?q=x"),
            Self.line(ts: start + 60, ip: "10.0.0.1", ua: Self.chrome, url: site + "/blog/", referrer: site + "/"),
            Self.line(
                ts: start + 120, ip: "10.0.0.2", ua: Self.firefox,
                url: site + "/?utm_source=news&utm_medium=email&utm_campaign=" + Self.encode(Self.hostileCampaign)
            ),
            Self.line(ts: start + 180, ip: "10.0.0.3", ua: Self.iphone, url: site + Self.hostilePath),
            Self.line(ts: start + 240, ip: "10.0.0.4", ua: Self.chrome, url: site + "/pricing"),
            Self.line(ts: start + 250, ip: "10.0.0.4", ua: Self.chrome, url: site + "/pricing", event: "signup"),
            Self.line(ts: start + 300, ip: "10.0.0.5", ua: Self.firefox, url: site + "/blog/"),
            Self.line(ts: start + 310, ip: "10.0.0.9", ua: Self.googlebot, url: site + "/"),
            Self.line(ts: start + 320, ip: "10.0.0.6", ua: Self.chrome, url: "https://" + Self.privateSite + "/"),
            Self.line(ts: start + 330, ip: "10.0.0.6", ua: Self.chrome, url: "https://" + Self.privateSite + "/admin"),
        ]
        for line in lines { _ = try redis.command(["LPUSH", "pixel", line]) }
        let consume = try PixeldProcess.start([
            "consume", "pixel", "--redis", redis.url, "--site", Self.site, "--site", Self.privateSite, "--consumer-id", "dash",
            "--archive", archive.path,
        ])
        defer {
            consume.terminate()
            _ = consume.process.exitStatus(waitingUpTo: 10)
        }
        let deadline = Date().addingTimeInterval(30)
        while true {
            let counts = try [Self.site, Self.privateSite].map { try self.reportJSON(site: $0)["pageviews"] as? Int ?? -1 }
            if counts == [Self.expectedPageviews, Self.expectedPrivatePageviews] { break }
            guard Date() < deadline else {
                throw TestSupportError("consumer did not roll up the traffic: \(counts)\n\(consume.stderrText)")
            }
            Thread.sleep(forTimeInterval: 0.2)
        }
    }

    /// `pixeld report --json` stdout.
    func reportText(site: String) throws -> String {
        let process = try PixeldProcess.start([
            "report", "--redis", redis.url, "--site", site, "--from", from.description, "--to", to.description, "--json",
        ])
        let status = try process.waitForExit(timeout: 30)
        guard status == 0 else { throw TestSupportError("pixeld report failed (\(status)): \(process.stderrText)") }
        return process.stdoutText
    }

    func reportJSON(site: String) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(try reportText(site: site).utf8)) as? [String: Any] ?? [:]
    }

    /// A dashboard over the fixture's Redis.
    /// - Parameters:
    ///   - archive: Read the consumer's archive (`pixeld serve --archive`): filters work.
    ///   - archiveStore: The store to read it with (implies `archive`); a default one otherwise.
    ///   - retentionDays: `pixeld serve --retention-days`.
    ///   - clock: The dashboard's clock (seconds since the epoch); the real one by default.
    ///   - logger: The dashboard's logger.
    func dashboard(
        token: String? = nil, publicSites: Set<String> = [], archive: Bool = false, archiveStore: ArchiveStore? = nil,
        retentionDays: Int = 400, clock: (@Sendable () -> Double)? = nil, logger: Logger = Logger(label: "test")
    ) throws -> Dashboard {
        let configuration = try RedisConfiguration(url: redis.url)
        let reader = RedisReader(configuration: configuration, threads: 2, logger: Logger(label: "test"))
        return Dashboard(
            store: RollupStore(reader: reader), live: nil,
            archive: archiveStore ?? (archive ? ArchiveStore(directory: self.archive.path) : nil),
            configuration: DashboardConfiguration(
                sites: [Self.site, Self.privateSite], token: token, publicSites: publicSites, retentionDays: retentionDays
            ),
            metricsText: { "# pixeld test metrics\n" }, clock: clock, logger: logger
        )
    }

    var rangeQuery: String { "from=\(from)&to=\(to)" }
}

extension TestResponse {
    var text: String { String(buffer: body) }
    var json: [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]) ?? [:]
    }
}

/// The elements of `stream` up to its end; an issue, and what came so far, when it has not ended
/// within `seconds` (a stream the code under test forgot to finish would otherwise hold the test run
/// forever).
func elements(of stream: AsyncStream<String>, endingWithin seconds: Double = 5, sourceLocation: SourceLocation = #_sourceLocation)
    async -> [String]
{
    await withTaskGroup(of: (ended: Bool, elements: [String]?).self) { group in
        group.addTask {
            var elements: [String] = []
            for await element in stream { elements.append(element) }
            return (!Task.isCancelled, elements)  // a cancelled stream's iterator ends too
        }
        group.addTask {
            try? await Task.sleep(for: .seconds(seconds))
            return (false, nil)
        }
        let first = await group.next()
        group.cancelAll()
        var received = first?.elements ?? []
        while let other = await group.next() { received = other.elements ?? received }
        if first?.ended != true { Issue.record("the stream did not end within \(seconds) s", sourceLocation: sourceLocation) }
        return received
    }
}
