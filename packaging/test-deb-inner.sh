#!/usr/bin/env bash
# Runs inside a clean Debian 12 root (../shared/fresh-machine-check.sh, via
# packaging/test-deb.sh): installs the .deb with apt, with the Swift toolchain
# unmounted first, uses it, purges it, and checks that nothing is left.
# usage: test-deb-inner.sh HOSTDEVD.deb
# Prints "ok - …" / "not ok - …" per check; test-deb.sh counts them.
set -uo pipefail
DEB=$(readlink -f "$1")
export DEBIAN_FRONTEND=noninteractive
ok() { echo "ok - $*"; }
notok() { echo "not ok - $*"; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else notok "$what"; fi; }
EX=/usr/share/doc/hostdevd/examples

# No toolchain: the run bind-mounts it read-only; take it away so that
# nothing can load a Swift library from it.
swift_bin=$(command -v swift || true)
if [ -n "$swift_bin" ]; then
  toolchain=$(dirname "$(dirname "$(dirname "$(readlink -f "$swift_bin")")")")
  umount -l "$toolchain" 2>/dev/null || mount -t tmpfs -o ro tmpfs "$toolchain"
fi
check "no Swift toolchain in the root" bash -c '! command -v swift >/dev/null && ! ls /opt/swift/usr/lib 2>/dev/null | grep -q .'
check "no libswiftCore anywhere in the root" bash -c '[ -z "$(find / -xdev -name "libswiftCore.so*" -print -quit 2>/dev/null)" ]'

apt-get update -qq >/dev/null 2>&1
check "apt-get install ./$(basename "$DEB") (dependencies from Debian)" \
  bash -c 'apt-get install -y -qq --no-install-recommends "$0" >/tmp/install.log 2>&1 || { cat /tmp/install.log; false; }' "$DEB"
VERSION=$(dpkg-deb -f "$DEB" Version)

check "hostdevctl --version prints $VERSION" bash -c '[ "$(hostdevctl --version)" = "$0" ]' "$VERSION"
check "hostdevd --version prints $VERSION" bash -c '[ "$(hostdevd --version)" = "$0" ]' "$VERSION"
check "hostdevctl loads no Swift library (ldd)" bash -c '! ldd /usr/bin/hostdevctl | grep -Ei "swift|Foundation|dispatch|not found"'
check "hostdevctl loads no Swift library (LD_DEBUG=libs)" \
  bash -c 'LD_DEBUG=libs hostdevctl --version 2>/tmp/ld.log >/dev/null && grep -q "calling init: .*libvirt.so" /tmp/ld.log && ! grep -E "calling init: |trying file=|find library=" /tmp/ld.log | grep -Ei "swift|Foundation|dispatch|toolchain"'
check "hostdevctl devices on the example host snapshot" \
  bash -c 'hostdevctl devices --observed "$0/workstation-host.json" >/tmp/out 2>&1 && grep -q "pci_0000_01_00_0 .*10de:1b80" /tmp/out || { cat /tmp/out; false; }' "$EX"
check "hostdevctl devices through libvirt (example host in the test driver)" \
  bash -c 'hostdevctl devices --source libvirt --connect "test://$0/workstation.xml" --format json >/tmp/out 2>&1 && grep -q pci_0000_01_00_0 /tmp/out || { cat /tmp/out; false; }' "$EX"
check "hostdevctl devices on this root's real /sys (read-only)" \
  bash -c 'hostdevctl devices >/tmp/out 2>&1 && grep -q "pci_\|0000:" /tmp/out || { cat /tmp/out; false; }'
check "hostdevctl plan on the example manifest and snapshot" \
  bash -c 'hostdevctl plan --manifest "$0/workstation.yaml" --observed "$0/workstation-host.json" --state-dir /tmp/plan-state >/tmp/out 2>&1; grep -q win11 /tmp/out || { cat /tmp/out; false; }' "$EX"
check "hostdevd runs (until stopped) on an empty host" \
  bash -c 'mkdir -p /tmp/h; timeout -s TERM 3 hostdevd --sysfs-root /tmp/h --manifest "$0/minimal.yaml" --state-dir /tmp/h --status-file /tmp/h/status.json --connect test:///default --udev-source kernel 2>/tmp/d.log; [ $? = 124 ] || [ $? = 0 ] || { cat /tmp/d.log; false; }' "$EX"

check "the hostdevd group exists" getent group hostdevd
check "man pages: hostdevctl(1), hostdevctl-plan(1), hostdevd(8)" \
  bash -c 'zcat /usr/share/man/man1/hostdevctl.1.gz | grep -q "^\.Dt HOSTDEVCTL 1" && zcat /usr/share/man/man1/hostdevctl-plan.1.gz | grep -q "^\.Nm hostdevctl-plan" && zcat /usr/share/man/man8/hostdevd.8.gz | grep -q "^\.Dt HOSTDEVD 8"'
check "completions for bash, zsh and fish" \
  bash -c 'grep -q hostdevctl /usr/share/bash-completion/completions/hostdevctl && grep -q "#compdef hostdevctl" /usr/share/zsh/vendor-completions/_hostdevctl && grep -q "complete -c .hostdevctl" /usr/share/fish/vendor_completions.d/hostdevctl.fish'
check "bash completion offers the subcommands" \
  bash -c '. /usr/share/bash-completion/completions/hostdevctl; COMP_WORDS=(hostdevctl pl); COMP_CWORD=1; _hostdevctl 2>/dev/null; printf "%s\n" "${COMPREPLY[@]}" | grep -qx plan'
check "unit, udev rule, hook and example at Debian's paths" \
  test -f /lib/systemd/system/hostdevd.service -a -f /lib/udev/rules.d/70-hostdevd-vfio.rules -a -x /etc/libvirt/hooks/qemu.d/hostdevd -a -f /etc/hostdevd/bindings.yaml.example
check "the unit and the hook run /usr/bin, not /usr/local" \
  bash -c 'grep -q "^ExecStart=/usr/bin/hostdevd " /lib/systemd/system/hostdevd.service && grep -q "exec /usr/bin/hostdevctl hook" /etc/libvirt/hooks/qemu.d/hostdevd && ! grep -rq /usr/local /lib/systemd/system/hostdevd.service /etc/libvirt/hooks/qemu.d/hostdevd'
check "installing does not write /etc/hostdevd/bindings.yaml" test ! -e /etc/hostdevd/bindings.yaml

# The operator's manifest survives a reinstall (an upgrade runs the same scripts).
printf 'version: 1\n# mine\n' >/etc/hostdevd/bindings.yaml
check "a reinstall keeps the operator's bindings.yaml" \
  bash -c 'dpkg -i "$0" >/tmp/re.log 2>&1 && grep -q "# mine" /etc/hostdevd/bindings.yaml || { cat /tmp/re.log; false; }' "$DEB"

# Purge with an empty ledger: nothing of the package remains.
mkdir -p /var/lib/hostdevd /run/hostdevd
echo '{"devices":{}}' >/var/lib/hostdevd/ledger.json
echo '{}' >/run/hostdevd/status.json
dpkg -L hostdevd | LC_ALL=C sort -u >/tmp/files
check "dpkg --purge hostdevd" bash -c 'dpkg --purge hostdevd >/tmp/purge.log 2>&1 || { cat /tmp/purge.log; false; }'
leftovers() {
  local path
  while IFS= read -r path; do
    [ -e "$path" ] || [ -L "$path" ] || continue
    # A directory another package owns, or the base system's (/., and /lib:
    # a symlink to usr/lib on merged /usr), may stay. The package ships no symlink.
    if [ -d "$path" ] && { [ "$path" = /. ] || [ -L "$path" ] || dpkg -S "$path" >/dev/null 2>&1; }; then continue; fi
    echo "left behind: $path"
  done </tmp/files
  for path in /etc/hostdevd /var/lib/hostdevd /run/hostdevd; do [ -e "$path" ] && echo "left behind: $path"; done
  getent group hostdevd && echo "left behind: group hostdevd"
  return 0
}
export -f leftovers
check "nothing of the package remains after purge ($(wc -l </tmp/files) paths checked)" bash -c 'out=$(leftovers); [ -z "$out" ] || { echo "$out"; false; }'
check "dpkg no longer knows hostdevd" bash -c '! dpkg-query -W hostdevd 2>/dev/null'

# Purge while the ledger still holds a device: the ledger stays, and the
# operator is told how to release it by hand.
apt-get install -y -qq --no-install-recommends "$DEB" >/dev/null 2>&1
mkdir -p /var/lib/hostdevd
echo '{"devices":{"0000:01:00.0":{"originalDriver":"nouveau","vm":"win11"}},"released":{}}' >/var/lib/hostdevd/ledger.json
dpkg --purge hostdevd >/tmp/purge2.log 2>&1
check "remove names the held device and 'hostdevctl release 0000:01:00.0'" grep -q "hostdevctl release 0000:01:00.0" /tmp/purge2.log
check "purge keeps a ledger that still holds devices" test -f /var/lib/hostdevd/ledger.json
check "purge tells how to release it by hand" \
  bash -c 'grep -q "echo 0000:01:00.0 > /sys/bus/pci/drivers/vfio-pci/unbind" /tmp/purge2.log && grep -q "back to nouveau" /tmp/purge2.log || { cat /tmp/purge2.log; false; }'
check "purge with a held device still removes the rest" \
  bash -c '[ ! -e /usr/bin/hostdevctl ] && [ ! -e /etc/hostdevd ] && ! getent group hostdevd >/dev/null'
rm -rf /var/lib/hostdevd
