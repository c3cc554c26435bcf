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

    public func device(at address: PCIAddress) -> HostDevice? { devices.first { $0.pci?.address == address } }

    public func group(_ number: Int) -> IOMMUGroup? { iommuGroups.first { $0.number == number } }

    /// Depth-first order from `computer`: parents before children, siblings
    /// by name. Devices whose parent is not in the list hang off the root.
    static func treeOrder(_ devices: [HostDevice]) -> [HostDevice] {
        let names = Set(devices.map(\.name))
        var children: [String: [HostDevice]] = [:]
        for device in devices {
            let parent = names.contains(device.parent) && device.parent != device.name
                ? device.parent : DeviceNaming.computer
            children[parent, default: []].append(device)
        }
        for key in children.keys { children[key]!.sort { $0.name < $1.name } }
        var ordered: [HostDevice] = []
        ordered.reserveCapacity(devices.count)
        var stack: [HostDevice] = (children[DeviceNaming.computer] ?? []).reversed()
        var seen = Set<String>()
        while let device = stack.popLast() {
            guard seen.insert(device.name).inserted else { continue }
            ordered.append(device)
            stack.append(contentsOf: (children[device.name] ?? []).reversed())
        }
        // A parent cycle (only possible in malformed source data) is not
        // reachable from the root; keep those devices rather than lose them.
        ordered.append(contentsOf: devices.filter { !seen.contains($0.name) })
        return ordered
    }
}
