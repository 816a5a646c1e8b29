// swift-tools-version:6.1
import PackageDescription

// Packed relative relocations (DT_RELR, glibc ≥ 2.36): a position-independent binary's ~110,000
// pointer fix-ups take ~50 KB instead of 2.6 MB that every start had to read.
let leanLinking: [LinkerSetting] = [.unsafeFlags(["-use-ld=lld", "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs"])]

let package = Package(
    name: "pixeld",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "pixeld", targets: ["pixeld"]),
        // `pixeld ingest` runs this leaner program when it sits next to `pixeld` (see Sources/pixeld-ingest).
        .executable(name: "pixeld-ingest", targets: ["pixeld-ingest"]),
        .library(name: "SyslogIngest", targets: ["SyslogIngest"]),
        .library(name: "RespBridge", targets: ["RespBridge"]),
        .library(name: "PixelEvents", targets: ["PixelEvents"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        // Already in the graph through Hummingbird (its lower bound); named for the peer address the live feed counts streams by.
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.0"),
    ],
    targets: [
        // hiredis 0.14 from Debian's libhiredis-dev, seen through a modulemap and a shim header only.
        .systemLibrary(
            name: "CHiredis",
            pkgConfig: "hiredis",
            providers: [.apt(["libhiredis-dev"])]
        ),
        // libmaxminddb 1.7 from Debian's libmaxminddb-dev (`--geoip`), through a modulemap and a shim header only.
        .systemLibrary(
            name: "CMaxMindDB",
            pkgConfig: "libmaxminddb",
            providers: [.apt(["libmaxminddb-dev"])]
        ),
        // recvmmsg/sendmmsg, thread names and other Linux calls Swift cannot reach directly (_GNU_SOURCE).
        .target(name: "CPixeldSystem"),
        // Dedicated OS threads and a condition lock for the blocking parts (sockets, hiredis).
        .target(name: "PixeldConcurrency", dependencies: ["CPixeldSystem"]),
        .target(
            name: "SyslogIngest",
            dependencies: [
                "CPixeldSystem",
                "PixeldConcurrency",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "RespBridge",
            dependencies: [
                "CHiredis",
                "PixeldConcurrency",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ]
        ),
        .target(name: "PixelEvents"),
        // Privacy-safe analytics: validation, bots, anonymous visitor ids, enrichment, sessions, rollups.
        .target(
            name: "PixelAnalytics",
            dependencies: [
                "CMaxMindDB",
                "CPixeldSystem",
                "PixelEvents",
                "PixeldConcurrency",
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // `pixeld serve`: the dashboard, JSON API and live feed over the rollups (Hummingbird).
        .target(
            name: "PixelDashboard",
            dependencies: [
                "PixelAnalytics",
                "PixelEvents",
                "RespBridge",
                "PixeldConcurrency",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // What every subcommand shares: PIXELD_* environment, --redis/--log-level, logging and metrics set-up.
        .target(
            name: "PixeldCLI",
            dependencies: [
                "CPixeldSystem",
                "RespBridge",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ]
        ),
        // `pixeld ingest`: the command, its service and its /metrics responder. No Foundation, NIO or
        // crypto, so that the program that runs it can be small.
        .target(
            name: "PixeldIngest",
            dependencies: [
                "PixeldCLI",
                "PixeldConcurrency",
                "SyslogIngest",
                "RespBridge",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        .executableTarget(
            name: "pixeld",
            dependencies: [
                "CPixeldSystem", "PixeldCLI", "PixeldConcurrency", "PixeldIngest", "SyslogIngest", "RespBridge", "PixelEvents", "PixelAnalytics", "PixelDashboard",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            linkerSettings: leanLinking
        ),
        // The long-running ingest daemon as a program of its own: what `pixeld ingest` execs.
        .executableTarget(
            name: "pixeld-ingest",
            dependencies: [
                "PixeldCLI",
                "PixeldIngest",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            linkerSettings: leanLinking
        ),
        // Starts real redis-server / nginx / pixeld processes on loopback for the integration suites.
        .target(name: "PixeldTestSupport", path: "Tests/Support"),
        .testTarget(
            name: "SyslogIngestTests",
            dependencies: [
                "SyslogIngest", "PixeldConcurrency", "PixeldTestSupport", .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "RespBridgeTests",
            dependencies: [
                "RespBridge", "PixeldConcurrency", "PixeldTestSupport", .product(name: "Logging", package: "swift-log"),
                .product(name: "InMemoryLogging", package: "swift-log"),
            ]
        ),
        .testTarget(name: "PixelEventsTests", dependencies: ["PixelEvents"]),
        .testTarget(
            name: "PixelAnalyticsTests",
            dependencies: ["PixelAnalytics", "PixelEvents", "PixeldTestSupport", .product(name: "Crypto", package: "swift-crypto")]
        ),
        // Fault injection against real redis-server and pixeld processes (issue: lose nothing).
        .testTarget(name: "PixeldFaultTests", dependencies: ["PixeldTestSupport"]),
        .testTarget(
            name: "PixelDashboardTests",
            dependencies: [
                "PixelDashboard", "PixelAnalytics", "RespBridge", "PixeldTestSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "InMemoryLogging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "PixeldEndToEndTests",
            dependencies: ["PixeldTestSupport", "RespBridge"]
        ),
        .testTarget(name: "PixeldConcurrencyTests", dependencies: ["PixeldConcurrency"]),
        .testTarget(
            name: "PixeldCLITests",
            dependencies: ["PixeldCLI", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
    ]
)

for target in package.targets where [.executable, .test, .regular].contains(target.type) {
    var settings = target.swiftSettings ?? []
    settings.append(.swiftLanguageMode(.v6))
    settings.append(.enableUpcomingFeature("ExistentialAny"))
    settings.append(.enableUpcomingFeature("MemberImportVisibility"))
    settings.append(.enableUpcomingFeature("InternalImportsByDefault"))
    settings.append(.enableUpcomingFeature("NonisolatedNonsendingByDefault"))
    target.swiftSettings = settings
}
