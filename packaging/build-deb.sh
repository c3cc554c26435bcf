#!/usr/bin/env bash
# Builds hostdevd's Debian package: packaging/build-deb.sh [OUTDIR]
#
# A release build with the Swift runtime linked statically (the package runs
# on a Debian 12 host without a Swift toolchain), man pages and shell
# completions generated from the argument parser, and the shipped files at
# Debian's paths, assembled with dpkg-deb. Prints the .deb's path last.
#
# Needs: the Swift toolchain, .ci/setup's build packages, dpkg-dev
# (dpkg-shlibdeps computes Depends). Its own build directory (.build-deb)
# leaves the development build (.build) alone.
# Environment: VFIO_GROUP (group of /dev/vfio/N, default kvm); DEBFULLNAME,
# DEBEMAIL (the Maintainer); SOURCE_DATE_EPOCH (default: the commit's date).
set -euo pipefail
umask 022
cd "$(dirname "$0")/.."
REPO=$PWD
OUTDIR=${1:-$REPO/.build-deb/out}
SCRATCH=$REPO/.build-deb
STAGE=$SCRATCH/stage
VFIO_GROUP=${VFIO_GROUP:-kvm}
MAINTAINER="${DEBFULLNAME:-hostdevd maintainers} <${DEBEMAIL:-hostdevd@example.org}>"
log() { echo "build-deb: $*" >&2; }
die() { echo "build-deb: error: $*" >&2; exit 1; }
case "$VFIO_GROUP" in *[!a-zA-Z0-9_-]*|"") die "VFIO_GROUP '$VFIO_GROUP' is not a group name" ;; esac
for tool in swift dpkg-deb dpkg-shlibdeps gzip strip; do
  command -v "$tool" >/dev/null || die "$tool is missing (dpkg-shlibdeps: apt-get install dpkg-dev; swift: the Swift 6 toolchain)"
done
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || date +%s)
fi
export SOURCE_DATE_EPOCH
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)

# 1. Release binaries with the Swift runtime inside them.
# --disable-local-rpath: no $ORIGIN RUNPATH (nothing is loaded from beside /usr/bin).
# -z now, relro: symbols bound at start and the GOT read-only (Debian's hardening).
swift_build() {
  swift build -c release --static-swift-stdlib --disable-local-rpath -Xlinker -z -Xlinker now -Xlinker -z -Xlinker relro \
    --scratch-path "$SCRATCH" "$@"
}
log "building release binaries (static Swift runtime) in $SCRATCH"
for product in hostdevctl hostdevd generate-manual; do
  swift_build --product "$product" >&2 || die "swift build --product $product failed"
done
BIN=$(swift_build --show-bin-path)
for binary in hostdevctl hostdevd; do
  # Neither a libswift*/libFoundation* nor a path into the toolchain may be
  # left for the loader: the host has no toolchain.
  if ldd "$BIN/$binary" | grep -E 'libswift|libFoundation|lib_Foundation|libdispatch|libBlocksRuntime|not found'; then
    die "$BIN/$binary still loads the libraries above: it would not run without the Swift toolchain"
  fi
  if readelf -d "$BIN/$binary" | grep -E 'RPATH|RUNPATH'; then
    die "$BIN/$binary has a RUNPATH (above): it would look for libraries in the build machine's toolchain"
  fi
done
VERSION=$("$BIN/hostdevctl" --version)
[[ $VERSION =~ ^[0-9][0-9A-Za-z.+~]*$ ]] || die "hostdevctl --version printed '$VERSION', not a Debian version"
ARCH=$(dpkg --print-architecture)

# 2. The tree the package installs.
rm -rf "$STAGE"
install -d "$STAGE/DEBIAN" "$STAGE/usr/bin" "$STAGE/lib/systemd/system" "$STAGE/lib/udev/rules.d" \
  "$STAGE/etc/libvirt/hooks/qemu.d" "$STAGE/etc/hostdevd" "$STAGE/usr/share/man/man1" "$STAGE/usr/share/man/man8" \
  "$STAGE/usr/share/bash-completion/completions" "$STAGE/usr/share/zsh/vendor-completions" \
  "$STAGE/usr/share/fish/vendor_completions.d" "$STAGE/usr/share/doc/hostdevd/examples" "$STAGE/usr/share/hostdevd"
for binary in hostdevctl hostdevd; do
  install -m 0755 "$BIN/$binary" "$STAGE/usr/bin/$binary"
  # Debian ships stripped binaries; the Swift metadata sections stay (they are allocated).
  strip --strip-unneeded --remove-section=.comment --remove-section=.note "$STAGE/usr/bin/$binary"
done
sed -e 's|/usr/local/bin/|/usr/bin/|g' \
  -e 's|^Documentation=.*|Documentation=man:hostdevd(8) man:hostdevctl(1) file:/usr/share/doc/hostdevd/README.md|' \
  manifests/systemd/hostdevd.service >"$STAGE/lib/systemd/system/hostdevd.service"
sed "s/GROUP=\"kvm\"/GROUP=\"$VFIO_GROUP\"/" udev/70-hostdevd-vfio.rules >"$STAGE/lib/udev/rules.d/70-hostdevd-vfio.rules"
sed 's|/usr/local/bin/|/usr/bin/|g' manifests/libvirt/hooks/qemu.d/hostdevd >"$STAGE/etc/libvirt/hooks/qemu.d/hostdevd"
chmod 0755 "$STAGE/etc/libvirt/hooks/qemu.d/hostdevd"
# The operator's manifest is bindings.yaml, never shipped: only an example beside it.
install -m 0644 manifests/examples/minimal.yaml "$STAGE/etc/hostdevd/bindings.yaml.example"
install -m 0644 manifests/hostdevd-manifest.schema.json "$STAGE/usr/share/hostdevd/"
install -m 0644 manifests/examples/* "$STAGE/usr/share/doc/hostdevd/examples/"
install -m 0644 README.md "$STAGE/usr/share/doc/hostdevd/README.md"
# README's links into docs/ resolve beside it; the output schemas beside the manifest's.
install -d "$STAGE/usr/share/doc/hostdevd/docs" "$STAGE/usr/share/hostdevd/schemas"
install -m 0644 docs/*.md "$STAGE/usr/share/doc/hostdevd/docs/"
install -m 0644 manifests/schemas/*.schema.json "$STAGE/usr/share/hostdevd/schemas/"
install -m 0644 packaging/debian/copyright "$STAGE/usr/share/doc/hostdevd/copyright"
install -D -m 0644 packaging/debian/lintian-overrides "$STAGE/usr/share/lintian/overrides/hostdevd"
sed -e "s/@VERSION@/$VERSION/g" -e "s/@COMMIT@/$COMMIT/g" -e "s/@MAINTAINER@/$MAINTAINER/g" \
  -e "s/@DATE@/$(date -u -R -d "@$SOURCE_DATE_EPOCH")/g" packaging/debian/changelog.in |
  gzip -9n >"$STAGE/usr/share/doc/hostdevd/changelog.gz"

# 3. Man pages, from the argument parser's own description of each command
# (swift-argument-parser's generate-manual, the tool its plugin runs):
# hostdevctl and one page per subcommand in section 1, hostdevd in 8.
MANDIR=$SCRATCH/man
rm -rf "$MANDIR"; mkdir -p "$MANDIR/1" "$MANDIR/8"
MANDATE=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%d)
"$BIN/generate-manual" "$BIN/hostdevctl" --multi-page --section 1 --date "$MANDATE" -o "$MANDIR/1"
"$BIN/generate-manual" "$BIN/hostdevd" --section 8 --date "$MANDATE" -o "$MANDIR/8"
# A subcommand's page is hostdevctl-plan(1) (as git-commit(1)): its NAME
# must be one word for whatis/apropos, which "hostdevctl plan" is not; the
# SYNOPSIS still shows the command as typed. The page of the built-in
# "help" subcommand says nothing the others do not: dropped.
rm -f "$MANDIR/1/hostdevctl.help.1"
for page in "$MANDIR/1"/hostdevctl.*.1; do
  [ -e "$page" ] || continue
  sub=$(basename "$page" .1); sub=${sub#hostdevctl.}
  awk -v sub_="$sub" '
    /^\.Dt / { sub(/^\.Dt HOSTDEVCTL\./, ".Dt HOSTDEVCTL-") }
    $0 == ".Nm \"hostdevctl " sub_ "\"" { $0 = ".Nm hostdevctl-" sub_ }
    /^\.Sh SYNOPSIS/ { synopsis = 1 }
    synopsis && $0 == ".Nm" { $0 = ".Nm \"hostdevctl " sub_ "\""; synopsis = 0 }
    { print }' "$page" >"$MANDIR/1/hostdevctl-$sub.1"
  rm "$page"
done
sed -i -e '/^\.Xr hostdevctl\.help 1/d' -e 's/^\.Xr hostdevctl\./.Xr hostdevctl-/' "$MANDIR"/1/*.1
for section in 1 8; do
  for page in "$MANDIR/$section"/*."$section"; do
    [ -e "$page" ] || die "generate-manual wrote no section $section page"
    gzip -9n <"$page" >"$STAGE/usr/share/man/man$section/$(basename "$page").gz"
  done
done

# 4. Shell completions, from the same parser.
for binary in hostdevctl hostdevd; do
  # Sourced, never run: no #! line.
  "$BIN/$binary" --generate-completion-script bash | sed '1{/^#!/d}' >"$STAGE/usr/share/bash-completion/completions/$binary"
  "$BIN/$binary" --generate-completion-script zsh >"$STAGE/usr/share/zsh/vendor-completions/_$binary"
  "$BIN/$binary" --generate-completion-script fish >"$STAGE/usr/share/fish/vendor_completions.d/$binary.fish"
done

# 5. Control files. Depends: what the binaries link, as dpkg-shlibdeps
# finds it (libvirt0, libxml2, libudev1, libyaml-0-2, libc6, libstdc++6,
# libgcc-s1, ...), and adduser for the group postinst creates.
SHLIBS=$SCRATCH/shlibdeps
rm -rf "$SHLIBS"; mkdir -p "$SHLIBS/debian"
printf 'Source: hostdevd\n\nPackage: hostdevd\nArchitecture: any\n' >"$SHLIBS/debian/control"
DEPENDS=$(cd "$SHLIBS" && dpkg-shlibdeps -O "$STAGE/usr/bin/hostdevctl" "$STAGE/usr/bin/hostdevd" | sed -n 's/^shlibs:Depends=//p')
[ -n "$DEPENDS" ] || die "dpkg-shlibdeps found no dependencies"
DEPENDS="adduser, $DEPENDS"
INSTALLED_SIZE=$(du -sk --exclude=DEBIAN "$STAGE" | cut -f1)
sed -e "s/@VERSION@/$VERSION/" -e "s/@ARCH@/$ARCH/" -e "s/@MAINTAINER@/$MAINTAINER/" \
  -e "s/@INSTALLED_SIZE@/$INSTALLED_SIZE/" -e "s/@DEPENDS@/$DEPENDS/" packaging/debian/control.in >"$STAGE/DEBIAN/control"
printf '%s\n' /etc/hostdevd/bindings.yaml.example /etc/libvirt/hooks/qemu.d/hostdevd >"$STAGE/DEBIAN/conffiles"
install -m 0755 packaging/debian/postinst "$STAGE/DEBIAN/postinst"
# prerm and postrm read the ledger without hostdevctl: the functions that do
# it are pasted in (postrm runs after the binaries are gone).
for script in prerm postrm; do
  awk -v functions="$REPO/packaging/debian/ledger.sh" '
    $0 == "#LEDGER_FUNCTIONS#" { while ((getline line < functions) > 0) print line; next } { print }' \
    "packaging/debian/$script" >"$STAGE/DEBIAN/$script"
  chmod 0755 "$STAGE/DEBIAN/$script"
done
(cd "$STAGE" && find . -type f ! -path './DEBIAN/*' -printf '%P\0' | LC_ALL=C sort -z | xargs -0 md5sum) >"$STAGE/DEBIAN/md5sums"
chmod 0644 "$STAGE/DEBIAN/md5sums" "$STAGE/DEBIAN/control" "$STAGE/DEBIAN/conffiles"
find "$STAGE" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

mkdir -p "$OUTDIR"
DEB=$(cd "$OUTDIR" && pwd)/hostdevd_${VERSION}_${ARCH}.deb
# Built beside its final name and renamed: a reader never sees half a package.
dpkg-deb --build --root-owner-group -Zxz "$STAGE" "$DEB.partial" >&2
mv -f "$DEB.partial" "$DEB"
log "built $DEB ($(du -h "$DEB" | cut -f1)); Depends: $DEPENDS"
echo "$DEB"
