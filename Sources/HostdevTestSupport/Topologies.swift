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
        tree.addPCI(
            .init(
                "0000:00:02.0", vendor: "8086", device: "3e92", classCode: 0x030000, driver: "i915", iommuGroup: 2,
                bootVGA: true))
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
}
