#!/usr/bin/env bash
# Tests hostdevd's Debian package on a clean Debian 12 root without the
# Swift toolchain: packaging/test-deb.sh [HOSTDEVD.deb]
#
# Builds the package (packaging/build-deb.sh) unless given one, checks it
# with lintian here, then runs packaging/test-deb-inner.sh in a fresh root
# made by ../shared/fresh-machine-check.sh (override: FRESH_MACHINE_CHECK):
# apt installs it with its dependencies, hostdevctl and hostdevd run, man
# pages and completions are in place, a reinstall keeps the operator's
# manifest, and dpkg --purge leaves nothing behind (a ledger that still
# holds devices stays, with instructions). Ends with "N passed, M failed".
#
# fresh-machine-check.sh clones a project's committed HEAD into the root, so
# the .deb and the inner script reach it as a throwaway git repository.
# Needs root (fresh-machine-check.sh mounts and chroots).
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
FRESH=${FRESH_MACHINE_CHECK:-$REPO/../shared/fresh-machine-check.sh}
[ -x "$FRESH" ] || [ -f "$FRESH" ] || { echo "test-deb: $FRESH is missing (set FRESH_MACHINE_CHECK)" >&2; exit 2; }
T0=$(date +%s)

if [ $# -ge 1 ]; then
  DEB=$(readlink -f "$1")
else
  DEB=$(packaging/build-deb.sh | tail -n 1) || { echo "test-deb: packaging/build-deb.sh failed"; echo "0 passed, 1 failed"; exit 1; }
fi
[ -f "$DEB" ] || { echo "test-deb: no package at '$DEB'"; echo "0 passed, 1 failed"; exit 1; }

work=$(mktemp -d /tmp/hostdevd-test-deb.XXXXXX)
trap 'rm -rf "$work"' EXIT
results=$work/results
: >"$results"

# lintian, on this machine (the fresh root has none): no error or warning
# but those the package's overrides explain (packaging/debian/lintian-overrides).
if command -v lintian >/dev/null; then
  lintian --fail-on error,warning "$DEB" >"$work/lintian" 2>&1
  status=$?
  if [ $status -eq 0 ]; then echo "ok - lintian: no error or warning beyond the package's overrides" >>"$results"
  else echo "not ok - lintian (exit $status):" >>"$results"; sed 's/^/    /' "$work/lintian" >>"$results"; fi
else
  echo "not ok - lintian is not installed here (apt-get install lintian)" >>"$results"
fi

repo=$work/hostdevd-deb-test
mkdir -p "$repo"
cp "$DEB" packaging/test-deb-inner.sh "$repo/"
git -C "$repo" init -q
git -C "$repo" add .
git -C "$repo" -c user.name=test-deb -c user.email=test-deb@localhost commit -q -m "hostdevd package under test"
echo "test-deb: installing $(basename "$DEB") in a fresh Debian root (${FRESH})" >&2
bash "$FRESH" "$repo" bash test-deb-inner.sh "$(basename "$DEB")" 2>&1 | tee "$work/inner" >&2
grep -E '^(ok|not ok) - ' "$work/inner" >>"$results"
grep -q '^ok - dpkg no longer knows hostdevd' "$work/inner" || echo "not ok - the run in the fresh root did not finish" >>"$results"

echo
cat "$results"
passed=$(grep -c '^ok - ' "$results")
failed=$(grep -c '^not ok - ' "$results")
echo "test-deb: wall time $(( $(date +%s) - T0 )) s"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
