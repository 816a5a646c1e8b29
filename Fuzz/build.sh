#!/usr/bin/env bash
# Builds the libFuzzer targets into .build-fuzz/ by compiling the parser sources directly with swiftc
# (not through SwiftPM, so the package build is untouched).
#
#   Fuzz/build.sh            -O, ASan + libFuzzer          → .build-fuzz/release/<target>
#   Fuzz/build.sh --debug    -Onone, ASan + libFuzzer      → .build-fuzz/debug/<target>
#                            (also checks the unsafe-pointer bounds that -O compiles out)
#   Fuzz/build.sh [--debug] TARGET...   only those targets
#
# Targets: syslog-route, stream-framer, pixel-decode. A target is rebuilt only when one of its sources is
# newer than the binary (FUZZ_REBUILD=1 forces it).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v swiftc >/dev/null 2>&1 && [ -x /opt/swift/usr/bin/swiftc ]; then
    export PATH="/opt/swift/usr/bin:$PATH"
fi
command -v swiftc >/dev/null || { echo "Fuzz/build.sh: swiftc not found (expected /opt/swift/usr/bin)" >&2; exit 1; }

flavor=release
optimization=(-O)
if [ "${1:-}" = "--debug" ]; then
    flavor=debug
    optimization=(-Onone)
    shift
fi
out=".build-fuzz/$flavor"
mkdir -p "$out"

all_targets=(syslog-route stream-framer pixel-decode)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")

# The minimal source set of each target: the code under test, compiled as its own module with libFuzzer's
# coverage instrumentation and ASan. SyslogIngest's Listening/ needs CPixeldSystem, PixeldConcurrency and
# swift-log, and SyslogIngestError.swift needs Glibc; none of them is needed by the parsers or the framer.
sources_for() {
    case "$1" in
    syslog-route) ls Sources/SyslogIngest/Model/*.swift Sources/SyslogIngest/Parsing/*.swift Sources/SyslogIngest/Routing/*.swift ;;
    stream-framer) echo Sources/SyslogIngest/Listening/SyslogStreamFramer.swift ;;
    pixel-decode) ls Sources/PixelEvents/*.swift ;;
    *)
        echo "Fuzz/build.sh: unknown target '$1' (known: ${all_targets[*]})" >&2
        return 1
        ;;
    esac
}

module_for() {
    case "$1" in
    syslog-route | stream-framer) echo SyslogIngest ;;
    pixel-decode) echo PixelEvents ;;
    esac
}

# The harness: a second module that imports the first (so it can only use the public API), built with ASan
# but without coverage instrumentation, so its reference models and checks neither slow the fuzzer down with
# comparison hooks nor count as coverage.
harness_for() {
    case "$1" in
    syslog-route) echo Fuzz/targets/SyslogRouteFuzz.swift ;;
    stream-framer) echo Fuzz/targets/StreamFramerFuzz.swift ;;
    pixel-decode) echo Fuzz/targets/PixelDecodeFuzz.swift ;;
    esac
    echo Fuzz/targets/Check.swift
}

# The same language settings as Package.swift.
swift_flags=(
    "${optimization[@]}" -gline-tables-only  # line tables for stack traces; full -g adds a module-wrap job that clashes with -o
    -parse-as-library
    -whole-module-optimization
    -swift-version 6
    -enable-upcoming-feature ExistentialAny
    -enable-upcoming-feature MemberImportVisibility
    -enable-upcoming-feature InternalImportsByDefault
    -enable-upcoming-feature NonisolatedNonsendingByDefault
    -module-cache-path .build-fuzz/module-cache
)

for target in "${targets[@]}"; do
    mapfile -t sources < <(sources_for "$target")
    mapfile -t harness < <(harness_for "$target")
    module="$(module_for "$target")"
    binary="$out/$target"
    objects="$out/$target.objects"
    if [ -z "${FUZZ_REBUILD:-}" ] && [ -x "$binary" ] \
        && [ -z "$(find "${sources[@]}" "${harness[@]}" Fuzz/build.sh -newer "$binary" 2>/dev/null)" ]; then
        echo "Fuzz/build.sh: $binary is up to date"
        continue
    fi
    echo "Fuzz/build.sh: building $binary (${#sources[@]} + ${#harness[@]} files, ${optimization[*]})"
    start=$SECONDS
    rm -rf "$objects"
    mkdir -p "$objects"
    swiftc "${swift_flags[@]}" -sanitize=fuzzer,address \
        -module-name "$module" -emit-module -emit-module-path "$objects/$module.swiftmodule" \
        -c "${sources[@]}" -o "$objects/$module.o"
    swiftc "${swift_flags[@]}" -sanitize=address -I "$objects" \
        -module-name "Fuzz_${target//-/_}" -c "${harness[@]}" -o "$objects/harness.o"
    swiftc -sanitize=fuzzer,address -use-ld=lld "$objects/$module.o" "$objects/harness.o" -o "$binary.tmp"
    mv "$binary.tmp" "$binary"
    echo "Fuzz/build.sh: built $binary in $((SECONDS - start)) s"
done
