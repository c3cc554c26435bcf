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
    /// Devices given back by `hostdevctl release`, with the fingerprint of the
    /// manifest they were released under: not bound again until it changes.
    public var released: [PCIAddress: String]
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
        devices: [PCIAddress: Entry] = [:], intent: Action? = nil, released: [PCIAddress: String] = [:], liveVMs: Set<String> = [],
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
        released = try container.decodeIfPresent([PCIAddress: String].self, forKey: .released) ?? [:]
        liveVMs = try container.decodeIfPresent(Set<String>.self, forKey: .liveVMs) ?? []
        consoles = try container.decodeIfPresent([PCIAddress: ConsoleHandover].self, forKey: .consoles) ?? [:]
        mdevs = try container.decodeIfPresent([String: MdevEntry].self, forKey: .mdevs) ?? [:]
        vfs = try container.decodeIfPresent([PCIAddress: VFEntry].self, forKey: .vfs) ?? [:]
    }
}
