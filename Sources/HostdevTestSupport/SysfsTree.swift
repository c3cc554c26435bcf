#if canImport(Glibc)
    import Glibc
#endif
import Foundation
public import HostdevCore
public import HostdevSysfs

/// Builds sysfs trees laid out as Linux lays them out (devices under
/// `sys/devices`, links from `sys/bus/*/devices` and `sys/class/*`,
/// `driver`, `subsystem` and `iommu_group` links, SR-IOV `physfn`/`virtfn*`),
/// so the same tree serves `--sysfs-root` and umockdev (`UMOCKDEV_DIR`).
public final class SysfsTree: @unchecked Sendable {
    // @unchecked: every change to the tree (adding or removing devices,
    // moving driver links) holds `lock`, so a test or benchmark may hot-add
    // devices while a FakeKernelServer thread answers writes.
    let lock = NSRecursiveLock()

    /// Runs `body` with the tree locked against the fake kernel's thread.
    public func locked<T>(_ body: () throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }

    /// The directory that stands for `/`.
    public let root: String
    public var sysfs: SysfsRoot { SysfsRoot(root) }
    /// What `drivers_probe` binds each PCI device to when no override is set:
    /// the driver whose ID table matches it.
    public var nativeDrivers: [PCIAddress: String] = [:]

    /// Leave the tree on disk at deinit (benchmarks and debugging).
    public var keep = false

    /// `base` is where the temp directory goes; the benchmarks use tmpfs
    /// (`/dev/shm`), which like sysfs lives in memory.
    public init(prefix: String = "hostdev-sysfs", base: String = "/tmp") {
        root = FileTree.makeTemporaryDirectory(prefix: prefix, base: base)
        for dir in ["/sys/devices", "/sys/bus/pci/devices", "/sys/bus/pci/drivers", "/sys/bus/usb/devices",
            "/sys/bus/usb/drivers", "/sys/bus/scsi/devices", "/sys/class/net", "/sys/class/block",
            "/sys/class/scsi_generic", "/sys/class/scsi_host", "/sys/kernel/iommu_groups", "/sys/devices/virtual/net",
            "/dev", "/proc"]
        {
            FileTree.makeDirectory(root + dir)
        }
        FileTree.write(root + "/sys/bus/pci/drivers_probe", "")
        FileTree.write(root + "/sys/bus/pci/rescan", "")
    }

    deinit { if !keep { FileTree.remove(root) } }

    public func host(_ kernelPath: String) -> String { root + kernelPath }

    // MARK: PCI

    public struct PCISpec: Sendable {
        public var address: PCIAddress
        public var vendor: String
        public var device: String
        public var classCode: UInt32
        public var driver: String?
        public var iommuGroup: Int?
        public var parent: PCIAddress?
        public var numaNode: Int
        public var bootVGA: Bool?
        public var subsystemVendor: String
        public var subsystemDevice: String

        public init(
            _ address: String, vendor: String, device: String, classCode: UInt32, driver: String? = nil,
            iommuGroup: Int? = nil, parent: String? = nil, numaNode: Int = -1, bootVGA: Bool? = nil,
            subsystemVendor: String? = nil, subsystemDevice: String = "0000"
        ) {
            self.address = PCIAddress(address)!
            self.vendor = vendor
            self.device = device
            self.classCode = classCode
            self.driver = driver
            self.iommuGroup = iommuGroup
            self.parent = parent.flatMap { PCIAddress($0) }
            self.numaNode = numaNode
            self.bootVGA = bootVGA ?? ((classCode >> 8) == 0x0300 ? false : nil)
            self.subsystemVendor = subsystemVendor ?? vendor
            self.subsystemDevice = subsystemDevice
        }
    }

    private var pciPaths: [PCIAddress: String] = [:]

    /// The kernel path of a PCI device added before (`/sys/devices/pci0000:00/...`).
    public func pciPath(_ address: PCIAddress) -> String { locked { pciPaths[address]! } }

    /// Adds a PCI function; `driver` also becomes its native driver.
    @discardableResult
    public func addPCI(_ spec: PCISpec) -> String {
        lock.lock()
        defer { lock.unlock() }
        let a = spec.address
        let base = spec.parent.flatMap { pciPaths[$0] } ?? "/sys/devices/pci\(hex(a.domain, 4)):00"
        let path = base + "/" + a.description
        pciPaths[a] = path
        let dir = host(path)
        FileTree.makeDirectory(dir)
        FileTree.write(dir + "/vendor", "0x\(spec.vendor)\n")
        FileTree.write(dir + "/device", "0x\(spec.device)\n")
        FileTree.write(dir + "/class", "0x\(hex(spec.classCode, 6))\n")
        FileTree.write(dir + "/subsystem_vendor", "0x\(spec.subsystemVendor)\n")
        FileTree.write(dir + "/subsystem_device", "0x\(spec.subsystemDevice)\n")
        FileTree.write(dir + "/numa_node", "\(spec.numaNode)\n")
        FileTree.write(dir + "/driver_override", "(null)\n")
        FileTree.write(dir + "/config", bytes: Self.configSpace(spec))
        if let bootVGA = spec.bootVGA { FileTree.write(dir + "/boot_vga", bootVGA ? "1\n" : "0\n") }
        FileTree.write(
            dir + "/uevent",
            "PCI_CLASS=\(String(spec.classCode, radix: 16, uppercase: true))\n"
                + "PCI_ID=\(spec.vendor.uppercased()):\(spec.device.uppercased())\n"
                + "PCI_SUBSYS_ID=\(spec.subsystemVendor.uppercased()):\(spec.subsystemDevice.uppercased())\n"
                + "PCI_SLOT_NAME=\(a)\n"
                + "MODALIAS=pci:v0000\(spec.vendor.uppercased())d0000\(spec.device.uppercased())\n")
        FileTree.link(dir + "/subsystem", to: FileTree.relative(from: path, to: "/sys/bus/pci"))
        FileTree.link(host("/sys/bus/pci/devices/\(a)"), to: FileTree.relative(from: "/sys/bus/pci/devices", to: path))
        if let group = spec.iommuGroup { setIOMMUGroup(a, group) }
        if let driver = spec.driver {
            nativeDrivers[a] = driver
            bindLink(a, driver)
        }
        return path
    }

    /// The first 64 bytes of PCI config space: IDs, class, header type and
    /// (type-0 headers) subsystem IDs, little-endian as the hardware has them.
    static func configSpace(_ spec: PCISpec) -> [UInt8] {
        var config = [UInt8](repeating: 0, count: 64)
        func put16(_ offset: Int, _ hexText: String) {
            let value = UInt16(hexText, radix: 16) ?? 0
            config[offset] = UInt8(value & 0xff)
            config[offset + 1] = UInt8(value >> 8)
        }
        put16(0, spec.vendor)
        put16(2, spec.device)
        config[9] = UInt8(spec.classCode & 0xff)
        config[10] = UInt8(spec.classCode >> 8 & 0xff)
        config[11] = UInt8(spec.classCode >> 16 & 0xff)
        let isBridge = spec.classCode >> 8 == 0x0604
        config[0x0e] = isBridge ? 1 : 0
        if !isBridge {
            put16(0x2c, spec.subsystemVendor)
            put16(0x2e, spec.subsystemDevice)
        }
        return config
    }

    public func setIOMMUGroup(_ address: PCIAddress, _ group: Int) {
        let path = pciPath(address)
        let groupPath = "/sys/kernel/iommu_groups/\(group)"
        FileTree.makeDirectory(host(groupPath + "/devices"))
        FileTree.link(host(path + "/iommu_group"), to: FileTree.relative(from: path, to: groupPath))
        FileTree.link(
            host(groupPath + "/devices/\(address)"), to: FileTree.relative(from: groupPath + "/devices", to: path))
    }

    /// Makes sure a PCI driver directory exists with its `bind`/`unbind` files.
    public func addPCIDriver(_ name: String) {
        let dir = host("/sys/bus/pci/drivers/\(name)")
        guard access(dir, F_OK) != 0 else { return }
        FileTree.makeDirectory(dir)
        for file in ["bind", "unbind", "new_id", "remove_id"] { FileTree.write(dir + "/" + file, "", mode: 0o200) }
    }

    /// Points the device's `driver` link at `driver` (and the driver's link back), as a completed probe does.
    public func bindLink(_ address: PCIAddress, _ driver: String) {
        lock.lock()
        defer { lock.unlock() }
        addPCIDriver(driver)
        let path = pciPath(address)
        let driverPath = "/sys/bus/pci/drivers/\(driver)"
        FileTree.link(host(path + "/driver"), to: FileTree.relative(from: path, to: driverPath))
        FileTree.link(host(driverPath + "/\(address)"), to: FileTree.relative(from: driverPath, to: path))
    }

    /// Removes the `driver` link, as a completed unbind does.
    public func unbindLink(_ address: PCIAddress) {
        lock.lock()
        defer { lock.unlock() }
        let path = pciPath(address)
        if let driver = sysfs.linkName(path + "/driver") {
            unlink(host("/sys/bus/pci/drivers/\(driver)/\(address)"))
        }
        unlink(host(path + "/driver"))
    }

    /// Takes a PCI function out of the tree, as a hot-unplug does (its
    /// driver and group links go with it).
    public func removePCI(_ address: PCIAddress) {
        lock.lock()
        defer { lock.unlock() }
        guard let path = pciPaths[address] else { return }
        unbindLink(address)
        if let group = sysfs.linkName(path + "/iommu_group") {
            unlink(host("/sys/kernel/iommu_groups/\(group)/devices/\(address)"))
        }
        unlink(host("/sys/bus/pci/devices/\(address)"))
        FileTree.remove(host(path))
    }

    /// The driver the device is bound to now, read back from its link.
    public func driver(of address: PCIAddress) -> String? { locked { sysfs.linkName(pciPath(address) + "/driver") } }

    /// Makes `pf` an SR-IOV physical function with `numVFs` of `totalVFs` enabled.
    public func addSRIOV(
        pf: String, totalVFs: Int, numVFs: Int, vfDevice: String, vfDriver: String?, firstGroup: Int
    ) {
        let pfAddress = PCIAddress(pf)!
        let pfPath = pciPath(pfAddress)
        FileTree.write(host(pfPath + "/sriov_totalvfs"), "\(totalVFs)\n")
        FileTree.write(host(pfPath + "/sriov_numvfs"), "\(numVFs)\n")
        let vendor = FileTree.read(host(pfPath + "/vendor")).map { String($0.dropFirst(2)) } ?? "8086"
        for index in 0..<numVFs {
            // VFs follow the PF on the next bus: one function each, 8 per slot.
            let vf = PCIAddress(
                domain: pfAddress.domain, bus: pfAddress.bus &+ 1 &+ UInt8(index / 256),
                slot: UInt8((index / 8) % 32) | (pfAddress.function << 4 & 0x10),
                function: UInt8(index % 8))
            let vfPath = addPCI(
                PCISpec(
                    vf.description, vendor: vendor, device: vfDevice, classCode: 0x020000, driver: vfDriver,
                    iommuGroup: firstGroup + index))
            FileTree.link(host(pfPath + "/virtfn\(index)"), to: FileTree.relative(from: pfPath, to: vfPath))
            FileTree.link(host(vfPath + "/physfn"), to: FileTree.relative(from: vfPath, to: pfPath))
        }
    }

    // MARK: USB, SCSI, net, block

    /// A USB device or root hub (`sysname` `usb1`, `1-4`) under a controller or hub.
    @discardableResult
    public func addUSB(
        _ sysname: String, under parentPath: String, vendor: String, product: String, bus: Int, device: Int,
        manufacturer: String? = nil, productName: String? = nil, interfaces: [(number: Int, cls: Int, driver: String?)] = []
    ) -> String {
        let path = parentPath + "/" + sysname
        let dir = host(path)
        FileTree.makeDirectory(dir)
        FileTree.write(dir + "/idVendor", vendor + "\n")
        FileTree.write(dir + "/idProduct", product + "\n")
        FileTree.write(dir + "/busnum", "\(bus)\n")
        FileTree.write(dir + "/devnum", "\(device)\n")
        if let manufacturer { FileTree.write(dir + "/manufacturer", manufacturer + "\n") }
        if let productName { FileTree.write(dir + "/product", productName + "\n") }
        FileTree.write(
            dir + "/uevent",
            "DEVTYPE=usb_device\nDRIVER=usb\nPRODUCT=\(vendor)/\(product)/0\nBUSNUM=\(String(format3(bus)))\nDEVNUM=\(format3(device))\nDEVNAME=bus/usb/\(format3(bus))/\(format3(device))\n"
        )
        classDevice(path, subsystem: "/sys/bus/usb", list: "/sys/bus/usb/devices/\(sysname)")
        usbDriver(path, "usb")
        for interface in interfaces {
            let ifName = "\(sysname.hasPrefix("usb") ? String(sysname.dropFirst(3)) + "-0" : sysname):1.\(interface.number)"
            let ifPath = path + "/" + ifName
            FileTree.makeDirectory(host(ifPath))
            FileTree.write(host(ifPath + "/bInterfaceNumber"), hex(interface.number, 2) + "\n")
            FileTree.write(host(ifPath + "/bInterfaceClass"), hex(interface.cls, 2) + "\n")
            FileTree.write(host(ifPath + "/bInterfaceSubClass"), "01\n")
            FileTree.write(host(ifPath + "/bInterfaceProtocol"), "02\n")
            FileTree.write(host(ifPath + "/uevent"), "DEVTYPE=usb_interface\n")
            classDevice(ifPath, subsystem: "/sys/bus/usb", list: "/sys/bus/usb/devices/\(ifName)")
            if let driver = interface.driver { usbDriver(ifPath, driver) }
        }
        return path
    }

    private func format3(_ n: Int) -> String { n < 10 ? "00\(n)" : n < 100 ? "0\(n)" : "\(n)" }

    private func usbDriver(_ path: String, _ driver: String) {
        let driverPath = "/sys/bus/usb/drivers/\(driver)"
        FileTree.makeDirectory(host(driverPath))
        FileTree.link(host(path + "/driver"), to: FileTree.relative(from: path, to: driverPath))
    }

    /// Links a device into its subsystem and its bus/class listing.
    private func classDevice(_ path: String, subsystem: String, list: String) {
        FileTree.link(host(path + "/subsystem"), to: FileTree.relative(from: path, to: subsystem))
        FileTree.link(host(list), to: FileTree.relative(from: SysfsPath.parent(list), to: path))
    }

    /// A network interface of a PCI device (`/sys/class/net/NAME`).
    @discardableResult
    public func addNet(_ name: String, under parentPath: String, mac: String, up: Bool = true) -> String {
        let path = parentPath + "/net/" + name
        FileTree.makeDirectory(host(path))
        FileTree.write(host(path + "/address"), mac + "\n")
        FileTree.write(host(path + "/operstate"), (up ? "up" : "down") + "\n")
        FileTree.write(host(path + "/uevent"), "INTERFACE=\(name)\nIFINDEX=2\n")
        classDevice(path, subsystem: "/sys/class/net", list: "/sys/class/net/\(name)")
        return path
    }

    /// A SCSI host with one target and one disk (`sdX` and `sgN`) under a controller.
    @discardableResult
    public func addSCSIDisk(
        under parentPath: String, host number: Int, disk: String, generic: String, vendor: String, model: String
    ) -> String {
        let hostPath = parentPath + "/host\(number)"
        let targetPath = hostPath + "/target\(number):0:0"
        let lunName = "\(number):0:0:0"
        let lunPath = targetPath + "/" + lunName
        for (path, devtype, listed) in [
            (hostPath, "scsi_host", "host\(number)"), (targetPath, "scsi_target", "target\(number):0:0"),
            (lunPath, "scsi_device", lunName),
        ] {
            FileTree.makeDirectory(host(path))
            FileTree.write(host(path + "/uevent"), "DEVTYPE=\(devtype)\n")
            classDevice(path, subsystem: "/sys/bus/scsi", list: "/sys/bus/scsi/devices/\(listed)")
        }
        FileTree.write(host(lunPath + "/vendor"), vendor + "\n")
        FileTree.write(host(lunPath + "/model"), model + "\n")
        FileTree.write(host(lunPath + "/type"), "0\n")
        let diskPath = lunPath + "/block/" + disk
        FileTree.makeDirectory(host(diskPath))
        FileTree.write(host(diskPath + "/uevent"), "DEVTYPE=disk\nDEVNAME=\(disk)\n")
        classDevice(diskPath, subsystem: "/sys/class/block", list: "/sys/class/block/\(disk)")
        addPartition(disk + "1", of: diskPath)
        let sgPath = lunPath + "/scsi_generic/" + generic
        FileTree.makeDirectory(host(sgPath))
        FileTree.write(host(sgPath + "/uevent"), "DEVNAME=\(generic)\n")
        classDevice(sgPath, subsystem: "/sys/class/scsi_generic", list: "/sys/class/scsi_generic/\(generic)")
        return diskPath
    }

    /// A whole disk of an NVMe controller (`nvme0n1`), with one partition.
    @discardableResult
    public func addNVMeDisk(_ disk: String, under parentPath: String, serial: String) -> String {
        let diskPath = parentPath + "/nvme/nvme0/" + disk
        FileTree.makeDirectory(host(diskPath))
        FileTree.write(host(parentPath + "/nvme/nvme0/serial"), serial + "\n")
        FileTree.write(host(parentPath + "/nvme/nvme0/model"), "Samsung SSD 970 EVO Plus 1TB\n")
        FileTree.link(
            host(diskPath + "/device"), to: FileTree.relative(from: diskPath, to: parentPath + "/nvme/nvme0"))
        FileTree.write(host(diskPath + "/uevent"), "DEVTYPE=disk\nDEVNAME=\(disk)\n")
        classDevice(diskPath, subsystem: "/sys/class/block", list: "/sys/class/block/\(disk)")
        addPartition(disk + "p1", of: diskPath)
        return diskPath
    }

    private func addPartition(_ name: String, of diskPath: String) {
        let path = diskPath + "/" + name
        FileTree.makeDirectory(host(path))
        FileTree.write(host(path + "/partition"), "1\n")
        FileTree.write(host(path + "/uevent"), "DEVTYPE=partition\nDEVNAME=\(name)\n")
        classDevice(path, subsystem: "/sys/class/block", list: "/sys/class/block/\(name)")
    }

    /// `/proc/mounts` and `/proc/net/route` under the root: what the host-use
    /// scanner reads to find devices the host needs.
    public func setProc(mounts: [String], routes: [String] = [], inet6: [String] = []) {
        FileTree.makeDirectory(host("/proc/net"))
        FileTree.write(host("/proc/mounts"), mounts.map { $0 + "\n" }.joined())
        FileTree.write(
            host("/proc/net/route"),
            "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n" + routes.map { $0 + "\n" }.joined())
        FileTree.write(host("/proc/net/if_inet6"), inet6.map { $0 + "\n" }.joined())
    }

    /// A virtual device (loopback): present in sysfs, left out of inventories.
    public func addVirtualNet(_ name: String) {
        let path = "/sys/devices/virtual/net/\(name)"
        FileTree.makeDirectory(host(path))
        FileTree.write(host(path + "/address"), "00:00:00:00:00:00\n")
        classDevice(path, subsystem: "/sys/class/net", list: "/sys/class/net/\(name)")
    }
}
