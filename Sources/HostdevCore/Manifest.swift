/// Where something was written in the manifest, for messages a person can follow.
public struct SourceLocation: Sendable, Hashable, Codable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int

    public init(file: String, line: Int, column: Int) {
        self.file = file
        self.line = line
        self.column = column
    }

    public var description: String { "\(file):\(line):\(column)" }
}

/// The declarative input: which host devices belong to which VM (version 1).
public struct Manifest: Sendable, Equatable {
    public var host: HostPolicy
    public var bindings: [Binding]
    /// Identifies this text of the manifest: an emergency release holds
    /// until the manifest changes.
    public var fingerprint: String?

    public init(host: HostPolicy = HostPolicy(), bindings: [Binding] = [], fingerprint: String? = nil) {
        self.host = host
        self.bindings = bindings
        self.fingerprint = fingerprint
    }

    /// FNV-1a of the manifest's bytes, as hex.
    public static func fingerprint(of text: String) -> String {
        fingerprint(of: Array(text.utf8))
    }

    /// FNV-1a of the manifest's bytes, as hex: the same value as for the
    /// text these bytes spell. Over a buffer, not a generic sequence: a
    /// 4 MiB manifest is hashed on every reload.
    public static func fingerprint(of bytes: [UInt8]) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        bytes.withUnsafeBufferPointer { buffer in
            for byte in buffer {
                hash ^= UInt64(byte)
                hash = hash &* 0x100_0000_01b3
            }
        }
        return hex(hash, 16)
    }
}

/// What to do with devices this tool bound that no binding claims any more.
public enum OrphanPolicy: String, Sendable, CaseIterable, Codable {
    case release, keep
}

public struct HostPolicy: Sendable, Equatable {
    public var orphans: OrphanPolicy
    /// Never detached, whatever a binding says.
    public var protect: [PCIAddress]
    /// Declarative VF counts per physical function.
    public var sriov: [SRIOVSetting]

    public init(orphans: OrphanPolicy = .release, protect: [PCIAddress] = [], sriov: [SRIOVSetting] = []) {
        self.orphans = orphans
        self.protect = protect
        self.sriov = sriov
    }
}

public struct SRIOVSetting: Sendable, Equatable {
    public var pf: PCIAddress
    public var numVFs: Int
    public var location: SourceLocation?

    public init(pf: PCIAddress, numVFs: Int, location: SourceLocation? = nil) {
        self.pf = pf
        self.numVFs = numVFs
        self.location = location
    }
}

/// When an owned device goes back to its host driver.
public enum ReleasePolicy: String, Sendable, CaseIterable, Codable {
    /// Stays on vfio-pci as long as the binding exists.
    case never
    /// Back to the host driver while the VM is shut off.
    case onStop
}

/// How much of a PCI device's IOMMU group a claim takes.
public enum GroupMode: String, Sendable, CaseIterable, Codable {
    /// The whole group goes to the VM.
    case attach
    /// Siblings go to vfio-pci but are not attached (VDSM's placeholder).
    case hold
    /// Only this device; refused while the group would not be viable.
    case device
}

/// One VM's devices.
public struct Binding: Sendable, Equatable {
    public var vm: String
    public var release: ReleasePolicy
    public var live: Bool
    public var devices: [DeviceClaim]
    /// The hosts this binding is for (`hosts:`), as globs matched against
    /// the host's name; nil: every host.
    public var hosts: [HostPattern]?
    public var location: SourceLocation?

    public init(
        vm: String, release: ReleasePolicy = .never, live: Bool = false, devices: [DeviceClaim],
        hosts: [HostPattern]? = nil, location: SourceLocation? = nil
    ) {
        self.vm = vm
        self.release = release
        self.live = live
        self.devices = devices
        self.hosts = hosts
        self.location = location
    }

    /// Whether this binding applies on the host named `host`.
    public func applies(to host: String) -> Bool {
        hosts.map { $0.contains { $0.matches(host) } } ?? true
    }

    /// Whether some host could get both bindings, as far as can be told
    /// without a host name: one is for every host, they share a pattern, or
    /// a literal name of one matches a pattern of the other. Two globs that
    /// merely could overlap (`web-*`, `*-01`) are told apart only once the
    /// host is known (`ManifestDecoder.decode(parts:host:)` checks again
    /// then). The decoder applies this rule through an index by host name
    /// (`ManifestDecoder.EarlierClaims`); the tables test both.
    public func mayShareAHost(with other: Binding) -> Bool {
        guard let mine = hosts, let theirs = other.hosts else { return true }
        for a in mine {
            for b in theirs where a == b || (a.isLiteral && b.matches(a.text)) || (b.isLiteral && a.matches(b.text)) {
                return true
            }
        }
        return false
    }
}

/// How a manifest names a host device.
public enum DeviceSelector: Sendable, Hashable, CustomStringConvertible {
    case pci(PCIAddress)
    /// By vendor/device ID; `index` picks one of several matches (ordered by address).
    case pciID(vendor: UInt16, device: UInt16, index: Int?)
    case usbID(vendor: UInt16, product: UInt16, index: Int?)
    case usbAddress(bus: Int, device: Int)
    /// A mediated device to create on a parent (its UUID given or derived).
    case mdev(MdevSpec)
    /// A SCSI device by `H:B:T:L`.
    case scsi(SCSIAddress)
    /// A SCSI device by a stable `/dev` name (`/dev/disk/by-id/…`).
    case scsiPath(String)
    /// An SR-IOV virtual function by its PF and number, given to the VM
    /// as a network interface (`<interface type='hostdev'>`).
    case vf(VFSpec)

    public var description: String {
        switch self {
        case .pci(let address): return "pci \(address)"
        case .pciID(let v, let d, let i): return "pci \(hex(v, 4)):\(hex(d, 4))" + (i.map { " index \($0)" } ?? "")
        case .usbID(let v, let p, let i): return "usb \(hex(v, 4)):\(hex(p, 4))" + (i.map { " index \($0)" } ?? "")
        case .usbAddress(let bus, let device): return "usb bus \(bus) device \(device)"
        case .mdev(let spec): return spec.description
        case .scsi(let address): return "scsi \(address)"
        case .scsiPath(let path): return "scsi \(path)"
        case .vf(let spec): return spec.description
        }
    }

    public var isUSB: Bool {
        switch self {
        case .usbID, .usbAddress: return true
        case .pci, .pciID, .mdev, .scsi, .scsiPath, .vf: return false
        }
    }
}

/// A host use of a device that the operator may hand over to a VM
/// explicitly (`force: [console]`): the device is detached although the host
/// uses it that way. Storage is never handed over (a mounted filesystem or
/// swap torn away loses data), so it has no case here.
public enum HandOver: String, Sendable, Codable, CaseIterable, Comparable {
    case console, network

    public static func < (a: HandOver, b: HandOver) -> Bool { a.rawValue < b.rawValue }
}

public struct DeviceClaim: Sendable, Equatable {
    public var selector: DeviceSelector
    public var group: GroupMode
    /// Host uses of these kinds do not block this device (`force:` in the manifest).
    public var force: Set<HandOver>
    public var location: SourceLocation?

    public init(
        _ selector: DeviceSelector, group: GroupMode = .attach, force: Set<HandOver> = [], location: SourceLocation? = nil
    ) {
        self.selector = selector
        self.group = group
        self.force = force
        self.location = location
    }
}
