/// `hostdevctl describe DEVICE`: one device end to end — a PCI function, a
/// USB device, a mediated device or a SCSI device. What it is (and, for the
/// kinds that hang off one, the PCI function beneath it with its IOMMU
/// group), its driver, who uses it (the host, with the chain, or a VM and
/// the element), which binding claims it, its condition from the same plan
/// `plan` makes, and the daemon's last actions on it.
///
/// What each kind is comes from its own section; the rest (uses, claims,
/// condition, steps, history) is one path for every kind, through the
/// `<hostdev>` sources that name the device (`Subject.sources`).
public struct DescribeDocument: JSONDocument, Sendable {
    public let query: DeviceQuery
    public let observed: ObservedHost
    public let plan: Plan
    public let ledger: Ledger
    /// The manifest the claim comes from (a path).
    public let manifest: String
    /// From the running daemon's status.json; nil when there is none.
    public let history: DeviceHistory?
    /// The device the query names, looked up once.
    let resolution: Resolution

    public init(query: DeviceQuery, observed: ObservedHost, plan: Plan, ledger: Ledger, manifest: String, history: DeviceHistory?) {
        self.query = query
        self.observed = observed
        self.plan = plan
        self.ledger = ledger
        self.manifest = manifest
        self.history = history
        resolution = Self.resolve(query, observed: observed, plan: plan, ledger: ledger)
    }

    public init(address: PCIAddress, observed: ObservedHost, plan: Plan, ledger: Ledger, manifest: String, history: DeviceHistory?) {
        self.init(query: .pci(address), observed: observed, plan: plan, ledger: ledger, manifest: manifest, history: history)
    }

    // MARK: which device

    /// The device the query names, as found on this host (or, for a
    /// mediated device, as claimed or remembered before it exists).
    enum Subject: Sendable {
        case pci(HostDevice, PCIAddress)
        case usb(HostDevice)
        case mdev(String)
        case scsi(HostDevice, SCSIAddress)

        var isPCI: Bool { if case .pci = self { true } else { false } }
    }

    enum Resolution: Sendable {
        case found(Subject)
        /// Why there is no such device, and the nearest present one of its kind.
        case absent(why: String, suggestion: String?)
    }

    static func resolve(_ query: DeviceQuery, observed: ObservedHost, plan: Plan, ledger: Ledger) -> Resolution {
        let devices = observed.inventory.devices
        let usbDevices = devices.filter { $0.capability == .usbDevice }
        // Suggestions leave out root hubs: nothing passes one through.
        let assignableUSB = usbDevices.filter { !($0.usb?.isRootHub ?? false) }
        func absent(_ why: String, among known: [String]) -> Resolution {
            .absent(why: why, suggestion: Suggestion.closest(to: query.description, among: known))
        }
        switch query {
        case .pci(let address):
            guard let device = observed.inventory.device(at: address) else {
                return absent("no such PCI device on this host", among: devices.compactMap { $0.pci.map { DeviceIdentifier.pci($0.address) } })
            }
            return .found(.pci(device, address))
        case .usbAddress(let bus, let number):
            guard let device = usbDevices.first(where: { $0.usb?.bus == bus && $0.usb?.device == number }) else {
                return absent("no such USB device on this host", among: assignableUSB.compactMap(DeviceIdentifier.of))
            }
            return .found(.usb(device))
        case .usbID(let vendor, let product):
            let matches = usbDevices.filter { $0.hasID(vendor: vendor, product: product) }
            switch matches.count {
            case 0: return absent("no USB device with this ID on this host", among: assignableUSB.compactMap(Self.idIdentifier))
            case 1: return .found(.usb(matches[0]))
            default:
                return .absent(why: "\(matches.count) USB devices have this ID (\(matches.compactMap(DeviceIdentifier.of).joined(separator: ", "))); name one by bus:device", suggestion: nil)
            }
        case .usbNodeDevice(let name):
            guard let device = observed.inventory.device(named: name), device.capability == .usbDevice else {
                return absent("no such USB device on this host", among: assignableUSB.map(\.name))
            }
            return .found(.usb(device))
        case .mdev(let uuid):
            let known = observed.mediated?.device(uuid) != nil || ledger.mdevs[uuid] != nil || plan.sourceClaimants[.mdev(uuid)] != nil
            guard known else {
                let uuids = (observed.mediated?.devices.map(\.uuid) ?? []) + ledger.mdevs.keys
                    + plan.sourceClaimants.keys.compactMap { if case .mdev(let uuid) = $0 { uuid } else { nil } }
                return absent("no such mediated device on this host, and no binding claims it", among: uuids.map { DeviceIdentifier.source(.mdev($0)) })
            }
            return .found(.mdev(uuid))
        case .scsi(let address):
            guard let device = observed.scsiDevice(at: address) else {
                return absent("no such SCSI device on this host",
                    among: devices.filter { $0.capability == .scsi }.compactMap { SCSIAddress($0.scsi).map { DeviceIdentifier.source(.scsi($0)) } })
            }
            return .found(.scsi(device, address))
        case .scsiPath(let path):
            switch observed.scsiAddress(ofPath: path) {
            case .success(let address):
                guard let device = observed.scsiDevice(at: address) else { return .absent(why: "no such SCSI device on this host", suggestion: nil) }
                return .found(.scsi(device, address))
            case .failure(let why):
                return absent(why.condition.reason ?? "not a SCSI device", among: (observed.diskLinks ?? [:]).keys.map { "scsi " + $0 })
            }
        }
    }

    /// `usb 046d:c52b` for a USB device with both IDs.
    static func idIdentifier(_ device: HostDevice) -> String? {
        guard let vendor = device.vendorID.flatMap({ UInt16(hexText: $0) }), let product = device.productID.flatMap({ UInt16(hexText: $0) }) else { return nil }
        return DeviceIdentifier.source(.usbID(vendor: vendor, product: product))
    }

    /// The identifier output uses for the device: its canonical form when
    /// found, the query as typed when not.
    var id: String {
        guard case .found(let subject) = resolution else { return query.description }
        return DeviceIdentifier.source(sources(of: subject)[0])
    }

    /// The `<hostdev>` sources that name the device: the key of its steps,
    /// its conditions and its history. A USB device's ID names it only when
    /// no other device has that ID (as the planner tells them apart).
    func sources(of subject: Subject) -> [HostdevEntry.Source] {
        switch subject {
        case .pci(_, let address): return [.pci(address)]
        case .usb(let device):
            var sources: [HostdevEntry.Source] = []
            if let bus = device.usb?.bus, let number = device.usb?.device { sources.append(.usbAddress(bus: bus, device: number)) }
            if let vendor = device.vendorID.flatMap({ UInt16(hexText: $0) }), let product = device.productID.flatMap({ UInt16(hexText: $0) }),
                observed.inventory.devices.filter({ $0.capability == .usbDevice && $0.hasID(vendor: vendor, product: product) }).count == 1
            {
                sources.append(.usbID(vendor: vendor, product: product))
            }
            return sources
        case .mdev(let uuid): return [.mdev(uuid)]
        case .scsi(_, let address): return [.scsi(address)]
        }
    }

    // MARK: what every kind shares

    /// A binding that claims the device, for people and JSON alike.
    struct Claim {
        var vm: String
        /// The device the binding names: itself, a group sibling, or the claim's own words.
        var via: String
        var attach: Bool
        var how: String
    }

    /// Uses, claims, condition, steps and history, found the same way for every kind.
    struct Shared {
        var hostUses: [HostUse]
        var vmUses: [(vm: String, active: Bool, element: String)]
        var claims: [Claim]
        var condition: Condition?
        var steps: [StepDocument]
        /// nil: no daemon status file.
        var history: [DeviceHistory.Entry]?
    }

    func shared(_ subject: Subject) -> Shared {
        let sources = sources(of: subject)
        let ids = Set(sources.map(DeviceIdentifier.source))
        let claims: [Claim]
        if case .pci(_, let address) = subject {
            claims = (plan.claimants[address] ?? []).map { claim in
                Claim(vm: claim.vm, via: DeviceIdentifier.pci(claim.via), attach: claim.attach,
                    how: claim.via == address ? "named directly" : "IOMMU group sibling of \(claim.via), \(claim.attach ? "attached" : "held on vfio-pci")")
            }
        } else {
            claims = sources.flatMap { plan.sourceClaimants[$0] ?? [] }.map { claim in
                Claim(vm: claim.vm, via: claim.selector, attach: true, how: "named as \(claim.selector)")
            }
        }
        // A PCI function's condition is its own (a claim's `via` may be a
        // group sibling); the other kinds' claims have keys of their own (a
        // SCSI path, a USB bus/device), then the device's `<hostdev>`.
        let keys = (subject.isPCI ? [] : claims.map(\.via)) + sources.map(DeviceIdentifier.source)
        let steps = StepDocument.steps(of: plan, inventory: observed.inventory).filter { ids.contains($0.step.action.device) }
        let history = history.map { history in
            sources.map(DeviceIdentifier.source).flatMap { history.of($0) }.enumerated().sorted { ($0.element.time, $0.offset) < ($1.element.time, $1.offset) }.map(\.element)
        }
        return Shared(
            hostUses: hostUses(of: subject), vmUses: vmUses(of: subject, sources: sources), claims: claims,
            condition: Self.mostPressing(keys.compactMap { plan.devices[$0] }), steps: steps, history: history)
    }

    /// Of several conditions of one device (its claim's and its `<hostdev>`'s):
    /// Blocked before Pending before Ready, the first of each.
    static func mostPressing(_ conditions: [Condition]) -> Condition? {
        conditions.first(where: \.isBlocked) ?? conditions.first { if case .pending = $0 { true } else { false } } ?? conditions.first
    }

    func hostUses(of subject: Subject) -> [HostUse] {
        switch subject {
        case .pci(_, let address): return observed.hostUses.filter { $0.address == address }
        case .scsi(_, let address): return observed.storageUses(ofSCSI: address)
        // The host's uses are found per PCI function: a USB or mediated
        // device's parent carries them (shown with the parent).
        case .usb, .mdev: return []
        }
    }

    /// Each domain element that names the device: the `<hostdev>`s (ours
    /// and hand-written), then every other element (an interface, a disk).
    func vmUses(of subject: Subject, sources: [HostdevEntry.Source]) -> [(vm: String, active: Bool, element: String)] {
        func names(_ use: VMUse) -> Bool {
            switch (subject, use.target) {
            case (.pci(_, let address), _): return use.devices.contains(address)
            case (.usb, .usb(let source)): return sources.contains(source)
            case (.mdev(let uuid), .mdev(let used)): return uuid == used
            case (.scsi(_, let address), .block(let path)):
                let disks = observed.disks(ofSCSI: address)
                return disks.contains { "/dev/" + $0 == path } || observed.diskLinks?[path].map(disks.contains) == true
            default: return false
            }
        }
        var uses: [(String, Bool, String)] = []
        for domain in observed.domains {
            let hostdevs = (domain.isActive ? domain.liveHostdevs : domain.configHostdevs).filter { sources.contains($0.source) }
            for entry in hostdevs { uses.append((domain.name, domain.isActive, entry.isOurs ? "hostdevd's <hostdev>" : "a hand-written <hostdev>")) }
            for use in domain.uses where names(use) && !(use.element.hasPrefix("<hostdev") && !hostdevs.isEmpty) {
                uses.append((domain.name, domain.isActive, use.description))
            }
        }
        return uses
    }

    // MARK: the PCI function beneath

    /// The first PCI function at or above a device in the inventory's tree
    /// (a USB controller, a SCSI host adapter).
    func pciAncestor(of device: HostDevice) -> HostDevice? {
        var current: HostDevice? = device
        var seen = Set<String>()
        while let node = current, seen.insert(node.name).inserted {
            if node.pci != nil { return node }
            current = observed.inventory.device(named: node.parent)
        }
        return nil
    }

    func siblings(of device: HostDevice) -> [HostDevice] {
        guard let pci = device.pci, let group = pci.iommuGroup, let members = observed.inventory.group(group)?.members else { return [] }
        return members.filter { $0 != pci.address }.compactMap { observed.inventory.device(at: $0) }
    }

    func groupJSON(of device: HostDevice) -> JSONText {
        guard let group = device.pci?.iommuGroup else { return .null }
        return .object([
            ("number", .number(group)),
            ("siblings", .array(siblings(of: device).map { sibling in
                .object([
                    ("device", Self.string(DeviceIdentifier.of(sibling))), ("product", Self.string(sibling.product)), ("driver", Self.string(sibling.driver)),
                    ("bridge", .bool(sibling.pci?.isBridge ?? false)),
                ])
            })),
        ])
    }

    func groupText(of device: HostDevice) -> String {
        guard let group = device.pci?.iommuGroup else { return "  IOMMU group: none (no IOMMU, or a device outside any group)\n" }
        let siblings = siblings(of: device)
        var out = "  IOMMU group: \(group)" + (siblings.isEmpty ? ", alone\n" : ", with:\n")
        for sibling in siblings {
            let name = [DeviceIdentifier.of(sibling) ?? sibling.name, sibling.product].compactMap { $0 }.joined(separator: " ")
            out += "                 \(name) on \(sibling.driver ?? "no driver")" + ((sibling.pci?.isBridge ?? false) ? " (bridge)" : "") + "\n"
        }
        return out
    }

    /// The PCI function a USB, mediated or SCSI device hangs off, with its group.
    func pciFunctionJSON(_ device: HostDevice?) -> JSONText {
        guard let device, let pci = device.pci else { return .null }
        return .object([
            ("device", .string(DeviceIdentifier.pci(pci.address))), ("product", Self.string(device.product)), ("driver", Self.string(device.driver)),
            ("iommuGroup", groupJSON(of: device)),
        ])
    }

    /// `controller:  pci 0000:00:14.0 Intel xHCI on xhci_hcd`, then its group's lines.
    func pciFunctionText(_ label: String, _ device: HostDevice?) -> String {
        guard let device, let pci = device.pci else { return "  \(label)none found (not beneath a PCI function this host lists)\n" }
        let name = [DeviceIdentifier.pci(pci.address), device.product].compactMap { $0 }.joined(separator: " ")
        return "  \(label)\(name) on \(device.driver ?? "no driver")\n" + groupText(of: device)
    }

    // MARK: what each kind is

    static func string(_ value: String?) -> JSONText { value.map { .string($0) } ?? .null }

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

    /// `Logitech USB Receiver [046d:c52b]`.
    static func what(_ device: HostDevice) -> String {
        let what = [device.vendor, device.product].compactMap { $0 }.joined(separator: " ")
        let ids = [device.vendorID, device.productID].compactMap { $0.map { $0.hasPrefix("0x") ? String($0.dropFirst(2)) : $0 } }.joined(separator: ":")
        return (what.isEmpty ? "(unknown)" : what) + (ids.isEmpty ? "" : " [\(ids)]")
    }

    func identityFields(_ subject: Subject) -> [(String, JSONText)] {
        let string = Self.string
        switch subject {
        case .pci(let device, let address):
            let entry = ledger.devices[address]
            return [
                ("deviceKind", .string("pci")), ("name", .string(device.name)),
                ("vendor", string(device.vendor)), ("vendorID", string(device.vendorID)),
                ("product", string(device.product)), ("productID", string(device.productID)),
                ("class", string(device.pci?.classCode.map { "0x" + hex($0, 6) })), ("className", string(Self.className(device.pci?.classCode))),
                ("bridge", .bool(device.pci?.isBridge ?? false)),
                ("iommuGroup", groupJSON(of: device)),
                ("driver", .object([("now", string(device.driver)), ("original", string(entry?.originalDriver)), ("boundByHostdevd", .bool(entry != nil))])),
            ]
        case .usb(let device):
            let interfaces = observed.inventory.devices.filter { $0.parent == device.name && $0.capability == .usbInterface }
            return [
                ("deviceKind", .string("usb")), ("name", .string(device.name)),
                ("vendor", string(device.vendor)), ("vendorID", string(device.vendorID)),
                ("product", string(device.product)), ("productID", string(device.productID)),
                ("bus", device.usb?.bus.map { .number($0) } ?? .null), ("deviceNumber", device.usb?.device.map { .number($0) } ?? .null),
                ("port", string(device.sysfsPath.map(SysfsName.last))),
                ("driver", .object([("now", string(device.driver)), ("interfaces", .array(interfaces.map { string($0.driver) }))])),
                ("controller", pciFunctionJSON(pciAncestor(of: device))),
            ]
        case .mdev(let uuid):
            let mdev = mdevFacts(uuid)
            let type = mdev.parent.flatMap { parent in mdev.type.flatMap { observed.mediated?.type($0, of: parent) } }
            return [
                ("deviceKind", .string("mdev")), ("uuid", .string(uuid)), ("exists", .bool(mdev.instance != nil)),
                ("parent", pciFunctionJSON(mdev.parent.flatMap(observed.inventory.device(at:)))),
                ("type", mdev.type.map { id in
                    .object([
                        ("id", .string(id)), ("name", string(type?.name)), ("description", string(type?.description)),
                        ("availableInstances", type?.availableInstances.map { .number($0) } ?? .null), ("deviceAPI", string(type?.deviceAPI)),
                    ])
                } ?? .null),
                ("definedByMdevctl", .bool(mdev.definedByMdevctl)), ("createdByHostdevd", .bool(ledger.mdevs[uuid] != nil)),
            ]
        case .scsi(let device, let address):
            let disks = observed.disks(ofSCSI: address)
            let generic = observed.inventory.devices.first { $0.parent == device.name && $0.capability == .scsiGeneric }?.deviceNode
            return [
                ("deviceKind", .string("scsi")), ("name", .string(device.name)), ("address", .string(address.description)),
                ("vendor", string(device.vendor)), ("product", string(device.product)), ("type", string(device.scsi?.type)),
                ("blockDevices", .array(disks.map { .string("/dev/" + $0) })), ("generic", string(generic)),
                ("stableNames", .array(stableNames(of: disks).map { .string($0) })),
                ("driver", .object([("now", string(device.driver))])),
                ("controller", pciFunctionJSON(pciAncestor(of: device))),
            ]
        }
    }

    func identityText(_ subject: Subject) -> String {
        switch subject {
        case .pci(let device, let address):
            var out = "\(id)  \(device.name)\n  what:        \(Self.what(device))"
            if let code = device.pci?.classCode { out += ", \(Self.className(code) ?? "class") (0x\(hex(code, 6)))" }
            out += "\n" + groupText(of: device)
            let entry = ledger.devices[address]
            out += "  driver:      \(device.driver ?? "none")"
                + (entry.map { "; bound by hostdevd, gives back to \($0.originalDriver ?? "no driver")" } ?? "") + "\n"
            return out
        case .usb(let device):
            var out = "\(id)  \(device.name)\n  what:        \(Self.what(device))"
            if let bus = device.usb?.bus, let number = device.usb?.device { out += ", bus \(bus) device \(number)" }
            if let port = device.sysfsPath.map(SysfsName.last) { out += ", port \(port)" }
            out += "\n" + pciFunctionText("controller:  ", pciAncestor(of: device))
            let interfaces = observed.inventory.devices.filter { $0.parent == device.name && $0.capability == .usbInterface }.compactMap(\.driver)
            out += "  driver:      \(device.driver ?? "none")" + (interfaces.isEmpty ? "" : "; interfaces on \(Array(Set(interfaces)).sorted().joined(separator: ", "))")
                + " (hostdevd moves no USB driver: QEMU takes the device when the VM starts)\n"
            return out
        case .mdev(let uuid):
            let mdev = mdevFacts(uuid)
            let type = mdev.parent.flatMap { parent in mdev.type.flatMap { observed.mediated?.type($0, of: parent) } }
            var out = "\(id)\n  what:        mediated device"
            if let id = mdev.type {
                let description: String? = type?.description.map { $0.split(separator: "\n").joined(separator: ", ") }
                let about: String = [type?.name, description].compactMap { $0 }.joined(separator: ": ")
                out += " of type \(id)" + (about.isEmpty ? "" : " (\(about))")
                if let left = type?.availableInstances { out += ", \(left) more can be created" }
            }
            out += "\n" + pciFunctionText("parent:      ", mdev.parent.flatMap(observed.inventory.device(at:)))
            let origin = mdev.definedByMdevctl ? "defined by mdevctl (persistent; hostdevd never removes it)"
                : ledger.mdevs[uuid] != nil ? "created by hostdevd" : "not created by hostdevd"
            out += "  exists:      " + (mdev.instance != nil ? "yes, \(origin)" : "no (not created yet)" + (mdev.definedByMdevctl ? "; \(origin)" : "")) + "\n"
            return out
        case .scsi(let device, let address):
            var out = "\(id)  \(device.name)\n  what:        "
            out += ([device.vendor, device.product].compactMap { $0 }.joined(separator: " ").nonEmpty ?? "(unknown)") + (device.scsi?.type.map { ", \($0)" } ?? "") + "\n"
            let disks = observed.disks(ofSCSI: address)
            let names = stableNames(of: disks)
            out += "  block:       " + (disks.isEmpty ? "none" : disks.map { "/dev/" + $0 }.joined(separator: ", "))
                + (names.isEmpty ? "" : " (\(names.joined(separator: ", ")))")
            if let generic = observed.inventory.devices.first(where: { $0.parent == device.name && $0.capability == .scsiGeneric })?.deviceNode {
                out += ", generic \(generic)"
            }
            out += "\n" + pciFunctionText("controller:  ", pciAncestor(of: device))
            out += "  driver:      \(device.driver ?? "none") (hostdevd moves no SCSI driver: QEMU opens the generic node)\n"
            return out
        }
    }

    /// `/dev/disk/by-id/…` and `by-path` names of the disks, sorted.
    func stableNames(of disks: [String]) -> [String] {
        (observed.diskLinks ?? [:]).filter { disks.contains($0.value) }.keys.sorted()
    }

    /// A mediated device's parent and type, from the host, the ledger or the claim.
    func mdevFacts(_ uuid: String) -> (instance: MdevInstance?, parent: PCIAddress?, type: String?, definedByMdevctl: Bool) {
        let instance = observed.mediated?.device(uuid)
        let claimed = plan.sourceClaimants[.mdev(uuid)]?.compactMap(\.mdev).first
        let remembered = ledger.mdevs[uuid]
        let definedByMdevctl = instance?.definedByMdevctl == true || observed.mediated?.mdevctlDefined.contains(uuid) == true
        return (instance, instance?.parent ?? remembered?.parent ?? claimed?.parent, instance?.type ?? remembered?.type ?? claimed?.type, definedByMdevctl)
    }

    // MARK: output

    /// Whether the device was found (exit status 0).
    public var isPresent: Bool { if case .found = resolution { true } else { false } }

    public var json: JSONText {
        guard case .found(let subject) = resolution else {
            var fields: [(String, JSONText)] = [("kind", .string("describe")), ("device", .string(id)), ("present", .bool(false))]
            if case .absent(let why, let suggestion) = resolution {
                fields.append(("reason", .string(why)))
                if let suggestion { fields.append(("suggestion", .string(suggestion))) }
            }
            return .object(fields)
        }
        let shared = shared(subject)
        var fields: [(String, JSONText)] = [("kind", .string("describe")), ("device", .string(id)), ("present", .bool(true))]
        fields += identityFields(subject)
        fields.append(("hostUses", .array(shared.hostUses.map { use in
            .object([("kind", .string(use.kind.rawValue)), ("chain", .array(use.chain.map { .string($0) })), ("reason", .string(use.reason))])
        })))
        fields.append(("vmUses", .array(shared.vmUses.map { use in
            .object([("vm", .string(use.vm)), ("active", .bool(use.active)), ("element", .string(use.element))])
        })))
        fields.append(("claims", .array(shared.claims.map { claim in
            .object([("vm", .string(claim.vm)), ("manifest", .string(manifest)), ("via", .string(claim.via)), ("attach", .bool(claim.attach))])
        })))
        fields.append(("condition", shared.condition?.json ?? .null))
        fields.append(("steps", .array(shared.steps.map(\.json))))
        fields.append(("history", shared.history.map { .array($0.map(\.json)) } ?? .null))
        return .object(fields)
    }

    public func text() -> String {
        guard case .found(let subject) = resolution else {
            guard case .absent(let why, let suggestion) = resolution else { return "" }
            return "\(id): \(why)" + (suggestion.map { "; did you mean '\($0)'?" } ?? "") + "\n"
        }
        let shared = shared(subject)
        var out = identityText(subject)
        if shared.hostUses.isEmpty && shared.vmUses.isEmpty { out += "  used by:     nothing hostdevd can see\n" }
        for use in shared.hostUses { out += "  used by:     the host (\(use.kind.rawValue)): \(use.reason)\n" }
        for use in shared.vmUses { out += "  used by:     \(use.active ? "running" : "shut-off") \(use.vm) through \(use.element)\n" }
        if shared.claims.isEmpty { out += "  claimed by:  no binding in \(manifest)\n" }
        for claim in shared.claims { out += "  claimed by:  \(claim.vm) in \(manifest) (\(claim.how))\n" }
        out += "  condition:   \(shared.condition?.description ?? "not considered by the plan (no binding claims it, hostdevd did not bind or create it)")\n"
        for step in shared.steps { out += "  next step:   \(step.step.action.summary): \(step.step.reason)\n" }
        if let entries = shared.history {
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

/// The last component of a kernel path (`/sys/devices/…/usb1/1-4` → `1-4`).
enum SysfsName {
    static func last(_ path: String) -> String { path.split(separator: "/").last.map(String.init) ?? path }
}

extension String {
    /// nil for the empty string.
    var nonEmpty: String? { isEmpty ? nil : self }
}
