#!/usr/bin/env bash
# Builds the tests with a sanitizer and runs them: the first report ends the run with its stack (exit non-zero).
#
# usage: Tests/sanitize.sh thread|address [FILTER]
#   FILTER  a `swift test --filter` pattern (default: every suite)
# CI runs the transport, hub, hardening, site, presence and cluster suites under both (SANITIZED_SUITES below).
set -euo pipefail
cd "$(dirname "$0")/.."

sanitizer="${1:?usage: Tests/sanitize.sh thread|address [FILTER]}"
filter="${2:-}"
case "$sanitizer" in
    thread|address) ;;
    *) echo "sanitizer: thread or address" >&2; exit 2 ;;
esac
scratch=".build-$sanitizer"
swift build --build-tests --sanitize="$sanitizer" --scratch-path "$scratch" 2>&1 | tail -n 3
# The tests wait longer for what must happen (a bound only limits how long a failure takes to show) and leave out
# those that measure the process's memory, which is the sanitizer's here (Tests/WebSocketsTests/Support/TestPatience.swift).
export WEBSOCKETS_TEST_SANITIZER="$sanitizer"
# A patience already set wins: with both cores busy besides the tests (`yes > /dev/null` twice), 8 under TSan.
if [ -z "${WEBSOCKETS_TEST_PATIENCE:-}" ]; then
    if [ "$sanitizer" = thread ]; then export WEBSOCKETS_TEST_PATIENCE=4; else export WEBSOCKETS_TEST_PATIENCE=2; fi
fi
# Leaks are not looked for: the Swift runtime and SwiftNIO's singletons keep memory to the end by design.
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1"
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1"
start=$(date +%s)
swift test --skip-build --sanitize="$sanitizer" --scratch-path "$scratch" ${filter:+--filter "$filter"}
echo "$sanitizer: tests passed in $(( $(date +%s) - start )) s"
