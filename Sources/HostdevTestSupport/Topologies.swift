import HostdevCore

/// The hosts the tests and benchmarks run against.
extension SysfsTree {
    /// A desktop with two GPUs: the NVIDIA card (VGA + HDMI audio in IOMMU
    /// group 1 behind a root port) is the one to pass through; the Intel iGPU
    /// drives the console; an NVMe holds `/`; a SATA disk, a USB receiver on
    /// an xHCI controller, and an Intel NIC that is up.
    public static func workstation() -> SysfsTree {
        let tree = SysfsTree(prefix: "hostdev-workstation")
        tree.addPCI(.init("0000:00:00.0", vendor: "8086", device: "3e30", classCode: 0x060000, iommuGroup: 0))
        tree.addPCI(
            .init("0000:00:01.0", vendor: "8086", device: "1901", classCode: 0x060400, driver: "pcieport", iommuGroup: 1))
        tree.addPCI(
            .init(
                "0000:01:00.0", vendor: "10de", device: "1b80", classCode: 0x030000, driver: "nouveau", iommuGroup: 1,
                parent: "0000:00:01.0", numaNode: 0, subsystemVendor: "1043", subsystemDevice: "8591"))
        tree.addPCI(
            .init(
                "0000:01:00.1", vendor: "10de", device: "10f0", classCode: 0x040300, driver: "snd_hda_intel",
                iommuGroup: 1, parent: "0000:00:01.0", numaNode: 0, subsystemVendor: "1043", subsystemDevice: "8591"))
        let igpu = tree.addPCI(
            .init(
                "0000:00:02.0", vendor: "8086", device: "3e92", classCode: 0x030000, driver: "i915", iommuGroup: 2,
                bootVGA: true))
        // i915's framebuffer holds the console.
        tree.addFramebuffer(0, on: igpu)
        tree.addVirtualConsoles(framebufferBound: true)
        let xhci = tree.addPCI(
            .init("0000:00:14.0", vendor: "8086", device: "a36d", classCode: 0x0c0330, driver: "xhci_hcd", iommuGroup: 3))
        let hub = tree.addUSB(
            "usb1", under: xhci, vendor: "1d6b", product: "0002", bus: 1, device: 1, manufacturer: "Linux 6.1.0 xhci-hcd",
            productName: "xHCI Host Controller", interfaces: [(0, 0x09, "hub")])
        tree.addUSB(
            "1-4", under: hub, vendor: "046d", product: "c52b", bus: 1, device: 4, manufacturer: "Logitech",
            productName: "USB Receiver", interfaces: [(0, 0x03, "usbhid"), (1, 0x03, "usbhid")])
        let sata = tree.addPCI(
            .init("0000:00:17.0", vendor: "8086", device: "a352", classCode: 0x010601, driver: "ahci", iommuGroup: 4))
        tree.addSCSIDisk(under: sata, host: 0, disk: "sda", generic: "sg0", vendor: "ATA", model: "WDC WD40EFRX-68N")
        tree.addPCI(
            .init("0000:00:1d.0", vendor: "8086", device: "a330", classCode: 0x060400, driver: "pcieport", iommuGroup: 5))
        let nvme = tree.addPCI(
            .init(
                "0000:02:00.0", vendor: "144d", device: "a808", classCode: 0x010802, driver: "nvme", iommuGroup: 6,
                parent: "0000:00:1d.0"))
        tree.addNVMeDisk("nvme0n1", under: nvme, serial: "S4EWNX0R123456")
        let nic = tree.addPCI(
            .init("0000:00:1f.6", vendor: "8086", device: "15bc", classCode: 0x020000, driver: "e1000e", iommuGroup: 7))
        tree.addNet("eno1", under: nic, mac: "3c:7c:3f:1e:22:10", up: true)
        tree.addVirtualNet("lo")
        tree.addPCIDriver("vfio-pci")
        // The NVMe holds / and the SATA disk /srv; eno1 has a route.
        tree.setProc(
            mounts: ["/dev/nvme0n1p1 / ext4 rw,relatime 0 0", "/dev/sda1 /srv/data\\040set ext4 rw 0 0", "tmpfs /run tmpfs rw 0 0"],
            routes: ["eno1\t00000000\t0102A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0"])
        return tree
    }

    /// A virtualisation host with `pfs` Intel X710 physical functions, each
    /// with `vfsPerPF` of 64 virtual functions enabled on `iavf`, one IOMMU
    /// group per VF.
    public static func sriovHost(pfs: Int = 2, vfsPerPF: Int = 16) -> SysfsTree {
        let tree = SysfsTree(prefix: "hostdev-sriov")
        tree.addPCI(
            .init("0000:00:03.0", vendor: "8086", device: "2f08", classCode: 0x060400, driver: "pcieport", iommuGroup: 0))
        for pf in 0..<pfs {
            let address = "0000:81:00.\(pf)"
            tree.addPCI(
                .init(address, vendor: "8086", device: "1572", classCode: 0x020000, driver: "i40e", iommuGroup: 10 + pf,
                    parent: "0000:00:03.0", numaNode: 1))
        }
        for pf in 0..<pfs {
            tree.addSRIOV(
                pf: "0000:81:00.\(pf)", totalVFs: 64, numVFs: vfsPerPF, vfDevice: "154c", vfDriver: "iavf",
                firstGroup: 100 + pf * 64)
        }
        tree.addPCIDriver("vfio-pci")
        return tree
    }

    /// Adds an SR-IOV NIC as an I350 shows itself: the PF (`igb`, its own
    /// IOMMU group, its network interface `netdev` up, so it may carry the
    /// host's traffic) with `vfs` VFs on `igbvf`, one group each from
    /// `firstGroup`, on the next bus. The VFs' settings live in a
    /// `FakeVFConfigurator` over this tree.
    public func addSRIOVNIC(pf: String = "0000:03:00.0", netdev: String = "enp3s0f0", vfs: Int = 2, group: Int = 8, firstGroup: Int = 20) {
        let path = addPCI(.init(pf, vendor: "8086", device: "1521", classCode: 0x020000, driver: "igb", iommuGroup: group))
        addNet(netdev, under: path, mac: "a0:36:9f:00:00:01", up: true, ifindex: 3)
        addSRIOV(pf: pf, totalVFs: 7, numVFs: vfs, vfDevice: "1520", vfDriver: "igbvf", firstGroup: firstGroup)
    }

    /// `functions` PCI endpoints (multi-function slots of 8, one IOMMU group
    /// per slot) behind 16 root ports: the benchmark host.
    public static func large(functions: Int = 4096, base: String = "/tmp") -> SysfsTree {
        let tree = SysfsTree(prefix: "hostdev-large", base: base)
        let perPort = (functions + 15) / 16
        var made = 0
        var group = 100
        for port in 0..<16 where made < functions {
            let portAddress = PCIAddress(bus: 0, slot: UInt8(1 + port / 8), function: UInt8(port % 8))
            tree.addPCI(
                .init(portAddress.description, vendor: "8086", device: "1901", classCode: 0x060400, driver: "pcieport",
                    iommuGroup: port))
            var index = 0
            while index < perPort && made < functions {
                let address = PCIAddress(
                    bus: UInt8(1 + port * 2 + index / 256), slot: UInt8((index / 8) % 32), function: UInt8(index % 8))
                if index % 8 == 0 { group += 1 }
                tree.addPCI(
                    .init(address.description, vendor: "8086", device: index % 2 == 0 ? "10fb" : "1521",
                        classCode: 0x020000, driver: index % 2 == 0 ? "ixgbe" : "igb", iommuGroup: group,
                        parent: portAddress.description, numaNode: port / 8))
                index += 1
                made += 1
            }
        }
        tree.addPCIDriver("vfio-pci")
        return tree
    }

    /// The host layouts KVM operators run, one host use each (or, for the
    /// last two, a near miss that is not a use): what the host-use scanner's
    /// table test and the planner's refusals are checked against.
    public enum HostLayout: String, CaseIterable, Sendable {
        /// `0000:05:00.0` enp5s0 under the Linux bridge vmbr0, which has the default route (Proxmox, libvirt).
        case bridgeOverNIC
        /// enp5s0f0 and enp5s0f1 (`0000:05:00.0`/`.1`) bonded as bond0, under vmbr0 with the default route.
        case bondUnderBridge
        /// VLAN bond0.100 over bond0 over enp5s0f0/enp5s0f1, with a global IPv6 address.
        case vlanOverBond
        /// macvlan mv0 over enp5s0, with a route to 10.9.0.0/16.
        case macvlanOverNIC
        /// sda2 on the AHCI controller `0000:00:17.0` is active swap.
        case swapPartition
        /// sda1 on `0000:02:00.0` is a member of the ZFS root pool rpool.
        case zfsRootMember
        /// NVMe `0000:01:00.0`: p1 at /boot, p2 LUKS → LVM (vg-root at /, vg-swap as swap).
        case lvmOnLUKSOnNVMe
        /// One btrfs over vda1 and vdb1 (virtio `0000:00:04.0` and `0000:00:05.0`), mounted at /srv.
        case btrfsOverTwoDisks
        /// `0000:01:00.0` has boot_vga=1, but the console is on the second GPU `0000:0c:00.0` (fb0).
        case consoleOnSecondGPU
        /// The firmware framebuffer efi-framebuffer.0 on the only GPU `0000:01:00.0` holds the console (single-GPU).
        case efiFramebufferConsole
        /// Xorg (pid 1234) holds /dev/dri/card0 of `0000:0c:00.0` open.
        case drmCardHeldOpen
        /// enp5s0 is down (its stale route does not count).
        case nicDown
        /// enp5s0 is up with only a link-local IPv6 address.
        case linkLocalOnly
    }

    public static func hostLayout(_ layout: HostLayout) -> SysfsTree {
        let tree = SysfsTree(prefix: "hostdev-\(layout.rawValue)")
        tree.addPCIDriver("vfio-pci")
        func nic(_ address: String, _ name: String, group: Int, up: Bool = true) {
            let path = tree.addPCI(.init(address, vendor: "8086", device: "1533", classCode: 0x020000, driver: "igb", iommuGroup: group))
            tree.addNet(name, under: path, mac: "3c:7c:3f:1e:22:\(group + 10)", up: up)
        }
        func gpu(_ address: String, group: Int, driver: String, bootVGA: Bool) -> String {
            tree.addPCI(.init(address, vendor: "1002", device: "73bf", classCode: 0x030000, driver: driver, iommuGroup: group, bootVGA: bootVGA))
        }
        func ahci(_ address: String, group: Int) -> String {
            tree.addPCI(.init(address, vendor: "8086", device: "a352", classCode: 0x010601, driver: "ahci", iommuGroup: group))
        }
        switch layout {
        case .bridgeOverNIC:
            nic("0000:05:00.0", "enp5s0", group: 5)
            tree.addUpperNet("vmbr0", kind: .bridge, lowers: ["enp5s0"])
            tree.addRoute("vmbr0", via: "192.168.1.1")
            tree.addRoute("vmbr0", to: "192.168.1.0/24")
        case .bondUnderBridge:
            nic("0000:05:00.0", "enp5s0f0", group: 5)
            nic("0000:05:00.1", "enp5s0f1", group: 6)
            tree.addUpperNet("bond0", kind: .bond, lowers: ["enp5s0f0", "enp5s0f1"])
            tree.addUpperNet("vmbr0", kind: .bridge, lowers: ["bond0"])
            tree.addRoute("vmbr0", via: "192.168.1.1")
        case .vlanOverBond:
            nic("0000:05:00.0", "enp5s0f0", group: 5)
            nic("0000:05:00.1", "enp5s0f1", group: 6)
            tree.addUpperNet("bond0", kind: .bond, lowers: ["enp5s0f0", "enp5s0f1"])
            tree.addUpperNet("bond0.100", kind: .vlan(id: 100), lowers: ["bond0"])
            tree.addInet6("bond0.100", address: "20010db8010000000000000000000005", prefix: 64)
        case .macvlanOverNIC:
            nic("0000:05:00.0", "enp5s0", group: 5)
            tree.addUpperNet("mv0", kind: .macvlan, lowers: ["enp5s0"])
            tree.addRoute("mv0", to: "10.9.0.0/16")
        case .swapPartition:
            let sata = ahci("0000:00:17.0", group: 4)
            tree.addSCSIDisk(under: sata, host: 0, disk: "sda", generic: "sg0", vendor: "ATA", model: "WDC WD40EFRX-68N")
            tree.addPartition(2, ofDisk: "sda")
            tree.swapOn("/dev/sda2")
        case .zfsRootMember:
            let sata = ahci("0000:02:00.0", group: 4)
            tree.addSCSIDisk(under: sata, host: 0, disk: "sda", generic: "sg0", vendor: "ATA", model: "WDC WD40EFRX-68N")
            tree.setUdevData(block: "sda1", ["ID_FS_TYPE": "zfs_member", "ID_FS_LABEL": "rpool", "ID_FS_USAGE": "filesystem"])
            // The pool's datasets have no block device: an anonymous major:minor.
            tree.mountNonBlock("rpool/ROOT/debian", at: "/", fstype: "zfs")
        case .lvmOnLUKSOnNVMe:
            let nvme = tree.addPCI(.init("0000:01:00.0", vendor: "144d", device: "a808", classCode: 0x010802, driver: "nvme", iommuGroup: 6))
            tree.addNVMeDisk("nvme0n1", under: nvme, serial: "S4EWNX0R123456")
            tree.addPartition(2, ofDisk: "nvme0n1")
            tree.setUdevData(block: "nvme0n1p2", ["ID_FS_TYPE": "crypto_LUKS"])
            tree.addDeviceMapper("dm-0", mapperName: "cryptroot", over: ["nvme0n1p2"], uuid: "CRYPT-LUKS2-1234-cryptroot")
            tree.setUdevData(block: "dm-0", ["ID_FS_TYPE": "LVM2_member"])
            tree.addDeviceMapper("dm-1", mapperName: "vg-root", over: ["dm-0"], uuid: "LVM-root")
            tree.addDeviceMapper("dm-2", mapperName: "vg-swap", over: ["dm-0"], uuid: "LVM-swap")
            tree.mount("nvme0n1p1", at: "/boot", fstype: "ext4")
            tree.mount("dm-1", at: "/", fstype: "ext4")
            tree.swapOn("/dev/mapper/vg-swap")
        case .btrfsOverTwoDisks:
            for (index, (address, disk)) in [("0000:00:04.0", "vda"), ("0000:00:05.0", "vdb")].enumerated() {
                let path = tree.addPCI(.init(address, vendor: "1af4", device: "1042", classCode: 0x010000, driver: "virtio-pci", iommuGroup: 8 + index))
                tree.addVirtioDisk(disk, under: path, index: index)
                tree.addPartition(1, ofDisk: disk)
            }
            tree.mountBtrfs(["vda1", "vdb1"], at: "/srv", uuid: "5e4a6c1e-3c1b-4a3e-9d2f-0c6a1f2b7d10", label: "data")
        case .consoleOnSecondGPU:
            _ = gpu("0000:01:00.0", group: 1, driver: "vfio-pci", bootVGA: true)
            let second = gpu("0000:0c:00.0", group: 12, driver: "amdgpu", bootVGA: false)
            tree.addFramebuffer(0, on: second)
            tree.addVirtualConsoles(framebufferBound: true)
        case .efiFramebufferConsole:
            _ = gpu("0000:01:00.0", group: 1, driver: "nouveau", bootVGA: true)
            tree.addFirmwareFramebuffer("efi-framebuffer", fb: 0)
            tree.addVirtualConsoles(framebufferBound: true)
        case .drmCardHeldOpen:
            let card = gpu("0000:0c:00.0", group: 12, driver: "amdgpu", bootVGA: false)
            tree.addDRMCard(0, on: card, render: 128)
            tree.addProcess(1234, comm: "Xorg", openFiles: ["/dev/tty7", "/dev/dri/card0"])
            tree.addProcess(1300, comm: "bash", openFiles: ["/dev/pts/0"])
        case .nicDown:
            nic("0000:05:00.0", "enp5s0", group: 5, up: false)
            tree.addRoute("enp5s0", via: "192.168.1.1")
        case .linkLocalOnly:
            nic("0000:05:00.0", "enp5s0", group: 5)
            tree.addInet6("enp5s0", address: "fe80000000000000020c29fffe123456", prefix: 64, scope: 0x20)
        }
        return tree
    }
}
