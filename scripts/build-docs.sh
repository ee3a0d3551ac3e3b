#!/usr/bin/env bash
# Builds the Swift API documentation (DocC) of `import WebSockets`: the catalog Sources/WebSockets/WebSockets.docc
# and the public symbols of WebSockets and the modules it re-exports (Core, Hub, Protocol, Site), taken from the
# debug build by swift symbolgraph-extract (a second build with -emit-symbol-graph took 6 min 45 s here; this takes
# a second once `swift build` has run). A warning fails the build.
#
# usage: scripts/build-docs.sh [OUTPUT]      (default .build-docs/WebSockets.doccarchive)
# Browse it with any static file server pointed at the archive, or `docc preview` with the same arguments.
set -euo pipefail
cd "$(dirname "$0")/.."

output="${1:-.build-docs/WebSockets.doccarchive}"
swift build --target WebSockets 2>&1 | tail -n 1
modules=".build/debug/Modules"
[ -d "$modules" ] || modules=".build/debug"
# The C modules the Swift ones import: their module maps and headers.
clang_arguments=()
for map in $(find .build/debug/ -maxdepth 2 -name module.modulemap) $(find Sources -name module.modulemap); do
    clang_arguments+=(-Xcc "-fmodule-map-file=$PWD/$map")
done
for folder in $(find .build/checkouts Sources -type d -name include); do
    clang_arguments+=(-Xcc "-I$PWD/$folder")
done
symbols=$(mktemp -d)
trap 'rm -rf "$symbols"' EXIT
swift symbolgraph-extract -module-name WebSockets -I "$modules" -target "$(uname -m)-unknown-linux-gnu" \
    -output-dir "$symbols" -minimum-access-level public \
    -experimental-allowed-reexported-modules=WebSocketsCore,WebSocketsHub,WebSocketsProtocol,WebSocketsSite \
    "${clang_arguments[@]}"
mkdir -p "$(dirname "$output")"
docc convert Sources/WebSockets/WebSockets.docc --additional-symbol-graph-dir "$symbols" --output-path "$output" \
    --fallback-display-name WebSockets --fallback-bundle-identifier websockets.WebSockets --warnings-as-errors
echo "$output"
