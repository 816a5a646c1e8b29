#!/usr/bin/env bash
# Runs the libFuzzer targets one after another (builds them first if needed, see Fuzz/build.sh).
#
#   Fuzz/run.sh                    60 s per target
#   Fuzz/run.sh 45                 45 s per target (-max_total_time=45)
#   Fuzz/run.sh -runs=10000000     10 M inputs per target
#   Fuzz/run.sh 45 pixel-decode    only the named targets
#   Fuzz/run.sh --repro FILE...    replay inputs (a crash-*, a Fuzz/crashes/ file); target from the path
#                                  or FUZZ_TARGET=<target>
#
# Environment:
#   FUZZ_FLAVOR=debug        use the -Onone build (.build-fuzz/debug) instead of -O (.build-fuzz/release)
#   FUZZ_MAX_TOTAL_TIME=S    with -runs=N, also stop each target after S seconds
#   FUZZ_ARGS="..."          extra libFuzzer flags (for example -jobs=2 -workers=2, -max_len=65536)
#
# Inputs found interesting go to .build-fuzz/corpus/<target>/ (Fuzz/corpus/<target>/ holds the committed
# seeds and is only read); crashes to .build-fuzz/artifacts/<target>/crash-*; the full libFuzzer output to
# .build-fuzz/logs/<target>.log. Exit status: non-zero when any target found a crash, leak or timeout.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

flavor="${FUZZ_FLAVOR:-release}"
all_targets=(syslog-route stream-framer pixel-decode)
# The Swift runtime backtracer would symbolicate every crash for up to 30 s before libFuzzer sees it.
export SWIFT_BACKTRACE="${SWIFT_BACKTRACE:-enable=no}"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}"
if [ -x /opt/swift/usr/bin/llvm-symbolizer ]; then
    export ASAN_SYMBOLIZER_PATH="${ASAN_SYMBOLIZER_PATH:-/opt/swift/usr/bin/llvm-symbolizer}"
fi

if [ "${1:-}" = "--repro" ]; then
    shift
    [ $# -gt 0 ] || { echo "usage: Fuzz/run.sh --repro FILE..." >&2; exit 2; }
    status=0
    for file in "$@"; do
        case "$file" in *.md) continue ;; esac  # so that Fuzz/crashes/* works
        target="${FUZZ_TARGET:-}"
        if [ -z "$target" ]; then
            for candidate in "${all_targets[@]}"; do
                case "$file" in *"$candidate"*) target="$candidate" ;; esac
            done
        fi
        [ -n "$target" ] || { echo "Fuzz/run.sh: cannot tell the target of $file; set FUZZ_TARGET" >&2; exit 2; }
        build_flag=()
        [ "$flavor" = debug ] && build_flag=(--debug)
        Fuzz/build.sh "${build_flag[@]}" "$target" >/dev/null
        echo "== $target < $file"
        ".build-fuzz/$flavor/$target" -runs=1 "$file" || status=$?
    done
    exit "$status"
fi

mode=(-max_total_time=60)
if [ $# -gt 0 ]; then
    case "$1" in
    -runs=*) mode=("$1"); [ -n "${FUZZ_MAX_TOTAL_TIME:-}" ] && mode+=("-max_total_time=$FUZZ_MAX_TOTAL_TIME"); shift ;;
    *[!0-9]*) ;;
    *) mode=("-max_total_time=$1"); shift ;;
    esac
fi
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")

build_flag=()
[ "$flavor" = debug ] && build_flag=(--debug)
Fuzz/build.sh "${build_flag[@]}" "${targets[@]}"

status=0
summary=()
for target in "${targets[@]}"; do
    work=".build-fuzz/corpus/$target"
    artifacts=".build-fuzz/artifacts/$target"
    log=".build-fuzz/logs/$target.log"
    mkdir -p "$work" "$artifacts" "$(dirname "$log")"
    # shellcheck disable=SC2206
    args=(
        "${mode[@]}"
        -timeout=5
        -rss_limit_mb=2048
        -max_len=4096
        -print_final_stats=1
        -dict="Fuzz/dict/$target.dict"
        -artifact_prefix="$artifacts/"
        ${FUZZ_ARGS:-}
    )
    echo "== $target: .build-fuzz/$flavor/$target ${args[*]} $work Fuzz/corpus/$target"
    start=$SECONDS
    set +e
    ".build-fuzz/$flavor/$target" "${args[@]}" "$work" "Fuzz/corpus/$target" >"$log" 2>&1
    code=$?
    set -e
    elapsed=$((SECONDS - start))
    grep -E '^#[0-9]+[[:space:]]+DONE|^Done [0-9]+ runs|^stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)' "$log" | sed 's/^/   /' || true
    if [ "$code" -ne 0 ]; then
        status=1
        echo "!! $target FAILED (exit $code after ${elapsed}s); log: $log; reproducer(s):"
        ls -1 "$artifacts"/crash-* "$artifacts"/timeout-* "$artifacts"/leak-* "$artifacts"/oom-* 2>/dev/null | sed 's/^/   /' || true
        grep -E 'FUZZ INVARIANT BROKEN|ERROR: (AddressSanitizer|libFuzzer)|Fatal error|SUMMARY' "$log" | head -5 | sed 's/^/   /' || true
        summary+=("$target: FAILED after ${elapsed}s")
    else
        summary+=("$target: ok, ${elapsed}s, $(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 | sed -E 's/[[:space:]]+/ /g')")
    fi
done
echo "== summary"
printf '   %s\n' "${summary[@]}"
exit "$status"
