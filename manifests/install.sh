#!/usr/bin/env bash
# Installs hostdevd from a source build (the Debian package is
# packaging/build-deb.sh):
#   swift build -c release && manifests/install.sh
#   manifests/install.sh --uninstall
# Variables: PREFIX (default /usr/local), DESTDIR (staging root, default /),
# VFIO_GROUP (group of /dev/vfio/N, default kvm), BUILD (where the binaries
# are, default .build/release), FORCE=1 (uninstall although the ledger still
# lists devices on vfio-pci).
#
# Where files go, for PREFIX=/usr/local (PREFIX=/usr: the same under /usr):
#   binaries       $PREFIX/bin
#   systemd unit   $PREFIX/lib/systemd/system   (systemd reads /usr/local/lib/systemd/system
#                  and /usr/lib/systemd/system; on Debian 12, merged /usr makes the latter
#                  the same directory as /lib/systemd/system, where the .deb puts it)
#   udev rule      $PREFIX/lib/udev/rules.d     (udev reads /usr/local/lib/udev/rules.d and /usr/lib/udev/rules.d)
#   man pages, schema, README, examples          $PREFIX/share/...
#   libvirt hook   /etc/libvirt/hooks/qemu.d/hostdevd (libvirt reads hooks from /etc only)
#   the operator's config: /etc/hostdevd/ (bindings.yaml.example beside it;
#                  bindings.yaml itself is never written)
# Every installed file is listed in $PREFIX/share/hostdevd/installed-files;
# --uninstall removes exactly those, and keeps the operator's manifest and
# the ledger (/var/lib/hostdevd).
set -euo pipefail
shopt -s lastpipe  # `sed … | put …` records into this shell's list
cd "$(dirname "$0")/.."
DESTDIR=${DESTDIR:-}
PREFIX=${PREFIX:-/usr/local}
VFIO_GROUP=${VFIO_GROUP:-kvm}
BUILD=${BUILD:-.build/release}
RECORD=$PREFIX/share/hostdevd/installed-files
die() { echo "install: $*" >&2; exit 1; }
case "$PREFIX" in /*) ;; *) die "PREFIX '$PREFIX' must be an absolute path" ;; esac
PREFIX=${PREFIX%/}

uninstall() {
  [ -f "$DESTDIR$RECORD" ] || die "nothing to uninstall: $DESTDIR$RECORD is missing (installed with another PREFIX or DESTDIR?)"
  if [ -z "$DESTDIR" ] && [ -d /run/systemd/system ] && systemctl -q is-active hostdevd.service 2>/dev/null; then
    die "hostdevd is running: stop it first (systemctl disable --now hostdevd)"
  fi
  # shellcheck source=../packaging/debian/ledger.sh
  . packaging/debian/ledger.sh
  held=$(hostdevd_held_devices "$DESTDIR/var/lib/hostdevd")
  if [ -n "$held" ]; then
    echo "install: the ledger says hostdevd still holds these devices on vfio-pci:" >&2
    echo "$held" | sed 's/^/  /' >&2
    echo "install: give them back first, while hostdevctl is installed:" >&2
    echo "$held" | hostdevd_release_instructions with-binary >&2
    [ "${FORCE:-}" = 1 ] || die "not uninstalling (FORCE=1 uninstalls anyway and leaves them on vfio-pci)"
  fi
  local file dir
  while IFS= read -r file; do
    [ -n "$file" ] && rm -f "$DESTDIR$file"
  done <"$DESTDIR$RECORD"
  rm -f "$DESTDIR$RECORD"
  # Directories that only held our files; shared ones (bin, lib/udev/...) stay when not empty.
  for dir in "$PREFIX/share/hostdevd/schemas" "$PREFIX/share/hostdevd" "$PREFIX/share/doc/hostdevd/examples" \
    "$PREFIX/share/doc/hostdevd/docs" "$PREFIX/share/doc/hostdevd" \
    /etc/libvirt/hooks/qemu.d; do
    rmdir "$DESTDIR$dir" 2>/dev/null || true
  done
  echo "uninstalled from ${DESTDIR:-/} (prefix $PREFIX)"
  echo "kept: /etc/hostdevd (your manifest) and /var/lib/hostdevd (the ledger); remove them by hand if you no longer need them"
  if [ -z "$DESTDIR" ]; then
    echo "next: systemctl daemon-reload; udevadm control --reload; systemctl restart libvirtd (unloads the hook)"
  fi
}

case "${1:-}" in
  --uninstall) uninstall; exit 0 ;;
  "") ;;
  -h|--help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) die "unknown argument '$1' (use --uninstall, or none to install)" ;;
esac

case "$VFIO_GROUP" in *[!a-zA-Z0-9_-]*|"") die "VFIO_GROUP '$VFIO_GROUP' is not a group name" ;; esac
for binary in hostdevd hostdevctl; do
  [ -x "$BUILD/$binary" ] || die "$BUILD/$binary is missing; run swift build -c release first"
done

installed=()
# put MODE SOURCE DEST: install one file (SOURCE - reads stdin) and record it.
put() {
  install -d "$DESTDIR$(dirname "$3")"
  if [ "$2" = - ]; then cat >"$DESTDIR$3"; chmod "$1" "$DESTDIR$3"; else install -m "$1" "$2" "$DESTDIR$3"; fi
  installed+=("$3")
}
for binary in hostdevd hostdevctl; do
  put 0755 "$BUILD/$binary" "$PREFIX/bin/$binary"
done
sed "s/GROUP=\"kvm\"/GROUP=\"$VFIO_GROUP\"/" udev/70-hostdevd-vfio.rules | put 0644 - "$PREFIX/lib/udev/rules.d/70-hostdevd-vfio.rules"
sed "s|/usr/local/|$PREFIX/|g" manifests/systemd/hostdevd.service | put 0644 - "$PREFIX/lib/systemd/system/hostdevd.service"
sed "s|/usr/local/|$PREFIX/|g" manifests/libvirt/hooks/qemu.d/hostdevd | put 0755 - /etc/libvirt/hooks/qemu.d/hostdevd
# Never overwrite an operator's manifest: only an example beside it.
install -d "$DESTDIR/etc/hostdevd"
put 0644 manifests/examples/minimal.yaml /etc/hostdevd/bindings.yaml.example
put 0644 manifests/hostdevd-manifest.schema.json "$PREFIX/share/hostdevd/hostdevd-manifest.schema.json"
put 0644 README.md "$PREFIX/share/doc/hostdevd/README.md"
for doc in docs/*.md; do put 0644 "$doc" "$PREFIX/share/doc/hostdevd/docs/$(basename "$doc")"; done
for schema in manifests/schemas/*.schema.json; do put 0644 "$schema" "$PREFIX/share/hostdevd/schemas/$(basename "$schema")"; done
for example in manifests/examples/*; do
  put 0644 "$example" "$PREFIX/share/doc/hostdevd/examples/$(basename "$example")"
done
# Completions and man pages, from the binaries' own argument parsers
# (man pages only when the .deb build made them: packaging/build-deb.sh).
for binary in hostdevd hostdevctl; do
  "$BUILD/$binary" --generate-completion-script bash | put 0644 - "$PREFIX/share/bash-completion/completions/$binary"
  "$BUILD/$binary" --generate-completion-script zsh | put 0644 - "$PREFIX/share/zsh/site-functions/_$binary"
  "$BUILD/$binary" --generate-completion-script fish | put 0644 - "$PREFIX/share/fish/vendor_completions.d/$binary.fish"
done
for page in .build-deb/man/1/*.1 .build-deb/man/8/*.8; do
  [ -e "$page" ] || continue
  put 0644 "$page" "$PREFIX/share/man/man${page##*.}/$(basename "$page")"
done
install -d "$DESTDIR$(dirname "$RECORD")"
printf '%s\n' "${installed[@]}" >"$DESTDIR$RECORD"
echo "installed into ${DESTDIR:-/} (prefix $PREFIX, /dev/vfio group $VFIO_GROUP); manifests/install.sh --uninstall removes it"
if [ -z "$DESTDIR" ]; then
  echo "next: write /etc/hostdevd/bindings.yaml (from bindings.yaml.example), check it with hostdevctl plan;"
  echo "      udevadm control --reload && udevadm trigger -s vfio; systemctl daemon-reload;"
  echo "      systemctl restart libvirtd (to load the hook); systemctl enable --now hostdevd"
fi
