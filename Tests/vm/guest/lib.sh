# Helpers for the suite's guest-side scripts (Tests/vm/run prepends this file
# to each script it runs in the guest, after HD, G, REPO, H and E are set).
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mkdir -p "$E" /run/hd
drv() { local l; l=$(readlink "/sys/bus/pci/devices/$1/driver" 2>/dev/null) && echo "${l##*/}" || echo none; }
# reading driver_override takes the device lock, which a blocked unbind holds:
# read it in the background and give up after 1 s rather than hang
ovr() {
  local f="/sys/bus/pci/devices/$1/driver_override" t=/run/ovr.$BASHPID.$RANDOM i
  [ -e "$f" ] || { echo gone; return; }
  ( cat "$f" > "$t.new" 2>/dev/null && mv "$t.new" "$t" ) > /dev/null 2>&1 &   # not on our stdout: $(ovr) must not wait for it
  for ((i = 0; i < 20; i++)); do [ -e "$t" ] && break; sleep 0.05; done
  if [ -e "$t" ]; then cat "$t"; rm -f "$t"; else echo "(read blocked: the device lock is held)"; fi
}
grp() { local l; l=$(readlink "/sys/bus/pci/devices/$1/iommu_group") && echo "${l##*/}"; }
node() { local n="/dev/vfio/$(grp "$1")"; [ -e "$n" ] && stat -c '%n %U:%G %a' "$n" || echo "$n absent"; }
say() { echo "$*"; }
state() { local b; for b in "$@"; do echo "$b: driver=$(drv "$b") override=$(ovr "$b")"; done; }
# wait_for SECONDS COMMAND...: polls COMMAND every 0.2 s for SECONDS times the
# suite's HOSTDEVD_VM_TIMEOUT_SCALE; status 1 if it never succeeded
wait_for() { local n=$(( $1 * 5 * ${HDVM_SCALE:-1} )) i; shift; for ((i = 0; i < n; i++)); do "$@" && return 0; sleep 0.2; done; "$@"; }
is_drv() { [ "$(drv "$1")" = "$2" ]; }
# sysfs moves done by hand (not by hostdevctl): to vfio-pci and back
to_vfio() { local b; for b in "$@"; do
  echo vfio-pci > "/sys/bus/pci/devices/$b/driver_override"
  [ -e "/sys/bus/pci/devices/$b/driver" ] && echo "$b" > "/sys/bus/pci/devices/$b/driver/unbind"
  echo "$b" > /sys/bus/pci/drivers_probe; done; }
from_vfio() { local b; for b in "$@"; do
  echo > "/sys/bus/pci/devices/$b/driver_override"
  [ -e "/sys/bus/pci/devices/$b/driver" ] && echo "$b" > "/sys/bus/pci/devices/$b/driver/unbind"
  echo "$b" > /sys/bus/pci/drivers_probe; done; }
# hostdevd NAME MANIFEST [ARGS...]: starts hostdevd (state /run/hd/NAME, status
# /run/hd/NAME/status.json, log $E/hostdevd-NAME.log); waits for its first status
hd_start() {
  local name=$1 manifest=$2; shift 2
  mkdir -p "/run/hd/$name"
  nohup "$HD/hostdevd" --manifest "$manifest" --state-dir "/run/hd/$name/state" \
    --status-file "/run/hd/$name/status.json" --log-level debug "$@" >> "$E/hostdevd-$name.log" 2>&1 &
  echo $! > "/run/hd/$name/pid"
  wait_for 30 test -s "/run/hd/$name/status.json" ||
    { echo "hostdevd $name: no status file after 30 s"; tail -5 "$E/hostdevd-$name.log"; return 1; }
  echo "hostdevd $name running (pid $!)"
}
hd_pid() { cat "/run/hd/$1/pid"; }
hd_stop() { # NAME: SIGTERM; SIGKILL after 10 s (and says so)
  local p; p=$(cat "/run/hd/$1/pid" 2>/dev/null) || return 0
  kill "$p" 2>/dev/null || return 0
  wait_for 10 eval "! kill -0 $p 2>/dev/null" && return 0
  echo "hostdevd $1 (pid $p) still running 10 s after SIGTERM: SIGKILL"; kill -9 "$p"; return 1
}
status_of() { cp "/run/hd/$1/status.json" "$E/status-$1-${2:-last}.json" 2>/dev/null; cat "/run/hd/$1/status.json"; }
# put FILE CONTENT: writes a manifest by rename, as an editor or config manager does
put() { printf '%s' "$2" > "$1.new" && mv "$1.new" "$1"; }
