#!/usr/bin/env bash
# Builds the Debian package: the server as one stripped binary with the Swift runtime linked in
# (--static-swift-stdlib), the systemd unit and nginx site from deploy/, the maintainer scripts from here.
# Only Debian's own tools: swift build, strip, dpkg-shlibdeps (Depends: from what the binary needs), dpkg-deb.
#
# usage: deploy/debian/build-package.sh [OUTPUT_FOLDER]     (default .build-package/)
# prints the package's path on its last line.
set -euo pipefail
cd "$(dirname "$0")/../.."

output="${1:-.build-package}"
scratch=.build-package
mkdir -p "$output"

# Symbols bound at start (lintian's hardening-no-bindnow): the relocation table is then made read-only.
swift build -c release --static-swift-stdlib --product websockets --scratch-path "$scratch" \
    -Xlinker -z -Xlinker now 2>&1 | tail -n 1
binary="$scratch/release/websockets"
version=$("$binary" --version)
architecture=$(dpkg --print-architecture)
# The version lives in one place (WebSocketsServer.version); the changelog's first entry must name it.
if ! head -n 1 deploy/debian/changelog | grep -q "^websockets ($version) "; then
    echo "deploy/debian/changelog does not begin with an entry for $version (websockets --version)" >&2
    exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root="$work/websockets_${version}_$architecture"
install -d -m 755 "$root/DEBIAN" "$root/usr/bin" "$root/lib/systemd/system" \
    "$root/usr/share/doc/websockets/examples" "$root/usr/share/man/man1"
install -m 755 "$binary" "$root/usr/bin/websockets"
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$root/usr/bin/websockets"
install -m 644 deploy/websockets.service "$root/lib/systemd/system/websockets.service"
install -m 644 deploy/nginx-site.conf "$root/usr/share/doc/websockets/examples/nginx-site.conf"
install -m 644 deploy/debian/copyright "$root/usr/share/doc/websockets/copyright"
gzip -9n < deploy/debian/changelog > "$root/usr/share/doc/websockets/changelog.gz"
gzip -9n < deploy/debian/websockets.1 > "$root/usr/share/man/man1/websockets.1.gz"
chmod 644 "$root/usr/share/doc/websockets/changelog.gz" "$root/usr/share/man/man1/websockets.1.gz"
install -m 755 deploy/debian/postinst deploy/debian/prerm deploy/debian/postrm "$root/DEBIAN/"

# Depends: what the binary's needed libraries belong to, with the versions their symbols ask for. dpkg-shlibdeps
# reads a source package's debian/control, so it is given a minimal one; adduser makes the system user.
mkdir -p "$work/source/debian"
printf 'Source: websockets\n\nPackage: websockets\nArchitecture: any\n' > "$work/source/debian/control"
libraries=$(cd "$work/source" && dpkg-shlibdeps -O "$root/usr/bin/websockets" 2> /dev/null | sed -n 's/^shlibs:Depends=//p')
[ -n "$libraries" ] || { echo "dpkg-shlibdeps found no libraries" >&2; exit 1; }
size=$(du -k -s --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCHITECTURE@/$architecture/" -e "s/@INSTALLED_SIZE@/$size/" \
    -e "s/@DEPENDS@/adduser, $libraries/" deploy/debian/control > "$root/DEBIAN/control"
(cd "$root" && find usr lib -type f -exec md5sum {} + | sort -k 2) > "$root/DEBIAN/md5sums"
chmod 644 "$root/DEBIAN/control" "$root/DEBIAN/md5sums"

package="$output/websockets_${version}_$architecture.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$package" > /dev/null
echo "binary: $(stat -c %s "$root/usr/bin/websockets") bytes stripped; Depends: adduser, $libraries"
echo "$package"
