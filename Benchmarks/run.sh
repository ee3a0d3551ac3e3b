#!/usr/bin/env bash
# Issue 5's benchmarks in one command: installs the peers (Node ws, Nchan, Socket.IO on Python) from Debian's
# packages, builds the load generator in release mode, and runs every scenario with the servers pinned to core 0
# and the generator to core 1.
# Prints the figures as it goes and a Markdown table (ours / better peer) at the end. Options go to the generator,
# e.g. `Benchmarks/run.sh --peers ours,ws --subscribers 5000`.
set -euo pipefail
cd "$(dirname "$0")"
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
$sudo apt-get update -qq
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    libcurl4-openssl-dev pkg-config util-linux nodejs node-ws nginx libnginx-mod-nchan python3-socketio \
    python3-aiohttp >/dev/null
(cd .. && swift build -c release --product websockets)
swift build -c release --product LoadGenerator
# 19,000 connections on each side need the open-file limit raised to the hard limit (20,000 on the reference machine).
ulimit -n "$(ulimit -Hn)"
if [ "$(nproc)" -ge 2 ]; then
    exec taskset -c 1 .build/release/LoadGenerator run "$@"
else
    echo "one core only: nothing pinned" >&2
    exec .build/release/LoadGenerator run "$@"
fi
