// swift-tools-version:6.1
// Microbenchmarks for pixeld's hot paths (ordo-one/benchmark): run from this folder with
//     swift package --scratch-path ../.build-bench/micro benchmark
// or `make bench-micro` from the repository root. Wall clock and malloc counts per message.
import PackageDescription

import class Foundation.ProcessInfo
import struct Foundation.URL

// A path dependency's identity is its folder's name, which depends on where the repository was
// cloned; derive it instead of hard-coding "main".
let pixeldIdentity = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .lastPathComponent.lowercased()

let package = Package(
    name: "pixeld-benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: "../"),
        .package(url: "https://github.com/ordo-one/benchmark.git", exact: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "IngestBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "SyslogIngest", package: pixeldIdentity),
                .product(name: "RespBridge", package: pixeldIdentity),
                .product(name: "PixelEvents", package: pixeldIdentity),
            ],
            path: "Benchmarks/IngestBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        )
    ]
)
