# The checks of Tests/vm/run (sourced by it). Each c_NAME function prints its
# evidence and returns 0 to pass; `gx` runs a script in the guest (Tests/vm/
# guest/lib.sh's helpers available), `qmp` talks to the guest's QEMU.
# A check never leaves a device off its profile driver for the next one: each
# starts with a known state (`reset_devices`) and the deadlines are fixed here.

# Profile addresses
NIC=0000:00:10.0; EDU=0000:00:13.0; TD0=0000:00:13.1; NIC1=0000:01:00.0
HOT=0000:02:00.0; BRIDGE=0000:04:00.0; E1000=0000:05:01.0; TD1=0000:05:02.0

reset_devices() { # the profile's own drivers back, our overrides gone, leftovers of a failed check killed
  gx -t 60 '
  for p in $(cat /run/hd/*/pid 2>/dev/null); do kill -9 $p 2>/dev/null; done
  kill -9 $(cat /run/hd/holder.pid 2>/dev/null) 2>/dev/null
  for b in 0000:00:10.0 0000:00:13.0 0000:00:13.1 0000:01:00.0 0000:05:01.0 0000:05:02.0; do
    [ "$(ovr $b)" = "(null)" ] && [ "$(drv $b)" != vfio-pci ] && continue
    from_vfio $b 2>/dev/null
  done
  rm -rf /run/hd/*
  state 0000:00:10.0 0000:00:13.0 0000:00:13.1 0000:01:00.0 0000:05:01.0 0000:05:02.0' > /dev/null
}

c_boot() {
  gx '
  ok=0
  say "kernel $(uname -r); IOMMU groups: $(ls /sys/kernel/iommu_groups | wc -l)"
  dmesg | grep -E "DMAR-IR: Enabled|IRQ remapping" | head -2
  for b in 0000:00:10.0 0000:00:13.0 0000:00:13.1 0000:01:00.0 0000:04:00.0 0000:05:01.0 0000:05:02.0; do
    say "$b group $(grp $b) driver $(drv $b)"; done
  [ "$(grp 0000:00:13.0)" = "$(grp 0000:00:13.1)" ] || { say "00:13.0 and 00:13.1 are not in one group"; ok=1; }
  [ "$(grp 0000:05:01.0)" = "$(grp 0000:04:00.0)" ] && [ "$(grp 0000:05:02.0)" = "$(grp 0000:04:00.0)" ] ||
    { say "the bridge and the devices behind it are not in one group"; ok=1; }
  [ "$(grp 0000:00:10.0)" != "$(grp 0000:01:00.0)" ] || { say "the two e1000e share a group"; ok=1; }
  is_drv 0000:00:10.0 e1000e && is_drv 0000:01:00.0 e1000e && is_drv 0000:05:01.0 e1000 || { say "profile drivers missing"; ok=1; }
  dmesg | grep -q "DMAR-IR: Enabled IRQ remapping" || { say "no interrupt remapping"; ok=1; }
  lsmod | grep -q "^vfio_pci " && { say "vfio_pci already loaded at boot"; ok=1; }
  exit $ok'
}

c_devices() { gx 'python3 $G/devices-vs-sysfs.py $H'; }

c_check_vfio_not_loaded() {
  gx '
  $H check --connect test:///default > $E/check-not-loaded.txt 2>&1; rc=$?
  cat $E/check-not-loaded.txt; say "exit status $rc"
  [ $rc = 1 ] && grep "FAIL" $E/check-not-loaded.txt | grep -q "vfio-pci"'
}

c_apply_vfio_not_loaded() {
  # Either apply loads vfio-pci and binds, or the plan says before any step that
  # it is missing and nothing is moved. Not: unbind, wait, roll back per device.
  gx -t 90 '
  mkdir -p /run/hd/nl; M=/run/hd/nl/m.yaml
  put $M "version: 1
bindings:
  - vm: test
    devices:
      - pci: \"0000:00:10.0\"
"
  A="--manifest $M --state-dir /run/hd/nl/state --connect test:///default"
  if0=$(cat /sys/bus/pci/devices/0000:00:10.0/net/*/ifindex 2>/dev/null)
  t=$(date +%s%N); $H plan $A > $E/plan-not-loaded.txt 2>&1; rc=$?; plan_ms=$(( ($(date +%s%N) - t) / 1000000 ))
  say "plan exit $rc in $plan_ms ms:"; sed "s/^/  /" $E/plan-not-loaded.txt
  t=$(date +%s%N); $H apply $A > $E/apply-not-loaded.txt 2>&1; rc=$?; ms=$(( ($(date +%s%N) - t) / 1000000 ))
  say "apply exit $rc in $ms ms:"; sed "s/^/  /" $E/apply-not-loaded.txt
  if1=$(cat /sys/bus/pci/devices/0000:00:10.0/net/*/ifindex 2>/dev/null)
  state 0000:00:10.0; say "e1000e netdev ifindex before $if0, after $if1 (a new index: the driver was unbound and rebound)"
  lsmod | grep -q "^vfio_pci " && loaded=1 || loaded=0
  if [ $loaded = 1 ]; then
    say "vfio_pci loaded by apply"; is_drv 0000:00:10.0 vfio-pci
  else
    grep -qiE "vfio-pci.*(not loaded|modprobe)|(not loaded|modprobe).*vfio-pci" $E/plan-not-loaded.txt || { say "the plan does not say vfio-pci is missing"; exit 1; }
    [ "$if0" = "$if1" ] || { say "a step ran (the device was unbound) although vfio-pci is missing"; exit 1; }
    # Under TCG a run of hostdevctl itself takes seconds, more on a loaded
    # host: apply may take what plan took plus 5 s, not a read-back per device.
    [ $ms -lt $(( plan_ms * 2 + 5000 )) ] || { say "apply took $ms ms, plan $plan_ms ms"; exit 1; }
  fi'
}

c_check_node_before_rule() {
  gx '
  modprobe vfio-pci || exit 1
  to_vfio 0000:00:13.0 0000:00:13.1; state 0000:00:13.0 0000:00:13.1; node 0000:00:13.0
  $H check --connect test:///default > $E/check-before-rule.txt 2>&1; rc=$?
  cat $E/check-before-rule.txt; say "exit status $rc"
  [ $rc = 1 ] && grep "FAIL" $E/check-before-rule.txt | grep -q "/dev/vfio/$(grp 0000:00:13.0)"'
}

c_udev_rule() {
  gx '
  cp $REPO/udev/70-hostdevd-vfio.rules /etc/udev/rules.d/ && udevadm control --reload
  g=$(grp 0000:00:13.0)
  udevadm trigger --action=add --subsystem-match=vfio; udevadm settle --timeout=30
  say "after the rule and a trigger: $(node 0000:00:13.0)"
  [ "$(stat -c %G:%a /dev/vfio/$g)" = kvm:660 ] || exit 1
  from_vfio 0000:00:13.0 0000:00:13.1; udevadm settle; say "released: $(node 0000:00:13.0)"
  [ ! -e /dev/vfio/$g ] || exit 1
  to_vfio 0000:00:13.0 0000:00:13.1; udevadm settle; say "bound again (a fresh add): $(node 0000:00:13.0)"
  [ "$(stat -c %G:%a /dev/vfio/$g)" = kvm:660 ]'
}

c_check_correct_host() {
  gx '
  state 0000:00:13.0 0000:00:13.1; node 0000:00:13.0
  $H check --connect test:///default > $E/check-correct.txt 2>&1; rc=$?
  cat $E/check-correct.txt; say "exit status $rc"
  [ $rc = 0 ] && ! grep -q "FAIL" $E/check-correct.txt'
}

c_check_manifest_by_id() {
  # The ICH9 SMBus (8086:2930) shares its group with the LPC bridge (lpc_ich)
  # and AHCI (ahci): claimed alone (group: device) it is not viable. A claim
  # by vendor/device must be checked, and the remedy is about the siblings,
  # not allow_unsafe_interrupts. (With the default group: attach, hostdevd
  # would move the group together: check warns and names the siblings.)
  gx '
  put /run/hd/byid.yaml "version: 1
bindings:
  - vm: test
    devices:
      - pci: {vendor: \"8086\", device: \"2930\"}
        group: device
"
  for b in 0000:00:1f.0 0000:00:1f.2 0000:00:1f.3; do say "$b group $(grp $b) driver $(drv $b)"; done
  $H check --connect test:///default --manifest /run/hd/byid.yaml > $E/check-by-id.txt 2>&1; rc=$?
  cat $E/check-by-id.txt; say "exit status $rc"
  [ $rc = 1 ] || exit 1
  grep -q "0000:00:1f.3" $E/check-by-id.txt || { say "the claimed 0000:00:1f.3 is not named"; exit 1; }
  grep -qE "0000:00:1f.2|ahci" $E/check-by-id.txt || { say "the sibling that makes the group not viable (0000:00:1f.2 on ahci) is not named"; exit 1; }
  ! grep -i "viab" $E/check-by-id.txt | grep -q allow_unsafe_interrupts || { say "the viability remedy suggests allow_unsafe_interrupts"; exit 1; }'
}

apply_release() { # NAME DEVICE-YAML CLAIMED EXPECT-VFIO... -- EXPECT-AFTER(b=driver)...
  local name=$1 yaml=$2 claimed=$3; shift 3
  local bound=() after=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do bound+=("$1"); shift; done; shift
  after=("$@")
  gx -t 90 "
  modprobe vfio-pci || exit 1
  M=/run/hd/$name.yaml; A=\"--manifest \$M --state-dir /run/hd/$name --connect test:///default\"
  put \$M 'version: 1
bindings:
  - vm: test
    devices:
      - $yaml
'
  before=\"$(printf '%s ' "${after[@]}")\"
  \$H plan \$A > \$E/plan-$name.txt 2>&1; rc=\$?; say \"plan exit \$rc\"; sed 's/^/  /' \$E/plan-$name.txt
  [ \$rc = 2 ] || { say 'plan: expected exit 2 (changes pending)'; exit 1; }
  \$H apply \$A > \$E/apply-$name.txt 2>&1; rc=\$?; say \"apply exit \$rc\"; sed 's/^/  /' \$E/apply-$name.txt
  udevadm settle
  ok=0
  for b in ${bound[*]}; do say \"after apply: \$b driver=\$(drv \$b) override=\$(ovr \$b)\"; is_drv \$b vfio-pci || ok=1; done
  say \"\$(node $claimed)\"
  [ \"\$(stat -c %G:%a /dev/vfio/\$(grp $claimed) 2>/dev/null)\" = kvm:660 ] || { say 'node not kvm 0660'; ok=1; }
  python3 \$G/hold-vfio.py $claimed --viable-only || ok=1
  # every device apply bound, as an operator names them (release of the claimed
  # device alone leaves its group siblings on vfio-pci today)
  \$H release ${bound[*]} --force \$A > \$E/release-$name.txt 2>&1; rc=\$?; say \"release ${bound[*]}: exit \$rc\"; sed 's/^/  /' \$E/release-$name.txt
  udevadm settle
  for x in \$before; do b=\${x%=*}; want=\${x#*=}
    say \"after release: \$b driver=\$(drv \$b) override=\$(ovr \$b) (expected \$want, (null))\"
    is_drv \$b \$want && [ \"\$(ovr \$b)\" = '(null)' ] || ok=1
  done
  [ ! -e /dev/vfio/\$(grp $claimed) ] || { say \"/dev/vfio/\$(grp $claimed) still there\"; ok=1; }
  exit \$ok"
}
c_apply_single() { apply_release single "pci: \"$NIC\"" $NIC $NIC -- $NIC=e1000e; }
c_apply_shared_group() { apply_release shared "pci: \"$EDU\"" $EDU $EDU $TD0 -- $EDU=none $TD0=none; }
c_apply_behind_bridge() {
  local b; b=$(gx "drv $BRIDGE")
  apply_release bridge "pci: \"$E1000\"" $E1000 $E1000 $TD1 -- $E1000=e1000 $TD1=none $BRIDGE="$b"
}

HOTMANIFEST='version: 1
bindings:
  - vm: test
    devices:
      - pci: "0000:02:00.0"
'
c_hotplug_add() {
  gx "modprobe vfio-pci; put /run/hd/hot.yaml '$HOTMANIFEST'; hd_start hot /run/hd/hot.yaml --connect test:///default" || return 1
  gx -t 5 'udevadm monitor --kernel --udev --property > $E/uevents-hotplug.txt 2>&1 & echo $! > /run/hd/mon.pid; sleep 1' >/dev/null
  local t; t=$(now)
  qmp device_add driver=e1000e id=hot1 bus=rp2 || return 1
  gx -t 30 "wait_for 20 is_drv $HOT vfio-pci; rc=\$?; state $HOT; say \"\$(node $HOT)\"; exit \$rc"; local rc=$?
  echo "QMP device_add -> vfio-pci seen in $(since "$t")s (host clock, includes the exec round trip)"
  gx "grep -E 'hotplug|$HOT|02:00.0' \$E/hostdevd-hot.log | tail -6"
  return $rc
}
c_hotplug_remove() {
  qmp device_del id=hot1 --wait DEVICE_DELETED --timeout 30 | tail -1 || return 1
  gx -t 30 "
  wait_for 10 test ! -e /sys/bus/pci/devices/$HOT; say \"$HOT in sysfs: \$(test -e /sys/bus/pci/devices/$HOT && echo yes || echo no)\"
  wait_for 10 grep -qi 'not present' /run/hd/hot/status.json; rc=\$?
  status_of hot removed | python3 -m json.tool | grep -i -B2 -A2 'present' | head -12
  kill -0 \$(hd_pid hot) && say 'hostdevd still running' || { say 'hostdevd died'; rc=1; }
  kill \$(cat /run/hd/mon.pid) 2>/dev/null; hd_stop hot; exit \$rc"
}

c_held_device() {
  # hostdevd binds 01:00.0, a process without a request channel opens it, the
  # claim is removed: the release must not block the loop; status names the holder.
  gx -t 240 '
  modprobe vfio-pci || exit 1
  B=0000:01:00.0; M=/run/hd/held.yaml
  put $M "version: 1
host:
  orphans: release
bindings:
  - vm: test
    devices:
      - pci: \"$B\"
"
  hd_start held $M --connect test:///default || exit 1
  wait_for 20 is_drv $B vfio-pci || { say "hostdevd did not bind $B"; state $B; exit 1; }
  python3 $G/hold-vfio.py $B > /run/hd/holder.out 2>&1 & hp=$!; echo $hp > /run/hd/holder.pid
  wait_for 10 grep -q holding /run/hd/holder.out || { cat /run/hd/holder.out; exit 1; }
  cat /run/hd/holder.out
  put $M "version: 1
host:
  orphans: release
bindings: []
"
  say "claim removed at $(date +%T.%N)"; sleep 3
  state $B
  ok=0
  m0=$(stat -c %y /run/hd/held/status.json); kill -HUP $(hd_pid held)
  if wait_for 10 eval "[ \"\$(stat -c %y /run/hd/held/status.json)\" != \"$m0\" ]"; then
    say "responsive: status rewritten after SIGHUP while the holder holds $B"
  else say "NOT responsive: no status update within 10 s of SIGHUP (last $m0)"; ok=1; fi
  if wait_for 10 eval "grep -qw \"$hp\" /run/hd/held/status.json && grep -q -e hold-vfio -e python3 /run/hd/held/status.json"; then
    say "status names the holder:"; grep -o ".\{0,80\}$hp.\{0,40\}" /run/hd/held/status.json | head -3
  else say "status does not name the holder (python3, pid $hp)"; ok=1; fi
  status_of held while-held > /dev/null
  $H status --status-file /run/hd/held/status.json > $E/status-held.txt 2>&1; sed "s/^/  /" $E/status-held.txt | head -15
  grep -qw "$hp" $E/status-held.txt || { say "hostdevctl status does not name pid $hp"; ok=1; }
  say "holder exits at $(date +%T.%N)"; kill $hp; wait $hp 2>/dev/null
  wait_for 30 is_drv $B e1000e || { say "$B not back on e1000e 30 s after the holder exited"; ok=1; }
  state $B; say "$(grep -c . $E/hostdevd-held.log) log lines; last:"; tail -4 $E/hostdevd-held.log
  hd_stop held || ok=1
  exit $ok'
}

run_kernel_checks() {
  check boot-iommu-groups c_boot
  check devices-vs-sysfs c_devices
  check check-vfio-pci-not-loaded c_check_vfio_not_loaded
  check apply-vfio-pci-not-loaded c_apply_vfio_not_loaded
  reset_devices
  check check-vfio-node-before-udev-rule c_check_node_before_rule
  check udev-rule-vfio-node-kvm-0660 c_udev_rule
  check check-correct-host c_check_correct_host
  reset_devices
  check check-manifest-claim-by-id c_check_manifest_by_id
  check apply-release-single-device c_apply_single
  reset_devices
  check apply-release-shared-group c_apply_shared_group
  reset_devices
  check apply-release-behind-pci-bridge c_apply_behind_bridge
  reset_devices
  check hotplug-device-add-bound-by-hostdevd c_hotplug_add
  check hotplug-device-del-seen-by-hostdevd c_hotplug_remove
  reset_devices
  check held-device-release-does-not-block c_held_device
  reset_devices
}

# ---------------------------------------------------------------- libvirt ---
# L2 is a real QEMU process that libvirt's QEMU driver starts inside L1 and that
# opens the real VFIO group, but it is started paused and runs no guest code:
# nested KVM under TCG wedged the whole L1 guest on another machine (the agent
# could not even kill the check), and TCG inside TCG boots a kernel in tens of
# minutes. What hostdevd is responsible for is checked where the hypervisor
# holds it: QEMU's own device tree (`info qtree` through the monitor), the VFIO group
# QEMU has open, libvirt's live XML, and the host driver. Native PCIe hotplug
# (ACPI PCI hotplug off) lets QEMU unplug from a slot no guest has powered on,
# as a cooperating guest would; with ACPI hotplug an unplug waits for the guest.
L2XML() { cat <<EOF
<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>l2</name>
  <uuid>5f1c0a52-6a86-4c36-9d2e-6c0b3a1f2e11</uuid>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  <on_reboot>destroy</on_reboot>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <controller type='pci' model='pcie-root'/>
    <controller type='usb' model='none'/>
    <controller type='pci' model='pcie-root-port'/>
    <controller type='pci' model='pcie-root-port'/>
    <memballoon model='none'/>
    <video><model type='none'/></video>
  </devices>
  <qemu:commandline>
    <qemu:arg value='-global'/>
    <qemu:arg value='ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off'/>
  </qemu:commandline>
</domain>
EOF
}
# guest-side helpers of the libvirt checks (prepended to their scripts)
L2LIB='
V="virsh -c qemu:///system"
# in_qemu: whether QEMU itself has a vfio-pci device for 0000:00:10.0 in its
# device tree ("info qtree": "info pci" walks only the bus numbers firmware
# assigned, and a paused L2 never ran its firmware)
in_qemu() { $V qemu-monitor-command l2 --hmp "info qtree" 2>/dev/null | grep -A8 "dev: vfio-pci" | grep -q "host = \"0000:00:10.0\""; }
# qemu_holds BDF: whether the L2 QEMU has the VFIO group of BDF open
qemu_holds() { local p; p=$(pgrep -f "guest=l2") || return 1
  ls -l /proc/$p/fd 2>/dev/null | grep -q "/dev/vfio/$(grp "$1")\$"; }
held() { qemu_holds "$1" && echo "QEMU holds /dev/vfio/$(grp "$1")" || echo "QEMU does not hold /dev/vfio/$(grp "$1")"; }
'
c_libvirt_up() {
  L2XML > "$WORK/vms/main/share/l2.xml"
  gx -t 150 "$L2LIB"'
  # as the shipped unit does before hostdevd starts (ExecStartPre); the
  # libvirt checks may run alone (--only), without the kernel checks that load it
  modprobe vfio-pci || exit 1
  kill $(cat /run/libvirtd.pid 2>/dev/null) 2>/dev/null && sleep 2
  grep -q "^libvirt-qemu:" /etc/group || echo "libvirt-qemu:x:64055:" >> /etc/group
  grep -q "^libvirt-qemu:" /etc/passwd || echo "libvirt-qemu:x:64055:64055::/var/lib/libvirt:/usr/sbin/nologin" >> /etc/passwd
  mkdir -p /etc/libvirt/hooks/qemu.d /var/lib/libvirt/qemu /var/log/libvirt/qemu /run/libvirt /usr/local/bin /etc/hostdevd /var/lib/hostdevd
  printf "%s\n" "user = \"root\"" "group = \"root\"" "dynamic_ownership = 0" "remember_owner = 0" "security_driver = \"none\"" \
    "cgroup_controllers = [ ]" "namespaces = [ ]" "stdio_handler = \"file\"" > /etc/libvirt/qemu.conf
  echo "log_outputs = \"3:file:/var/log/libvirt/libvirtd.log\"" > /etc/libvirt/libvirtd.conf
  ln -sf $HD/hostdevctl /usr/local/bin/hostdevctl
  install -m 755 $REPO/manifests/libvirt/hooks/qemu.d/hostdevd /etc/libvirt/hooks/qemu.d/hostdevd
  put /etc/hostdevd/bindings.yaml "version: 1
bindings: []
"
  t=$(date +%s); /usr/sbin/libvirtd --daemon
  wait_for 30 test -S /run/libvirt/libvirt-sock || { say "no libvirt socket after 30 s"; exit 1; }
  $V destroy l2 >/dev/null 2>&1; $V undefine l2 >/dev/null 2>&1
  timeout 200 $V define /suite/l2.xml || { tail -5 /var/log/libvirt/libvirtd.log; exit 1; }
  say "libvirtd up and its QEMU capabilities probed in $(( $(date +%s) - t )) s"
  t=$(date +%s); timeout 120 $V start --paused l2 || { tail -5 /var/log/libvirt/libvirtd.log; exit 1; }
  say "l2 started in $(( $(date +%s) - t )) s; $($V domstate l2)"
  timeout 60 $V destroy l2'
}

c_hook_deadlock() {
  # release: onStop + hostdevd running + the hook: virsh start and destroy must return.
  gx -t 400 "$L2LIB"'
  put /etc/hostdevd/bindings.yaml "version: 1
bindings:
  - vm: l2
    release: onStop
    devices:
      - pci: \"0000:00:10.0\"
"
  nohup $HD/hostdevd --log-level debug >> $E/hostdevd-libvirt.log 2>&1 & echo $! > /run/hd-libvirt.pid
  wait_for 30 test -s /run/hostdevd/status.json || { say "hostdevd wrote no status"; exit 1; }
  wait_for 30 eval "$V dumpxml --inactive l2 | grep -q \"slot=.0x10.\"" || { say "hostdevd did not add the <hostdev> to l2"; exit 1; }
  say "l2 config has <hostdev> 0000:00:10.0; device $(drv 0000:00:10.0)"
  ok=0
  waiting() { ps -eo pid,etimes,args | grep -E "hostdevctl hook|virsh" | grep -v grep | sed "s/^/  waiting: /"; grep -- "->" /proc/locks | sed "s/^/  lock: /"; }
  t=$(date +%s); timeout 150 $V start --paused l2; rc=$?; say "virsh start: exit $rc after $(( $(date +%s) - t )) s"
  if [ $rc = 124 ]; then say "virsh start did not return in 150 s"; waiting; ok=1; fi
  if [ $rc = 0 ]; then
    say "0000:00:10.0 in L1: $(drv 0000:00:10.0) (bound by the prepare hook); $(held 0000:00:10.0)"
    is_drv 0000:00:10.0 vfio-pci && qemu_holds 0000:00:10.0 && in_qemu || ok=1
    t=$(date +%s); timeout 90 $V destroy l2; rc=$?; say "virsh destroy: exit $rc after $(( $(date +%s) - t )) s"
    [ $rc = 0 ] || { say "virsh destroy did not return in 90 s"; waiting; ok=1; }
    wait_for 30 is_drv 0000:00:10.0 e1000e || { say "0000:00:10.0 not back on e1000e after destroy"; ok=1; }
    state 0000:00:10.0
  fi
  p=$(cat /run/hd-libvirt.pid); kill $p
  wait_for 10 eval "! kill -0 $p 2>/dev/null" || { say "hostdevd ignored SIGTERM for 10 s: SIGKILL"; kill -9 $p; ok=1; }
  wait_for 60 eval "! pgrep -f \"hostdevctl hook\" >/dev/null"
  $V domstate l2 2>&1 | sed "s/^/  l2: /"
  [ "$($V domstate l2 2>/dev/null)" = "shut off" ] || timeout 60 $V destroy l2 >/dev/null 2>&1
  exit $ok'
}

c_released_vm_starts() {
  # After `hostdevctl release` of the VM's device (VM off) the VM starts, or
  # libvirt refuses it through the hook with a reason; not a QEMU error on /dev/vfio.
  gx -t 300 "$L2LIB"'
  timeout 60 $H apply --connect qemu:///system > $E/apply-l2.txt 2>&1; say "apply exit $?"
  $V dumpxml --inactive l2 | grep -q "slot=.0x10." && say "l2 config has our <hostdev>" || { say "no <hostdev> in l2 config"; exit 1; }
  timeout 60 $H release 0000:00:10.0 --connect qemu:///system; say "release exit $?"; state 0000:00:10.0
  timeout 60 $H plan --connect qemu:///system; say "plan exit $?"
  timeout 150 $V start --paused l2 > /run/hd-start.txt 2>&1; rc=$?; cat /run/hd-start.txt; say "virsh start: exit $rc"
  if [ $rc = 0 ]; then $V destroy l2 >/dev/null 2>&1; wait_for 30 eval "! pgrep -f \"hostdevctl hook\" >/dev/null"; exit 0; fi
  grep -qi "hook" /run/hd-start.txt && { say "refused by the hook, with a reason"; exit 0; }
  exit 1'
}

c_live_attach() {
  # l2 running without our device; a live: true claim is hot-attached into it.
  gx -t 300 "$L2LIB"'
  put /etc/hostdevd/bindings.yaml "version: 1
bindings: []
"
  rm -rf /var/lib/hostdevd/*; $V define /suite/l2.xml > /dev/null
  from_vfio 0000:00:10.0 2>/dev/null; wait_for 10 is_drv 0000:00:10.0 e1000e
  timeout 150 $V start --paused l2 || exit 1
  in_qemu && { say "QEMU has 0000:00:10.0 before the claim (the check would prove nothing)"; exit 1; }
  nohup $HD/hostdevd --log-level debug >> $E/hostdevd-live.log 2>&1 & echo $! > /run/hd-live.pid
  wait_for 30 test -s /run/hostdevd/status.json || { say "hostdevd wrote no status"; exit 1; }
  put /etc/hostdevd/bindings.yaml "version: 1
bindings:
  - vm: l2
    live: true
    devices:
      - pci: \"0000:00:10.0\"
"
  t=$(date +%s)
  wait_for 60 eval "$V dumpxml l2 | grep -q \"slot=.0x10.\"" || { say "no <hostdev> in l2 live XML after 60 s"; state 0000:00:10.0; exit 1; }
  say "in l2 live XML after $(( $(date +%s) - t )) s; L1: $(drv 0000:00:10.0); $(held 0000:00:10.0)"
  in_qemu || { say "QEMU has no vfio-pci device for 0000:00:10.0"; $V qemu-monitor-command l2 --hmp "info qtree" > $E/l2-qtree.txt; exit 1; }
  $V qemu-monitor-command l2 --hmp "info qtree" | grep -A8 "dev: vfio-pci" | grep -E "dev: |host = " | sed "s/^ */  qemu: /"
  is_drv 0000:00:10.0 vfio-pci && qemu_holds 0000:00:10.0'
}

c_live_unplug_on_edit() {
  gx -t 300 "$L2LIB"'
  ok=0
  in_qemu || { say "QEMU has no vfio-pci device for 0000:00:10.0 (the check would prove nothing)"; exit 1; }
  put /etc/hostdevd/bindings.yaml "version: 1
bindings: []
"
  t=$(date +%s)
  wait_for 120 eval "! $V dumpxml l2 | grep -q \"slot=.0x10.\"" || { say "still in l2 live XML 120 s after the claim was removed"; ok=1; }
  say "gone from l2 live XML after $(( $(date +%s) - t )) s"
  in_qemu && { say "QEMU still has its vfio-pci device for 0000:00:10.0"; ok=1; }
  wait_for 30 is_drv 0000:00:10.0 e1000e || ok=1; state 0000:00:10.0; say "$(held 0000:00:10.0)"
  qemu_holds 0000:00:10.0 && ok=1
  $V dumpxml --inactive l2 | grep -q "slot=.0x10." && { say "still in l2 persistent config"; ok=1; }
  p=$(cat /run/hd-live.pid); kill $p
  wait_for 10 eval "! kill -0 $p 2>/dev/null" || { say "hostdevd ignored SIGTERM: SIGKILL"; kill -9 $p; ok=1; }
  timeout 60 $V destroy l2 > /dev/null 2>&1
  exit $ok'
}

c_scsi_into_l2() {
  # The profile's SCSI disk (serial hdscsi0), named by its /dev/disk/by-id link:
  # not added to l2 while it has no generic node (sg not loaded); added then;
  # l2's start refused by the hook while the host swaps on it; with the swap
  # gone, QEMU holds its /dev/sgN as a scsi-generic device; out of the config
  # when the claim goes.
  gx -t 400 "$L2LIB"'
  ok=0
  id=$(ls /dev/disk/by-id/ | grep -m1 "hdscsi0\$") || { say "no /dev/disk/by-id link for the disk with serial hdscsi0"; ls -l /dev/disk/by-id/; exit 1; }
  disk=$(readlink -f /dev/disk/by-id/$id); hbtl=$(basename "$(readlink -f /sys/block/${disk##*/}/device)")
  say "/dev/disk/by-id/$id -> $disk, SCSI $hbtl"
  put /etc/hostdevd/bindings.yaml "version: 1
bindings:
  - vm: l2
    devices:
      - scsi: /dev/disk/by-id/$id
"
  A="--connect qemu:///system"
  has_scsi() { $V dumpxml --inactive l2 | grep -q "<hostdev mode=.subsystem. type=.scsi."; }
  start_l2() { timeout 150 $V start --paused l2 > /run/hd-start.txt 2>&1; rc=$?; sed "s/^/  /" /run/hd-start.txt; say "virsh start: exit $rc"; return $rc; }
  modprobe -r sg 2>/dev/null; udevadm settle
  if [ -e /sys/bus/scsi/devices/$hbtl/scsi_generic ]; then say "sg is built in: the generic node cannot be taken away"
  else
    timeout 60 $H apply $A > $E/apply-scsi-no-sg.txt 2>&1; say "without sg: apply exit $?"; sed "s/^/  /" $E/apply-scsi-no-sg.txt
    grep -q "modprobe sg" $E/apply-scsi-no-sg.txt || { say "apply does not say the sg module is missing"; ok=1; }
    has_scsi && { say "the <hostdev> was added although QEMU could not open the device (no /dev/sg node)"; ok=1; }
  fi
  modprobe sg && udevadm settle; sg=$(ls /sys/bus/scsi/devices/$hbtl/scsi_generic/ 2>/dev/null)
  say "after modprobe sg: /dev/$sg"; [ -n "$sg" ] || exit 1
  timeout 60 $H apply $A > $E/apply-scsi.txt 2>&1; say "apply exit $?"; sed "s/^/  /" $E/apply-scsi.txt
  $V dumpxml --inactive l2 | grep -A4 "<hostdev mode=.subsystem. type=.scsi." | sed "s/^/  l2: /"
  has_scsi || { say "no <hostdev type=scsi> in l2 config"; exit 1; }
  timeout 60 $H describe $hbtl $A > $E/describe-scsi.txt 2>&1; sed "s/^/  /" $E/describe-scsi.txt | head -12
  mkswap $disk > /dev/null && swapon $disk || { say "swapon $disk failed"; exit 1; }
  timeout 60 $H plan $A > $E/plan-scsi-swap.txt 2>&1; say "the host swaps on $disk: plan exit $?"; grep -i swap $E/plan-scsi-swap.txt | head -2 | sed "s/^/  /"
  grep -qi "active swap" $E/plan-scsi-swap.txt || { say "the plan does not name the swap use"; ok=1; }
  if start_l2; then say "l2 started with the disk the host swaps on"; timeout 60 $V destroy l2 > /dev/null; ok=1
  else grep -qi "swap" /run/hd-start.txt && say "refused by the hook, naming the swap" || { say "refused, but not for the swap"; ok=1; }; fi
  swapoff $disk; wipefs -a -q $disk
  if start_l2; then
    p=$(pgrep -f "guest=l2")
    ls -l /proc/$p/fd | grep -q "/dev/$sg\$" && say "QEMU holds /dev/$sg" || { say "QEMU does not hold /dev/$sg"; ok=1; }
    $V qemu-monitor-command l2 --hmp "info qtree" | grep -B2 -A12 "dev: scsi-generic" > $E/l2-qtree-scsi.txt
    grep -E "dev: scsi-generic|drive =" $E/l2-qtree-scsi.txt | sed "s/^ */  qemu: /"
    grep -q "dev: scsi-generic" $E/l2-qtree-scsi.txt || { say "no scsi-generic device in QEMU"; ok=1; }
    timeout 60 $V destroy l2 > /dev/null
  else ok=1; fi
  put /etc/hostdevd/bindings.yaml "version: 1
bindings: []
"
  timeout 60 $H apply $A > $E/apply-scsi-removed.txt 2>&1; say "claim removed: apply exit $?"; sed "s/^/  /" $E/apply-scsi-removed.txt
  has_scsi && { say "our <hostdev type=scsi> is still in l2 config"; ok=1; }
  exit $ok'
}

libvirt_down() { echo "libvirtd or the L2 domain did not come up (see libvirtd-qemu-driver-and-l2-start)"; return 1; }
run_libvirt_checks() {
  if ! check libvirtd-qemu-driver-and-l2-start c_libvirt_up; then
    # counted, not skipped: each of them needs libvirtd
    local n; for n in hook-release-onstop-no-deadlock released-vm-still-starts live-attach-into-running-l2 live-unplug-on-manifest-edit \
        scsi-disk-into-l2; do
      check "$n" libvirt_down; done
    return 0
  fi
  check hook-release-onstop-no-deadlock c_hook_deadlock
  check released-vm-still-starts c_released_vm_starts
  check live-attach-into-running-l2 c_live_attach
  check live-unplug-on-manifest-edit c_live_unplug_on_edit
  check scsi-disk-into-l2 c_scsi_into_l2
}

# ------------------------------------------------------- misconfigurations ---
c_check_no_iommu() {
  gx -v noiommu '
  modprobe vfio-pci; say "IOMMU groups: $(ls /sys/kernel/iommu_groups | wc -l)"
  $H check --connect test:///default > $E/check-no-iommu.txt 2>&1; rc=$?
  cat $E/check-no-iommu.txt; say "exit status $rc"
  [ $rc = 1 ] && grep "FAIL" $E/check-no-iommu.txt | grep -qi "IOMMU"'
}
c_check_no_intremap() {
  gx -v nointremap '
  modprobe vfio-pci; to_vfio 0000:00:10.0; state 0000:00:10.0
  say "what VFIO does without interrupt remapping: $(python3 $G/hold-vfio.py 0000:00:10.0 0 2>&1 | head -1)"
  from_vfio 0000:00:10.0; state 0000:00:10.0
  $H check --connect test:///default > $E/check-no-intremap.txt 2>&1; rc=$?
  cat $E/check-no-intremap.txt; say "exit status $rc"
  [ $rc = 1 ] && grep "FAIL" $E/check-no-intremap.txt | grep -qi "remapping"'
}
boot_failed() { echo "the VM for this check did not boot (see the rig error above)"; return 1; }
run_misconfig_checks() {
  vm_boot noiommu bare off PROFILE_MINIMAL &
  local p1=$!
  vm_boot nointremap bare nointremap PROFILE_MINIMAL; local r2=$?
  wait $p1; local r1=$?
  # vm_boot ran in a subshell for noiommu: record its QEMU for cleanup
  QEMU_PIDS+=("$(cat "$WORK/vms/noiommu/qemu.pid" 2>/dev/null)")
  if [ $r1 = 0 ]; then check check-no-iommu c_check_no_iommu; else check check-no-iommu boot_failed; fi
  if [ $r2 = 0 ]; then check check-no-interrupt-remapping c_check_no_intremap; else check check-no-interrupt-remapping boot_failed; fi
  vm_stop noiommu; vm_stop nointremap
}

# ------------------------------------------------------------------ SR-IOV ---
c_vf_settings_igb() {
  # An igb PF (QEMU from backports) with 2 VFs: a vf: claim binds VF 1 to
  # vfio-pci and sets its MAC, VLAN, trust and spoofchk on the PF through
  # rtnetlink, as the real igb driver reports them (ip link); the PF keeps its
  # driver; removing the claim gives the VF back to igbvf with the settings
  # it had.
  gx -v sriov -t 300 '
  ok=0; PF=0000:01:00.0
  modprobe vfio-pci || exit 1
  wait_for 20 is_drv $PF igb || { say "$PF not on igb: $(drv $PF)"; exit 1; }
  pfdev=$(ls /sys/bus/pci/devices/$PF/net/); ip link set "$pfdev" up
  say "PF $PF ($pfdev): $(drv $PF), group $(grp $PF), sriov_totalvfs $(cat /sys/bus/pci/devices/$PF/sriov_totalvfs)"
  echo 2 > /sys/bus/pci/devices/$PF/sriov_numvfs || { say "writing sriov_numvfs failed"; exit 1; }
  udevadm settle
  VF=$(basename "$(readlink -f /sys/bus/pci/devices/$PF/virtfn1)")
  wait_for 20 is_drv $VF igbvf
  say "VF 1 $VF: $(drv $VF), group $(grp $VF); VF 0 $(basename "$(readlink -f /sys/bus/pci/devices/$PF/virtfn0)")"
  ls /sys/kernel/iommu_groups/$(grp $VF)/devices | sed "s/^/  group $(grp $VF): /"
  vf1() { ip link show "$pfdev" | grep "vf 1 "; }
  before=$(vf1); say "before: $before"
  M=/run/hd/vf.yaml; A="--manifest $M --state-dir /run/hd/vf --connect test:///default"
  put $M "version: 1
bindings:
  - vm: test
    devices:
      - vf: {pf: \"$PF\", index: 1, mac: \"52:54:00:12:34:56\", vlan: 100, trust: false, spoofchk: true}
"
  $H apply $A > $E/apply-vf.txt 2>&1; say "apply exit $?"; sed "s/^/  /" $E/apply-vf.txt
  udevadm settle
  state $PF $VF
  is_drv $VF vfio-pci || { say "VF 1 is not on vfio-pci"; ok=1; }
  is_drv $PF igb || { say "the PF left igb"; ok=1; }
  after=$(vf1); say "after apply: $after"
  for want in "52:54:00:12:34:56" "vlan 100" "spoof checking on" "trust off"; do
    grep -q "$want" <<< "$after" || { say "ip link does not show \"$want\" for VF 1"; ok=1; }
  done
  $H devices --connect test:///default > $E/devices-vf.txt 2>&1
  vfname=pci_$(tr ":." "__" <<< "$VF")
  grep -E "pci_$(tr ":." "__" <<< "$PF")|$vfname" $E/devices-vf.txt | sed "s/^/  /"
  grep "$vfname " $E/devices-vf.txt | grep -q "vf_mac=52:54:00:12:34:56 vf_vlan=100" || { say "devices does not show the VF MAC and VLAN"; ok=1; }
  put $M "version: 1
bindings: []
"
  $H apply $A > $E/apply-vf-removed.txt 2>&1; say "claim removed: apply exit $?"; sed "s/^/  /" $E/apply-vf-removed.txt
  udevadm settle; wait_for 20 is_drv $VF igbvf || { say "VF 1 not back on igbvf"; ok=1; }
  state $VF
  restored=$(vf1); say "after release: $restored"
  [ "$restored" = "$before" ] || { say "VF 1 settings not restored (before: $before)"; ok=1; }
  exit $ok'
}

sriov_down() { echo "the SR-IOV VM did not boot (see the rig error above)"; return 1; }
run_sriov_checks() {
  local saved=("${VM_QEMU[@]}")
  VM_QEMU=(env QEMU_MODULE_DIR="$WORK/qemu-bpo/usr/lib/x86_64-linux-gnu/qemu" "$QEMU_BPO"
    -L "$WORK/qemu-bpo/usr/share/qemu" -L /usr/share/seabios -L /usr/share/qemu -audio none)
  if (vm_boot sriov udev on PROFILE_SRIOV); then
    QEMU_PIDS+=("$(cat "$WORK/vms/sriov/qemu.pid" 2>/dev/null)")
    check vf-settings-on-igb c_vf_settings_igb
  else
    QEMU_PIDS+=("$(cat "$WORK/vms/sriov/qemu.pid" 2>/dev/null)")
    check vf-settings-on-igb sriov_down
  fi
  VM_QEMU=("${saved[@]}")
  gx -v sriov 'dmesg > $E/dmesg-sriov.txt; true' > /dev/null
  vm_stop sriov
}
