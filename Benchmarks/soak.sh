#!/usr/bin/env bash
# Issue 23's soak: `websockets start` (release build) for 30 minutes against the generator's site, with tabs coming
# and going, broadcasts, sends to single users and hostile clients, sampling the server's RSS, heap in use and
# descriptors every minute. Not in CI. Options go to the generator: --minutes 30 --population 5000 --churn 50
# --broadcasts 2 --targeted 20 --sample-seconds 60 --hostile pinger,pipeliner,nester,wrongKey
set -euo pipefail
cd "$(dirname "$0")"
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
$sudo apt-get update -qq
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libcurl4-openssl-dev pkg-config util-linux >/dev/null
(cd .. && swift build -c release --product websockets)
swift build -c release --product LoadGenerator
ulimit -n "$(ulimit -Hn)"
if [ "$(nproc)" -ge 2 ]; then
    exec taskset -c 1 .build/release/LoadGenerator soak "$@"
else
    exec .build/release/LoadGenerator soak "$@"
fi
