/// `hostdevctl describe DEVICE`: one PCI function end to end — what it is,
/// its IOMMU group and the siblings' drivers, its driver now and the one
/// hostdevd will give back, who uses it (the host, with the chain, or a VM
/// and the element), which binding claims it, its condition from the same
/// plan `plan` makes, and the daemon's last actions on it.
public struct DescribeDocument: JSONDocument, Sendable {
    public var address: PCIAddress
    public var observed: ObservedHost
    public var plan: Plan
    public var ledger: Ledger
    /// The manifest the claim comes from (a path).
    public var manifest: String
    /// From the running daemon's status.json; nil when there is none.
    public var history: DeviceHistory?

    public init(address: PCIAddress, observed: ObservedHost, plan: Plan, ledger: Ledger, manifest: String, history: DeviceHistory?) {
        self.address = address
        self.observed = observed
        self.plan = plan
        self.ledger = ledger
        self.manifest = manifest
        self.history = history
    }

    var id: String { DeviceIdentifier.pci(address) }
    var device: HostDevice? { observed.inventory.device(at: address) }

    /// `VGA compatible controller` style names for the common class codes.
    static func className(_ code: UInt32?) -> String? {
        guard let code else { return nil }
        let names: [UInt32: String] = [
            0x0100: "SCSI storage controller", 0x0101: "IDE interface", 0x0104: "RAID bus controller", 0x0106: "SATA controller",
            0x0107: "Serial Attached SCSI controller", 0x0108: "Non-Volatile memory controller", 0x0200: "Ethernet controller",
            0x0280: "Network controller", 0x0300: "VGA compatible controller", 0x0302: "3D controller", 0x0380: "Display controller",
            0x0401: "Multimedia audio controller", 0x0403: "Audio device", 0x0600: "Host bridge", 0x0601: "ISA bridge",
            0x0604: "PCI bridge", 0x0c03: "USB controller", 0x0c05: "SMBus", 0x0c80: "Serial bus controller",
        ]
        return names[code >> 8]
    }

    /// VM uses: each domain element that names the device, and hostdevd's own `<hostdev>`s.
    var vmUses: [(vm: String, active: Bool, element: String)] {
        var uses: [(String, Bool, String)] = []
        for domain in observed.domains {
            let hostdevs = domain.isActive ? domain.liveHostdevs : domain.configHostdevs
            for entry in hostdevs where entry.source == .pci(address) {
                uses.append((domain.name, domain.isActive, entry.isOurs ? "hostdevd's <hostdev>" : "a hand-written <hostdev>"))
            }
            for use in domain.uses where use.devices.contains(address) && !(use.target == .pci(address) && hostdevs.contains { $0.source == .pci(address) }) {
                uses.append((domain.name, domain.isActive, use.description))
            }
        }
        return uses
    }

    var siblings: [HostDevice] {
        guard let group = device?.pci?.iommuGroup, let members = observed.inventory.group(group)?.members else { return [] }
        return members.filter { $0 != address }.compactMap { observed.inventory.device(at: $0) }
    }

    var condition: Condition? { plan.devices[id] }
    var steps: [Step] { plan.steps.filter { $0.action.pciAddress == address } }

    public var json: JSONText {
        guard let device else {
            return .object([("kind", .string("describe")), ("device", .string(id)), ("present", .bool(false))])
        }
        func string(_ value: String?) -> JSONText { value.map { .string($0) } ?? .null }
        var fields: [(String, JSONText)] = [
            ("kind", .string("describe")), ("device", .string(id)), ("present", .bool(true)), ("name", .string(device.name)),
            ("vendor", string(device.vendor)), ("vendorID", string(device.vendorID)),
            ("product", string(device.product)), ("productID", string(device.productID)),
            ("class", string(device.pci?.classCode.map { "0x" + hex($0, 6) })), ("className", string(Self.className(device.pci?.classCode))),
            ("bridge", .bool(device.pci?.isBridge ?? false)),
        ]
        fields.append(("iommuGroup", device.pci?.iommuGroup.map { group in
            .object([
                ("number", .number(group)),
                ("siblings", .array(siblings.map { sibling in
                    .object([
                        ("device", string(DeviceIdentifier.of(sibling))), ("product", string(sibling.product)), ("driver", string(sibling.driver)),
                        ("bridge", .bool(sibling.pci?.isBridge ?? false)),
                    ])
                })),
            ])
        } ?? .null))
        let entry = ledger.devices[address]
        fields.append(("driver", .object([
            ("now", string(device.driver)),
            ("original", string(entry?.originalDriver)),
            ("boundByHostdevd", .bool(entry != nil)),
        ])))
        fields.append(("hostUses", .array(observed.hostUses.filter { $0.address == address }.map { use in
            .object([("kind", .string(use.kind.rawValue)), ("chain", .array(use.chain.map { .string($0) })), ("reason", .string(use.reason))])
        })))
        fields.append(("vmUses", .array(vmUses.map { use in
            .object([("vm", .string(use.vm)), ("active", .bool(use.active)), ("element", .string(use.element))])
        })))
        fields.append(("claims", .array((plan.claimants[address] ?? []).map { claim in
            .object([
                ("vm", .string(claim.vm)), ("manifest", .string(manifest)), ("via", .string(DeviceIdentifier.pci(claim.via))),
                ("attach", .bool(claim.attach)),
            ])
        })))
        fields.append(("condition", condition?.json ?? .null))
        fields.append(("steps", .array(StepDocument.steps(of: plan, inventory: observed.inventory).filter { $0.step.action.pciAddress == address }.map(\.json))))
        fields.append(("history", history.map { .array($0.of(id).map(\.json)) } ?? .null))
        return .object(fields)
    }

    public func text() -> String {
        guard let device else { return "\(id): no such PCI device on this host\n" }
        var out = "\(id)  \(device.name)\n"
        let what = [device.vendor, device.product].compactMap { $0 }.joined(separator: " ")
        let ids = [device.vendorID, device.productID].compactMap { $0.map { $0.hasPrefix("0x") ? String($0.dropFirst(2)) : $0 } }.joined(separator: ":")
        out += "  what:        \(what.isEmpty ? "(unknown)" : what)\(ids.isEmpty ? "" : " [\(ids)]")"
        if let code = device.pci?.classCode { out += ", \(Self.className(code) ?? "class") (0x\(hex(code, 6)))" }
        out += "\n"
        if let group = device.pci?.iommuGroup {
            out += "  IOMMU group: \(group)" + (siblings.isEmpty ? ", alone\n" : ", with:\n")
            for sibling in siblings {
                let name = [DeviceIdentifier.of(sibling) ?? sibling.name, sibling.product].compactMap { $0 }.joined(separator: " ")
                out += "                 \(name) on \(sibling.driver ?? "no driver")" + ((sibling.pci?.isBridge ?? false) ? " (bridge)" : "") + "\n"
            }
        } else {
            out += "  IOMMU group: none (no IOMMU, or a device outside any group)\n"
        }
        let entry = ledger.devices[address]
        out += "  driver:      \(device.driver ?? "none")"
            + (entry.map { "; bound by hostdevd, gives back to \($0.originalDriver ?? "no driver")" } ?? "") + "\n"
        let hostUses = observed.hostUses.filter { $0.address == address }
        let vmUses = vmUses
        if hostUses.isEmpty && vmUses.isEmpty { out += "  used by:     nothing hostdevd can see\n" }
        for use in hostUses { out += "  used by:     the host (\(use.kind.rawValue)): \(use.reason)\n" }
        for use in vmUses { out += "  used by:     \(use.active ? "running" : "shut-off") \(use.vm) through \(use.element)\n" }
        let claims = plan.claimants[address] ?? []
        if claims.isEmpty { out += "  claimed by:  no binding in \(manifest)\n" }
        for claim in claims {
            let how = claim.via == address ? "named directly" : "IOMMU group sibling of \(claim.via), \(claim.attach ? "attached" : "held on vfio-pci")"
            out += "  claimed by:  \(claim.vm) in \(manifest) (\(how))\n"
        }
        out += "  condition:   \(condition?.description ?? "not considered by the plan (no binding claims it, hostdevd did not bind it)")\n"
        for step in steps { out += "  next step:   \(step.action.summary): \(step.reason)\n" }
        if let history {
            let entries = history.of(id)
            if entries.isEmpty { out += "  history:     the daemon has not acted on it\n" }
            for entry in entries {
                out += "  history:     \(clockTime(Double(entry.time))) \(entry.outcome) \(entry.summary)" + (entry.detail.map { ": \($0)" } ?? "") + "\n"
            }
        } else {
            out += "  history:     no daemon status file (hostdevd not running?)\n"
        }
        return out
    }
}
