#!/usr/bin/env bash
# Installs hostdevd's binaries and shipped files.
#   swift build -c release && manifests/install.sh
# Variables: VFIO_GROUP (group of /dev/vfio/N, default kvm), PREFIX
# (/usr/local), DESTDIR (staging root, default /), BUILD (where the
# binaries are, default .build/release).
set -euo pipefail
cd "$(dirname "$0")/.."
DESTDIR=${DESTDIR:-}
PREFIX=${PREFIX:-/usr/local}
VFIO_GROUP=${VFIO_GROUP:-kvm}
BUILD=${BUILD:-.build/release}
case "$VFIO_GROUP" in *[!a-zA-Z0-9_-]*|"") echo "install: VFIO_GROUP '$VFIO_GROUP' is not a group name" >&2; exit 1 ;; esac

install -d "$DESTDIR$PREFIX/bin" "$DESTDIR/etc/udev/rules.d" "$DESTDIR/etc/systemd/system" \
  "$DESTDIR/etc/libvirt/hooks/qemu.d" "$DESTDIR/etc/hostdevd" "$DESTDIR$PREFIX/share/doc/hostdevd" \
  "$DESTDIR$PREFIX/share/hostdevd"
for binary in hostdevd hostdevctl; do
  [ -x "$BUILD/$binary" ] || { echo "install: $BUILD/$binary is missing; run swift build -c release first" >&2; exit 1; }
  install -m 0755 "$BUILD/$binary" "$DESTDIR$PREFIX/bin/$binary"
done
sed "s/GROUP=\"kvm\"/GROUP=\"$VFIO_GROUP\"/" udev/70-hostdevd-vfio.rules > "$DESTDIR/etc/udev/rules.d/70-hostdevd-vfio.rules"
sed "s|/usr/local/|$PREFIX/|g" manifests/systemd/hostdevd.service > "$DESTDIR/etc/systemd/system/hostdevd.service"
sed "s|/usr/local/|$PREFIX/|g" manifests/libvirt/hooks/qemu.d/hostdevd > "$DESTDIR/etc/libvirt/hooks/qemu.d/hostdevd"
chmod 0755 "$DESTDIR/etc/libvirt/hooks/qemu.d/hostdevd"
# Never overwrite an operator's manifest.
[ -e "$DESTDIR/etc/hostdevd/bindings.yaml" ] || install -m 0644 manifests/examples/minimal.yaml "$DESTDIR/etc/hostdevd/bindings.yaml.example"
install -m 0644 manifests/hostdevd-manifest.schema.json "$DESTDIR$PREFIX/share/hostdevd/"
install -m 0644 README.md "$DESTDIR$PREFIX/share/doc/hostdevd/"
echo "installed into ${DESTDIR:-/} (prefix $PREFIX, /dev/vfio group $VFIO_GROUP)"
if [ -z "$DESTDIR" ]; then
  echo "next: edit /etc/hostdevd/bindings.yaml, then: udevadm control --reload && udevadm trigger -s vfio;"
  echo "      systemctl restart libvirtd (to load the hook); systemctl enable --now hostdevd"
fi
