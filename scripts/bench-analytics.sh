#!/bin/sh
# Builds PixelAnalytics in release mode and runs scripts/bench-analytics.swift against it:
# 200,000 synthetic pixel_json lines, best of 3, in events per CPU-second of one thread (so a busy
# machine skews the figure less than wall time would).
#   scripts/bench-analytics.sh [scratch-path]     (default .build-bench)
set -eu
cd "$(dirname "$0")/.."
scratch=${1:-.build-bench}
swift build -c release --scratch-path "$scratch" --target PixelAnalytics
R=$(swift build -c release --scratch-path "$scratch" --show-bin-path)
C="$scratch/checkouts/swift-crypto/Sources"
objects=$(find "$R/PixelAnalytics.build" "$R/PixelEvents.build" "$R/Crypto.build" "$R/CCryptoBoringSSL.build" \
    "$R/CCryptoBoringSSLShims.build" "$R/CryptoBoringWrapper.build" -name '*.o')
out=$(mktemp -d)
# shellcheck disable=SC2086
swiftc -O -I "$R/Modules" \
    -Xcc -I"$C/CCryptoBoringSSL/include" -Xcc -I"$C/CCryptoBoringSSLShims/include" \
    -Xcc -fmodule-map-file="$C/CCryptoBoringSSL/include/module.modulemap" \
    -Xcc -fmodule-map-file="$C/CCryptoBoringSSLShims/include/module.modulemap" \
    -Xcc -fmodule-map-file="$R/PixelAnalytics.build/include/module.modulemap" \
    -Xcc -fmodule-map-file="$R/PixelEvents.build/include/module.modulemap" \
    scripts/bench-analytics.swift $objects -lstdc++ -o "$out/bench-analytics"
"$out/bench-analytics"
rm -rf "$out"
