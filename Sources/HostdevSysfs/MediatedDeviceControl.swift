#if canImport(Glibc)
    import Glibc
#endif
public import HostdevCore

/// Mediated devices through sysfs, under a root: the parents the kernel
/// registered (`/sys/class/mdev_bus/PARENT`), the types each offers
/// (`mdev_supported_types/TYPE/{name,description,available_instances,device_api}`),
/// the devices that exist (`/sys/bus/mdev/devices/UUID`, its `mdev_type`
/// link), the UUIDs mdevctl defines (`/etc/mdevctl.d/PARENT/UUID`); and
/// creating (`TYPE/create`) and removing (`UUID/remove`) one.
public struct MediatedDeviceControl: Sendable {
    public let root: SysfsRoot
    public let writer: any SysfsWriter

    public init(root: SysfsRoot, writer: (any SysfsWriter)? = nil) {
        self.root = root
        self.writer = writer ?? KernelSysfsWriter(root: root)
    }

    static let busDevices = "/sys/bus/mdev/devices"
    static let mdevctlDirectory = "/etc/mdevctl.d"

    func typesPath(_ parent: PCIAddress) -> String { "/sys/bus/pci/devices/\(parent)/mdev_supported_types" }

    /// Everything about mediated devices on the host now.
    public func read() -> MediatedDevices {
        var parents: [PCIAddress: [MdevType]] = [:]
        for name in root.list("/sys/class/mdev_bus") ?? [] {
            guard let parent = PCIAddress(name) else { continue }
            parents[parent] = types(of: parent)
        }
        let defined = mdevctlDefined()
        let devices = (root.list(Self.busDevices) ?? []).compactMap { uuid -> MdevInstance? in
            instance(uuid, mdevctl: defined)
        }.sorted { $0.uuid < $1.uuid }
        return MediatedDevices(parents: parents, devices: devices, mdevctlDefined: defined)
    }

    /// The types a parent offers; empty when it offers none.
    public func types(of parent: PCIAddress) -> [MdevType] {
        Self.types(in: root, at: typesPath(parent))
    }

    /// The types listed under a device's `mdev_supported_types` directory.
    static func types(in root: SysfsRoot, at path: String) -> [MdevType] {
        (root.list(path) ?? []).sorted().map { id in
            let dir = "\(path)/\(id)"
            return MdevType(
                id: id, name: root.read(dir + "/name").flatMap { $0.isEmpty ? nil : $0 },
                description: root.read(dir + "/description").flatMap { $0.isEmpty ? nil : $0 },
                availableInstances: root.read(dir + "/available_instances").flatMap { Int($0) },
                deviceAPI: root.read(dir + "/device_api"))
        }
    }

    /// One existing mediated device: its parent is the PCI function its
    /// sysfs path sits under, its type the `mdev_type` link's directory.
    public func instance(_ uuid: String) -> MdevInstance? { instance(uuid, mdevctl: mdevctlDefined()) }

    func instance(_ uuid: String, mdevctl: Set<String>) -> MdevInstance? {
        let link = "\(Self.busDevices)/\(uuid)"
        guard let target = root.readLink(link) else { return nil }
        let path = SysfsPath.resolve(Self.busDevices, target)
        guard let parent = path.split(separator: "/").reversed().lazy.compactMap({ PCIAddress($0) }).first,
            let type = root.linkName(link + "/mdev_type")
        else { return nil }
        return MdevInstance(uuid: uuid, parent: parent, type: type, definedByMdevctl: mdevctl.contains(uuid))
    }

    /// UUIDs with an mdevctl definition (`/etc/mdevctl.d/PARENT/UUID`).
    public func mdevctlDefined() -> Set<String> {
        var defined = Set<String>()
        for parent in root.list(Self.mdevctlDirectory) ?? [] {
            for file in root.list("\(Self.mdevctlDirectory)/\(parent)") ?? [] {
                if let uuid = MdevSpec.normalizedUUID(file) { defined.insert(uuid) }
            }
        }
        return defined
    }

    public func exists(_ uuid: String) -> Bool { root.readLink("\(Self.busDevices)/\(uuid)") != nil }

    /// How many more of `type` the parent can create now (nil: unknown or no such type).
    public func availableInstances(_ type: String, of parent: PCIAddress) -> Int? {
        root.read("\(typesPath(parent))/\(type)/available_instances").flatMap { Int($0) }
    }

    /// Creates the device and confirms it appeared.
    public func create(_ spec: MdevSpec) throws(SysfsError) {
        let path = "\(typesPath(spec.parent))/\(spec.type)/create"
        try writer.write(spec.uuid, to: path)
        guard let made = instance(spec.uuid, mdevctl: []), made.parent == spec.parent, made.type == spec.type else {
            throw SysfsError(.verify, path: root.hostPath("\(Self.busDevices)/\(spec.uuid)"), errno: 0,
                detail: "the kernel accepted the create, but \(spec.uuid) is not there as \(spec.type) on \(spec.parent)")
        }
    }

    /// Removes the device (nothing to do when it is gone) and confirms it went.
    public func remove(_ uuid: String) throws(SysfsError) {
        guard exists(uuid) else { return }
        try writer.write("1", to: "\(Self.busDevices)/\(uuid)/remove")
        if exists(uuid) {
            throw SysfsError(.verify, path: root.hostPath("\(Self.busDevices)/\(uuid)"), errno: 0,
                detail: "the kernel accepted the remove, but \(uuid) is still there")
        }
    }

    /// The VFIO group of an existing mediated device (its `iommu_group` link).
    public func iommuGroup(_ uuid: String) -> Int? {
        root.linkName("\(Self.busDevices)/\(uuid)/iommu_group").flatMap { Int($0) }
    }
}
