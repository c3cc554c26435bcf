public import HostdevCore
import Dispatch
#if canImport(Glibc)
    import Glibc
#endif

/// Turns enumerated devices into an `Inventory` by reading their sysfs
/// attributes under a root. Every attribute is optional: what cannot be
/// read leaves its field empty and the device still listed.
public struct InventoryReader: Sendable {
    public let root: SysfsRoot
    public let names: DeviceNameDatabase

    public init(root: SysfsRoot, names: DeviceNameDatabase = DeviceNameDatabase()) {
        self.root = root
        self.names = names
    }

    /// Walks `root` itself: the `--sysfs-root` path.
    public func read() throws -> Inventory {
        try read(SysfsEnumerator(root: root).records())
    }

    public func read(_ records: consuming [DeviceRecord]) -> Inventory {
        var seen = Set<String>()
        let wanted = (consume records).filter { !$0.isVirtual && seen.insert($0.devpath).inserted }
        var (devices, devpaths) = describeAll(wanted)
        addMdevTypes(&devices)
        assignParents(&devices, devpaths: devpaths)
        assignNames(&devices)
        let groups = iommuGroups(devices)
        // Handed over, not shared: the tree order is then applied in place.
        return Inventory(devices: consume devices, iommuGroups: groups, iommuEnabled: !groups.isEmpty)
    }

    // MARK: one device

    /// Reads devices on every core: a scan is thousands of small syscalls,
    /// each device independent of the others. The devices that could be
    /// described, in record order, with their kernel paths. Each worker
    /// initializes its own slots of the result's storage, which is then
    /// compacted in place: a large host's devices exist once, never also as
    /// an array of optionals.
    func describeAll(_ records: [DeviceRecord]) -> (devices: [HostDevice], devpaths: [String]) {
        let workers = min(max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))), 8, max(1, records.count / 64))
        var described = [Bool](repeating: false, count: records.count)
        let devices = [HostDevice](unsafeUninitializedCapacity: records.count) { buffer, count in
            described.withUnsafeMutableBufferPointer { flags in
                let slots = Slots(buffer: buffer, flags: flags)
                DispatchQueue.concurrentPerform(iterations: workers) { worker in
                    var i = worker
                    while i < records.count {
                        if let device = describe(records[i]) {
                            (slots.buffer.baseAddress! + i).initialize(to: device)
                            slots.flags[i] = true
                        }
                        i += workers
                    }
                }
            }
            var kept = 0
            for i in records.indices where described[i] {
                if kept != i { (buffer.baseAddress! + kept).moveInitialize(from: buffer.baseAddress! + i, count: 1) }
                kept += 1
            }
            count = kept
        }
        let devpaths = records.indices.filter { described[$0] }.map { records[$0].devpath }
        return (devices, devpaths)
    }

    /// @unchecked: each worker writes only its own indices of the buffer,
    /// and the buffer outlives `concurrentPerform`, which joins all workers.
    struct Slots: @unchecked Sendable {
        let buffer: UnsafeMutableBufferPointer<HostDevice>
        let flags: UnsafeMutableBufferPointer<Bool>
    }

    func describe(_ record: DeviceRecord) -> HostDevice? {
        guard let dir = root.directory(record.syspath) else {
            // A dangling link: the device is named but its directory is gone.
            // List what the name alone tells.
            return record.subsystem == "pci"
                ? PCIAddress(record.sysname).map {
                    HostDevice(name: $0.nodeDeviceName, capability: .pci, sysfsPath: record.syspath, pci: PCIFunction(address: $0))
                } : nil
        }
        var record = record
        if record.properties.isEmpty && record.subsystem != "pci" {
            // A sysfs walk: the kernel's uevent file holds DEVTYPE, DEVNAME, …
            // (PCI needs none of it, and a scan of thousands saves the reads.)
            record.properties = dir.read("uevent").map(SysfsEnumerator.parseUevent) ?? [:]
            record.devtype = record.devtype ?? record.properties["DEVTYPE"]
        }
        var device: HostDevice
        switch record.subsystem {
        case "pci":
            guard let address = PCIAddress(record.sysname) else { return nil }
            device = HostDevice(name: address.nodeDeviceName, capability: .pci)
            device.pci = pciFunction(address, dir, into: &device)
        case "usb":
            let devtype = record.devtype ?? (record.sysname.contains(":") ? "usb_interface" : "usb_device")
            let name = DeviceNaming.libvirtName(subsystem: "usb", sysname: record.sysname)
            if devtype == "usb_interface" {
                device = HostDevice(name: name, capability: .usbInterface)
                device.usb = USBInfo(
                    interfaceNumber: dir.read("bInterfaceNumber").flatMap { Int($0, radix: 16) },
                    interfaceClass: dir.read("bInterfaceClass").flatMap { Int($0, radix: 16) },
                    interfaceSubclass: dir.read("bInterfaceSubClass").flatMap { Int($0, radix: 16) },
                    interfaceProtocol: dir.read("bInterfaceProtocol").flatMap { Int($0, radix: 16) })
            } else {
                device = HostDevice(name: name, capability: .usbDevice)
                device.vendorID = dir.read("idVendor").map { "0x" + $0 }
                device.productID = dir.read("idProduct").map { "0x" + $0 }
                device.vendor = dir.read("manufacturer")
                device.product = dir.read("product")
                device.serial = dir.read("serial")
                device.usb = USBInfo(
                    bus: dir.read("busnum").flatMap { Int($0) }, device: dir.read("devnum").flatMap { Int($0) },
                    isRootHub: record.sysname.hasPrefix("usb"))
            }
        case "scsi":
            let devtype = record.devtype ?? Self.scsiDevtype(record.sysname)
            let numbers = Self.scsiNumbers(record.sysname)
            switch devtype {
            case "scsi_host":
                device = HostDevice(name: DeviceNaming.scsiName(sysname: record.sysname), capability: .scsiHost)
                device.scsi = SCSIInfo(host: numbers.first)
            case "scsi_target":
                device = HostDevice(name: DeviceNaming.scsiName(sysname: record.sysname), capability: .scsiTarget)
                device.scsi = SCSIInfo(host: numbers[safe: 0], bus: numbers[safe: 1], target: numbers[safe: 2])
            case "scsi_device":
                device = HostDevice(
                    name: DeviceNaming.libvirtName(subsystem: "scsi", sysname: record.sysname), capability: .scsi)
                // Space-padded to 8 and 16 characters (SCSI INQUIRY fields).
                device.vendor = dir.read("vendor")?.trimming()
                device.product = dir.read("model")?.trimming()
                device.scsi = SCSIInfo(
                    host: numbers[safe: 0], bus: numbers[safe: 1], target: numbers[safe: 2], lun: numbers[safe: 3],
                    type: dir.read("type").flatMap { Int($0) }.map(Self.scsiTypeName))
            default: return nil
            }
        case "scsi_generic":
            device = HostDevice(
                name: DeviceNaming.libvirtName(subsystem: "scsi_generic", sysname: record.sysname),
                capability: .scsiGeneric, deviceNode: Self.deviceNode(record))
        case "net":
            let mac = dir.read("address")
            device = HostDevice(
                name: DeviceNaming.libvirtName(subsystem: "net", sysname: record.sysname, suffix: mac),
                capability: .net)
            device.net = NetInfo(
                interface: record.sysname, macAddress: mac, operstate: dir.read("operstate"))
        case "block":
            let devtype = record.devtype ?? (dir.read("partition") != nil ? "partition" : "disk")
            guard devtype == "disk" else { return nil }
            let serial = record.properties["ID_SERIAL"] ?? root.read(record.syspath + "/device/serial")
            device = HostDevice(
                name: DeviceNaming.libvirtName(subsystem: "block", sysname: record.sysname, suffix: serial),
                capability: .storage, deviceNode: Self.deviceNode(record),
                serial: serial)
            device.vendor = root.read(record.syspath + "/device/vendor")?.trimming { $0 == " " }
            device.product = root.read(record.syspath + "/device/model")?.trimming { $0 == " " }
        default:
            return nil
        }
        device.sysfsPath = record.syspath
        device.driver = dir.linkName("driver")
        if device.capability == .pci || device.capability == .usbDevice {
            device.vendor = device.vendor ?? record.properties["ID_VENDOR_FROM_DATABASE"]
            device.product = device.product ?? record.properties["ID_MODEL_FROM_DATABASE"]
        }
        return device
    }

    /// PCI identity from the first 64 bytes of `config` (one read instead of
    /// five attribute files), falling back to the attribute files where
    /// `config` is missing, short or says FFFFh (a VF) — and for a runtime-suspended
    /// function, whose config space the kernel would wake (from D3cold, too)
    /// to read: the attribute files are cached and leave it asleep.
    func pciFunction(_ address: PCIAddress, _ dir: borrowing SysfsRoot.Directory, into device: inout HostDevice)
        -> PCIFunction
    {
        var function = PCIFunction(address: address)
        // An SR-IOV VF's config space reads Vendor and Device ID FFFFh (the
        // spec says so); the kernel's attribute files have the IDs from the
        // PF's SR-IOV capability, which is what lspci shows too.
        if dir.read("power/runtime_status") != "suspended", let config = dir.readBytes("config", count: 64), config.count >= 64,
            config[0] & config[1] != 0xff
        {
            let word = { (offset: Int) in UInt16(config[offset]) | UInt16(config[offset + 1]) << 8 }
            device.vendorID = "0x" + hex(word(0), 4)
            device.productID = "0x" + hex(word(2), 4)
            function.classCode = UInt32(config[11]) << 16 | UInt32(config[10]) << 8 | UInt32(config[9])
            function.headerType = config[0x0e] & 0x7f
            // Subsystem IDs live at 0x2c only in type-0 (endpoint) headers.
            if function.headerType == 0 {
                function.subsystemVendorID = "0x" + hex(word(0x2c), 4)
                function.subsystemID = "0x" + hex(word(0x2e), 4)
            }
        } else {
            device.vendorID = dir.read("vendor")
            device.productID = dir.read("device")
            function.classCode = dir.read("class").flatMap { UInt32(hexText: $0) }
        }
        if function.subsystemVendorID == nil {
            function.subsystemVendorID = dir.read("subsystem_vendor")
            function.subsystemID = dir.read("subsystem_device")
        }
        function.iommuGroup = dir.linkName("iommu_group").flatMap { Int($0) }
        function.physicalFunction = dir.linkName("physfn").flatMap { PCIAddress($0) }
        function.numaNode = dir.read("numa_node").flatMap { Int($0) }.flatMap { $0 < 0 ? nil : $0 }
        // boot_vga exists only on VGA-class functions.
        if function.classCode.map({ $0 >> 8 == 0x0300 }) ?? true {
            function.bootVGA = dir.read("boot_vga").map { $0 == "1" }
        }
        if let total = dir.read("sriov_totalvfs").flatMap({ Int($0) }) {
            let enabled = dir.read("sriov_numvfs").flatMap { Int($0) } ?? 0
            // virtfnN for N from 0 while the links last: a VF's position is its number.
            var vfs: [PCIAddress] = []
            while vfs.count < enabled, let vf = dir.linkName("virtfn\(vfs.count)").flatMap({ PCIAddress($0) }) { vfs.append(vf) }
            function.sriov = SRIOV(totalVFs: total, numVFs: enabled, virtualFunctions: vfs)
        }
        return function
    }

    /// The mediated-device types of the parents the kernel registered
    /// (`/sys/class/mdev_bus`): one directory listing for the whole host,
    /// the types read for those parents only.
    func addMdevTypes(_ devices: inout [HostDevice]) {
        let parents = Set((root.list("/sys/class/mdev_bus") ?? []).compactMap { PCIAddress($0) })
        guard !parents.isEmpty else { return }
        let control = MediatedDeviceControl(root: root)
        for i in devices.indices {
            guard let address = devices[i].pci?.address, parents.contains(address) else { continue }
            devices[i].pci?.mdevTypes = control.types(of: address)
        }
    }

    // MARK: tree, names, groups

    /// Each device's parent is its nearest ancestor directory that is itself
    /// a listed device (libvirt's rule), else `computer`.
    func assignParents(_ devices: inout [HostDevice], devpaths: [String]) {
        let nameOf = Dictionary(zip(devpaths, devices.map(\.name)), uniquingKeysWith: { a, _ in a })
        for i in devices.indices {
            var path = SysfsPath.parent(devpaths[i])
            while path.count > 1 {
                if let parent = nameOf[path] {
                    devices[i].parent = parent
                    break
                }
                path = SysfsPath.parent(path)
            }
        }
    }

    func assignNames(_ devices: inout [HostDevice]) {
        for (capability, file) in [(DeviceCapability.pci, "pci.ids"), (.usbDevice, "usb.ids")] {
            let wanting = devices.indices.filter {
                devices[$0].capability == capability && (devices[$0].vendor == nil || devices[$0].product == nil)
            }
            let vendors = Set(wanting.compactMap { devices[$0].vendorID.flatMap { UInt16(hexText: $0) } })
            let table = names.names(in: file, vendors: vendors)
            for i in wanting {
                guard let vendor = devices[i].vendorID.flatMap({ UInt16(hexText: $0) }) else { continue }
                devices[i].vendor = devices[i].vendor ?? table.vendor(vendor)
                if let product = devices[i].productID.flatMap({ UInt16(hexText: $0) }) {
                    devices[i].product = devices[i].product ?? table.product(vendor, product)
                }
            }
        }
    }

    /// Groups as `/sys/kernel/iommu_groups` lists them, joined with each
    /// device's own `iommu_group` link (either may be missing on odd trees).
    func iommuGroups(_ devices: [HostDevice]) -> [IOMMUGroup] {
        var members: [Int: Set<PCIAddress>] = [:]
        for entry in root.list("/sys/kernel/iommu_groups") ?? [] {
            guard let number = Int(entry) else { continue }
            let listed = root.list("/sys/kernel/iommu_groups/\(entry)/devices") ?? []
            members[number, default: []].formUnion(listed.compactMap { PCIAddress($0) })
        }
        for device in devices {
            if let pci = device.pci, let group = pci.iommuGroup { members[group, default: []].insert(pci.address) }
        }
        // A group whose last device went is gone on a real kernel; an
        // empty directory left behind lists nothing to assign.
        return members.filter { !$0.value.isEmpty }.map { IOMMUGroup(number: $0.key, members: Array($0.value)) }
    }

    /// udev's `DEVNAME` is a full path, the kernel's uevent a bare name.
    static func deviceNode(_ record: DeviceRecord) -> String {
        let name = record.properties["DEVNAME"] ?? record.sysname
        return name.hasPrefix("/") ? name : "/dev/" + name
    }

    // MARK: SCSI names

    static func scsiDevtype(_ sysname: String) -> String {
        if sysname.hasPrefix("host") { return "scsi_host" }
        if sysname.hasPrefix("target") { return "scsi_target" }
        return "scsi_device"
    }

    /// `host0` → [0]; `target0:0:1` → [0, 0, 1]; `0:0:1:0` → [0, 0, 1, 0].
    static func scsiNumbers(_ sysname: String) -> [Int] {
        let digits = sysname.drop { !$0.isNumber }
        return digits.split(separator: ":").compactMap { Int($0) }
    }

    /// SCSI peripheral device types as libvirt names them.
    static func scsiTypeName(_ type: Int) -> String {
        switch type {
        case 0: return "disk"
        case 1: return "tape"
        case 4: return "worm"
        case 5: return "cdrom"
        case 7: return "optical"
        case 8: return "changer"
        case 12: return "raid"
        case 13: return "enclosure"
        default: return "type\(type)"
        }
    }
}

extension Array {
    subscript(safe index: Int) -> Element? { indices.contains(index) ? self[index] : nil }
}


extension InventoryReader {
    /// Re-reads the devices at `changes` into `inventory` (dropping those
    /// whose directory is gone): one device's worth of syscalls for a hotplug
    /// event instead of a whole-host scan, updated in place so that a large
    /// host's device list is not copied per event.
    public func refresh(_ inventory: inout Inventory, changes: [(subsystem: String, devpath: String)]) {
        var updated: [HostDevice] = []
        var removed = Set<String>()
        for change in changes where change.subsystem == "pci" || change.subsystem == "usb" {
            let record = DeviceRecord(devpath: change.devpath, subsystem: change.subsystem)
            guard !record.isVirtual else { continue }
            guard root.directory(record.syspath) != nil, var device = describe(record) else {
                removed.insert(record.syspath)
                continue
            }
            // The nearest listed ancestor.
            var path = SysfsPath.parent(record.syspath)
            while path.count > 4 {
                if let parent = inventory.device(atSysfsPath: path) {
                    device.parent = parent.name
                    break
                }
                path = SysfsPath.parent(path)
            }
            if let old = inventory.device(named: device.name) {
                device.vendor = device.vendor ?? old.vendor
                device.product = device.product ?? old.product
            }
            updated.append(device)
        }
        addMdevTypes(&updated)
        let fresh = updated.indices.filter { updated[$0].vendor == nil && inventory.device(named: updated[$0].name) == nil }
        if !fresh.isEmpty {
            var named = fresh.map { updated[$0] }
            assignNames(&named)
            for (i, index) in fresh.enumerated() { updated[index] = named[i] }
        }
        inventory.update(updated, removingPaths: removed)
    }

    /// The kernel path of a PCI function (`/devices/pci0000:00/…`), from its bus link.
    public func devpath(of address: PCIAddress) -> String? {
        guard let link = root.readLink("/sys/bus/pci/devices/\(address)") else { return nil }
        return String(SysfsPath.resolve("/sys/bus/pci/devices", link).dropFirst(4))
    }
}
