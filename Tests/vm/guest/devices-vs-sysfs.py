#!/usr/bin/env python3
"""Compares `hostdevctl devices --format json` with sysfs: every PCI function
in /sys/bus/pci/devices must be listed with the same IOMMU group and driver.
usage: devices-vs-sysfs.py HOSTDEVCTL. Prints one line per function; exit 1 on
any difference."""
import json, os, subprocess, sys

out = subprocess.run([sys.argv[1], 'devices', '--format', 'json'], capture_output=True, text=True)
if out.returncode != 0:
    sys.exit(f'hostdevctl devices failed ({out.returncode}): {out.stderr.strip()}')
data = json.loads(out.stdout)
listed = {}
def walk(node):                  # {name: {"params": {"capability": "pci", "address": ..., "driver": ..., "iommu_group": ...}}}
    if isinstance(node, dict):
        if node.get('capability') == 'pci' and 'address' in node:
            listed[node['address']] = node
        for v in node.values():
            walk(v)
    elif isinstance(node, list):
        for v in node:
            walk(v)
walk(data)
bad = 0
for bdf in sorted(os.listdir('/sys/bus/pci/devices')):
    d = f'/sys/bus/pci/devices/{bdf}'
    group = os.path.basename(os.readlink(d + '/iommu_group')) if os.path.exists(d + '/iommu_group') else None
    driver = os.path.basename(os.readlink(d + '/driver')) if os.path.exists(d + '/driver') else None
    entry = listed.get(bdf)
    if entry is None:
        print(f'{bdf}: in sysfs (group {group}, driver {driver}) but not listed'); bad += 1; continue
    got = (entry.get('iommu_group'), entry.get('driver'))
    got = (None if got[0] is None else str(got[0]), got[1])
    ok = got == (group, driver)
    bad += not ok
    print(f'{bdf}: sysfs group={group} driver={driver}; hostdevctl group={got[0]} driver={got[1]}' + ('' if ok else '  <-- differs'))
extra = set(listed) - set(os.listdir('/sys/bus/pci/devices'))
for bdf in sorted(extra):
    print(f'{bdf}: listed but not in sysfs'); bad += 1
print(f'{len(listed)} listed, {bad} difference(s)')
sys.exit(1 if bad else 0)
