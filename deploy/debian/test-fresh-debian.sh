#!/usr/bin/env bash
# The package on a fresh Debian 12 with no Swift: a minimal root made by debootstrap, the package installed there
# with apt (its dependencies from Debian's mirror), the binary started as the installed unit runs it (a chroot has no
# systemd), and its health asked. As root; the root is removed afterwards.
#
# usage: deploy/debian/test-fresh-debian.sh PACKAGE.deb [MIRROR]      (default http://deb.debian.org/debian)
set -euo pipefail
package=$(realpath "${1:?usage: deploy/debian/test-fresh-debian.sh PACKAGE.deb [MIRROR]}")
mirror="${2:-http://deb.debian.org/debian}"
root=$(mktemp -d /tmp/websockets-debian.XXXXXX)
chmod 755 "$root"    # the system's /: mktemp makes it 700, which only root could enter
server=""
cleanup() {
    [ -z "$server" ] || kill "$server" 2> /dev/null || true
    umount "$root/proc" 2> /dev/null || true
    # Never delete through a mount that is still there.
    if ! mountpoint -q "$root/proc"; then rm -rf "$root"; fi
}
trap cleanup EXIT

debootstrap --variant=minbase bookworm "$root" "$mirror" > "$root.log" 2>&1 || { tail -n 20 "$root.log"; exit 1; }
rm -f "$root.log"
cp "$package" "$root/root/"
cp /etc/resolv.conf "$root/etc/resolv.conf"
mount -t proc proc "$root/proc"
chroot "$root" /bin/sh -c "apt-get update -qq && apt-get install -y -qq ./root/$(basename "$package")" > "$root/install.log" 2>&1 ||
    { tail -n 30 "$root/install.log"; exit 1; }
if find "$root" -xdev -name 'libswift*' | grep -q .; then
    echo "a Swift library is on the fresh system" >&2
    exit 1
fi

# The unit's user, folder and command, with a free port.
unit="$root/lib/systemd/system/websockets.service"
user=$(sed -n 's/^User=//p' "$unit")
folder=$(sed -n 's/^WorkingDirectory=//p' "$unit")
command=$(sed -n 's/^ExecStart=//p' "$unit")
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
chroot "$root" /bin/sh -c "cd $folder && exec setpriv --reuid=$user --regid=$user --init-groups $command --listen-port $port" \
    > "$root/server.log" 2>&1 &
server=$!
for _ in $(seq 1 60); do
    if health=$(curl -sf "http://127.0.0.1:$port/WebSockets/health"); then break; fi
    sleep 0.5
done
echo "health: ${health:-none}"
kill "$server" 2> /dev/null || true
wait "$server" || true
server=""
cat "$root/server.log"
echo "$health" | grep -q '"status":"ok"' || { echo "the installed server did not answer" >&2; exit 1; }
echo "fresh Debian 12: installed with $(grep -c '^Setting up' "$root/install.log") packages set up, health ok"
