/// `hostdevctl devices --format vdsm`: the inventory as VDSM's
/// `hostdevListByCaps` reports it (its `deviceList`), key for key and type
/// for type: `{"pci_0000_01_00_0": {"params": {...}}}`, every value a
/// string except `totalvfs` (a number), `address` (an object of strings)
/// and `mdev` (an object per type). Pure: the same inventory always gives
/// the same bytes.
///
/// Where VDSM's values come from places hostdevd does not read, the nearest
/// fact stands in (README, "VDSM-compatible output"): `is_assignable` is
/// `"false"` for a PCI bridge (VDSM reads the header type from sysfs), and
/// a SCSI device's `block_path` is its storage child's node unless
/// `blockPaths` says otherwise (VDSM asks `lsscsi -g`).
public struct VDSMDeviceList: Sendable {
    public var inventory: Inventory
    /// Only these capabilities; empty lists all, and then the `computer`
    /// root (capability `system`) too, as libvirt and VDSM list it.
    public var capabilities: Set<DeviceCapability>
    /// Block device node per SCSI generic node (`/dev/sg0` → `/dev/sda`), as
    /// `lsscsi -g` pairs them; wins over the pairing found in the inventory.
    public var blockPaths: [String: String]

    public init(inventory: Inventory, capabilities: Set<DeviceCapability> = [], blockPaths: [String: String] = [:]) {
        self.inventory = inventory
        self.capabilities = capabilities
        self.blockPaths = blockPaths
    }

    /// The entries in inventory order, `computer` first when listed.
    public var entries: [(name: String, params: JSONText)] {
        var result: [(String, JSONText)] = []
        if capabilities.isEmpty { result.append((DeviceNaming.computer, Self.computerParams)) }
        let children = childrenByParent()
        for device in inventory.devices where capabilities.isEmpty || capabilities.contains(device.capability) {
            result.append((device.name, params(device, children: children[device.name] ?? [])))
        }
        return result
    }

    public func render() -> String {
        var text = ""
        write { text += $0 }
        return text
    }

    /// Renders a device at a time, so a large host's output is never held whole.
    public func write(to output: (String) -> Void) {
        let entries = entries
        guard !entries.isEmpty else { return output("{}\n") }
        output("{\n")
        for (i, entry) in entries.enumerated() {
            var line = "  "
            JSONText.quote(entry.name, into: &line)
            line += ": " + JSONText.object([("params", entry.params)]).rendered(indent: 2) + (i == entries.count - 1 ? "\n" : ",\n")
            output(line)
        }
        output("}\n")
    }

    /// libvirt's root device: VDSM gives it no parent. (Computed, not a
    /// lazily made global: LeakSanitizer in the fuzzers counts the boxes of
    /// an indirect enum held only by a `static let` as leaked.)
    static var computerParams: JSONText { .object([("capability", .string("system")), ("is_assignable", .string("true"))]) }

    /// Each device's children of the kinds a SCSI device borrows from
    /// (`storage` for vendor and model, `scsi_generic` for its node).
    func childrenByParent() -> [String: [HostDevice]] {
        var children: [String: [HostDevice]] = [:]
        for device in inventory.devices where device.capability == .storage || device.capability == .scsiGeneric {
            children[device.parent, default: []].append(device)
        }
        return children
    }

    /// One device's `params`, in VDSM's key order where it has one.
    func params(_ device: HostDevice, children: [HostDevice]) -> JSONText {
        var p: [(String, JSONText)] = [("capability", .string(device.capability.rawValue))]
        func add(_ key: String, _ value: String?) { if let value, !value.isEmpty { p.append((key, .string(value))) } }
        add("driver", device.driver)
        add("parent", device.parent)
        switch device.capability {
        case .pci, .usbDevice:
            add("vendor", device.vendor)
            add("vendor_id", device.vendorID)
            add("product", device.product)
            add("product_id", device.productID)
        case .storage:
            add("vendor", device.vendor)
            add("product", device.product)
        case .net:
            add("interface", device.net?.interface)
        case .scsi:
            let storage = children.first { $0.capability == .storage }
            add("vendor", storage?.vendor)
            add("product", storage?.product)
            let node = children.first { $0.capability == .scsiGeneric }?.deviceNode
            add("udev_path", node)
            add("block_path", node.flatMap { blockPaths[$0] ?? storage?.deviceNode })
        case .scsiGeneric:
            add("udev_path", device.deviceNode)
        case .usbInterface, .scsiHost, .scsiTarget:
            break
        }
        if let pci = device.pci {
            p.append(("address", Self.address([("domain", Int(pci.address.domain)), ("bus", Int(pci.address.bus)), ("slot", Int(pci.address.slot)), ("function", Int(pci.address.function))])))
            add("iommu_group", pci.iommuGroup.map(String.init))
            add("numa_node", pci.numaNode.map(String.init))
            add("physfn", pci.physicalFunction?.nodeDeviceName)
            if let sriov = pci.sriov { p.append(("totalvfs", .number(sriov.totalVFs))) }
            if let mdev = Self.mdev(pci.mdevTypes ?? []) { p.append(("mdev", mdev)) }
        }
        if let usb = device.usb, device.capability == .usbDevice, let bus = usb.bus, let number = usb.device {
            p.append(("address", Self.address([("bus", bus), ("device", number)])))
        }
        if let scsi = device.scsi, device.capability == .scsi, let host = scsi.host, let bus = scsi.bus, let target = scsi.target, let lun = scsi.lun {
            p.append(("address", Self.address([("host", host), ("bus", bus), ("target", target), ("lun", lun)])))
        }
        p.append(("is_assignable", .string(Self.isAssignable(device) ? "true" : "false")))
        return .object(p)
    }

    /// VDSM's rule, not hostdevd's `isAssignable`: every device is
    /// assignable except a PCI bridge. SCSI, storage, network and USB root
    /// hubs say `"true"`, and so does a PCI function with no IOMMU group.
    public static func isAssignable(_ device: HostDevice) -> Bool {
        !(device.pci?.isBridge ?? false)
    }

    /// `{"domain": "0", "bus": "5", …}`: decimal strings, as libvirt writes them.
    static func address(_ fields: [(String, Int)]) -> JSONText {
        .object(fields.map { ($0.0, .string(String($0.1))) })
    }

    /// `{"nvidia-22": {"name": "GRID M60-8Q", "available_instances": "1"}}`;
    /// a type whose instance count is unknown is left out, as VDSM does.
    static func mdev(_ types: [MdevType]) -> JSONText? {
        let known = types.filter { $0.availableInstances != nil }.sorted { $0.id < $1.id }
        guard !known.isEmpty else { return nil }
        return .object(
            known.map { type in
                var fields: [(String, JSONText)] = [
                    ("name", .string(type.name ?? type.id)), ("available_instances", .string(String(type.availableInstances!))),
                ]
                if let description = type.description { fields.append(("description", .string(description))) }
                return (type.id, .object(fields))
            })
    }
}
