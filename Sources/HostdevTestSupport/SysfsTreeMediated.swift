#if canImport(Glibc)
    import Glibc
#endif
public import HostdevCore
import HostdevSysfs

// MARK: mediated devices

extension SysfsTree {
    /// One type a parent offers, as `mdev_supported_types/ID` shows it.
    public struct MdevTypeSpec: Sendable {
        public var id: String
        public var name: String
        public var description: String
        public var availableInstances: Int
        public var deviceAPI: String

        public init(_ id: String, name: String = "", description: String = "", available: Int, deviceAPI: String = "vfio-pci") {
            self.id = id
            self.name = name
            self.description = description
            self.availableInstances = available
            self.deviceAPI = deviceAPI
        }
    }

    /// Makes a PCI function a mediated-device parent, as a driver with
    /// mdev support registers it: `mdev_supported_types/TYPE/` with `name`,
    /// `description`, `available_instances`, `device_api`, a write-only
    /// `create` and a `devices/` directory; `/sys/class/mdev_bus/ADDR`.
    public func addMdevParent(_ address: PCIAddress, types: [MdevTypeSpec]) {
        locked {
            let path = pciPath(address)
            for type in types {
                let dir = host("\(path)/mdev_supported_types/\(type.id)")
                FileTree.makeDirectory(dir + "/devices")
                FileTree.write(dir + "/name", type.name + "\n")
                FileTree.write(dir + "/description", type.description + "\n")
                FileTree.write(dir + "/available_instances", "\(type.availableInstances)\n")
                FileTree.write(dir + "/device_api", type.deviceAPI + "\n")
                FileTree.write(dir + "/create", "", mode: 0o200)
            }
            FileTree.makeDirectory(host("/sys/class/mdev_bus"))
            FileTree.makeDirectory(host("/sys/bus/mdev/devices"))
            FileTree.link(host("/sys/class/mdev_bus/\(address)"), to: FileTree.relative(from: "/sys/class/mdev_bus", to: path))
        }
    }

    /// A mediated device as the kernel makes it on `create`: a directory
    /// under its parent with `mdev_type`, `iommu_group` (a group of its own)
    /// and `remove`; linked from `/sys/bus/mdev/devices` and its type's
    /// `devices/`; one fewer `available_instances`. Returns false (and makes
    /// nothing) when the type has no instance left.
    @discardableResult
    public func addMdev(_ uuid: String, parent: PCIAddress, type: String, iommuGroup: Int) -> Bool {
        locked {
            let parentPath = pciPath(parent)
            let typePath = "\(parentPath)/mdev_supported_types/\(type)"
            let left = sysfs.read(typePath + "/available_instances").flatMap { Int($0) } ?? 0
            guard left > 0 else { return false }
            let path = "\(parentPath)/\(uuid)"
            FileTree.makeDirectory(host(path))
            FileTree.write(host(path + "/remove"), "", mode: 0o200)
            FileTree.link(host(path + "/mdev_type"), to: FileTree.relative(from: path, to: typePath))
            let groupPath = "/sys/kernel/iommu_groups/\(iommuGroup)"
            FileTree.makeDirectory(host(groupPath + "/devices"))
            FileTree.link(host(path + "/iommu_group"), to: FileTree.relative(from: path, to: groupPath))
            FileTree.link(host(groupPath + "/devices/\(uuid)"), to: FileTree.relative(from: groupPath + "/devices", to: path))
            FileTree.link(host("/sys/bus/mdev/devices/\(uuid)"), to: FileTree.relative(from: "/sys/bus/mdev/devices", to: path))
            FileTree.link(host(typePath + "/devices/\(uuid)"), to: FileTree.relative(from: typePath + "/devices", to: path))
            FileTree.write(host(typePath + "/available_instances"), "\(left - 1)\n")
            return true
        }
    }

    /// The kernel's `remove`: the device and its links go, its instance comes back.
    public func removeMdev(_ uuid: String) {
        locked {
            let link = "/sys/bus/mdev/devices/\(uuid)"
            guard let target = sysfs.readLink(link) else { return }
            let path = SysfsPath.resolve("/sys/bus/mdev/devices", target)
            if let typeTarget = sysfs.readLink(path + "/mdev_type") {
                let typePath = SysfsPath.resolve(path, typeTarget)
                let left = sysfs.read(typePath + "/available_instances").flatMap { Int($0) } ?? 0
                FileTree.write(host(typePath + "/available_instances"), "\(left + 1)\n")
                unlink(host(typePath + "/devices/\(uuid)"))
            }
            if let group = sysfs.linkName(path + "/iommu_group") {
                let groupPath = "/sys/kernel/iommu_groups/\(group)"
                unlink(host(groupPath + "/devices/\(uuid)"))
                FileTree.remove(host(groupPath))
            }
            unlink(host(link))
            FileTree.remove(host(path))
        }
    }

    /// An mdevctl definition (`/etc/mdevctl.d/PARENT/UUID`, its JSON).
    public func defineWithMdevctl(_ uuid: String, parent: PCIAddress, type: String) {
        let dir = host("/etc/mdevctl.d/\(parent)")
        FileTree.makeDirectory(dir)
        FileTree.write(dir + "/\(uuid)", "{\"mdev_type\": \"\(type)\", \"start\": \"auto\", \"attrs\": []}\n")
    }

    /// Whether mediated device `uuid` exists now.
    public func mdevExists(_ uuid: String) -> Bool { sysfs.readLink("/sys/bus/mdev/devices/\(uuid)") != nil }

    /// A parent type's `available_instances` now.
    public func availableInstances(_ type: String, of parent: PCIAddress) -> Int? {
        sysfs.read("\(pciPath(parent))/mdev_supported_types/\(type)/available_instances").flatMap { Int($0) }
    }
}

extension FakeKernel {
    /// `mdev_supported_types/TYPE/create` (a UUID; `EINVAL` when it is not
    /// one, `EEXIST` when that device exists, `EUSERS` when no instance is
    /// left, as `mdev_device_create` answers) and `/sys/bus/mdev/devices/UUID/remove`
    /// (`1`; `EINVAL` otherwise). Returns false for any other path.
    func applyMediated(_ value: String, to path: String) throws(SysfsError) -> Bool {
        let name = SysfsPath.lastComponent(path)
        let parent = SysfsPath.parent(path)
        let fail = { (code: Int32) in SysfsError(.write, path: self.tree.host(path), errno: code) }
        if name == "create", SysfsPath.lastComponent(SysfsPath.parent(parent)) == "mdev_supported_types" {
            guard access(tree.host(path), F_OK) == 0 else { throw fail(ENOENT) }
            guard let uuid = MdevSpec.normalizedUUID(value) else { throw fail(EINVAL) }
            guard !tree.mdevExists(uuid) else { throw fail(EEXIST) }
            let parentDevice = SysfsPath.parent(SysfsPath.parent(parent))
            guard let address = PCIAddress(SysfsPath.lastComponent(parentDevice)) else { throw fail(ENODEV) }
            let groups = (tree.sysfs.list("/sys/kernel/iommu_groups") ?? []).compactMap { Int($0) }
            guard tree.addMdev(uuid, parent: address, type: SysfsPath.lastComponent(parent), iommuGroup: (groups.max() ?? 0) + 1000)
            else { throw fail(EUSERS) }
            return true
        }
        if name == "remove", SysfsPath.parent(parent) == "/sys/bus/mdev/devices" {
            guard tree.mdevExists(SysfsPath.lastComponent(parent)) else { throw fail(ENOENT) }
            guard value == "1" else { throw fail(EINVAL) }
            tree.removeMdev(SysfsPath.lastComponent(parent))
            return true
        }
        return false
    }
}
