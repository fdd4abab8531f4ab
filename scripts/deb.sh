#!/usr/bin/env bash
# `make deb`: build/labelwall_<version>_amd64.deb with dpkg-deb, from the same install as
# `make install` (PREFIX=/usr, staged with DESTDIR). The config is not a conffile: as with
# `make install`, postinst puts the example in /etc/labelwall only when no config exists, and
# postrm's remove deletes it only while it is unchanged, so `dpkg -r` leaves nothing behind but
# what the administrator wrote (keys, a changed config); `dpkg --purge` deletes it also when
# changed, and keeps only the keys.
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(node -p 'require("./package.json").version')
arch=amd64 # koffi's bindings (src/sys/libc.ts) are for x86_64 Linux only
multiarch=x86_64-linux-gnu
stage=build/deb/labelwall_${version}_$arch
out=build/labelwall_${version}_$arch.deb
rm -rf "$stage"
mkdir -p "$stage/DEBIAN"

PREFIX=/usr LIBDIR=/usr/lib/labelwall BINDIR=/usr/bin SYSCONFDIR=/etc SYSTEMDUNITDIR=/lib/systemd/system \
  WIRESHARK_PLUGIN_DIR=/usr/lib/$multiarch/wireshark/plugins INSTALL_CONFIG=0 DESTDIR="$stage" \
  bash scripts/install.sh install >/dev/null
rm -f "$stage/usr/lib/labelwall/install-manifest" # dpkg keeps the list of the package's files

example_sha=$(sha256sum packaging/labelwall.yaml | cut -d' ' -f1)
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
sed -e "s|@VERSION@|$version|" -e "s|@ARCH@|$arch|" -e "s|@SIZE@|$size|" packaging/debian/control.in >"$stage/DEBIAN/control"
for s in postinst prerm postrm; do
  sed -e "s|@EXAMPLE_SHA256@|$example_sha|" "packaging/debian/$s" >"$stage/DEBIAN/$s"
  chmod 0755 "$stage/DEBIAN/$s"
done
dpkg-deb --root-owner-group -Zxz --build "$stage" "$out" >/dev/null
echo "$out"
