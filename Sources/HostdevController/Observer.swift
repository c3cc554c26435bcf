public import HostdevCore
public import HostdevLibvirt
public import HostdevSysfs
import HostdevUdev

/// Where the observer reads the host from.
public struct HostSources: Sendable {
    public var sysfsRoot: SysfsRoot
    /// Use libudev for enumeration (the live host); false walks `sysfsRoot`.
    public var useUdev: Bool
    public var libvirtURI: String
    /// Reads and sets SR-IOV VFs' settings: rtnetlink on the live host
    /// (sysfs root `/`); none under another root, whose interface names
    /// are not this kernel's (tests give a fake). Without one, VF settings
    /// are not observed and none is changed.
    public var vfConfigurator: (any VFConfigurator)?

    public init(sysfsRoot: SysfsRoot, useUdev: Bool, libvirtURI: String, vfConfigurator: (any VFConfigurator)? = nil) {
        self.sysfsRoot = sysfsRoot
        self.useUdev = useUdev
        self.libvirtURI = libvirtURI
        self.vfConfigurator = vfConfigurator ?? (sysfsRoot.path == "/" ? NetlinkVFConfigurator(root: sysfsRoot) : nil)
    }
}

/// Assembles one `ObservedHost` from the adapters. libvirt being away is
/// not fatal, and not "every VM is off": the observation says its domains
/// are unknown, and the planner acts on nothing that depends on them.
public struct Observer {
    public let sources: HostSources
    public var connection: LibvirtConnection?

    public init(sources: HostSources, connection: LibvirtConnection? = nil) {
        self.sources = sources
        self.connection = connection
    }

    public func observe(warn: (String) -> Void = { _ in }) throws -> ObservedHost {
        let reader = InventoryReader(root: sources.sysfsRoot)
        let inventory = sources.useUdev ? reader.read(try UdevEnumerator().records()) : try reader.read()
        let (domains, coverage) = self.domains()
        if case .unreachable(let why) = coverage { warn("warning: libvirt unreachable: \(why); nothing that depends on a VM's state is planned") }
        var observed = ObservedHost(inventory: inventory, domains: domains, coverage: coverage)
        readHostFacts(into: &observed)
        return observed
    }

    /// What changes without an event and is read afresh on every pass: the
    /// host's own uses, vfio-pci's presence, mediated devices, disk names,
    /// VF settings.
    public func readHostFacts(into observed: inout ObservedHost) {
        observed.hostUses = hostUses(observed.inventory)
        observed.vfioLoaded = vfioLoaded()
        observed.mediated = mediatedDevices()
        observed.diskLinks = diskLinks()
        observed.vfSettings = vfSettings(observed.inventory)
    }

    /// Every VF's settings, read afresh through its PF (nil: no configurator).
    public func vfSettings(_ inventory: Inventory) -> [PCIAddress: VFSettings]? {
        sources.vfConfigurator?.settings(in: inventory)
    }

    /// Stable disk names (`/dev/disk/by-id/…`) and the block devices they name now.
    public func diskLinks() -> [String: String] { DiskLinks(root: sources.sysfsRoot).read() }

    /// Mediated-device parents, types and devices, read afresh: the
    /// instances left change with every create.
    public func mediatedDevices() -> MediatedDevices { MediatedDeviceControl(root: sources.sysfsRoot).read() }

    /// Whether the vfio-pci driver is registered (`/sys/bus/pci/drivers/vfio-pci`).
    public func vfioLoaded() -> Bool { sources.sysfsRoot.directory("/sys/bus/pci/drivers/vfio-pci") != nil }

    /// The host's uses of its devices, read afresh: never cached between passes.
    public func hostUses(_ inventory: Inventory) -> [HostUse] { HostUseScanner(root: sources.sysfsRoot).scan(inventory) }

    /// Every domain, or why they are unknown.
    public func domains() -> ([DomainState], DomainCoverage) {
        do {
            let connection = try self.connection ?? LibvirtConnection(uri: sources.libvirtURI)
            var domains = try connection.domains()
            VMUseResolver(root: sources.sysfsRoot).resolve(&domains)
            return (domains, .all)
        } catch {
            return ([], .unreachable(String(describing: error)))
        }
    }
}
