public import HostdevCore

/// Finds the PCI functions behind what a domain's XML names: a macvtap's
/// host interface (through bonds, VLANs and bridges down to the NICs), a
/// block device (through partitions, device-mapper and md down to the
/// disks' controllers), a SCSI adapter, a mediated device's parent. Reads
/// the same root as the inventory.
public struct VMUseResolver: Sendable {
    public let root: SysfsRoot

    public init(root: SysfsRoot) { self.root = root }

    public func resolve(_ use: VMUse) -> [PCIAddress] {
        switch use.target {
        case .pci(let address): return [address]
        case .usb, .vhostSCSI: return []
        case .scsiHost(let name): return pciAncestor("/sys/class/scsi_host/\(name)").map { [$0] } ?? []
        case .mdev(let uuid): return pciAncestor("/sys/bus/mdev/devices/\(uuid)").map { [$0] } ?? []
        case .netdev(let name): return walk(name, under: "/sys/class/net", lowers: { self.lowerInterfaces($0) })
        case .block(let path): return walk(blockName(path), under: "/sys/class/block", lowers: { self.blockSlaves($0) })
        }
    }

    /// Resolves every use of every domain in place.
    public func resolve(_ domains: inout [DomainState]) {
        for d in domains.indices { resolve(&domains[d].uses) }
    }

    public func resolve(_ uses: inout [VMUse]) {
        for u in uses.indices { uses[u].devices = resolve(uses[u]) }
    }

    /// `name` and what lies beneath it, to the PCI functions at the bottom.
    func walk(_ name: String, under directory: String, lowers: (String) -> [String]) -> [PCIAddress] {
        var found: [PCIAddress] = []
        var queue = [name]
        var seen = Set<String>()
        while let current = queue.popLast() {
            guard seen.insert(current).inserted else { continue }
            let below = lowers(current)
            if !below.isEmpty {
                queue += below
            } else if let address = pciAncestor("\(directory)/\(current)"), !found.contains(address) {
                found.append(address)
            }
        }
        return found.sorted()
    }

    func lowerInterfaces(_ name: String) -> [String] {
        (root.list("/sys/class/net/\(name)") ?? []).filter { $0.hasPrefix("lower_") }.map { String($0.dropFirst(6)) }
            + (root.list("/sys/class/net/\(name)/brif") ?? [])
    }

    /// A partition's disk, or a stacked device's slaves.
    func blockSlaves(_ name: String) -> [String] {
        let slaves = root.list("/sys/class/block/\(name)/slaves") ?? []
        if !slaves.isEmpty { return slaves }
        if root.read("/sys/class/block/\(name)/partition") != nil, let link = root.readLink("/sys/class/block/\(name)") {
            return [SysfsPath.lastComponent(SysfsPath.parent(SysfsPath.resolve("/sys/class/block", link)))]
        }
        return []
    }

    /// `/dev/sda1` → `sda1`; `/dev/disk/by-id/…` and `/dev/mapper/…` links
    /// followed (under the root) to the device node's name.
    func blockName(_ path: String) -> String {
        var current = path
        for _ in 0..<8 {
            guard let target = root.readLink(current) else { break }
            current = SysfsPath.resolve(SysfsPath.parent(current), target)
        }
        return SysfsPath.lastComponent(current)
    }

    /// The deepest PCI function on the sysfs path a class link points at.
    func pciAncestor(_ classLink: String) -> PCIAddress? {
        guard let link = root.readLink(classLink) else { return nil }
        let path = SysfsPath.resolve(SysfsPath.parent(classLink), link)
        return path.split(separator: "/").reversed().lazy.compactMap { PCIAddress($0) }.first
    }
}
