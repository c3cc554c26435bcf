public import HostdevCore

/// The inventory as libvirt's node-device driver reports it
/// (`--source libvirt`): any URI, including the test driver with a custom
/// node file, which is how hosts without passthrough hardware can try it.
public struct NodeDeviceInventory: Sendable {
    public init() {}

    public func read(_ connection: LibvirtConnection) throws -> Inventory {
        try inventory(fromXML: connection.nodeDeviceXMLs(), source: connection.uri)
    }

    public func inventory(fromXML xmls: [String], source: String) throws -> Inventory {
        var devices: [HostDevice] = []
        var groups: [Int: Set<PCIAddress>] = [:]
        for xml in xmls {
            let element = try XMLElement.parse(xml, source: source)
            guard let parsed = Self.device(element) else { continue }
            devices.append(parsed.device)
            if let group = parsed.group { groups[group.number, default: []].formUnion(group.members) }
        }
        let iommu = groups.map { IOMMUGroup(number: $0.key, members: Array($0.value)) }
        return Inventory(devices: devices, iommuGroups: iommu, iommuEnabled: !iommu.isEmpty)
    }

    /// One `<device>` element; nil for capabilities hostdevd does not list
    /// (`system`, `drm`, `mdev`, …).
    static func device(_ xml: XMLElement) -> (device: HostDevice, group: IOMMUGroup?)? {
        guard xml.name == "device", let name = xml.text(of: "name"), let capability = xml.child("capability"),
            let type = capability.attributes["type"].flatMap(DeviceCapability.init(rawValue:))
        else { return nil }
        var device = HostDevice(
            name: name, capability: type, parent: xml.text(of: "parent") ?? DeviceNaming.computer,
            sysfsPath: xml.text(of: "path"), driver: xml.child("driver")?.text(of: "name"))
        var group: IOMMUGroup?
        let number = { (field: String) in capability.text(of: field).flatMap(Self.integer) }
        switch type {
        case .pci:
            guard let address = pciAddress(capability) else { return nil }
            device.vendorID = capability.child("vendor")?.attributes["id"]
            device.productID = capability.child("product")?.attributes["id"]
            device.vendor = capability.text(of: "vendor")
            device.product = capability.text(of: "product")
            var pci = PCIFunction(address: address, classCode: capability.text(of: "class").flatMap(Self.integer).flatMap { UInt32(exactly: $0) })
            if let iommu = capability.child("iommuGroup"), let n = iommu.attributes["number"].flatMap({ Int($0) }) {
                pci.iommuGroup = n
                group = IOMMUGroup(number: n, members: iommu.children("address").compactMap(Self.address) + [address])
            }
            pci.numaNode = capability.child("numa")?.attributes["node"].flatMap { Int($0) }
            for sub in capability.children("capability") {
                switch sub.attributes["type"] {
                case "virt_functions":
                    let vfs = sub.children("address").compactMap(Self.address)
                    pci.sriov = SRIOV(
                        totalVFs: sub.attributes["maxCount"].flatMap { Int($0) } ?? vfs.count, numVFs: vfs.count,
                        virtualFunctions: vfs)
                case "phys_function":
                    pci.physicalFunction = sub.child("address").flatMap(Self.address)
                case "mdev_types":
                    pci.mdevTypes = sub.children("type").compactMap { type in
                        type.attributes["id"].map {
                            MdevType(id: $0, name: type.text(of: "name"), availableInstances: type.text(of: "availableInstances").flatMap { Int($0) },
                                deviceAPI: type.text(of: "deviceAPI"))
                        }
                    }
                default: break
                }
            }
            device.pci = pci
        case .usbDevice:
            device.vendorID = capability.child("vendor")?.attributes["id"]
            device.productID = capability.child("product")?.attributes["id"]
            device.vendor = capability.text(of: "vendor")
            device.product = capability.text(of: "product")
            // Root hubs always hold device number 1 on their bus.
            device.usb = USBInfo(bus: number("bus"), device: number("device"), isRootHub: number("device") == 1)
        case .usbInterface:
            device.usb = USBInfo(
                interfaceNumber: number("number"), interfaceClass: number("class"),
                interfaceSubclass: number("subclass"), interfaceProtocol: number("protocol"))
        case .net:
            device.net = NetInfo(
                interface: capability.text(of: "interface") ?? name, macAddress: capability.text(of: "address"),
                isUp: capability.child("link")?.attributes["state"].map { $0 == "up" })
        case .scsiHost:
            device.scsi = SCSIInfo(host: number("host"))
        case .scsiTarget:
            let parts = (capability.text(of: "target") ?? "").drop { !$0.isNumber }.split(separator: ":").compactMap { Int($0) }
            device.scsi = SCSIInfo(host: parts.first, bus: parts.dropFirst().first, target: parts.dropFirst(2).first)
        case .scsi:
            device.scsi = SCSIInfo(
                host: number("host"), bus: number("bus"), target: number("target"), lun: number("lun"),
                type: capability.text(of: "type"))
        case .storage:
            device.deviceNode = capability.text(of: "block")
            device.vendor = capability.text(of: "vendor")
            device.product = capability.text(of: "model")
            device.serial = capability.text(of: "serial")
        case .scsiGeneric:
            device.deviceNode = capability.text(of: "char")
        }
        return (device, group)
    }

    static func pciAddress(_ capability: XMLElement) -> PCIAddress? {
        guard let domain = capability.text(of: "domain").flatMap(integer),
            let bus = capability.text(of: "bus").flatMap(integer),
            let slot = capability.text(of: "slot").flatMap(integer),
            let function = capability.text(of: "function").flatMap(integer),
            (0...0xff).contains(bus), (0..<32).contains(slot), (0..<8).contains(function), let domain = UInt32(exactly: domain)
        else { return nil }
        return PCIAddress(domain: domain, bus: UInt8(bus), slot: UInt8(slot), function: UInt8(function))
    }

    /// `<address domain='0x0000' bus='0x01' slot='0x00' function='0x1'/>`.
    static func address(_ element: XMLElement) -> PCIAddress? {
        let a = element.attributes
        guard let domain = a["domain"].flatMap(integer), let bus = a["bus"].flatMap(integer),
            let slot = a["slot"].flatMap(integer), let function = a["function"].flatMap(integer),
            (0...0xff).contains(bus), (0..<32).contains(slot), (0..<8).contains(function), let domain = UInt32(exactly: domain)
        else { return nil }
        return PCIAddress(domain: domain, bus: UInt8(bus), slot: UInt8(slot), function: UInt8(function))
    }

    /// libvirt writes numbers as decimal or `0x` hex.
    static func integer(_ text: String) -> Int? {
        text.hasPrefix("0x") ? Int(hexText: text) : Int(text)
    }
}
