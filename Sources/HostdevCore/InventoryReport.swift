/// How `hostdevctl devices` prints an inventory.
public enum InventoryFormat: String, CaseIterable, Sendable {
    /// `json`: hostdevd's own JSON (VDSM's layout with typed values and more
    /// facts); `vdsm`: exactly what VDSM's `hostdevListByCaps` reports.
    case tree, table, json, vdsm
}

/// Renders an inventory for people (`tree`, `table`) and for tools (`json`,
/// hostdevd's own; `vdsm`, VDSM's `hostdevListByCaps` as it is, through
/// `VDSMDeviceList`). Pure: the same inventory always gives the same bytes.
public struct InventoryReport: Sendable {
    public var inventory: Inventory
    /// Only these capabilities are shown; empty shows all.
    public var capabilities: Set<DeviceCapability>
    /// Owning VM per device name (from the manifest/ledger); empty until known.
    public var owners: [String: String]
    /// What uses each device, by device name: the host's use chains and the
    /// VMs' elements (see `usedBy(hostUses:domains:)`).
    public var usedBy: [String: String]

    public init(inventory: Inventory, capabilities: Set<DeviceCapability> = [], owners: [String: String] = [:], usedBy: [String: String] = [:]) {
        self.inventory = inventory
        self.capabilities = capabilities
        self.owners = owners
        self.usedBy = usedBy
    }

    /// "used by", per PCI device name: each host use's chain, and each active
    /// domain's element (`win11 through <interface type='hostdev'>`), or the
    /// element of a domain that is off (`off: …`), so an operator sees what is
    /// free before writing a manifest.
    public static func usedBy(hostUses: [HostUse], domains: [DomainState]) -> [String: String] {
        var uses: [String: [String]] = [:]
        for use in hostUses { uses[use.address.nodeDeviceName, default: []].append(use.reason) }
        for domain in domains {
            let hostdevs = (domain.isActive ? domain.liveHostdevs : domain.configHostdevs).filter(\.isOurs)
            for entry in hostdevs {
                if case .pci(let address) = entry.source {
                    uses[address.nodeDeviceName, default: []].append("\(domain.isActive ? "" : "off: ")\(domain.name) through hostdevd's \(entry.element)")
                }
            }
            for use in domain.uses {
                for address in use.devices {
                    uses[address.nodeDeviceName, default: []].append("\(domain.isActive ? "" : "off: ")\(domain.name) through \(use.description)")
                }
            }
        }
        return uses.mapValues { $0.joined(separator: "; ") }
    }

    /// The devices shown, in tree order, each with the nearest shown ancestor
    /// (or `computer`) and its depth under the root.
    public var rows: [(device: HostDevice, shownParent: String, depth: Int)] {
        shownRows.map { (inventory.devices[$0.index], $0.shownParent, $0.depth) }
    }

    /// `rows` by position in `inventory.devices`: a large host's devices are
    /// not copied once more just to be printed.
    var shownRows: [(index: Int, shownParent: String, depth: Int)] {
        let devices = inventory.devices
        var parentOf: [String: String] = [:]
        parentOf.reserveCapacity(devices.count)
        for index in devices.indices { parentOf[devices[index].name] = parentOf[devices[index].name] ?? devices[index].parent }
        let shown = devices.indices.filter { capabilities.isEmpty || capabilities.contains(devices[$0].capability) }
        let shownNames = capabilities.isEmpty ? Set(parentOf.keys) : Set(shown.map { devices[$0].name })
        var depthOf: [String: Int] = [:]
        var rows: [(Int, String, Int)] = []
        rows.reserveCapacity(shown.count)
        for index in shown {
            let name = devices[index].name
            var ancestor = devices[index].parent
            var visited: Set<String> = [name]
            while ancestor != DeviceNaming.computer, !shownNames.contains(ancestor),
                let next = parentOf[ancestor], visited.insert(ancestor).inserted
            {
                ancestor = next
            }
            if !shownNames.contains(ancestor) || ancestor == name { ancestor = DeviceNaming.computer }
            let depth = ancestor == DeviceNaming.computer ? 1 : (depthOf[ancestor] ?? 0) + 1
            depthOf[name] = depth
            rows.append((index, ancestor, depth))
        }
        return rows
    }

    public func render(_ format: InventoryFormat) -> String {
        var text = ""
        write(format) { text += $0 }
        return text
    }

    /// Renders piece by piece (a device at a time), so a large host's output
    /// is never held whole in memory.
    public func write(_ format: InventoryFormat, to output: (String) -> Void) {
        let rows = shownRows
        let devices = inventory.devices
        switch format {
        case .tree:
            output(DeviceNaming.computer + "\n")
            for (index, _, depth) in rows { output(String(repeating: "    ", count: depth) + summary(devices[index]) + "\n") }
        case .table:
            output(alignColumns([Self.tableHeader] + rows.map { tableRow((devices[$0.index], $0.shownParent, $0.depth)) }))
        case .json:
            guard !rows.isEmpty else { return output("{}\n") }
            output("{\n")
            for (i, row) in rows.enumerated() {
                var line = "  "
                JSONText.quote(devices[row.index].name, into: &line)
                line += ": " + entry(devices[row.index]).rendered(indent: 2) + (i == rows.count - 1 ? "\n" : ",\n")
                output(line)
            }
            output("}\n")
        case .vdsm:
            VDSMDeviceList(inventory: inventory, capabilities: capabilities).write(to: output)
        }
    }

    // MARK: tree

    /// `pci_0000_01_00_0 [pci] 10de:1b80 NVIDIA Corporation GP104 driver=nvidia iommu_group=1 assignable`
    func summary(_ device: HostDevice) -> String {
        var parts = [device.name, "[\(device.capability.rawValue)]"]
        if let ids = idPair(device) { parts.append(ids) }
        let label = description(device)
        if !label.isEmpty { parts.append(label) }
        parts.append(contentsOf: facts(device))
        return parts.joined(separator: " ")
    }

    func idPair(_ device: HostDevice) -> String? {
        guard let v = device.vendorID, let p = device.productID else { return nil }
        return bare(v) + ":" + bare(p)
    }

    func description(_ device: HostDevice) -> String {
        [device.vendor, device.product].compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: " ")
    }

    func facts(_ device: HostDevice) -> [String] {
        var facts: [String] = []
        if let driver = device.driver { facts.append("driver=\(driver)") }
        if let pci = device.pci {
            if let group = pci.iommuGroup { facts.append("iommu_group=\(group)") }
            if pci.isBridge { facts.append("bridge") }
            if let sriov = pci.sriov { facts.append("vfs=\(sriov.numVFs)/\(sriov.totalVFs)") }
            if let pf = pci.physicalFunction { facts.append("physfn=\(pf)") }
            if let vf = pci.vfSettings {
                if let mac = vf.mac { facts.append("vf_mac=\(mac)") }
                if let vlan = vf.vlan { facts.append("vf_vlan=\(vlan)") }
                if let trust = vf.trust { facts.append("vf_trust=\(trust ? "on" : "off")") }
                if let spoofchk = vf.spoofchk { facts.append("vf_spoofchk=\(spoofchk ? "on" : "off")") }
            }
            if pci.bootVGA == true { facts.append("boot_vga") }
            if let types = pci.mdevTypes, !types.isEmpty {
                // TYPE:N, N the instances that can still be created.
                facts.append("mdev_types=" + types.map { "\($0.id):\($0.availableInstances.map(String.init) ?? "?")" }.joined(separator: ","))
            }
        }
        if let usb = device.usb, let bus = usb.bus, let dev = usb.device { facts.append("bus=\(bus) device=\(dev)") }
        if let net = device.net { facts.append("interface=\(net.interface)") }
        if let node = device.deviceNode { facts.append(node) }
        if device.isAssignable { facts.append("assignable") }
        if let vm = owners[device.name] { facts.append("vm=\(vm)") }
        if let use = usedBy[device.name] { facts.append("used by: \(use)") }
        return facts
    }

    // MARK: table

    static let tableHeader = ["NAME", "CAPABILITY", "PARENT", "DRIVER", "IOMMU", "IDS", "ASSIGNABLE", "VM", "USED BY", "DESCRIPTION"]

    func tableRow(_ row: (device: HostDevice, shownParent: String, depth: Int)) -> [String] {
        let device = row.device
        return [
            device.name, device.capability.rawValue, row.shownParent, device.driver ?? "-",
            device.pci?.iommuGroup.map(String.init) ?? "-", idPair(device) ?? "-",
            device.isAssignable ? "yes" : "no", owners[device.name] ?? "-", usedBy[device.name] ?? "-", description(device),
        ]
    }

    // MARK: json

    /// `{"pci_0000_01_00_0": {"device": "pci 0000:01:00.0", "params": {...}, "vmId": ""}}` —
    /// VDSM's layout (keyed by libvirt's node-device name) with typed values
    /// and hostdevd's facts (`VDSMDeviceList` is VDSM's own); `device` is the name every other output uses
    /// (`DeviceIdentifier`), on PCI functions and USB devices.
    public func json() -> JSONText {
        .object(rows.map { ($0.device.name, entry($0.device)) })
    }

    func entry(_ device: HostDevice) -> JSONText {
        var fields: [(String, JSONText)] = DeviceIdentifier.of(device).map { [("device", .string($0))] } ?? []
        fields += [("params", params(device)), ("vmId", .string(owners[device.name] ?? ""))]
        if let use = usedBy[device.name] { fields.append(("usedBy", .string(use))) }
        return .object(fields)
    }

    func params(_ device: HostDevice) -> JSONText {
        var p: [(String, JSONText)] = [("capability", .string(device.capability.rawValue)), ("parent", .string(device.parent))]
        func add(_ key: String, _ value: String?) { if let value { p.append((key, .string(value))) } }
        func add(_ key: String, number value: Int?) { if let value { p.append((key, .number(value))) } }
        let named = device.capability == .pci || device.capability == .usbDevice
        add("vendor", device.vendor ?? (named ? "" : nil))
        add("vendor_id", device.vendorID)
        add("product", device.product ?? (named ? "" : nil))
        add("product_id", device.productID)
        add("iommu_group", device.pci?.iommuGroup.map(String.init))
        add("driver", device.driver)
        if let pci = device.pci {
            add("address", pci.address.description)
            add("class", pci.classCode.map { "0x" + hex($0, 6) })
            add("subsystem_vendor_id", pci.subsystemVendorID)
            add("subsystem_product_id", pci.subsystemID)
            if let sriov = pci.sriov {
                add("totalvfs", number: sriov.totalVFs)
                add("numvfs", number: sriov.numVFs)
                if !sriov.virtualFunctions.isEmpty {
                    p.append(("virtfns", .array(sriov.virtualFunctions.map { .string($0.nodeDeviceName) })))
                }
            }
            add("physfn", pci.physicalFunction?.nodeDeviceName)
            if let vf = pci.vfSettings {
                var settings: [(String, JSONText)] = []
                if let mac = vf.mac { settings.append(("mac", .string(mac.description))) }
                if let vlan = vf.vlan { settings.append(("vlan", .number(vlan))) }
                if let trust = vf.trust { settings.append(("trust", .bool(trust))) }
                if let spoofchk = vf.spoofchk { settings.append(("spoofchk", .bool(spoofchk))) }
                p.append(("vf", .object(settings)))
            }
            if let bootVGA = pci.bootVGA { p.append(("boot_vga", .bool(bootVGA))) }
            p.append(("bridge", .bool(pci.isBridge)))
            add("numa_node", pci.numaNode.map(String.init))
            if let types = pci.mdevTypes, !types.isEmpty {
                p.append(("mdev_types", .array(types.map { type in
                    var t: [(String, JSONText)] = [("type", .string(type.id))]
                    if let name = type.name { t.append(("name", .string(name))) }
                    if let description = type.description { t.append(("description", .string(description))) }
                    if let left = type.availableInstances { t.append(("available_instances", .number(left))) }
                    if let api = type.deviceAPI { t.append(("device_api", .string(api))) }
                    return .object(t)
                })))
            }
        }
        if let usb = device.usb {
            add("bus", number: usb.bus)
            add("device", number: usb.device)
            add("interface_number", number: usb.interfaceNumber)
            add("interface_class", usb.interfaceClass.map { "0x" + hex($0, 2) })
            add("interface_subclass", usb.interfaceSubclass.map { "0x" + hex($0, 2) })
            add("interface_protocol", usb.interfaceProtocol.map { "0x" + hex($0, 2) })
        }
        if let net = device.net {
            add("interface", net.interface)
            add("mac", net.macAddress)
            add("operstate", net.operstate)
        }
        if let scsi = device.scsi {
            add("host", number: scsi.host)
            add("bus", number: scsi.bus)
            add("target", number: scsi.target)
            add("lun", number: scsi.lun)
            add("type", scsi.type)
        }
        add(device.capability == .storage ? "block" : "char", device.deviceNode)
        add("serial", device.serial)
        add("sysfs_path", device.sysfsPath)
        p.append(("is_assignable", .bool(device.isAssignable)))
        return .object(p)
    }

    func bare(_ id: String) -> String { id.hasPrefix("0x") ? String(id.dropFirst(2)) : id }
}

/// Left-aligned columns separated by two spaces; the last column is not padded.
public func alignColumns(_ lines: [[String]]) -> String {
    guard let width = lines.map(\.count).max() else { return "" }
    var widths = [Int](repeating: 0, count: width)
    for line in lines { for (i, cell) in line.enumerated() { widths[i] = max(widths[i], cell.count) } }
    return lines.map { line in
        line.enumerated().map { i, cell in
            i == line.count - 1 ? cell : cell + String(repeating: " ", count: widths[i] - cell.count)
        }.joined(separator: "  ").trimmingEnd { $0 == " " }
    }.joined(separator: "\n") + "\n"
}
