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

    /// Host-use state (`dev` numbers, mountinfo, swaps, routes, firmware
    /// framebuffers), kept so each addition rewrites its file whole.
    var hostState = HostState()

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
        // Bridges have a type-1 header, CardBus bridges (0x0607) a type-2 one.
        let subclass = spec.classCode >> 8
        let headerType: UInt8 = PCIFunction.bridgeSubclasses.contains(subclass) ? (subclass == 0x0607 ? 2 : 1) : 0
        config[0x0e] = headerType
        if headerType == 0 {
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
            // A VF's config space reads Vendor and Device ID FFFFh; the
            // attribute files have the IDs (as the real kernel does).
            var config = Self.configSpace(PCISpec(vf.description, vendor: vendor, device: vfDevice, classCode: 0x020000))
            config.replaceSubrange(0..<4, with: [0xff, 0xff, 0xff, 0xff])
            FileTree.write(host(vfPath + "/config"), bytes: config)
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
    public func addNet(_ name: String, under parentPath: String, mac: String, up: Bool = true, ifindex: Int = 2) -> String {
        let path = parentPath + "/net/" + name
        FileTree.makeDirectory(host(path))
        FileTree.write(host(path + "/address"), mac + "\n")
        FileTree.write(host(path + "/ifindex"), "\(ifindex)\n")
        FileTree.write(host(path + "/operstate"), (up ? "up" : "down") + "\n")
        FileTree.write(host(path + "/flags"), (up ? "0x1003" : "0x1002") + "\n")
        FileTree.write(host(path + "/uevent"), "INTERFACE=\(name)\nIFINDEX=\(ifindex)\n")
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
        assignBlockNumber(disk, diskPath)
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
        assignBlockNumber(disk, diskPath)
        addPartition(disk + "p1", of: diskPath)
        return diskPath
    }

    private func addPartition(_ name: String, of diskPath: String) {
        let path = diskPath + "/" + name
        FileTree.makeDirectory(host(path))
        let number = name.reversed().prefix { $0.isNumber }.reversed()
        FileTree.write(host(path + "/partition"), (number.isEmpty ? "1" : String(number)) + "\n")
        FileTree.write(host(path + "/uevent"), "DEVTYPE=partition\nDEVNAME=\(name)\n")
        classDevice(path, subsystem: "/sys/class/block", list: "/sys/class/block/\(name)")
        assignBlockNumber(name, path)
    }

    /// `/proc/mounts` and `/proc/net/route` under the root: what the host-use
    /// scanner reads to find devices the host needs.
    /// Also writes `/proc/self/mountinfo` from `mounts` (a `/dev/NAME`
    /// source gets the block device's major:minor), replacing earlier mounts.
    public func setProc(mounts: [String], routes: [String] = [], inet6: [String] = []) {
        FileTree.makeDirectory(host("/proc/net"))
        FileTree.write(host("/proc/mounts"), mounts.map { $0 + "\n" }.joined())
        hostState.routes = routes
        hostState.inet6 = inet6
        hostState.mountInfo = []
        for line in mounts {
            let f = line.split(separator: " ").map(String.init)
            guard f.count >= 3 else { continue }
            let name = f[0].hasPrefix("/dev/") ? SysfsPath.lastComponent(f[0]) : nil
            addMountInfo(source: f[0], devnum: name.flatMap { hostState.blockNumbers[$0] }, at: f[1], fstype: f[2])
        }
        writeNetProc()
    }

    /// A virtual device (loopback): present in sysfs, left out of inventories.
    public func addVirtualNet(_ name: String) {
        let path = "/sys/devices/virtual/net/\(name)"
        FileTree.makeDirectory(host(path))
        FileTree.write(host(path + "/address"), "00:00:00:00:00:00\n")
        classDevice(path, subsystem: "/sys/class/net", list: "/sys/class/net/\(name)")
    }
}

// MARK: host uses: block stacks, mounts, swap, pools, network uppers, consoles, open files

/// What the host-use builders have laid down, so each addition rewrites its
/// `/proc` file whole.
struct HostState {
    var blockNumbers: [String: String] = [:]
    var nextMinor: [Int: Int] = [:]
    var mountInfo: [String] = []
    var nextMountID = 20
    var nextAnonymousMinor = 30
    var swaps: [String] = []
    var routes: [String] = []
    var inet6: [String] = []
    var ipv6Routes: [String] = []
    /// Firmware framebuffer platform device → its fb number, to re-register it on bind.
    var platformFramebuffers: [String: Int] = [:]
}

extension SysfsTree {
    /// Lower / upper relations Linux keeps between network interfaces.
    public enum UpperKind: Sendable {
        case bridge, bond, team, macvlan, ipvlan
        case vlan(id: Int)
    }

    /// Gives a block device a `dev` number, as the kernel does: sd* on 8,
    /// NVMe on 259, virtio on 253, device-mapper on 254, md on 9.
    func assignBlockNumber(_ name: String, _ path: String) {
        let major =
            name.hasPrefix("sd") ? 8 : name.hasPrefix("nvme") ? 259 : name.hasPrefix("vd") ? 253
            : name.hasPrefix("dm-") ? 254 : name.hasPrefix("md") ? 9 : 7
        let minor = hostState.nextMinor[major, default: 0]
        hostState.nextMinor[major] = minor + 1
        let devnum = "\(major):\(minor)"
        hostState.blockNumbers[name] = devnum
        FileTree.write(host(path + "/dev"), devnum + "\n")
    }

    /// `major:minor` of a block device added before.
    public func blockNumber(_ name: String) -> String? { locked { hostState.blockNumbers[name] } }

    /// The kernel path of a block device (`/sys/class/block/NAME` resolved).
    public func blockPath(_ name: String) -> String {
        let link = sysfs.readLink("/sys/class/block/\(name)")!
        return SysfsPath.resolve("/sys/class/block", link)
    }

    /// Partition `number` of `disk`: `nvme0n1p2`, `sda2`, `vda2`.
    @discardableResult
    public func addPartition(_ number: Int, ofDisk disk: String) -> String {
        let name = disk + (disk.last?.isNumber == true ? "p" : "") + "\(number)"
        addPartition(name, of: blockPath(disk))
        return name
    }

    /// A virtio disk (`vda`) of a virtio-blk PCI function, without partitions.
    @discardableResult
    public func addVirtioDisk(_ disk: String, under pciPath: String, index: Int = 0) -> String {
        let diskPath = pciPath + "/virtio\(index)/block/" + disk
        FileTree.makeDirectory(host(diskPath))
        FileTree.write(host(diskPath + "/uevent"), "DEVTYPE=disk\nDEVNAME=\(disk)\n")
        classDevice(diskPath, subsystem: "/sys/class/block", list: "/sys/class/block/\(disk)")
        assignBlockNumber(disk, diskPath)
        return diskPath
    }

    /// An NVMe namespace seen through native multipath: the disk
    /// (`nvme0n1`) lives under `/sys/devices/virtual/nvme-subsystem/nvme-subsysN`,
    /// which links each controller (`nvme0`, `nvme1`) under its PCI function.
    @discardableResult
    public func addNVMeMultipathDisk(_ disk: String, subsystem: Int, controllers: [(name: String, pciPath: String)]) -> String {
        let subsystemPath = "/sys/devices/virtual/nvme-subsystem/nvme-subsys\(subsystem)"
        let diskPath = subsystemPath + "/" + disk
        FileTree.makeDirectory(host(diskPath))
        FileTree.write(host(diskPath + "/uevent"), "DEVTYPE=disk\nDEVNAME=\(disk)\n")
        for controller in controllers {
            let controllerPath = controller.pciPath + "/nvme/" + controller.name
            FileTree.makeDirectory(host(controllerPath))
            FileTree.link(host(subsystemPath + "/" + controller.name), to: FileTree.relative(from: subsystemPath, to: controllerPath))
        }
        classDevice(diskPath, subsystem: "/sys/class/block", list: "/sys/class/block/\(disk)")
        assignBlockNumber(disk, diskPath)
        return diskPath
    }

    /// A device-mapper device (`dm-0`, named `cryptroot` in `/dev/mapper`)
    /// over `lowers`, with `slaves/` and the lowers' `holders/` links.
    @discardableResult
    public func addDeviceMapper(_ name: String, mapperName: String, over lowers: [String], uuid: String = "")
        -> String
    {
        let path = "/sys/devices/virtual/block/\(name)"
        FileTree.makeDirectory(host(path + "/dm"))
        FileTree.makeDirectory(host(path + "/slaves"))
        FileTree.makeDirectory(host(path + "/holders"))
        FileTree.write(host(path + "/dm/name"), mapperName + "\n")
        FileTree.write(host(path + "/dm/uuid"), uuid + "\n")
        FileTree.write(host(path + "/uevent"), "DEVTYPE=disk\nDEVNAME=\(name)\n")
        classDevice(path, subsystem: "/sys/class/block", list: "/sys/class/block/\(name)")
        assignBlockNumber(name, path)
        stack(path, name, over: lowers)
        return path
    }

    /// An md array (`md0`) over `lowers`.
    @discardableResult
    public func addMD(_ name: String, over lowers: [String]) -> String {
        let path = "/sys/devices/virtual/block/\(name)"
        FileTree.makeDirectory(host(path + "/md"))
        FileTree.makeDirectory(host(path + "/slaves"))
        FileTree.makeDirectory(host(path + "/holders"))
        FileTree.write(host(path + "/uevent"), "DEVTYPE=disk\nDEVNAME=\(name)\n")
        classDevice(path, subsystem: "/sys/class/block", list: "/sys/class/block/\(name)")
        assignBlockNumber(name, path)
        stack(path, name, over: lowers)
        return path
    }

    private func stack(_ path: String, _ name: String, over lowers: [String]) {
        for lower in lowers {
            let lowerPath = blockPath(lower)
            FileTree.link(host(path + "/slaves/\(lower)"), to: FileTree.relative(from: path + "/slaves", to: lowerPath))
            FileTree.makeDirectory(host(lowerPath + "/holders"))
            FileTree.link(
                host(lowerPath + "/holders/\(name)"), to: FileTree.relative(from: lowerPath + "/holders", to: path))
        }
    }

    private func addMountInfo(source: String, devnum: String?, at mountpoint: String, fstype: String) {
        let number: String
        if let devnum {
            number = devnum
        } else {
            number = "0:\(hostState.nextAnonymousMinor)"
            hostState.nextAnonymousMinor += 1
        }
        let id = hostState.nextMountID
        hostState.nextMountID += 1
        hostState.mountInfo.append(
            "\(id) 1 \(number) / \(mountpoint) rw,relatime shared:\(id) - \(fstype) \(source) rw")
        FileTree.makeDirectory(host("/proc/self"))
        FileTree.write(host("/proc/self/mountinfo"), hostState.mountInfo.map { $0 + "\n" }.joined())
    }

    static func escaped(_ path: String) -> String {
        var out = ""
        for c in path {
            switch c {
            case " ": out += "\\040"
            case "\t": out += "\\011"
            case "\n": out += "\\012"
            case "\\": out += "\\134"
            default: out.append(c)
            }
        }
        return out
    }

    /// Mounts block device `device` at `mountpoint` (a mountinfo line with its major:minor).
    public func mount(_ device: String, at mountpoint: String, fstype: String = "ext4") {
        locked {
            addMountInfo(
                source: "/dev/\(device)", devnum: hostState.blockNumbers[device], at: Self.escaped(mountpoint),
                fstype: fstype)
        }
    }

    /// A mount with no block device (`tmpfs`, a ZFS dataset `rpool/ROOT/debian`):
    /// an anonymous major:minor, as the kernel gives it.
    public func mountNonBlock(_ source: String, at mountpoint: String, fstype: String) {
        locked { addMountInfo(source: source, devnum: nil, at: Self.escaped(mountpoint), fstype: fstype) }
    }

    /// A mounted btrfs filesystem over `devices`: `/sys/fs/btrfs/UUID/devices/*`
    /// links and a mountinfo line with an anonymous major:minor (as btrfs has)
    /// whose source is the first device.
    public func mountBtrfs(_ devices: [String], at mountpoint: String, uuid: String, label: String) {
        locked {
            let fs = "/sys/fs/btrfs/\(uuid)"
            FileTree.makeDirectory(host(fs + "/devices"))
            FileTree.makeDirectory(host("/sys/fs/btrfs/features"))
            FileTree.write(host(fs + "/label"), label + "\n")
            for device in devices {
                FileTree.link(
                    host(fs + "/devices/\(device)"), to: FileTree.relative(from: fs + "/devices", to: blockPath(device)))
            }
            addMountInfo(source: "/dev/\(devices[0])", devnum: nil, at: Self.escaped(mountpoint), fstype: "btrfs")
        }
    }

    /// Activates swap on `devicePath` (`/dev/sda2`, `/dev/mapper/vg-swap`).
    public func swapOn(_ devicePath: String, type: String = "partition") {
        locked {
            hostState.swaps.append("\(devicePath)\t\(type)\t8388604\t0\t-2")
            FileTree.write(
                host("/proc/swaps"),
                "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n" + hostState.swaps.map { $0 + "\n" }.joined())
        }
    }

    /// udev's database record of a block device (`/run/udev/data/bM:m`),
    /// e.g. `["ID_FS_TYPE": "zfs_member", "ID_FS_LABEL": "rpool"]`.
    public func setUdevData(block device: String, _ properties: [String: String]) {
        let devnum = blockNumber(device)!
        FileTree.makeDirectory(host("/run/udev/data"))
        FileTree.write(
            host("/run/udev/data/b\(devnum)"),
            "S:disk/by-id/test-\(device)\nI:1000000\n"
                + properties.sorted { $0.key < $1.key }.map { "E:\($0.key)=\($0.value)\n" }.joined()
                + "G:systemd\nQ:systemd\nV:1\n")
    }

    // MARK: network uppers, routes, addresses

    /// A virtual interface (bridge, bond, VLAN, macvlan, team) over `lowers`,
    /// linked as Linux links them: `lower_X` on the upper and `upper_Y` on
    /// each lower; a master (bridge, bond, team) also gets the lowers'
    /// `master` link, a bridge `brif/` and the ports' `brport/`, a bond
    /// `bonding/slaves`.
    @discardableResult
    public func addUpperNet(_ name: String, kind: UpperKind, lowers: [String], up: Bool = true) -> String {
        // Locked: a daemon test adds a bridge while the fake kernel answers.
        lock.lock()
        defer { lock.unlock() }
        let path = "/sys/devices/virtual/net/\(name)"
        FileTree.makeDirectory(host(path))
        FileTree.write(host(path + "/address"), "52:54:00:00:00:01\n")
        FileTree.write(host(path + "/operstate"), (up ? "up" : "down") + "\n")
        FileTree.write(host(path + "/flags"), (up ? "0x1003" : "0x1002") + "\n")
        FileTree.write(host(path + "/uevent"), "INTERFACE=\(name)\n")
        classDevice(path, subsystem: "/sys/class/net", list: "/sys/class/net/\(name)")
        var isMaster = false
        switch kind {
        case .bridge:
            isMaster = true
            FileTree.makeDirectory(host(path + "/bridge"))
            FileTree.makeDirectory(host(path + "/brif"))
        case .bond:
            isMaster = true
            FileTree.makeDirectory(host(path + "/bonding"))
            FileTree.write(host(path + "/bonding/slaves"), lowers.joined(separator: " ") + "\n")
        case .team: isMaster = true
        case .vlan(let id):
            FileTree.makeDirectory(host("/proc/net/vlan"))
            FileTree.write(host("/proc/net/vlan/\(name)"), "\(name)  VID: \(id)\t REORDER_HDR: 1\n")
        case .macvlan, .ipvlan: break
        }
        for lower in lowers {
            let lowerPath = SysfsPath.resolve("/sys/class/net", sysfs.readLink("/sys/class/net/\(lower)")!)
            FileTree.link(host(path + "/lower_\(lower)"), to: FileTree.relative(from: path, to: lowerPath))
            FileTree.link(host(lowerPath + "/upper_\(name)"), to: FileTree.relative(from: lowerPath, to: path))
            if isMaster { FileTree.link(host(lowerPath + "/master"), to: FileTree.relative(from: lowerPath, to: path)) }
            if case .bridge = kind {
                FileTree.makeDirectory(host(lowerPath + "/brport"))
                FileTree.link(host(path + "/brif/\(lower)"), to: FileTree.relative(from: path + "/brif", to: lowerPath + "/brport"))
            }
            if case .bond = kind { FileTree.makeDirectory(host(lowerPath + "/bonding_slave")) }
        }
        return path
    }

    /// Sets an interface administratively up or down (`operstate`, `flags`).
    public func setNetUp(_ name: String, _ up: Bool) {
        lock.lock()
        defer { lock.unlock() }
        let path = SysfsPath.resolve("/sys/class/net", sysfs.readLink("/sys/class/net/\(name)")!)
        FileTree.write(host(path + "/operstate"), (up ? "up" : "down") + "\n")
        FileTree.write(host(path + "/flags"), (up ? "0x1003" : "0x1002") + "\n")
    }

    /// An IPv4 route in the main table (`/proc/net/route`): `0.0.0.0/0` is the default route.
    public func addRoute(_ interface: String, to destination: String = "0.0.0.0/0", via gateway: String = "0.0.0.0") {
        func hex(_ dotted: String) -> String {
            let bytes = dotted.split(separator: ".").map { UInt32($0) ?? 0 }
            let value = bytes.enumerated().reduce(UInt32(0)) { $0 | $1.element << (UInt32($1.offset) * 8) }
            return String(value, radix: 16, uppercase: true).leftPadded(8)
        }
        let parts = destination.split(separator: "/")
        let prefix = parts.count > 1 ? Int(parts[1]) ?? 32 : 32
        let mask: UInt32 = prefix == 0 ? 0 : UInt32.max << UInt32(32 - prefix)
        let maskLE = mask.byteSwapped
        let flags = gateway == "0.0.0.0" ? "0001" : "0003"
        locked {
            hostState.routes.append(
                "\(interface)\t\(hex(String(parts[0])))\t\(hex(gateway))\t\(flags)\t0\t0\t100\t"
                    + "\(String(maskLE, radix: 16, uppercase: true).leftPadded(8))\t0\t0\t0")
            writeNetProc()
        }
    }

    /// An IPv6 address (32 hex digits) in `/proc/net/if_inet6`; `scope` 0 is
    /// global, 0x20 link-local. A link-local address also gets its `fe80::/64`
    /// and multicast routes in `/proc/net/ipv6_route`, as the kernel adds them.
    public func addInet6(_ interface: String, address: String, prefix: Int, scope: Int = 0) {
        locked {
            hostState.inet6.append(
                "\(address) 02 \(String(prefix, radix: 16).leftPadded(2)) \(String(scope, radix: 16).leftPadded(2)) 80 \(interface)")
            let zero = String(repeating: "0", count: 32)
            if scope == 0x20 {
                hostState.ipv6Routes.append("fe800000000000000000000000000000 40 \(zero) 00 \(zero) 00000100 00000001 00000000 00000001 \(interface)")
                hostState.ipv6Routes.append("ff000000000000000000000000000000 08 \(zero) 00 \(zero) 00000100 00000002 00000000 00000001 \(interface)")
            }
            hostState.ipv6Routes.append("\(address) 80 \(zero) 00 \(zero) 00000000 00000002 00000000 80200001 \(interface)")
            writeNetProc()
        }
    }

    /// An IPv6 route (`dest` 32 hex digits, prefix length) in `/proc/net/ipv6_route`; prefix 0 is the default route.
    public func addIPv6Route(_ interface: String, to destination: String, prefix: Int) {
        let zero = String(repeating: "0", count: 32)
        locked {
            hostState.ipv6Routes.append(
                "\(destination) \(String(prefix, radix: 16).leftPadded(2)) \(zero) 00 \(zero) 00000400 00000001 00000000 00000003 \(interface)")
            writeNetProc()
        }
    }

    private func writeNetProc() {
        FileTree.makeDirectory(host("/proc/net"))
        FileTree.write(
            host("/proc/net/route"),
            "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n"
                + hostState.routes.map { $0 + "\n" }.joined())
        FileTree.write(host("/proc/net/if_inet6"), hostState.inet6.map { $0 + "\n" }.joined())
        FileTree.write(host("/proc/net/ipv6_route"), hostState.ipv6Routes.map { $0 + "\n" }.joined())
    }

    // MARK: consoles, DRM, processes

    /// Framebuffer `fbN` of a device (a GPU's DRM fbdev, or a firmware framebuffer).
    @discardableResult
    public func addFramebuffer(_ index: Int, on devicePath: String) -> String {
        let path = devicePath + "/graphics/fb\(index)"
        FileTree.makeDirectory(host(path))
        FileTree.write(host(path + "/name"), "fb\(index)\n")
        FileTree.write(host(path + "/uevent"), "MAJOR=29\nMINOR=\(index)\nDEVNAME=fb\(index)\n")
        FileTree.link(host(path + "/device"), to: FileTree.relative(from: path, to: devicePath))
        FileTree.makeDirectory(host("/sys/class/graphics"))
        FileTree.link(host("/sys/class/graphics/fb\(index)"), to: FileTree.relative(from: "/sys/class/graphics", to: path))
        return path
    }

    /// A firmware framebuffer (`efi-framebuffer.0`, `simple-framebuffer.0`):
    /// a platform device bound to its driver, registering `fbN`.
    @discardableResult
    public func addFirmwareFramebuffer(_ driver: String = "efi-framebuffer", fb index: Int = 0) -> String {
        let device = driver + ".0"
        let path = "/sys/devices/platform/\(device)"
        FileTree.makeDirectory(host(path))
        FileTree.write(host(path + "/uevent"), "DRIVER=\(driver)\nMODALIAS=platform:\(driver)\n")
        FileTree.makeDirectory(host("/sys/bus/platform/devices"))
        FileTree.link(host("/sys/bus/platform/devices/\(device)"), to: FileTree.relative(from: "/sys/bus/platform/devices", to: path))
        let driverDir = host("/sys/bus/platform/drivers/\(driver)")
        FileTree.makeDirectory(driverDir)
        for file in ["bind", "unbind"] { FileTree.write(driverDir + "/" + file, "", mode: 0o200) }
        locked { hostState.platformFramebuffers[device] = index }
        bindPlatform(device, driver)
        return path
    }

    /// The driver a platform device is bound to now.
    public func platformDriver(of device: String) -> String? {
        locked { sysfs.linkName("/sys/devices/platform/\(device)/driver") }
    }

    /// Binds a platform device (the fake kernel's side of `drivers/X/bind`):
    /// a firmware framebuffer registers its `fbN` again.
    public func bindPlatform(_ device: String, _ driver: String) {
        locked {
            let path = "/sys/devices/platform/\(device)"
            let driverPath = "/sys/bus/platform/drivers/\(driver)"
            FileTree.link(host(path + "/driver"), to: FileTree.relative(from: path, to: driverPath))
            FileTree.link(host(driverPath + "/\(device)"), to: FileTree.relative(from: driverPath, to: path))
            if let index = hostState.platformFramebuffers[device] { addFramebuffer(index, on: path) }
        }
    }

    /// Unbinds a platform device: its framebuffer unregisters (`fbN` goes).
    public func unbindPlatform(_ device: String) {
        locked {
            let path = "/sys/devices/platform/\(device)"
            if let driver = sysfs.linkName(path + "/driver") { unlink(host("/sys/bus/platform/drivers/\(driver)/\(device)")) }
            unlink(host(path + "/driver"))
            if let index = hostState.platformFramebuffers[device] {
                unlink(host("/sys/class/graphics/fb\(index)"))
                FileTree.remove(host(path + "/graphics/fb\(index)"))
            }
        }
    }

    /// The virtual consoles: `vtcon0` the dummy console, `vtcon1` fbcon
    /// (`(M) frame buffer device`), bound or not.
    public func addVirtualConsoles(framebufferBound: Bool = true) {
        for (n, name, bound) in [(0, "(S) dummy device", !framebufferBound), (1, "(M) frame buffer device", framebufferBound)] {
            let path = "/sys/devices/virtual/vtconsole/vtcon\(n)"
            FileTree.makeDirectory(host(path))
            FileTree.write(host(path + "/name"), name + "\n")
            FileTree.write(host(path + "/bind"), (bound ? "1" : "0") + "\n")
            FileTree.makeDirectory(host("/sys/class/vtconsole"))
            FileTree.link(host("/sys/class/vtconsole/vtcon\(n)"), to: FileTree.relative(from: "/sys/class/vtconsole", to: path))
        }
    }

    /// Whether `vtconN` is bound, read back from its `bind` file.
    public func virtualConsoleBound(_ n: Int) -> Bool? {
        sysfs.read("/sys/class/vtconsole/vtcon\(n)/bind").map { $0 == "1" }
    }

    /// DRM nodes `cardN` (and `renderD<render>`) of a GPU.
    public func addDRMCard(_ index: Int, on gpuPath: String, render: Int? = nil) {
        FileTree.makeDirectory(host("/sys/class/drm"))
        for node in ["card\(index)"] + (render.map { ["renderD\($0)"] } ?? []) {
            let path = gpuPath + "/drm/" + node
            FileTree.makeDirectory(host(path))
            FileTree.write(host(path + "/uevent"), "DEVNAME=dri/\(node)\nDEVTYPE=drm_minor\n")
            FileTree.link(host(path + "/device"), to: FileTree.relative(from: path, to: gpuPath))
            FileTree.link(host("/sys/class/drm/\(node)"), to: FileTree.relative(from: "/sys/class/drm", to: path))
        }
        // A connector: named like a card, it is not a device node.
        let connector = gpuPath + "/drm/card\(index)/card\(index)-HDMI-A-1"
        FileTree.makeDirectory(host(connector))
        FileTree.link(host("/sys/class/drm/card\(index)-HDMI-A-1"), to: FileTree.relative(from: "/sys/class/drm", to: connector))
    }

    /// The NVIDIA driver's record of a GPU (`/proc/driver/nvidia/gpus/ADDR/information`),
    /// whose `Device Minor` names its `/dev/nvidiaN`.
    public func addNvidiaGPU(_ address: PCIAddress, minor: Int) {
        let dir = host("/proc/driver/nvidia/gpus/\(address)")
        FileTree.makeDirectory(dir)
        FileTree.write(
            dir + "/information",
            "Model: \t\t NVIDIA GeForce RTX 4090\nIRQ:   \t\t 180\nGPU UUID: \t GPU-0000\nVideo BIOS: \t 95.02.18.80.5f\n"
                + "Bus Type: \t PCIe\nDMA Size: \t 47 bits\nDMA Mask: \t 0x7fffffffffff\nBus Location: \t \(address)\n"
                + "Device Minor: \t \(minor)\nGPU Excluded:\t No\n")
    }

    /// A process (`/proc/PID/comm`) holding `openFiles` open: `fd/N` links
    /// whose target text is the file (`/dev/dri/card0`, `/dev/vfio/12`).
    public func addProcess(_ pid: Int, comm: String, openFiles: [String]) {
        let dir = host("/proc/\(pid)")
        FileTree.makeDirectory(dir + "/fd")
        FileTree.write(dir + "/comm", comm + "\n")
        for (fd, file) in (["/dev/null", "pipe:[4242]"] + openFiles).enumerated() {
            FileTree.link(dir + "/fd/\(fd)", to: file)
        }
    }

    /// The process exits: its `/proc` entry goes.
    public func removeProcess(_ pid: Int) { FileTree.remove(host("/proc/\(pid)")) }

    /// An iommufd VFIO cdev (`vfio-dev/vfioN`) of a PCI function.
    public func addVFIOCdev(_ address: PCIAddress, _ number: Int) {
        FileTree.makeDirectory(host(pciPath(address) + "/vfio-dev/vfio\(number)"))
    }
}

extension String {
    fileprivate func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
