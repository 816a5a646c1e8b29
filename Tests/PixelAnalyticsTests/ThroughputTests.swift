@testable import PixelAnalytics
import PixeldTestSupport
import PixelEvents
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Processing throughput on one thread (decode → validate → bots → visitor id → enrich → archive
/// line → rollup arguments), and with the rollups applied in a real Redis. Measures only when
/// `PIXELD_BENCH=1` (build with `-c release` for meaningful figures):
/// `PIXELD_BENCH=1 swift test -c release --filter ThroughputTests`.
@Suite(.serialized, .enabled(if: getenv("PIXELD_BENCH").map { String(cString: $0) == "1" } ?? false))
struct ThroughputTests {
    static func seconds() -> Double {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }

    @Test func processingThroughput() throws {
        let today = Day(timestamp: Double(time(nil)))
        let simulation = Simulation(seed: 1, humans: 6000, day0: Day(number: today.number - 3))
        let raw = simulation.lines.map { Array($0.line.utf8) }
        let processor = HitProcessor(
            validator: HitValidator(sites: try SiteList(simulation.sites), maxAgeSeconds: 3 * 86_400),
            respectPrivacySignals: true
        )
        var keys = DailyKeys()
        for number in (simulation.day0.number - 6)...(simulation.day0.number + 3) {
            keys.insert(DailyKey(day: Day(number: number), bytes: DailyKey.randomBytes())!)
        }
        _ = BotDetector.standard
        var best = 0.0
        for _ in 0..<3 {
            let start = Self.seconds()
            var archive: [UInt8] = []
            archive.reserveCapacity(raw.count * 300)
            var argumentCount = 0
            var index = 0
            while index < raw.count {
                var batch = RollupBatch(configuration: RollupConfiguration())
                for value in raw[index..<min(index + 512, raw.count)] {
                    let outcome = try processor.process(PixelEventDecoder.decode(value), now: simulation.now, keys: keys)
                    ArchiveRecord.appendLine(outcome, to: &archive)
                    batch.add(outcome)
                }
                argumentCount += batch.command(states: []).count
                index += 512
            }
            let elapsed = Self.seconds() - start
            best = max(best, Double(raw.count) / elapsed)
            #expect(argumentCount > 0 && !archive.isEmpty)
        }
        print("THROUGHPUT processing: \(Int(best)) events/s on one thread (\(raw.count) events, best of 3)")
    }

    @Test(.enabled(if: TestEnvironment.canRun("redis-server")))
    func endToEndWithRedis() throws {
        let server = try RedisServer.start()
        var redis = try RedisRollups(connection: try server.connect(timeout: 60))
        let today = Day(timestamp: Double(time(nil)))
        let simulation = Simulation(seed: 2, humans: 6000, day0: Day(number: today.number - 3))
        let start = Self.seconds()
        _ = try KnownTruthTests.run(simulation, redis: &redis)
        let elapsed = Self.seconds() - start
        print("THROUGHPUT with redis: \(Int(Double(simulation.lines.count) / elapsed)) events/s (\(simulation.lines.count) events, rollups applied with EVALSHA in MULTI/EXEC)")
    }
}
