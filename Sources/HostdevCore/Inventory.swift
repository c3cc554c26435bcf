/// VFIO's unit of assignment: every member must be on vfio-pci (or unbound)
/// before any one of them can be given to a VM.
public struct IOMMUGroup: Sendable, Equatable, Codable {
    public var number: Int
    public var members: [PCIAddress]

    public init(number: Int, members: [PCIAddress]) {
        self.number = number
        self.members = members.sorted()
    }
}

/// Everything one observation of the host's devices saw.
public struct Inventory: Sendable, Equatable, Codable {
    /// Sorted so that every parent comes before its children, siblings by name.
    public private(set) var devices: [HostDevice]
    public var iommuGroups: [IOMMUGroup]
    /// The kernel exposes IOMMU groups at all (`/sys/kernel/iommu_groups` is not empty).
    public var iommuEnabled: Bool

    public init(devices: [HostDevice], iommuGroups: [IOMMUGroup] = [], iommuEnabled: Bool? = nil) {
        self.devices = Inventory.treeOrder(devices)
        self.iommuGroups = iommuGroups.sorted { $0.number < $1.number }
        self.iommuEnabled = iommuEnabled ?? !iommuGroups.isEmpty
    }

    public func device(named name: String) -> HostDevice? { devices.first { $0.name == name } }

    /// This inventory with `updated` devices replacing (or joining) those of
    /// the same name and the devices at `removedPaths` gone: how a hotplug
    /// event refreshes the daemon's cache without re-reading the host.
    /// IOMMU groups follow the devices' own `iommuGroup`.
    public func updating(_ updated: [HostDevice], removingPaths removedPaths: Set<String>) -> Inventory {
        let replaced = Set(updated.map(\.name))
        var kept = devices.filter { !replaced.contains($0.name) && !removedPaths.contains($0.sysfsPath ?? "") }
        kept += updated
        var members: [Int: Set<PCIAddress>] = [:]
        for group in iommuGroups { members[group.number] = Set(group.members) }
        let present = Set(kept.compactMap { $0.pci?.address })
        for key in members.keys { members[key] = members[key]!.filter { present.contains($0) } }
        for device in updated {
            guard let pci = device.pci else { continue }
            for key in members.keys { members[key]!.remove(pci.address) }
            if let group = pci.iommuGroup { members[group, default: []].insert(pci.address) }
        }
        let groups = members.filter { !$0.value.isEmpty }.map { IOMMUGroup(number: $0.key, members: Array($0.value)) }
        return Inventory(devices: kept, iommuGroups: groups, iommuEnabled: iommuEnabled || !groups.isEmpty)
    }

    public func device(at address: PCIAddress) -> HostDevice? { devices.first { $0.pci?.address == address } }

    public func group(_ number: Int) -> IOMMUGroup? { iommuGroups.first { $0.number == number } }

    /// Depth-first order from `computer`: parents before children, siblings
    /// by name. Devices whose parent is not in the list hang off the root.
    /// Works on indices: a large host's devices are copied once, at the end.
    static func treeOrder(_ devices: [HostDevice]) -> [HostDevice] {
        var indexOf: [String: Int] = [:]
        indexOf.reserveCapacity(devices.count)
        for (i, device) in devices.enumerated() { indexOf[device.name] = indexOf[device.name] ?? i }
        var roots: [Int] = []
        var children: [Int: [Int]] = [:]
        for (i, device) in devices.enumerated() {
            if let parent = indexOf[device.parent], parent != i {
                children[parent, default: []].append(i)
            } else {
                roots.append(i)
            }
        }
        let byName = { (a: Int, b: Int) in devices[a].name < devices[b].name }
        var order: [Int] = []
        order.reserveCapacity(devices.count)
        var seen = [Bool](repeating: false, count: devices.count)
        var stack = roots.sorted(by: byName).reversed() as [Int]
        while let i = stack.popLast() {
            guard !seen[i] else { continue }
            seen[i] = true
            order.append(i)
            if let kids = children[i] { stack.append(contentsOf: kids.sorted(by: byName).reversed()) }
        }
        // A parent cycle (only possible in malformed source data) is not
        // reachable from the root; keep those devices rather than lose them.
        order.append(contentsOf: devices.indices.filter { !seen[$0] })
        return order.map { devices[$0] }
    }
}
