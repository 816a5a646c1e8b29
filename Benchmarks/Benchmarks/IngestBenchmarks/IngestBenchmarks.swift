// Microbenchmarks of the per-message work on pixeld's ingest and consume paths, through public API only:
// - IngestRules.route(_:): PRI, facility filter, RFC 3164 parse, program check (receive thread);
// - PushBatch.append: copying the accepted key and value into the batch arena that the writer turns
//   into one EVALSHA/LPUSH argv (the argv itself is built from the arena by an internal type, so the
//   arena append is the public part of the batch encoder);
// - PixelEventDecoder.decode and PixelEvent.appendJSONLine (pixeld consume).
// Every benchmark handles 1,000 messages per iteration and is declared with scalingFactor .kilo, so the
// framework divides by 1,000: wall clock (ns) and malloc counts in the tables are PER MESSAGE. The
// target for route and the arena appends is 0 mallocs.

import Benchmark
import PixelEvents
import RespBridge
import SyslogIngest

/// nginx-shaped datagrams like bench/loadgen's: `<158>Nov 22 10:00:00 web-1 pixel: $msec,$args`, 150–300 bytes.
func makeDatagrams(count: Int, priority: Int = 158) -> [[UInt8]] {
    let events = ["pageview", "pageview", "pageview", "click", "signup", "outbound"]
    let paths = ["%2F", "%2Fpricing", "%2Fblog%2Fcounting-without-cookies", "%2Fdocs%2Fgetting-started%3Fref%3Dnav",
                 "%2Fshop%2Fitem%2F1234%3Fcolor%3Dblue%26size%3Dm", "%2Fcaf%C3%A9%2Fmenu"]
    let referrers = ["", "&r=https%3A%2F%2Fwww.google.com%2F", "&r=https%3A%2F%2Fnews.ycombinator.com%2F"]
    let widths = [360, 414, 1280, 1440, 1920]
    var state: UInt64 = 0x9E37_79B9_7F4A_7C15
    func next() -> Int {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return Int(truncatingIfNeeded: state >> 33)
    }
    var out: [[UInt8]] = []
    out.reserveCapacity(count)
    for seq in 0..<count {
        var text = "<\(priority)>Nov 22 10:00:\(String(format2: seq % 60)) web-\(seq % 4 + 1) pixel: "
        text += "\(1_763_805_600 + seq / 1000).\(String(format3: seq % 1000)),e=\(events[next() % events.count])"
        text += "&u=https%3A%2F%2Fexample.com\(paths[next() % paths.count])\(referrers[next() % referrers.count])"
        text += "&w=\(widths[next() % widths.count])&sid=\(String(next() & 0xFFFF_FFFF, radix: 16))&seq=\(seq)"
        let target = 150 + next() % 151
        if text.utf8.count < target {
            text += "&p="
            while text.utf8.count < target { text += "x" }
        }
        out.append(Array(text.utf8))
    }
    return out
}

extension String {
    init(format2 value: Int) { self = value < 10 ? "0\(value)" : "\(value)" }
    init(format3 value: Int) { self = value < 10 ? "00\(value)" : value < 100 ? "0\(value)" : "\(value)" }
}

/// The MESSAGE part of each datagram (what Redis holds and `pixeld consume` decodes).
func messages(of datagrams: [[UInt8]]) -> [[UInt8]] {
    datagrams.map { datagram in
        let marker = Array("pixel: ".utf8)
        var index = 0
        while !datagram[index..<index + marker.count].elementsEqual(marker) { index += 1 }
        return Array(datagram[(index + marker.count)...])
    }
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .mallocCountTotal, .throughput],
        warmupIterations: 3,
        scalingFactor: .kilo,
        maxDuration: .seconds(2),
        maxIterations: 10_000
    )

    let local3 = makeDatagrams(count: 1000)
    let filtered = makeDatagrams(count: 1000, priority: 134)  // local0: dropped by the facility filter
    let values = messages(of: local3)
    let rules = IngestRules()

    Benchmark("IngestRules.route (nginx local3, 1k datagrams)") { benchmark in
        for datagram in local3 {
            datagram.withUnsafeBytes { bytes in
                blackHole(rules.route(bytes))
            }
        }
    }

    Benchmark("IngestRules.route (other facility, filtered)") { benchmark in
        for datagram in filtered {
            datagram.withUnsafeBytes { bytes in
                blackHole(rules.route(bytes))
            }
        }
    }

    // What the receive thread does per datagram: route, then copy key and value into the batch arena
    // (the writer builds the variadic LPUSH argv from that arena without copying again).
    Benchmark("route + PushBatch.append (arena reused)") { benchmark in
        var batch = PushBatch()
        let prefix: [UInt8] = []
        // Grow the arena once, outside the measurement, as a running listener's batch has.
        for _ in 0..<2 {
            batch.removeAll()
            for datagram in local3 {
                datagram.withUnsafeBytes { bytes in
                    if case .accept(let program, let message) = rules.route(bytes) {
                        batch.append(keyPrefix: prefix, program: UnsafeRawBufferPointer(rebasing: bytes[program]),
                                     value: UnsafeRawBufferPointer(rebasing: bytes[message]), acceptedAt: 1)
                    }
                }
            }
        }
        benchmark.startMeasurement()
        batch.removeAll()
        for datagram in local3 {
            datagram.withUnsafeBytes { bytes in
                if case .accept(let program, let message) = rules.route(bytes) {
                    batch.append(keyPrefix: prefix, program: UnsafeRawBufferPointer(rebasing: bytes[program]),
                                 value: UnsafeRawBufferPointer(rebasing: bytes[message]), acceptedAt: 1)
                }
            }
        }
        benchmark.stopMeasurement()
        blackHole(batch.count)
    }

    // The writer's hand-off: a receive batch appended to the queue's pending batch (PushQueue.enqueue).
    Benchmark("PushBatch.append(contentsOf:) (1k messages)") { benchmark in
        var receiveBatch = PushBatch()
        for value in values {
            value.withUnsafeBytes { value in
                Array("pixel".utf8).withUnsafeBytes { program in
                    receiveBatch.append(keyPrefix: [], program: program, value: value, acceptedAt: 1)
                }
            }
        }
        var pending = PushBatch()
        pending.append(contentsOf: receiveBatch)
        benchmark.startMeasurement()
        pending.removeAll()
        pending.append(contentsOf: receiveBatch)
        benchmark.stopMeasurement()
        blackHole(pending.count)
    }

    Benchmark("PixelEventDecoder.decode (classic $msec,$args)") { benchmark in
        for value in values {
            do {
                blackHole(try PixelEventDecoder.decode(value))
            } catch {
                fatalError("\(error)")
            }
        }
    }

    Benchmark("decode + appendJSONLine (consume per event)") { benchmark in
        var output: [UInt8] = []
        output.reserveCapacity(1 << 20)
        for value in values {
            do {
                try PixelEventDecoder.decode(value).appendJSONLine(to: &output)
                output.append(10)
            } catch {
                fatalError("\(error)")
            }
        }
        blackHole(output.count)
    }
}
