/// A `<hostdev>` in a domain's XML, as far as hostdevd needs to know it.
public struct HostdevEntry: Sendable, Hashable, Codable, CustomStringConvertible {
    public enum Source: Sendable, Hashable, Codable {
        case pci(PCIAddress)
        case usbID(vendor: UInt16, product: UInt16)
        case usbAddress(bus: Int, device: Int)
    }

    public var source: Source
    /// The user alias (`ua-hostdevd-…`) marks entries this tool wrote;
    /// everything else is hand-written and never touched.
    public var alias: String?
    public var managed: Bool

    public init(source: Source, alias: String? = nil, managed: Bool = false) {
        self.source = source
        self.alias = alias
        self.managed = managed
    }

    public static let aliasPrefix = "ua-hostdevd-"

    public var isOurs: Bool { alias?.hasPrefix(Self.aliasPrefix) ?? false }

    /// The entry hostdevd writes for `source`: `managed='no'` (hostdevd binds
    /// drivers itself) and a user alias derived from the source.
    public static func ours(_ source: Source) -> HostdevEntry {
        HostdevEntry(source: source, alias: aliasPrefix + source.aliasSuffix, managed: false)
    }

    public var description: String {
        switch source {
        case .pci(let address): return "pci \(address)"
        case .usbID(let v, let p): return "usb \(hex(v, 4)):\(hex(p, 4))"
        case .usbAddress(let bus, let device): return "usb \(bus):\(device)"
        }
    }
}

extension HostdevEntry.Source {
    /// Characters libvirt allows in a user alias: `[a-zA-Z0-9_-]`.
    public var aliasSuffix: String {
        switch self {
        case .pci(let a): return "pci-\(hex(a.domain, 4))-\(hex(a.bus, 2))-\(hex(a.slot, 2))-\(a.function)"
        case .usbID(let v, let p): return "usb-\(hex(v, 4))-\(hex(p, 4))"
        case .usbAddress(let bus, let device): return "usb-\(bus)-\(device)"
        }
    }
}

/// A libvirt domain as observed: identity, run state and its hostdevs.
public struct DomainState: Sendable, Equatable, Codable {
    public enum RunState: String, Sendable, Codable {
        case running, paused, shutoff, crashed, other
    }

    public var name: String
    public var uuid: String
    public var state: RunState
    public var persistent: Bool
    /// `<hostdev>`s of the persistent (inactive) definition.
    public var configHostdevs: [HostdevEntry]
    /// `<hostdev>`s of the running domain; empty when it is not running.
    public var liveHostdevs: [HostdevEntry]

    public init(
        name: String, uuid: String = "", state: RunState, persistent: Bool = true,
        configHostdevs: [HostdevEntry] = [], liveHostdevs: [HostdevEntry] = []
    ) {
        self.name = name
        self.uuid = uuid
        self.state = state
        self.persistent = persistent
        self.configHostdevs = configHostdevs
        self.liveHostdevs = liveHostdevs
    }

    /// Running or paused: QEMU holds its devices.
    public var isActive: Bool { state == .running || state == .paused }
}

/// One snapshot of everything observed: what `hostdevctl snapshot` writes
/// and `--observed FILE` reads back, so a plan can be made offline.
public struct ObservedHost: Sendable, Equatable, Codable {
    public var inventory: Inventory
    public var domains: [DomainState]
    /// Devices the host needs: mounted filesystems, up interfaces with an
    /// address, the active console.
    public var hostUses: [HostUse]
    /// libvirt could be asked (false: domains unknown, so no domain edits are planned).
    public var libvirtReachable: Bool

    public init(inventory: Inventory, domains: [DomainState] = [], hostUses: [HostUse] = [], libvirtReachable: Bool = true) {
        self.inventory = inventory
        self.domains = domains
        self.hostUses = hostUses
        self.libvirtReachable = libvirtReachable
    }

    public func domain(_ name: String) -> DomainState? { domains.first { $0.name == name } }
}
