#!/usr/bin/env python3
"""Opens a vfio-pci device the way a VM process does (container, type1 IOMMU,
device fd) but registers no device-request eventfd, so the kernel cannot ask
it to let go. usage: hold-vfio.py BDF [SECONDS]  (default: until killed).
Prints 'holding BDF group N pid P' once the device fd is open. Exit 2 when the
group is not viable (a sibling on a host driver), printing the group status.
With --viable-only it only prints whether the group is viable and exits."""
import fcntl, os, struct, sys, time

VFIO_TYPE = ord(';')
def io(nr):                      # _IO(VFIO_TYPE, VFIO_BASE + nr)
    return (VFIO_TYPE << 8) | (100 + nr)
GET_API_VERSION, CHECK_EXTENSION, SET_IOMMU, GROUP_GET_STATUS, GROUP_SET_CONTAINER, GROUP_GET_DEVICE_FD = (
    io(0), io(1), io(2), io(3), io(4), io(6))
TYPE1, TYPE1v2 = 1, 3

args = [a for a in sys.argv[1:] if not a.startswith('--')]
bdf = args[0]
seconds = float(args[1]) if len(args) > 1 else None
group = os.path.basename(os.readlink(f'/sys/bus/pci/devices/{bdf}/iommu_group'))
g = os.open(f'/dev/vfio/{group}', os.O_RDWR)
status = bytearray(struct.pack('II', 8, 0))
fcntl.ioctl(g, GROUP_GET_STATUS, status)
viable = struct.unpack('II', status)[1] & 1
if '--viable-only' in sys.argv:
    print(f'group {group} viable={bool(viable)}'); sys.exit(0 if viable else 2)
if not viable:
    print(f'group {group} not viable'); sys.exit(2)
c = os.open('/dev/vfio/vfio', os.O_RDWR)
fcntl.ioctl(g, GROUP_SET_CONTAINER, bytearray(struct.pack('i', c)))
try:
    fcntl.ioctl(c, SET_IOMMU, TYPE1v2 if fcntl.ioctl(c, CHECK_EXTENSION, TYPE1v2) else TYPE1)
except OSError as e:
    print(f'VFIO_SET_IOMMU failed: {e}', flush=True); sys.exit(3)
d = fcntl.ioctl(g, GROUP_GET_DEVICE_FD, bytearray(bdf.encode() + b'\0'))
print(f'holding {bdf} group {group} pid {os.getpid()}', flush=True)
if seconds is None:
    while True: time.sleep(3600)
time.sleep(seconds)
os.close(d); os.close(g); os.close(c)
print('released', flush=True)
