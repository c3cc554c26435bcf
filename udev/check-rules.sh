#!/usr/bin/env bash
# Applies a udev rules file for real to a fake VFIO group node, in a private
# mount namespace (tmpfs on /run and /dev, /etc/group bind-mounted), and
# prints what udevadm said about the file plus the node's resulting mode and
# group: "node: MODE GROUP". Never touches the machine's /dev.
#
# usage: check-rules.sh UDEVADM RULES_FILE [GROUP]
# Run as root (unshare -m needs it). The caller's test asserts on the output.
set -euo pipefail
udevadm=$1 rules=$2 group=${3:-kvm}
if [ "${HOSTDEV_IN_NAMESPACE:-}" != 1 ]; then
  exec env HOSTDEV_IN_NAMESPACE=1 unshare -m --propagation private "$0" "$@"
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bed=$work/bed
dev=$bed/sys/devices/virtual/vfio/12
mkdir -p "$dev" "$bed/sys/class/vfio"
printf 'MAJOR=511\nMINOR=0\nDEVNAME=vfio/12\n' > "$dev/uevent"
echo 511:0 > "$dev/dev"
ln -s ../../../../class/vfio "$dev/subsystem"
ln -s ../../devices/virtual/vfio/12 "$bed/sys/class/vfio/12"
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /dev
mkdir -p /run/udev/rules.d /dev/vfio
cp "$rules" /run/udev/rules.d/
mknod /dev/vfio/12 c 511 0
chmod 600 /dev/vfio/12
cp /etc/group "$work/group"
grep -q "^$group:" "$work/group" || echo "$group:x:$((60000 + RANDOM % 1000)):" >> "$work/group"
mount --bind "$work/group" /etc/group
name=$(basename "$rules")
UMOCKDEV_DIR=$bed umockdev-wrapper "$udevadm" test --action=add /sys/devices/virtual/vfio/12 2>&1 | grep -F "$name" || true
echo "node: $(stat -c '%a %G' /dev/vfio/12)"
