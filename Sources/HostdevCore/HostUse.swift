/// Why the host itself needs a device (it must never be detached unless the
/// operator hands that kind of use over): one chain from the PCI function up
/// to what the host uses, e.g. `0000:05:00.0 → enp5s0 → bond0 → vmbr0,
/// which carries the default route`.
public struct HostUse: Sendable, Hashable, Codable {
    /// What kind of use: the planner lets `force:` hand over only some kinds.
    public enum Kind: String, Sendable, Hashable, Codable, CaseIterable {
        /// A mounted, swap, pool-member or holder block device on the function.
        case storage
        /// An interface that is up with an address or route, or one beneath it.
        case network
        /// The framebuffer that holds a bound virtual console.
        case console
        /// A process holds the function's DRM card or render node open.
        case drmOpen
        /// Listed in `host.protect`.
        case protect
        /// Recorded by an older hostdevd that did not say (a snapshot with
        /// only `address` and `reason`): never handed over.
        case unknown

        /// Whether an operator may hand this use over with `force:`
        /// (`force: [network]`, `force: [console]`); storage, an open DRM
        /// card and anything unknown never.
        public var isForcible: Bool { self == .network || self == .console }
    }

    public var address: PCIAddress
    public var kind: Kind
    /// From the PCI function upward: `["0000:05:00.0", "enp5s0", "bond0", "vmbr0"]`.
    public var chain: [String]
    /// One line naming the whole chain and why its top is used.
    public var reason: String

    /// A use of a given kind: `reason` is the chain joined by ` → ` and
    /// `why`, e.g. `which carries the default route`.
    public init(address: PCIAddress, kind: Kind, chain: [String], why: String) {
        self.address = address
        self.kind = kind
        self.chain = chain.isEmpty ? [address.description] : chain
        self.reason = self.chain.joined(separator: " → ") + ", " + why
    }

    /// A use known only by its reason (older snapshots, hand-made tests):
    /// kind `unknown`, never forcible.
    public init(address: PCIAddress, reason: String, kind: Kind = .unknown) {
        self.address = address
        self.kind = kind
        self.chain = [address.description]
        self.reason = reason
    }

    enum CodingKeys: String, CodingKey { case address, kind, chain, reason }

    /// Snapshots written before uses had kinds hold only `address` and
    /// `reason`: they decode as `unknown` (never forcible).
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        address = try container.decode(PCIAddress.self, forKey: .address)
        reason = try container.decode(String.self, forKey: .reason)
        kind = try container.decodeIfPresent(Kind.self, forKey: .kind) ?? .unknown
        chain = try container.decodeIfPresent([String].self, forKey: .chain) ?? [address.description]
    }
}

/// Something worth telling about a device that is not a use: `boot_vga=1`
/// is the firmware's choice of boot display, a hint, never a reason to refuse.
public struct HostNote: Sendable, Hashable, Codable {
    public var address: PCIAddress
    public var text: String

    public init(address: PCIAddress, text: String) {
        self.address = address
        self.text = text
    }
}

/// One host-use scan: the uses (refusals) and the notes (hints).
public struct HostUseScan: Sendable, Equatable, Codable {
    public var uses: [HostUse]
    public var notes: [HostNote]

    public init(uses: [HostUse] = [], notes: [HostNote] = []) {
        self.uses = uses
        self.notes = notes
    }

    public func uses(of address: PCIAddress) -> [HostUse] { uses.filter { $0.address == address } }
}

/// A process that holds a device file open (`/dev/dri/card0`, `/dev/vfio/12`).
public struct ProcessRef: Sendable, Hashable, Codable, Comparable, CustomStringConvertible {
    public var pid: Int
    /// `/proc/PID/comm`; empty when the process went away mid-scan.
    public var comm: String

    public init(pid: Int, comm: String) {
        self.pid = pid
        self.comm = comm
    }

    /// `Xorg (pid 1234)`.
    public var description: String { comm.isEmpty ? "pid \(pid)" : "\(comm) (pid \(pid))" }

    public static func < (a: ProcessRef, b: ProcessRef) -> Bool { a.pid < b.pid }
}

/// What handing a GPU's console over to a VM changed (single-GPU
/// passthrough), so that giving it back undoes exactly that: the virtual
/// consoles unbound from the framebuffer, and the firmware framebuffers
/// unbound from their platform driver. The executor journals it in the
/// ledger before the GPU moves.
public struct ConsoleHandover: Sendable, Hashable, Codable {
    /// A platform device taken off its driver (`efi-framebuffer.0` off `efi-framebuffer`).
    public struct PlatformBinding: Sendable, Hashable, Codable {
        public var device: String
        public var driver: String

        public init(device: String, driver: String) {
            self.device = device
            self.driver = driver
        }
    }

    public var gpu: PCIAddress
    /// `vtconN` numbers written `0` to their `bind`, in order.
    public var virtualConsoles: [Int]
    /// Firmware framebuffers unbound, in order.
    public var framebuffers: [PlatformBinding]

    public init(gpu: PCIAddress, virtualConsoles: [Int] = [], framebuffers: [PlatformBinding] = []) {
        self.gpu = gpu
        self.virtualConsoles = virtualConsoles
        self.framebuffers = framebuffers
    }

    /// Nothing was changed (the console was elsewhere).
    public var isEmpty: Bool { virtualConsoles.isEmpty && framebuffers.isEmpty }
}
