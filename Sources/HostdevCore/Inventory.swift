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
public struct Inventory: Sendable, Equatable {
    /// Sorted so that every parent comes before its children, siblings by name.
    public private(set) var devices: [HostDevice]
    /// Sorted by number.
    public private(set) var iommuGroups: [IOMMUGroup]
    /// The kernel exposes IOMMU groups at all (`/sys/kernel/iommu_groups` is not empty).
    public var iommuEnabled: Bool
    /// Where each device sits in `devices`. Kept with the devices (an
    /// informer's indexer) so that a hotplug event's refresh and the planning
    /// after it neither scan nor re-index a host of thousands of functions.
    private var positions: Positions

    public init(devices: consuming [HostDevice], iommuGroups: [IOMMUGroup] = [], iommuEnabled: Bool? = nil) {
        var devices = consume devices
        Inventory.sortIntoTreeOrder(&devices)
        self.devices = devices
        self.iommuGroups = iommuGroups.sorted { $0.number < $1.number }
        self.iommuEnabled = iommuEnabled ?? !iommuGroups.isEmpty
        positions = Positions(of: self.devices)
    }

    public func device(named name: String) -> HostDevice? { positions.byName[name].map { devices[$0] } }

    /// The device at a sysfs path (`/sys/devices/…`), if listed.
    public func device(atSysfsPath path: String) -> HostDevice? { positions.byPath[path].map { devices[$0] } }

    /// Gives each VF in `settings` (by address) its settings as its PF's
    /// driver reports them, for `hostdevctl devices`.
    public mutating func setVFSettings(_ settings: [PCIAddress: VFSettings]) {
        for (address, value) in settings {
            guard let position = positions.byAddress[address] else { continue }
            devices[position].pci?.vfSettings = value
        }
    }

    public func device(at address: PCIAddress) -> HostDevice? { positions.byAddress[address].map { devices[$0] } }

    public func group(_ number: Int) -> IOMMUGroup? {
        let index = groupIndex(number)
        return index < iommuGroups.count && iommuGroups[index].number == number ? iommuGroups[index] : nil
    }

    /// The IOMMU group of a PCI function: its own link, else the group that lists it.
    public func groupNumber(of address: PCIAddress) -> Int? {
        device(at: address)?.pci?.iommuGroup ?? iommuGroups.first { $0.members.contains(address) }?.number
    }

    /// Where group `number` is in `iommuGroups`, or where it would go.
    private func groupIndex(_ number: Int) -> Int {
        var low = 0
        var high = iommuGroups.count
        while low < high {
            let middle = (low + high) / 2
            if iommuGroups[middle].number < number { low = middle + 1 } else { high = middle }
        }
        return low
    }

    /// This inventory with `updated` devices replacing (or joining) those of
    /// the same name and the devices at `removedPaths` gone: how a hotplug
    /// event refreshes the daemon's cache without re-reading the host.
    /// IOMMU groups follow the devices' own `iommuGroup`. The work is in
    /// proportion to the change (and the new devices' parents' subtrees),
    /// not to the host: the result equals a fresh `Inventory` of the same
    /// devices.
    public func updating(_ updated: [HostDevice], removingPaths removedPaths: Set<String>) -> Inventory {
        var result = self
        result.update(updated, removingPaths: removedPaths)
        return result
    }

    /// `updating`, in place.
    public mutating func update(_ updated: [HostDevice], removingPaths removedPaths: Set<String>) {
        if updated.count + removedPaths.count > Self.changesUpdatedOneByOne {
            return rebuild(updated, removingPaths: removedPaths)
        }
        // Positions from here on moved; nil: none did, and `positions` is
        // exact (after a shift it is mended once, at the end).
        var shiftedFrom: Int?
        for path in removedPaths {
            while let index = shiftedFrom == nil ? positions.byPath[path] : devices.firstIndex(where: { $0.sysfsPath == path }) {
                removeFromGroup(devices[index].pci)
                positions.forget(devices[index])
                devices.remove(at: index)
                shiftedFrom = min(shiftedFrom ?? index, index)
            }
        }
        for device in updated {
            let existing = shiftedFrom == nil ? positions.byName[device.name] : devices.firstIndex { $0.name == device.name }
            if let index = existing {
                removeFromGroup(devices[index].pci)
                let moved = devices[index].parent != device.parent
                positions.forget(devices[index])
                devices[index] = device
                positions.record(device, at: index)
                // Moved in the tree (a parent appeared or went): rare, so
                // the whole order is recomputed.
                if moved {
                    Self.sortIntoTreeOrder(&devices)
                    shiftedFrom = 0
                }
            } else {
                let index = insert(device, positionsExact: shiftedFrom == nil)
                shiftedFrom = min(shiftedFrom ?? index, index)
            }
            addToGroup(device.pci)
        }
        if let start = shiftedFrom {
            for index in start..<devices.endIndex { positions.record(devices[index], at: index) }
        }
        iommuEnabled = iommuEnabled || !iommuGroups.isEmpty
    }

    /// Above this many changes (an SR-IOV storm's thousands of VFs) one sort
    /// of the whole list costs less than finding each device's place.
    static let changesUpdatedOneByOne = 16

    /// `update` for many changes: removed, replaced and appended, then
    /// sorted and indexed once.
    private mutating func rebuild(_ updated: [HostDevice], removingPaths removedPaths: Set<String>) {
        let isRemoved = { (device: HostDevice) in device.sysfsPath.map(removedPaths.contains) == true }
        for device in devices where isRemoved(device) { removeFromGroup(device.pci) }
        devices.removeAll(where: isRemoved)
        positions = Positions(of: devices)
        for device in updated {
            if let index = positions.byName[device.name] {
                removeFromGroup(devices[index].pci)
                devices[index] = device
            } else {
                positions.byName[device.name] = devices.count
                devices.append(device)
            }
            addToGroup(device.pci)
        }
        Self.sortIntoTreeOrder(&devices)
        positions = Positions(of: devices)
        iommuEnabled = iommuEnabled || !iommuGroups.isEmpty
    }

    /// Inserts a new device after its parent's earlier-named children and
    /// their subtrees: where `treeOrder` would put it. Scans the parent's
    /// subtree only (the whole list for a device at the root), keeping the
    /// path from the root to the device looked at, as the depth-first order
    /// unrolls it: no hashing, so a large host costs string compares only.
    @discardableResult
    private mutating func insert(_ device: HostDevice, positionsExact: Bool) -> Int {
        let parentIndex = positionsExact ? positions.byName[device.parent] : devices.firstIndex { $0.name == device.parent }
        var path: [String] = parentIndex == nil ? [] : [device.parent]
        var index = parentIndex.map { $0 + 1 } ?? devices.startIndex
        while index < devices.endIndex {
            // Fields read in place: a copy of each device would retain all of its strings.
            while let last = path.last, last != devices[index].parent { path.removeLast() }
            // Path empty: under a parent, its subtree has ended; at the root,
            // this is another root (its parent is not listed).
            if path.isEmpty && parentIndex != nil { break }
            let isSibling = parentIndex == nil ? path.isEmpty : path.count == 1
            if isSibling && devices[index].name > device.name { break }
            path.append(devices[index].name)
            index += 1
        }
        devices.insert(device, at: index)
        return index
    }

    private mutating func removeFromGroup(_ pci: PCIFunction?) {
        guard let pci else { return }
        // Its own group first; a device that lost its group link is looked for in all.
        let own = pci.iommuGroup.map(groupIndex).flatMap {
            $0 < iommuGroups.count && iommuGroups[$0].members.contains(pci.address) ? $0 : nil
        }
        guard let index = own ?? iommuGroups.firstIndex(where: { $0.members.contains(pci.address) }) else { return }
        iommuGroups[index].members.removeAll { $0 == pci.address }
        if iommuGroups[index].members.isEmpty { iommuGroups.remove(at: index) }
    }

    private mutating func addToGroup(_ pci: PCIFunction?) {
        guard let pci, let number = pci.iommuGroup else { return }
        let index = groupIndex(number)
        if index < iommuGroups.count && iommuGroups[index].number == number {
            var members = iommuGroups[index].members
            members.insert(pci.address, at: members.firstIndex { $0 > pci.address } ?? members.endIndex)
            iommuGroups[index].members = members
        } else {
            iommuGroups.insert(IOMMUGroup(number: number, members: [pci.address]), at: index)
        }
    }

    /// Where each device is in `devices`: by PCI address, by name and by
    /// sysfs path. (A name or address listed twice, only in malformed source
    /// data, is found at its first place.)
    struct Positions: Sendable, Equatable {
        var byAddress: [PCIAddress: Int] = [:]
        var byName: [String: Int] = [:]
        var byPath: [String: Int] = [:]

        init(of devices: [HostDevice]) {
            byName.reserveCapacity(devices.count)
            byPath.reserveCapacity(devices.count)
            for index in devices.indices.reversed() { record(devices[index], at: index) }
        }

        mutating func record(_ device: HostDevice, at index: Int) {
            byName[device.name] = index
            if let path = device.sysfsPath { byPath[path] = index }
            if let address = device.pci?.address { byAddress[address] = index }
        }

        mutating func forget(_ device: HostDevice) {
            byName[device.name] = nil
            if let path = device.sysfsPath { byPath[path] = nil }
            if let address = device.pci?.address { byAddress[address] = nil }
        }
    }

    /// Depth-first order from `computer`: parents before children, siblings
    /// by name. Devices whose parent is not in the list hang off the root.
    /// Works on indices, then moves the devices in place.
    static func sortIntoTreeOrder(_ devices: inout [HostDevice]) {
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
        // Applied in place, cycle by cycle (position p takes the device at
        // order[p]): a large host's devices are not copied into a second array.
        var placed = [Bool](repeating: false, count: devices.count)
        for start in devices.indices where !placed[start] {
            placed[start] = true
            guard order[start] != start else { continue }
            let first = devices[start]
            var position = start
            while order[position] != start {
                let source = order[position]
                devices[position] = devices[source]
                placed[source] = true
                position = source
            }
            devices[position] = first
        }
    }
}

extension Inventory: Codable {
    enum CodingKeys: String, CodingKey { case devices, iommuGroups, iommuEnabled }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            devices: try container.decode([HostDevice].self, forKey: .devices),
            iommuGroups: try container.decode([IOMMUGroup].self, forKey: .iommuGroups),
            iommuEnabled: try container.decode(Bool.self, forKey: .iommuEnabled))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(devices, forKey: .devices)
        try container.encode(iommuGroups, forKey: .iommuGroups)
        try container.encode(iommuEnabled, forKey: .iommuEnabled)
    }
}

extension Inventory {
    /// The USB devices (root hubs left out) with this vendor:product ID, by
    /// bus, then device number: the order a claim's `index: N` counts in.
    public func usbDevices(vendor: UInt16, product: UInt16) -> [HostDevice] {
        devices.filter { device in
            device.capability == .usbDevice && !(device.usb?.isRootHub ?? false) && device.hasID(vendor: vendor, product: product)
        }.sorted { ($0.usb?.bus ?? 0, $0.usb?.device ?? 0) < ($1.usb?.bus ?? 0, $1.usb?.device ?? 0) }
    }

    /// The USB device at bus `bus`, device number `number`, if attached.
    public func usbDevice(bus: Int, device number: Int) -> HostDevice? {
        devices.first { $0.capability == .usbDevice && $0.usb?.bus == bus && $0.usb?.device == number }
    }

    /// The network interfaces of a PCI function (`enp3s0f0`), by name: an
    /// SR-IOV PF's VF settings go through the first.
    public func networkInterfaces(of address: PCIAddress) -> [String] {
        guard let function = device(at: address) else { return [] }
        return devices.filter { $0.capability == .net && $0.parent == function.name }.compactMap { $0.net?.interface }.sorted()
    }
}
