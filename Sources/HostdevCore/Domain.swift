/// A `<hostdev>` in a domain's XML, as far as hostdevd needs to know it.
public struct HostdevEntry: Sendable, Hashable, Codable, CustomStringConvertible {
    public enum Source: Sendable, Hashable, Codable {
        case pci(PCIAddress)
        case usbID(vendor: UInt16, product: UInt16)
        case usbAddress(bus: Int, device: Int)
        /// A mediated device, by UUID (`<hostdev type='mdev'>`).
        case mdev(String)
        /// A SCSI device (`<hostdev type='scsi'>`), by adapter and address.
        case scsi(SCSIAddress)
    }

    /// Set when the element is an `<interface type='hostdev'>` (an SR-IOV
    /// VF given as a network interface) rather than a `<hostdev>`.
    public struct Interface: Sendable, Hashable, Codable {
        public var mac: MACAddress?
        /// 1…4094; nil or 0: no `<vlan>`.
        public var vlan: Int?

        public init(mac: MACAddress? = nil, vlan: Int? = nil) {
            self.mac = mac
            self.vlan = vlan == 0 ? nil : vlan
        }
    }

    public var source: Source
    public var interface: Interface?
    /// The user alias (`ua-hostdevd-…`) marks entries this tool wrote;
    /// everything else is hand-written and never touched.
    public var alias: String?
    public var managed: Bool

    public init(source: Source, alias: String? = nil, managed: Bool = false, interface: Interface? = nil) {
        self.source = source
        self.alias = alias
        self.managed = managed
        self.interface = interface
    }

    public static let aliasPrefix = "ua-hostdevd-"

    public var isOurs: Bool { alias?.hasPrefix(Self.aliasPrefix) ?? false }

    /// The entry hostdevd writes for `source`: `managed='no'` (hostdevd binds
    /// drivers itself) and a user alias derived from the source.
    public static func ours(_ source: Source) -> HostdevEntry {
        HostdevEntry(source: source, alias: aliasPrefix + source.aliasSuffix, managed: false)
    }

    /// The `<interface type='hostdev'>` hostdevd writes for a VF at
    /// `address`: `managed='no'`, its MAC and VLAN, and a user alias of its
    /// own (`ua-hostdevd-net-pci-…`).
    public static func oursInterface(_ address: PCIAddress, _ interface: Interface) -> HostdevEntry {
        let source = Source.pci(address)
        return HostdevEntry(source: source, alias: aliasPrefix + "net-" + source.aliasSuffix, managed: false, interface: interface)
    }

    /// The same element: same source, and the same kind with the same MAC
    /// and VLAN (a changed MAC or VLAN is a new element; a MAC left out on
    /// either side matches any).
    public func isSameElement(as other: HostdevEntry) -> Bool {
        guard source == other.source else { return false }
        switch (interface, other.interface) {
        case (nil, nil): return true
        case (let mine?, let theirs?):
            // No MAC on one side: libvirt made one up when it was added.
            return mine.vlan == theirs.vlan && (mine.mac == nil || theirs.mac == nil || mine.mac == theirs.mac)
        default: return false
        }
    }

    /// How the XML names the element, for people: `<hostdev>` or `<interface type='hostdev'>`.
    public var element: String { interface == nil ? "<hostdev>" : "<interface type='hostdev'>" }

    /// `pci 0000:01:00.0`, `usb 046d:c52b`, `usb 1:4` (see `DeviceIdentifier`).
    public var description: String { DeviceIdentifier.source(source) }
}

extension HostdevEntry.Source {
    /// Characters libvirt allows in a user alias: `[a-zA-Z0-9_-]`.
    public var aliasSuffix: String {
        switch self {
        case .pci(let a): return "pci-\(hex(a.domain, 4))-\(hex(a.bus, 2))-\(hex(a.slot, 2))-\(a.function)"
        case .usbID(let v, let p): return "usb-\(hex(v, 4))-\(hex(p, 4))"
        case .usbAddress(let bus, let device): return "usb-\(bus)-\(device)"
        case .mdev(let uuid): return "mdev-\(uuid)"
        case .scsi(let a): return "scsi-\(a.host)-\(a.bus)-\(a.target)-\(a.unit)"
        }
    }
}

/// An element of a domain's XML, other than the `<hostdev>`s hostdevd
/// writes, through which the VM uses a host device: while the VM is active,
/// that device is never moved nor given to another VM.
public struct VMUse: Sendable, Equatable, Codable {
    public enum Target: Sendable, Equatable, Codable {
        /// `<hostdev type='pci'>`, `<interface type='hostdev'>`.
        case pci(PCIAddress)
        /// `<hostdev type='usb'>`, by ID or by bus/device.
        case usb(HostdevEntry.Source)
        /// `<hostdev type='scsi'>`: the adapter (`scsi_host3`).
        case scsiHost(String)
        /// `<hostdev type='scsi_host'>` (vhost-scsi): the target's WWPN.
        case vhostSCSI(String)
        /// `<hostdev type='mdev'>`: the mediated device's UUID.
        case mdev(String)
        /// `<interface type='direct'>` (macvtap): the host interface.
        case netdev(String)
        /// `<disk type='block'>`: the host block device.
        case block(String)
    }

    /// How the XML says it, for people: `<interface type='hostdev'>`.
    public var element: String
    public var target: Target
    /// The PCI functions behind the target, as the observer resolved them
    /// on this host (a macvtap over a bond sits on each of its slaves).
    public var devices: [PCIAddress]

    public init(element: String, target: Target, devices: [PCIAddress] = []) {
        self.element = element
        self.target = target
        self.devices = devices
    }

    /// `<interface type='direct'> (enp5s0)`.
    public var description: String {
        switch target {
        case .pci, .usb: return element
        case .scsiHost(let name), .vhostSCSI(let name), .mdev(let name), .netdev(let name), .block(let name): return "\(element) (\(name))"
        }
    }
}

/// A libvirt domain as observed: identity, run state and its hostdevs.
public struct DomainState: Sendable, Equatable, Codable {
    /// libvirt's state, for people. Whether QEMU holds the domain's devices
    /// is `isActive`, which comes from libvirt's own notion of active.
    public enum RunState: String, Sendable, Codable {
        case running, paused, shutoff, crashed, other
        /// Shutting down: QEMU still runs.
        case shuttingDown
        /// Suspended to memory by the guest (PMSUSPENDED): QEMU still runs.
        case suspended
    }

    public var name: String
    public var uuid: String
    public var state: RunState
    /// libvirt's own answer to "is this domain active" (`virDomainIsActive`):
    /// true while a QEMU process exists for it, whatever `state` says —
    /// shutting down, crashed with on_crash=preserve, suspended, no state.
    public var isActive: Bool
    public var persistent: Bool
    /// `<hostdev>`s of the persistent (inactive) definition.
    public var configHostdevs: [HostdevEntry]
    /// `<hostdev>`s of the running domain; empty when it is not active.
    public var liveHostdevs: [HostdevEntry]
    /// Every element that uses a host device, from the live XML while the
    /// domain is active and the persistent XML otherwise.
    public var uses: [VMUse] = []

    /// `active` defaults to what `state` implies (running or paused); the
    /// libvirt adapter always passes libvirt's answer.
    public init(
        name: String, uuid: String = "", state: RunState, active: Bool? = nil, persistent: Bool = true,
        configHostdevs: [HostdevEntry] = [], liveHostdevs: [HostdevEntry] = []
    ) {
        self.name = name
        self.uuid = uuid
        self.state = state
        self.isActive = active ?? (state == .running || state == .paused)
        self.persistent = persistent
        self.configHostdevs = configHostdevs
        self.liveHostdevs = liveHostdevs
    }

    enum CodingKeys: String, CodingKey { case name, uuid, state, isActive, persistent, configHostdevs, liveHostdevs, uses }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let state = try c.decode(RunState.self, forKey: .state)
        self.init(
            name: try c.decode(String.self, forKey: .name), uuid: try c.decodeIfPresent(String.self, forKey: .uuid) ?? "",
            state: state, active: try c.decodeIfPresent(Bool.self, forKey: .isActive),
            persistent: try c.decodeIfPresent(Bool.self, forKey: .persistent) ?? true,
            configHostdevs: try c.decodeIfPresent([HostdevEntry].self, forKey: .configHostdevs) ?? [],
            liveHostdevs: try c.decodeIfPresent([HostdevEntry].self, forKey: .liveHostdevs) ?? [])
        uses = try c.decodeIfPresent([VMUse].self, forKey: .uses) ?? []
    }
}

/// How much of libvirt's domain list an observation holds. Unknown is not
/// "shut off": the planner moves no device and edits no domain whose
/// decision depends on a domain it does not know.
public enum DomainCoverage: Sendable, Equatable, Codable {
    /// libvirt answered: every domain is listed.
    case all
    /// libvirt did not answer (the reason): no domain's state is known.
    case unreachable(String)
    /// libvirt's hook for this one domain: its state is known (libvirt is
    /// starting or has stopped it), the others' are not.
    case hook(String)
}

/// One snapshot of everything observed: what `hostdevctl snapshot` writes
/// and `--observed FILE` reads back, so a plan can be made offline.
public struct ObservedHost: Sendable, Equatable, Codable {
    public var inventory: Inventory
    public var domains: [DomainState]
    /// Devices the host needs: mounted filesystems, up interfaces with an
    /// address, the active console.
    public var hostUses: [HostUse]
    /// Which domains `domains` covers.
    public var coverage: DomainCoverage
    /// Whether the vfio-pci driver is loaded (nil: not observed, as in old
    /// snapshots). Without it no bind can succeed: the plan says so first.
    public var vfioLoaded: Bool?
    /// Mediated-device parents, types and devices, read on this pass (nil:
    /// not observed, as in old snapshots: no mdev is created or removed).
    public var mediated: MediatedDevices?
    /// `/dev/disk/by-id/…` and `/dev/disk/by-path/…` names, each with the
    /// block device it names (`sdb`), read on this pass (nil: not observed).
    public var diskLinks: [String: String]?
    /// Each SR-IOV VF's settings as its PF's driver reports them (rtnetlink
    /// `IFLA_VFINFO_LIST`), by the VF's PCI address, read on this pass
    /// (nil: not observed: no VF is configured or restored).
    public var vfSettings: [PCIAddress: VFSettings]?

    public init(inventory: Inventory, domains: [DomainState] = [], hostUses: [HostUse] = [], coverage: DomainCoverage = .all) {
        self.inventory = inventory
        self.domains = domains
        self.hostUses = hostUses
        self.coverage = coverage
    }

    /// libvirt listed every domain.
    public var libvirtReachable: Bool { coverage == .all }

    public func domain(_ name: String) -> DomainState? { domains.first { $0.name == name } }

    /// Whether `vm` is active: nil when that is not known (libvirt away, or
    /// another domain's hook). A VM libvirt does not list is not active.
    public func isActive(_ vm: String) -> Bool? { Self.isActive(domain(vm), coverage: coverage) }

    /// `domain`'s activity, when it was looked up already (nil: not listed).
    static func isActive(_ domain: DomainState?, coverage: DomainCoverage) -> Bool? {
        if let domain { return domain.isActive }
        return coverage == .all ? false : nil
    }

    enum CodingKeys: String, CodingKey { case inventory, domains, hostUses, coverage, libvirtReachable, vfioLoaded, mediated, diskLinks, vfSettings }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        var coverage = try c.decodeIfPresent(DomainCoverage.self, forKey: .coverage)
        // Snapshots written before coverage existed say only reachable or not.
        if coverage == nil, try c.decodeIfPresent(Bool.self, forKey: .libvirtReachable) == false {
            coverage = .unreachable("libvirt was unreachable when the snapshot was taken")
        }
        self.init(
            inventory: try c.decode(Inventory.self, forKey: .inventory),
            domains: try c.decodeIfPresent([DomainState].self, forKey: .domains) ?? [],
            hostUses: try c.decodeIfPresent([HostUse].self, forKey: .hostUses) ?? [], coverage: coverage ?? .all)
        vfioLoaded = try c.decodeIfPresent(Bool.self, forKey: .vfioLoaded)
        mediated = try c.decodeIfPresent(MediatedDevices.self, forKey: .mediated)
        diskLinks = try c.decodeIfPresent([String: String].self, forKey: .diskLinks)
        vfSettings = try c.decodeIfPresent([PCIAddress: VFSettings].self, forKey: .vfSettings)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(inventory, forKey: .inventory)
        try c.encode(domains, forKey: .domains)
        try c.encode(hostUses, forKey: .hostUses)
        try c.encode(coverage, forKey: .coverage)
        try c.encodeIfPresent(vfioLoaded, forKey: .vfioLoaded)
        try c.encodeIfPresent(mediated, forKey: .mediated)
        try c.encodeIfPresent(diskLinks, forKey: .diskLinks)
        try c.encodeIfPresent(vfSettings, forKey: .vfSettings)
    }
}
