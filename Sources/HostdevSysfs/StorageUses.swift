#if canImport(Glibc)
    import Glibc
#endif
public import HostdevCore

/// Storage uses: a block device is used when it is mounted (matched by
/// major:minor in `/proc/self/mountinfo`, never by path), active swap
/// (`/proc/swaps`), in a mounted btrfs filesystem (`/sys/fs/btrfs/*/devices/`,
/// which exists only while it is mounted: every device of it is used), or a
/// pool member as udev's database records it (`/run/udev/data/bM:m`,
/// `ID_FS_TYPE` zfs_member, LVM2_member, linux_raid_member, crypto_LUKS: the
/// host imports the pool whether or not anything above it is mounted). Then
/// everything beneath a used device is used too (`slaves/` and `holders/`
/// of stacked devices, partition → disk), down to the disk's PCI controller.
extension HostUseScanner {
    struct BlockDevice {
        var name: String
        var path: String
        var devnum: String?
        var isPartition: Bool
        var lowers: Set<String>
        /// `dm-0 (cryptroot)` for device-mapper devices, the name otherwise.
        var label: String
    }

    func blockDevices() -> [String: BlockDevice] {
        var all: [String: BlockDevice] = [:]
        var holderLowers: [String: Set<String>] = [:]
        for name in root.list("/sys/class/block") ?? [] {
            let path = resolved("/sys/class/block/\(name)")
            guard let dir = root.directory(path) else { continue }
            let isPartition = dir.read("partition") != nil
            // Stacked devices (dm, md, bcache) are virtual and the kernel
            // links both ways (`slaves/` on the upper, `holders/` on the
            // lower): the uppers' `slaves/` give every edge, so the many
            // disks' and partitions' `holders/` are not read; a virtual
            // device's own `holders/` is (dm over dm, in a tree recorded
            // without `slaves/`).
            let isVirtual = path.hasPrefix("/sys/devices/virtual/")
            var lowers = Set<String>()
            if isVirtual {
                lowers = Set(root.list(path + "/slaves") ?? [])
                for holder in root.list(path + "/holders") ?? [] { holderLowers[holder, default: []].insert(name) }
            }
            if isPartition { lowers.insert(SysfsPath.lastComponent(SysfsPath.parent(path))) }
            let label = name.hasPrefix("dm-") ? dir.read("dm/name").map { "\(name) (\($0))" } ?? name : name
            all[name] = BlockDevice(
                name: name, path: path, devnum: dir.read("dev"), isPartition: isPartition, lowers: lowers, label: label)
        }
        for (holder, lowers) in holderLowers { all[holder]?.lowers.formUnion(lowers) }
        return all
    }

    struct Mount {
        var devnum: String
        var mountpoint: String
        var fstype: String
        var source: String
    }

    /// `/proc/self/mountinfo`: `id parent major:minor root mountpoint options [optional…] - fstype source superoptions`.
    func mounts() -> [Mount] {
        (root.read("/proc/self/mountinfo") ?? "").split(separator: "\n").compactMap { line in
            let f = line.split(separator: " ", omittingEmptySubsequences: true)
            guard f.count >= 7, let dash = f.firstIndex(of: "-"), dash + 2 < f.count else { return nil }
            return Mount(
                devnum: String(f[2]), mountpoint: String(f[4]).unescapingOctal, fstype: String(f[dash + 1]),
                source: String(f[dash + 2]).unescapingOctal)
        }
    }

    /// The block device a `/dev` path names under the root: by the node's
    /// device number when it is a real block node, else by following
    /// `/dev` links (`/dev/disk/by-uuid/…`) and the name (`/dev/mapper/NAME`
    /// is the dm device whose `dm/name` is NAME).
    func blockName(forDevicePath devicePath: String, in all: [String: BlockDevice]) -> String? {
        var st = stat()
        if stat(root.hostPath(devicePath), &st) == 0, (st.st_mode & S_IFMT) == S_IFBLK {
            let dev = UInt64(st.st_rdev)
            // glibc's major()/minor() are macros Swift does not import.
            let devnum = "\((dev >> 8) & 0xfff | (dev >> 32) & ~0xfff):\(dev & 0xff | (dev >> 12) & ~0xff)"
            if let found = all.values.first(where: { $0.devnum == devnum }) { return found.name }
        }
        var path = devicePath
        for _ in 0..<8 {
            guard let link = root.readLink(path) else { break }
            path = SysfsPath.resolve(SysfsPath.parent(path), link)
        }
        if path.hasPrefix("/dev/mapper/") {
            let mapped = SysfsPath.lastComponent(path)
            return all.values.first { $0.label == "\($0.name) (\(mapped))" }?.name
        }
        let name = SysfsPath.lastComponent(path)
        return all[name] != nil ? name : nil
    }

    func storageUses() -> [HostUse] {
        let all = blockDevices()
        guard !all.isEmpty else { return [] }
        let byDevnum = Dictionary(all.values.compactMap { d in d.devnum.map { ($0, d.name) } }, uniquingKeysWith: { a, _ in a })
        var tops: [(name: String, why: String)] = []

        let mounts = mounts()
        var mountpoints: [String: [String]] = [:]
        for mount in mounts {
            if let name = byDevnum[mount.devnum] { mountpoints[name, default: []].append(mount.mountpoint) }
        }
        for (name, points) in mountpoints.sorted(by: { $0.key < $1.key }) {
            tops.append((name, "mounted at " + Self.list(points)))
        }

        // Filename Type Size Used Priority; swap files live on a mounted filesystem, seen above.
        for line in (root.read("/proc/swaps") ?? "").split(separator: "\n").dropFirst() {
            let f = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard f.count >= 2, f[1] == "partition",
                let name = blockName(forDevicePath: String(f[0]).unescapingOctal, in: all)
            else { continue }
            tops.append((name, "active swap"))
        }

        for uuid in (root.list("/sys/fs/btrfs") ?? []).sorted() where uuid != "features" {
            let members = (root.list("/sys/fs/btrfs/\(uuid)/devices") ?? []).sorted()
            guard !members.isEmpty else { continue }
            let label = root.read("/sys/fs/btrfs/\(uuid)/label").flatMap { $0.isEmpty ? nil : $0 } ?? uuid
            let points = mounts.filter { mount in
                mount.fstype == "btrfs" && blockName(forDevicePath: mount.source, in: all).map(members.contains) == true
            }.map(\.mountpoint)
            let why = points.isEmpty
                ? "in btrfs filesystem \(label), mounted" : "in btrfs filesystem \(label), mounted at \(Self.list(points))"
            for member in members where all[member] != nil { tops.append((member, why)) }
        }

        var uses: [HostUse] = []
        var covered = Set<String>()
        for top in tops { uses += beneath(top.name, why: top.why, all, covered: &covered) }

        // Pool members that nothing above already accounts for.
        for device in all.values.sorted(by: { $0.name < $1.name }) where !covered.contains(device.name) {
            guard let devnum = device.devnum, let why = poolMembership(devnum) else { continue }
            var ignored = Set<String>()
            uses += beneath(device.name, why: why, all, covered: &ignored)
        }
        return uses
    }

    /// What udev's database says the device is a member of, if a pool.
    func poolMembership(_ devnum: String) -> String? {
        guard let data = root.read("/run/udev/data/b\(devnum)") else { return nil }
        var type: String?
        var label: String?
        for line in data.split(separator: "\n") {
            if line.hasPrefix("E:ID_FS_TYPE=") { type = String(line.dropFirst("E:ID_FS_TYPE=".count)) }
            if line.hasPrefix("E:ID_FS_LABEL=") { label = String(line.dropFirst("E:ID_FS_LABEL=".count)) }
        }
        let named = label.map { " \($0)" } ?? ""
        switch type {
        case "zfs_member": return "member of ZFS pool\(named) (zfs_member)"
        case "LVM2_member": return "LVM physical volume (LVM2_member)"
        case "linux_raid_member": return "member of md RAID array\(named) (linux_raid_member)"
        case "crypto_LUKS": return "LUKS container (crypto_LUKS)"
        default: return nil
        }
    }

    /// Walks down from a used block device to the controllers of the disks
    /// beneath it: one use per disk controller, with the chain upward.
    func beneath(_ top: String, why: String, _ all: [String: BlockDevice], covered: inout Set<String>) -> [HostUse] {
        var parent: [String: String] = [top: top]
        var queue = [top]
        var index = 0
        var uses: [HostUse] = []
        while index < queue.count {
            let current = queue[index]
            index += 1
            covered.insert(current)
            guard let device = all[current] else { continue }
            if !device.isPartition {
                for address in controllers(of: device.path) {
                    var chain = [device.label]
                    var step = current
                    while step != top, let up = parent[step] {
                        chain.append(all[up]?.label ?? up)
                        step = up
                    }
                    uses.append(HostUse(address: address, kind: .storage, chain: [address.description] + chain, why: why))
                }
            }
            for lower in device.lowers.sorted() where parent[lower] == nil {
                parent[lower] = current
                queue.append(lower)
            }
        }
        return uses
    }

    /// The PCI function a whole disk hangs off; for an NVMe multipath head
    /// (`/sys/devices/virtual/nvme-subsystem/nvme-subsysN/nvmeXnY`), the
    /// controllers the subsystem lists.
    func controllers(of path: String) -> [PCIAddress] {
        if let address = Self.pciAncestor(path) { return [address] }
        guard path.contains("/nvme-subsystem/") else { return [] }
        let subsystem = SysfsPath.parent(path)
        return (root.list(subsystem) ?? []).filter { name in
            name.hasPrefix("nvme") && name.dropFirst(4).allSatisfy(\.isNumber) && name.count > 4
        }.compactMap { Self.pciAncestor(resolved(subsystem + "/" + $0)) }.sorted()
    }

    /// `/, /home and 3 more`.
    static func list(_ items: [String]) -> String {
        var unique: [String] = []
        for item in items where !unique.contains(item) { unique.append(item) }
        return unique.count <= 3 ? unique.joined(separator: ", ") : unique.prefix(3).joined(separator: ", ") + " and \(unique.count - 3) more"
    }
}

extension HostUseScanner {
    /// The host's storage uses of a SCSI device's disks (`/sys/bus/scsi/devices/H:B:T:L/block/`),
    /// read now: checked right before the device is given to a VM.
    public func storageUses(ofSCSI address: SCSIAddress) -> [HostUse] {
        let disks = Set(root.list("/sys/bus/scsi/devices/\(address)/block") ?? [])
        guard !disks.isEmpty else { return [] }
        return storageUses().filter { $0.chain.count > 1 && disks.contains($0.chain[1]) }
    }
}
