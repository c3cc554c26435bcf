/// An Ethernet MAC address, six octets; written `52:54:00:12:34:56`.
public struct MACAddress: Sendable, Hashable, Codable, CustomStringConvertible {
    public var octets: [UInt8]

    /// Six octets; nil for any other count.
    public init?(octets: [UInt8]) {
        guard octets.count == 6 else { return nil }
        self.octets = octets
    }

    /// `52:54:00:12:34:56` (either case); nil otherwise.
    public init?(_ text: String) {
        let split = text.split(separator: ":", omittingEmptySubsequences: false)
        guard split.count == 6 else { return nil }
        var octets: [UInt8] = []
        for part in split {
            guard part.count == 2, part.allSatisfy(\.isHexDigit), let value = UInt8(part, radix: 16) else { return nil }
            octets.append(value)
        }
        self.octets = octets
    }

    public static let zero = MACAddress(octets: [0, 0, 0, 0, 0, 0])!

    /// The group bit is clear: an address one interface can have.
    public var isUnicast: Bool { octets[0] & 1 == 0 }
    public var isZero: Bool { octets.allSatisfy { $0 == 0 } }

    public var description: String { octets.map { hex($0, 2) }.joined(separator: ":") }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let address = MACAddress(text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "'\(text)' is not a MAC address"))
        }
        self = address
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

/// An SR-IOV virtual function's settings as its physical function's driver
/// holds them (`ip link set PF vf N mac … vlan … trust … spoofchk …`).
/// In a manifest's claim, nil means "leave as it is"; read from the host,
/// nil means the driver did not report it.
public struct VFSettings: Sendable, Hashable, Codable, CustomStringConvertible {
    public var mac: MACAddress?
    /// 1…4094; 0: no VLAN (the guest's frames go untagged).
    public var vlan: Int?
    public var trust: Bool?
    public var spoofchk: Bool?

    public init(mac: MACAddress? = nil, vlan: Int? = nil, trust: Bool? = nil, spoofchk: Bool? = nil) {
        self.mac = mac
        self.vlan = vlan
        self.trust = trust
        self.spoofchk = spoofchk
    }

    /// The highest VLAN ID (4095 is reserved).
    public static let maximumVLAN = 4094

    public var isEmpty: Bool { mac == nil && vlan == nil && trust == nil && spoofchk == nil }

    /// Whether `current` already has every setting this one asks for.
    public func isSatisfied(by current: VFSettings) -> Bool {
        (mac == nil || mac == current.mac) && (vlan == nil || vlan == current.vlan)
            && (trust == nil || trust == current.trust) && (spoofchk == nil || spoofchk == current.spoofchk)
    }

    /// `current`'s values of exactly the settings this one sets: what to
    /// put back when the VF is given back.
    public func previous(in current: VFSettings) -> VFSettings {
        VFSettings(
            mac: mac == nil ? nil : current.mac, vlan: vlan == nil ? nil : current.vlan,
            trust: trust == nil ? nil : current.trust, spoofchk: spoofchk == nil ? nil : current.spoofchk)
    }

    /// `mac 52:54:00:12:34:56 vlan 100 trust off spoofchk on`, as `ip link` writes them.
    public var description: String {
        var parts: [String] = []
        if let mac { parts.append("mac \(mac)") }
        if let vlan { parts.append("vlan \(vlan)") }
        if let trust { parts.append("trust \(trust ? "on" : "off")") }
        if let spoofchk { parts.append("spoofchk \(spoofchk ? "on" : "off")") }
        return parts.isEmpty ? "no settings" : parts.joined(separator: " ")
    }
}

/// A virtual function as a manifest names it: VF number `index` of
/// physical function `pf` (`/sys/bus/pci/devices/PF/virtfnINDEX`), and the
/// settings it gets before the VM has it.
public struct VFSpec: Sendable, Hashable, CustomStringConvertible {
    public var pf: PCIAddress
    public var index: Int
    public var settings: VFSettings

    public init(pf: PCIAddress, index: Int, settings: VFSettings = VFSettings()) {
        self.pf = pf
        self.index = index
        self.settings = settings
    }

    /// `vf 0000:3b:00.0 index 2`: the claim's key (the VF's own PCI
    /// address is known only on the host).
    public var description: String { "vf \(pf) index \(index)" }
}

/// The VF a settings change is made on: the PF's netdev takes the change
/// for VF number `index`; `vf` is that VF's own PCI function.
public struct VFTarget: Sendable, Hashable, Codable, CustomStringConvertible {
    public var pf: PCIAddress
    public var index: Int
    public var vf: PCIAddress

    public init(pf: PCIAddress, index: Int, vf: PCIAddress) {
        self.pf = pf
        self.index = index
        self.vf = vf
    }

    /// `VF 2 of 0000:3b:00.0 (0000:3b:02.2)`.
    public var description: String { "VF \(index) of \(pf) (\(vf))" }
}

/// Why a `vf:` claim names no VF that can be given to a VM, as the
/// planner and `check` both find it.
public enum VFLookupFailure: Error, Sendable, Equatable {
    /// No PCI function at the PF's address.
    case noPF
    /// The function has no SR-IOV capability (no `sriov_totalvfs`).
    case notSRIOV
    /// No `virtfnN` link for the index: `enabled` of `total` VFs are enabled.
    case notEnabled(enabled: Int, total: Int)
    /// The `virtfnN` link names a function that is not present.
    case missing(PCIAddress)
    /// The VF is in its PF's IOMMU group: giving it away would take the PF.
    case sharesPFGroup(vf: PCIAddress, group: Int)
}

extension Inventory {
    /// The VF a claim names, through its PF's `virtfnN` link, or why there
    /// is none to give.
    public func virtualFunction(_ spec: VFSpec) -> Result<PCIAddress, VFLookupFailure> {
        guard let pf = device(at: spec.pf) else { return .failure(.noPF) }
        guard let sriov = pf.pci?.sriov else { return .failure(.notSRIOV) }
        guard spec.index < sriov.virtualFunctions.count else {
            return .failure(.notEnabled(enabled: sriov.virtualFunctions.count, total: sriov.totalVFs))
        }
        let vf = sriov.virtualFunctions[spec.index]
        guard device(at: vf) != nil else { return .failure(.missing(vf)) }
        if let group = groupNumber(of: vf), groupNumber(of: spec.pf) == group { return .failure(.sharesPFGroup(vf: vf, group: group)) }
        return .success(vf)
    }
}
