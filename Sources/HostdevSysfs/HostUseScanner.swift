public import HostdevCore

/// Finds the PCI devices the host itself needs, which must never be
/// detached: those under a mounted filesystem, under an up network
/// interface with an address, and the boot console's GPU. Reads
/// `/proc/mounts`, `/proc/net/route` and `/proc/net/if_inet6` under the
/// same root as sysfs, so a recorded or built tree answers too.
public struct HostUseScanner: Sendable {
    public let root: SysfsRoot

    public init(root: SysfsRoot) { self.root = root }

    public func scan(_ inventory: Inventory) -> [HostUse] {
        var uses: [HostUse] = []
        var seen = Set<PCIAddress>()
        func add(_ address: PCIAddress?, _ reason: String) {
            guard let address, seen.insert(address).inserted else { return }
            uses.append(HostUse(address: address, reason: reason))
        }
        for (device, mountpoint) in mounts() {
            for disk in wholeDisks(device) { add(pciAncestor(ofClass: "block", disk), "holds \(mountpoint) (\(device))") }
        }
        let addressed = interfacesWithAddresses()
        for name in root.list("/sys/class/net") ?? [] where addressed.contains(name) {
            let state = root.read("/sys/class/net/\(name)/operstate")
            guard state == "up" || state == "unknown" else { continue }
            add(pciAncestor(ofClass: "net", name), "\(name) is up with an address")
        }
        for device in inventory.devices where device.pci?.bootVGA == true && device.driver != nil {
            add(device.pci?.address, "drives the boot console (boot_vga)")
        }
        return uses.sorted { $0.address < $1.address }
    }

    /// `(device, mountpoint)` for block-device mounts.
    func mounts() -> [(String, String)] {
        (root.read("/proc/mounts") ?? "").split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ")
            guard fields.count >= 2, fields[0].hasPrefix("/dev/") else { return nil }
            return (String(fields[0]), String(fields[1]).replacingOctalSpaces)
        }
    }

    /// The whole disks under a block device: a partition's disk, and for
    /// device-mapper/md devices every slave, recursively.
    func wholeDisks(_ devicePath: String) -> [String] {
        var name = SysfsPath.lastComponent(devicePath)
        if devicePath.hasPrefix("/dev/mapper/") {
            // dm-N whose dm/name is the mapper name.
            name = (root.list("/sys/class/block") ?? []).first { root.read("/sys/class/block/\($0)/dm/name") == name } ?? name
        }
        var result: [String] = []
        var queue = [name]
        var visited = Set<String>()
        while let current = queue.popLast() {
            guard visited.insert(current).inserted else { continue }
            let slaves = root.list("/sys/class/block/\(current)/slaves") ?? []
            if !slaves.isEmpty {
                queue.append(contentsOf: slaves)
                continue
            }
            if root.read("/sys/class/block/\(current)/partition") != nil,
                let link = root.readLink("/sys/class/block/\(current)")
            {
                let partition = SysfsPath.resolve("/sys/class/block", link)
                result.append(SysfsPath.lastComponent(SysfsPath.parent(partition)))
            } else {
                result.append(current)
            }
        }
        return result
    }

    /// Interfaces with an IPv4 route or a global IPv6 address.
    func interfacesWithAddresses() -> Set<String> {
        var names = Set<String>()
        for line in (root.read("/proc/net/route") ?? "").split(separator: "\n").dropFirst() {
            if let name = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).first { names.insert(String(name)) }
        }
        for line in (root.read("/proc/net/if_inet6") ?? "").split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 6, !fields[0].hasPrefix("fe80"), fields[0] != "00000000000000000000000000000001" else { continue }
            names.insert(String(fields[5]))
        }
        return names
    }

    /// The deepest PCI function on the sysfs path of `/sys/class/<cls>/<name>`.
    func pciAncestor(ofClass cls: String, _ name: String) -> PCIAddress? {
        guard let link = root.readLink("/sys/class/\(cls)/\(name)") else { return nil }
        let path = SysfsPath.resolve("/sys/class/\(cls)", link)
        return path.split(separator: "/").reversed().lazy.compactMap { PCIAddress($0) }.first
    }
}

extension String {
    /// /proc/mounts writes a space in a path as `\040`.
    var replacingOctalSpaces: String {
        var out = ""
        var rest = Substring(self)
        while let range = rest.firstRange(of: "\\040") {
            out += rest[..<range.lowerBound] + " "
            rest = rest[range.upperBound...]
        }
        return out + rest
    }
}
