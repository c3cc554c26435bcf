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

    public init(sysfsRoot: SysfsRoot, useUdev: Bool, libvirtURI: String) {
        self.sysfsRoot = sysfsRoot
        self.useUdev = useUdev
        self.libvirtURI = libvirtURI
    }
}

/// Assembles one `ObservedHost` from the adapters. libvirt being away is
/// not fatal: the observation says so and the plan leaves domains alone.
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
        let hostUses = HostUseScanner(root: sources.sysfsRoot).scan(inventory)
        do {
            let connection = try self.connection ?? LibvirtConnection(uri: sources.libvirtURI)
            return ObservedHost(inventory: inventory, domains: try connection.domains(), hostUses: hostUses)
        } catch {
            warn("warning: \(error); planning without domain state")
            return ObservedHost(inventory: inventory, hostUses: hostUses, libvirtReachable: false)
        }
    }
}
