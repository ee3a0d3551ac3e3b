#!/usr/bin/env bash
# Fuzzes each target with libFuzzer (Swift's -sanitize=fuzzer, with AddressSanitizer) for a given time, starting
# from the kept corpus in Fuzz/corpus/<target>. A finding (a broken invariant, a trap, an ASan error, a timeout, an
# input that takes over 4 GiB) stops that target, is copied to Fuzz/findings/ and makes the script exit 1.
#
# usage: Fuzz/run.sh [--seconds N] [--jobs J] [--keep] [TARGET...]
#   --seconds N  each target's time (default 60)
#   --jobs J     targets fuzzed at once (default 1; one per core is what the machine takes)
#   --keep       merge the inputs that found new coverage into Fuzz/corpus (minimised), to commit
#   TARGET       frames utf8 json send session http http-reader forwarded postgres-url settings inflate deflate-offer (all
#                when none is named)
# Prints, per target, the executions, the coverage (edges) and features at the end, and the peak memory.
set -euo pipefail
cd "$(dirname "$0")/.."

# The targets, as FuzzTarget names them (FuzzCorpusTests checks that this list is the enum's).
all_targets=(frames utf8 json send session http http-reader forwarded postgres-url settings inflate deflate-offer)
seconds=60
jobs=1
keep=0
targets=()
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) seconds="$2"; shift 2 ;;
        --jobs) jobs="$2"; shift 2 ;;
        --keep) keep=1; shift ;;
        -h|--help) sed -n 2,12p "$0"; exit 0 ;;
        *) targets+=("$1"); shift ;;
    esac
done
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")

scratch=.build-fuzz
swift build -c release --product websockets-fuzz --scratch-path "$scratch" \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING 2>&1 | grep -Ev "^/usr/bin/ld.gold: warning: Cannot export local symbol" | tail -n 3
binary="$scratch/release/websockets-fuzz"
work=$(mktemp -d "${TMPDIR:-/tmp}/websockets-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p Fuzz/findings

fuzz_one() {
    local target="$1"
    mkdir -p "$work/$target/new"
    local status=0
    # Leaks are not looked for: the Swift runtime keeps its metadata caches to the end by design. Swift's backtracer
    # is off: on a trap it reads other threads' stacks, which AddressSanitizer reports in place of the trap's message.
    WEBSOCKETS_FUZZ_TARGET="$target" ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 SWIFT_BACKTRACE=enable=no \
        "$binary" -max_total_time="$seconds" -max_len=8192 -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 \
        -artifact_prefix="Fuzz/findings/$target-" "$work/$target/new" "Fuzz/corpus/$target" \
        > "$work/$target/log" 2>&1 || status=$?
    local runs cov features rss
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work/$target/log" | grep -o '[0-9]*$' || echo "?")
    rss=$(grep -o 'stat::peak_rss_mb: *[0-9]*' "$work/$target/log" | grep -o '[0-9]*$' || echo "?")
    cov=$(grep -o 'cov: [0-9]*' "$work/$target/log" | tail -n 1 | grep -o '[0-9]*' || echo "?")
    features=$(grep -o 'ft: [0-9]*' "$work/$target/log" | tail -n 1 | grep -o '[0-9]*' || echo "?")
    if [ "$status" -ne 0 ]; then
        echo "FINDING $target (exit $status): its input is in Fuzz/findings/$target-*; the cause and the log's end:"
        grep -E -m 5 "Fatal error|ERROR: [A-Za-z]*Sanitizer|ERROR: libFuzzer|SUMMARY" "$work/$target/log"
        grep -v "^#" "$work/$target/log" | tail -n 40
        for input in Fuzz/findings/"$target"-*; do
            [ -f "$input" ] || continue
            echo "$input, $(stat -c %s "$input") bytes (base64):"
            base64 -w 0 "$input" | head -c 65536
            echo
        done
    fi
    if [ "$keep" = 1 ] && [ "$status" -eq 0 ]; then
        WEBSOCKETS_FUZZ_TARGET="$target" ASAN_OPTIONS=detect_leaks=0 "$binary" -merge=1 -max_len=8192 \
            "Fuzz/corpus/$target" "$work/$target/new" > "$work/$target/merge.log" 2>&1
    fi
    printf '%-14s %6ss  %10s runs  cov %6s  ft %6s  peak %5s MB  %s\n' "$target" "$seconds" "$runs" "$cov" \
        "$features" "$rss" "$([ "$status" -eq 0 ] && echo ok || echo FINDING)"
    return "$status"
}

failed=0
running=0
for target in "${targets[@]}"; do
    if [ "$running" -ge "$jobs" ]; then
        wait -n || failed=1
        running=$((running - 1))
    fi
    fuzz_one "$target" &
    running=$((running + 1))
done
while [ "$running" -gt 0 ]; do
    wait -n || failed=1
    running=$((running - 1))
done
exit "$failed"
