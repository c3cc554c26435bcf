public import HostdevCore

/// Which processes hold which device files open: one walk of
/// `/proc/[0-9]*/fd/*` under the root, each link's target text handed to a
/// classifier. The DRM-card check (a display server holds the GPU) and the
/// VFIO-group check (QEMU holds `/dev/vfio/N`, so unbinding would block)
/// share this walk. Under a test root the fd entries are plain symlinks
/// whose target text is the device path (`/dev/dri/card0`).
public struct OpenFiles: Sendable {
    public let root: SysfsRoot

    public init(root: SysfsRoot) { self.root = root }

    /// For each key the classifier returns for some open file, the
    /// processes holding it, each once, by pid. Processes that exit mid-walk
    /// are skipped (their fd directory is gone).
    public func holders<Key: Hashable>(_ classify: (String) -> Key?) -> [Key: [ProcessRef]] {
        var found: [Key: Set<Int>] = [:]
        for entry in root.list("/proc") ?? [] {
            guard let pid = Int(entry), pid > 0, let fds = root.directory("/proc/\(entry)/fd") else { continue }
            for fd in fds.entries() {
                guard let target = fds.readLink(fd), let key = classify(target) else { continue }
                found[key, default: []].insert(pid)
            }
        }
        var comms: [Int: String] = [:]
        return found.mapValues { pids in
            pids.sorted().map { pid in
                if comms[pid] == nil { comms[pid] = root.read("/proc/\(pid)/comm") ?? "" }
                return ProcessRef(pid: pid, comm: comms[pid]!)
            }
        }
    }
}

/// The processes that hold a VFIO group open (`/dev/vfio/N`, or one of its
/// devices through the iommufd cdev `/dev/vfio/devices/vfioX`): while one
/// does, the kernel blocks `unbind` of vfio-pci until it lets go, so the
/// planner names them instead of writing.
public struct VFIOHolders: Sendable {
    public let root: SysfsRoot

    public init(root: SysfsRoot) { self.root = root }

    public func holders(ofGroup group: Int) -> [ProcessRef] { holders(ofGroups: [group])[group] ?? [] }

    /// Several groups in one walk of `/proc`.
    public func holders(ofGroups groups: Set<Int>) -> [Int: [ProcessRef]] {
        guard !groups.isEmpty else { return [:] }
        // vfioX cdevs of the groups' members: .../0000:01:00.0/vfio-dev/vfio0.
        var cdevs: [String: Int] = [:]
        for group in groups {
            for member in root.list("/sys/kernel/iommu_groups/\(group)/devices") ?? [] {
                for cdev in root.list("/sys/kernel/iommu_groups/\(group)/devices/\(member)/vfio-dev") ?? [] {
                    cdevs[cdev] = group
                }
            }
        }
        return OpenFiles(root: root).holders { target -> Int? in
            if target.hasPrefix("/dev/vfio/devices/") { return cdevs[SysfsPath.lastComponent(target)] }
            guard target.hasPrefix("/dev/vfio/"), let group = Int(target.dropFirst("/dev/vfio/".count)),
                groups.contains(group)
            else { return nil }
            return group
        }
    }
}
