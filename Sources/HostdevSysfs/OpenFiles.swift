#if canImport(Glibc)
    import Glibc
#endif
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
            guard let pid = Int(entry), pid > 0 else { continue }
            Self.deviceLinks(root.hostPath("/proc/\(entry)/fd")) { target in
                if let key = classify(target) { found[key, default: []].insert(pid) }
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

extension OpenFiles {
    /// Each link in an fd directory whose target starts with `/dev/`: a
    /// host has thousands of open files, nearly all sockets, pipes and
    /// regular files, so a target becomes a String only after its first
    /// bytes say it is a device file.
    static func deviceLinks(_ directory: String, _ body: (String) -> Void) {
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        guard let dir = fdopendir(fd) else {
            close(fd)
            return
        }
        defer { closedir(dir) }
        let dirfd = Glibc.dirfd(dir)
        withUnsafeTemporaryAllocation(of: CChar.self, capacity: 256) { buffer in
            while let entry = readdir(dir) {
                let n = withUnsafePointer(to: entry.pointee.d_name) {
                    $0.withMemoryRebound(to: CChar.self, capacity: 256) { name -> Int in
                        if name[0] == 0x2e { return -1 }  // . and ..
                        return readlinkat(dirfd, name, buffer.baseAddress!, buffer.count)
                    }
                }
                // "/dev/" is 2f 64 65 76 2f.
                // n == capacity: truncated, and no device file this walk looks for is that long.
                guard n > 5, n < buffer.count, buffer[0] == 0x2f, buffer[1] == 0x64, buffer[2] == 0x65, buffer[3] == 0x76, buffer[4] == 0x2f
                else { continue }
                body(String(decoding: UnsafeRawBufferPointer(start: buffer.baseAddress!, count: n), as: UTF8.self))
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
