/// What this tool changed, so it can undo exactly that and nothing else:
/// each device it moved to vfio-pci with the driver it had before, and the
/// step in flight (an intent) when a run stopped.
public struct Ledger: Sendable, Equatable, Codable {
    public struct Entry: Sendable, Equatable, Codable {
        /// The host driver before hostdevd bound it (nil: it had none).
        public var originalDriver: String?
        /// The VM it was bound for, for status and messages.
        public var vm: String?

        public init(originalDriver: String?, vm: String?) {
            self.originalDriver = originalDriver
            self.vm = vm
        }
    }

    /// Devices this tool bound, by address.
    public var devices: [PCIAddress: Entry]
    /// The step that was about to run; set before it, cleared after it.
    public var intent: Action?
    /// Devices given back by `hostdevctl release` (a PCI function, a
    /// mediated or a SCSI device), with the fingerprint of the manifest they
    /// were released under: not bound, created or given to a VM again until
    /// it changes. On disk keyed by the device's identifier (`pci
    /// 0000:01:00.0`, `mdev UUID`, `scsi 1:0:0:0`); a ledger from before
    /// mediated and SCSI devices could be released has bare PCI addresses.
    public var released: [HostdevEntry.Source: String]
    /// VMs whose binding said `live: true` while they held devices: when
    /// such a binding disappears from the manifest, its devices are
    /// unplugged from the running VM; any other binding's stay until the
    /// VM stops (a typo in a VM name must not pull devices out of guests).
    public var liveVMs: Set<String>
    /// Consoles handed over for single-GPU passthrough, by GPU: exactly what
    /// was unbound, so that releasing the GPU binds exactly that again.
    public var consoles: [PCIAddress: ConsoleHandover]
    /// Mediated devices this tool created, by UUID: removed again when no
    /// binding claims them (recorded before the create, so a crash between
    /// the two still knows the device is its own).
    public var mdevs: [String: MdevEntry]

    /// SR-IOV VFs whose settings this tool changed, by the VF's address,
    /// with what they were before (recorded before the change): a release
    /// puts exactly those back.
    public var vfs: [PCIAddress: VFEntry]

    public struct VFEntry: Sendable, Equatable, Codable {
        public var pf: PCIAddress
        public var index: Int
        /// The settings before hostdevd's first change, of exactly the
        /// fields it changed.
        public var previous: VFSettings
        public var vm: String?

        public init(pf: PCIAddress, index: Int, previous: VFSettings, vm: String?) {
            self.pf = pf
            self.index = index
            self.previous = previous
            self.vm = vm
        }
    }

    public struct MdevEntry: Sendable, Equatable, Codable {
        public var parent: PCIAddress
        public var type: String
        public var vm: String?

        public init(parent: PCIAddress, type: String, vm: String?) {
            self.parent = parent
            self.type = type
            self.vm = vm
        }
    }

    public init(
        devices: [PCIAddress: Entry] = [:], intent: Action? = nil, released: [HostdevEntry.Source: String] = [:], liveVMs: Set<String> = [],
        consoles: [PCIAddress: ConsoleHandover] = [:], mdevs: [String: MdevEntry] = [:], vfs: [PCIAddress: VFEntry] = [:]
    ) {
        self.devices = devices
        self.intent = intent
        self.released = released
        self.liveVMs = liveVMs
        self.consoles = consoles
        self.mdevs = mdevs
        self.vfs = vfs
    }

    enum CodingKeys: String, CodingKey { case devices, intent, released, liveVMs, consoles, mdevs, vfs }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        devices = try container.decodeIfPresent([PCIAddress: Entry].self, forKey: .devices) ?? [:]
        intent = try container.decodeIfPresent(Action.self, forKey: .intent)
        released = try Self.decodeReleased(try container.decodeIfPresent([String: String].self, forKey: .released) ?? [:], in: container)
        liveVMs = try container.decodeIfPresent(Set<String>.self, forKey: .liveVMs) ?? []
        consoles = try container.decodeIfPresent([PCIAddress: ConsoleHandover].self, forKey: .consoles) ?? [:]
        mdevs = try container.decodeIfPresent([String: MdevEntry].self, forKey: .mdevs) ?? [:]
        vfs = try container.decodeIfPresent([PCIAddress: VFEntry].self, forKey: .vfs) ?? [:]
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(devices, forKey: .devices)
        try container.encodeIfPresent(intent, forKey: .intent)
        try container.encode(Dictionary(uniqueKeysWithValues: released.map { (DeviceIdentifier.source($0.key), $0.value) }), forKey: .released)
        try container.encode(liveVMs, forKey: .liveVMs)
        try container.encode(consoles, forKey: .consoles)
        try container.encode(mdevs, forKey: .mdevs)
        try container.encode(vfs, forKey: .vfs)
    }

    /// `released` as written: each key a device identifier, or a bare PCI
    /// address (a ledger written before other kinds could be released).
    static func decodeReleased(
        _ written: [String: String], in container: KeyedDecodingContainer<CodingKeys>
    ) throws -> [HostdevEntry.Source: String] {
        var released: [HostdevEntry.Source: String] = [:]
        for (key, fingerprint) in written {
            guard let source = DeviceQuery.parse(key)?.source else {
                throw DecodingError.dataCorruptedError(
                    forKey: .released, in: container, debugDescription: "'\(key)' names no device (write pci ADDRESS, mdev UUID or scsi H:B:T:L)")
            }
            released[source] = fingerprint
        }
        return released
    }
}
