// Throughput of the analytics hot path (decode → validate → bots → visitor id → enrich → archive line →
// rollup arguments) on one thread, in events per CPU-second; built and run by scripts/bench-analytics.sh.
import PixelAnalytics
import PixelEvents
#if canImport(Glibc)
import Glibc
#endif

func seconds() -> Double {
    var spec = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &spec)
    return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
}

let uas = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.67",
]
let referrers = ["", "https%3A%2F%2Fwww.google.com%2F", "https%3A%2F%2Fnews.ycombinator.com%2Fitem%3Fid%3D1", "https%3A%2F%2Fexample.com%2Fa"]
let now = Double(time(nil))
var lines: [[UInt8]] = []
var state: UInt64 = 12345
func next() -> Int { state = state &* 6364136223846793005 &+ 1442695040888963407; return Int(state >> 33) }
for index in 0..<200_000 {
    let ms = Int((now - 3600) * 1000) + index * 10
    let ua = uas[next() % uas.count]
    let ip = "203.0.\(next() % 200).\(next() % 250)"
    let path = "%2Fblog%2Fpost-\(next() % 500)"
    let args = (index % 10 == 9 ? "e=signup&p=%7B%22plan%22%3A%22pro%22%7D&" : "e=pageview&")
        + "u=https%3A%2F%2Fexample.com\(path)%3Futm_source%3Dnews&r=\(referrers[next() % referrers.count])&w=1440"
    let line = "{\"ts\":\(ms / 1000).\(String(ms % 1000 + 1000).dropFirst()),\"rid\":\"0123456789abcdef0123456789abcdef\",\"args\":\"\(args)\",\"ip\":\"\(ip)\",\"ua\":\"\(ua)\",\"ref\":\"https://example.com/\",\"dnt\":\"\",\"gpc\":\"\",\"country\":\"DE\"}"
    lines.append(Array(line.utf8))
}
let processor = HitProcessor(validator: HitValidator(sites: try SiteList(["example.com"])))
var keys = DailyKeys()
let today = Day(timestamp: now)
for day in [today.previous, today, today.next] { keys.insert(DailyKey(day: day, bytes: DailyKey.randomBytes())!) }
_ = BotDetector.standard
var best = 0.0
var accepted = 0
for _ in 0..<3 {
    let start = seconds()
    var archive: [UInt8] = []
    archive.reserveCapacity(lines.count * 320)
    var args = 0
    accepted = 0
    var index = 0
    while index < lines.count {
        var batch = RollupBatch(configuration: RollupConfiguration())
        for value in lines[index..<min(index + 512, lines.count)] {
            let outcome = try processor.process(PixelEventDecoder.decode(value), now: now, keys: keys)
            if case .accepted = outcome { accepted += 1 }
            ArchiveRecord.appendLine(outcome, to: &archive)
            batch.add(outcome)
        }
        args += batch.command().count
        index += 512
    }
    best = max(best, Double(lines.count) / (seconds() - start))
}
print("events: \(lines.count), accepted: \(accepted), best of 3: \(Int(best)) events/s per CPU-second of one thread")
var decodeBest = 0.0
for _ in 0..<3 {
    let start = seconds()
    var n = 0
    for value in lines { n += try PixelEventDecoder.decode(value).args.count }
    decodeBest = max(decodeBest, Double(lines.count) / (seconds() - start))
    precondition(n > 0)
}
print("decode only: \(Int(decodeBest)) events/s per CPU-second")
