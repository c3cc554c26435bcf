/// Decides what must change for the host to match the manifest, and why.
/// Pure: the same manifest, observation and ledger always give the same plan.
public enum Planner {
    public static let vfioDriver = "vfio-pci"
    /// Drivers that leave a group viable for VFIO (they never touch the device).
    static let viableDrivers: Set<String> = ["vfio-pci", "pci-stub", "pcieport"]

    /// `backoff` holds back devices whose last step failed until their retry
    /// time; `now` is the time it is compared with (seconds since the epoch).
    public static func plan(manifest: Manifest, observed: ObservedHost, ledger: Ledger, backoff: Backoff = Backoff(), now: Double = 0) -> Plan {
        var planning = Planning(manifest: manifest, observed: observed, ledger: ledger, backoff: backoff, now: now)
        planning.run()
        return planning.result()
    }
}

/// One device a binding owns: claimed itself, or an IOMMU group sibling.
struct Ownership: Equatable {
    var address: PCIAddress
    var vm: String
    /// Attached to the VM (false: held on vfio-pci as a group placeholder).
    var attach: Bool
    /// The claimed device this one came with (itself when claimed directly).
    var via: PCIAddress
    var group: Int?
}

struct Planning {
    let manifest: Manifest
    let observed: ObservedHost
    let ledger: Ledger
    let backoff: Backoff
    let now: Double
    let inventory: Inventory
    let bindingByVM: [String: Binding]
    let domainByName: [String: DomainState]
    let liveUsers: [PCIAddress: String]
    /// Devices an active domain uses through an element other than
    /// hostdevd's own `<hostdev>`s (interface, disk, scsi, mdev, …).
    let vmUses: [PCIAddress: (vm: String, use: VMUse)]

    var steps: [Step] = []
    var bindingConditions: [String: Condition] = [:]
    var deviceConditions: [String: Condition] = [:]
    var notes: [String] = []
    /// PCI ownership after conflicts and safety: what the plan acts on.
    var owned: [PCIAddress: Ownership] = [:]
    /// USB and mediated devices to attach, per VM.
    var usbEntries: [String: [HostdevEntry]] = [:]
    /// SCSI devices the manifest asks for, in manifest order.
    var scsiClaims: [(vm: String, selector: DeviceSelector)] = []
    /// SR-IOV VFs the manifest asks for, resolved to their PCI functions, in manifest order.
    var vfClaims: [(vm: String, spec: VFSpec, vf: PCIAddress)] = []
    /// The `<interface type='hostdev'>` entries of claimed VFs, by VF: what
    /// the domain gets instead of a `<hostdev>`.
    var vfEntries: [PCIAddress: HostdevEntry] = [:]
    /// Mediated devices the manifest asks for, in manifest order.
    var mdevClaims: [(vm: String, spec: MdevSpec)] = []
    /// Every PCI function a binding claims (or takes as a group sibling),
    /// by VM, before conflicts and safety: a mediated device's parent must
    /// not be among them.
    var claimedForPassthrough: [PCIAddress: String] = [:]
    /// Domain entries left exactly as they are (their claim is blocked).
    var frozenSources = Set<HostdevEntry.Source>()
    /// Devices left exactly as they are (conflicts, blocked groups).
    var frozen = Set<PCIAddress>()
    /// Every device condition key that concerns a VM's binding.
    var keysOfVM: [String: Set<String>] = [:]
    /// Devices `hostdevctl release` gave back under this manifest, of every kind.
    var releasedSources = Set<HostdevEntry.Source>()
    /// The PCI functions among them.
    var releasedByHand = Set<PCIAddress>()
    /// Host-use kinds the manifest hands over, by claimed device (`force:`).
    var forced: [PCIAddress: Set<HandOver>] = [:]
    /// GPUs whose console is handed over before they are bound.
    var consoleHandovers = Set<PCIAddress>()
    /// Every binding that claims each PCI device, before conflicts and safety.
    var claimants: [PCIAddress: [Claimant]] = [:]
    /// Every binding that claims each USB, mediated or SCSI device, by its resolved source.
    var sourceClaimants: [HostdevEntry.Source: [SourceClaimant]] = [:]

    mutating func recordClaim(of source: HostdevEntry.Source, by vm: String, as selector: DeviceSelector) {
        var spec: MdevSpec?
        if case .mdev(let claimed) = selector { spec = claimed }
        sourceClaimants[source, default: []].append(SourceClaimant(vm: vm, selector: selector.description, mdev: spec))
    }

    /// `ObservedHost.isActive`, through the index: the planner asks per binding.
    func isActive(_ vm: String) -> Bool? { ObservedHost.isActive(domainByName[vm], coverage: observed.coverage) }

    init(manifest: Manifest, observed: ObservedHost, ledger: Ledger, backoff: Backoff, now: Double) {
        self.manifest = manifest
        self.observed = observed
        self.ledger = ledger
        self.backoff = backoff
        self.now = now
        self.inventory = observed.inventory
        self.bindingByVM = Dictionary(manifest.bindings.map { ($0.vm, $0) }, uniquingKeysWith: { a, _ in a })
        self.domainByName = Dictionary(observed.domains.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var liveUsers: [PCIAddress: String] = [:]
        var vmUses: [PCIAddress: (vm: String, use: VMUse)] = [:]
        for domain in observed.domains where domain.isActive {
            for entry in domain.liveHostdevs { if case .pci(let address) = entry.source { liveUsers[address] = liveUsers[address] ?? domain.name } }
            for use in domain.uses {
                for address in use.devices {
                    liveUsers[address] = liveUsers[address] ?? domain.name
                    vmUses[address] = vmUses[address] ?? (domain.name, use)
                }
            }
        }
        self.liveUsers = liveUsers
        self.vmUses = vmUses
        self.releasedSources = Set(ledger.released.filter { $0.value == manifest.fingerprint }.keys)
        self.releasedByHand = Set(releasedSources.compactMap { if case .pci(let address) = $0 { address } else { nil } })
    }

    // Lookups go through the inventory's own index: a plan after a hotplug
    // event must not re-index a host of thousands of functions.
    func device(_ address: PCIAddress) -> HostDevice? { inventory.device(at: address) }
    func driver(_ address: PCIAddress) -> String? { device(address)?.driver }
    func isBridge(_ address: PCIAddress) -> Bool { device(address)?.pci?.isBridge ?? false }

    /// Non-bridge members of a group: the devices VFIO needs on vfio-pci.
    func endpoints(ofGroup group: Int) -> [PCIAddress] {
        (inventory.group(group)?.members ?? []).filter { !isBridge($0) }
    }

    mutating func block(_ key: String, _ why: String) { deviceConditions[key] = .blocked(why) }

    // MARK: the rules, in order

    mutating func run() {
        if let intent = ledger.intent {
            notes.append("a step was interrupted (\(intent.summary)); this plan finishes or undoes it")
        }
        let claims = resolveClaims()
        let candidates = expandGroups(claims)
        resolveConflicts(candidates)
        applySafety()
        checkViability()
        planReleasesByHand()
        planDrivers()
        planOrphans()
        planMediatedDevices()
        planSCSI()
        planDomains()
        planVirtualFunctions()
        planMdevReleasesByHand()
        planMdevOrphans()
        planSRIOV()
        giveConsolesBack()
        requireVFIO()
        holdBack()
        order()
    }

    // MARK: unknown facts

    /// Why it is not known whether `vm` is active, or nil when it is known.
    func unknownActivity(_ vm: String) -> String? {
        guard isActive(vm) == nil else { return nil }
        switch observed.coverage {
        case .all: return nil
        case .unreachable(let why): return "libvirt unreachable (\(why)): cannot tell whether \(vm) runs"
        case .hook(let other): return "only \(other)'s state is known here (libvirt's hook): cannot tell whether \(vm) runs"
        }
    }

    /// Why it is not known which VMs use devices (for a move made for
    /// `vm`), or nil when every domain is known. In `vm`'s own hook, libvirt
    /// is starting or has stopped `vm` with these devices: that is known.
    func unknownVMUses(for vm: String?) -> String? {
        switch observed.coverage {
        case .all: return nil
        case .hook(let hooked) where hooked == vm: return nil
        case .hook(let hooked): return "only \(hooked)'s state is known here (libvirt's hook): cannot tell whether a VM uses it"
        case .unreachable(let why): return "libvirt unreachable (\(why)): cannot tell whether a VM uses it"
        }
    }

    /// Each claim resolved against the inventory.
    mutating func resolveClaims() -> [(Binding, DeviceClaim, PCIAddress)] {
        var resolved: [(Binding, DeviceClaim, PCIAddress)] = []
        // The ID index costs a pass over the host: only when a claim needs it.
        let selectors = manifest.bindings.flatMap(\.devices).map(\.selector)
        var pciByID: [UInt32: [PCIAddress]] = [:]
        if selectors.contains(where: { if case .pciID = $0 { true } else { false } }) {
            for device in inventory.devices {
                guard let address = device.pci?.address, let vendor = device.vendorID.flatMap({ UInt16(hexText: $0) }),
                    let product = device.productID.flatMap({ UInt16(hexText: $0) })
                else { continue }
                pciByID[UInt32(vendor) << 16 | UInt32(product), default: []].append(address)
            }
            for key in pciByID.keys { pciByID[key]!.sort() }
        }
        for binding in manifest.bindings {
            for claim in binding.devices {
                let key = claim.selector.description
                keysOfVM[binding.vm, default: []].insert(key)
                switch claim.selector {
                case .pci(let address):
                    guard let found = device(address) else {
                        deviceConditions[key] = .pending("\(address) is not present on this host")
                        continue
                    }
                    if found.pci?.isBridge == true {
                        block(key, "\(address) is a PCI bridge; bridges are never detached or assigned")
                        continue
                    }
                    resolved.append((binding, claim, address))
                case .pciID(let vendor, let product, let index):
                    let matches = pciByID[UInt32(vendor) << 16 | UInt32(product)] ?? []
                    if let address = pick(matches, index: index, key: key, described: { $0.description }) {
                        resolved.append((binding, claim, address))
                    }
                case .usbID(let vendor, let product, let index):
                    let matches = inventory.usbDevices(vendor: vendor, product: product)
                    if pick(matches, index: index, key: key, described: { $0.name }) != nil {
                        let source: HostdevEntry.Source = index == nil
                            ? .usbID(vendor: vendor, product: product)
                            : .usbAddress(bus: matches[index!].usb?.bus ?? 0, device: matches[index!].usb?.device ?? 0)
                        usbEntries[binding.vm, default: []].append(.ours(source))
                        recordClaim(of: source, by: binding.vm, as: claim.selector)
                        deviceConditions[key] = .ready
                    }
                case .usbAddress(let bus, let number):
                    if inventory.usbDevice(bus: bus, device: number) != nil {
                        usbEntries[binding.vm, default: []].append(.ours(.usbAddress(bus: bus, device: number)))
                        recordClaim(of: .usbAddress(bus: bus, device: number), by: binding.vm, as: claim.selector)
                        deviceConditions[key] = .ready
                    } else {
                        deviceConditions[key] = .pending("no USB device \(bus):\(number) on this host")
                    }
                case .mdev(let spec):
                    mdevClaims.append((binding.vm, spec))
                    recordClaim(of: .mdev(spec.uuid), by: binding.vm, as: claim.selector)
                case .scsi, .scsiPath:
                    scsiClaims.append((binding.vm, claim.selector))
                case .vf(let spec):
                    if let vf = resolveVF(spec, for: binding.vm) { resolved.append((binding, claim, vf)) }
                }
            }
        }
        return resolved
    }

    /// One of several ID matches: `index` picks, otherwise exactly one must match.
    mutating func pick<T>(_ matches: [T], index: Int?, key: String, described: (T) -> String) -> T? {
        if let index {
            guard index < matches.count else {
                deviceConditions[key] = .pending("index \(index) asked, but \(matches.count) device(s) match")
                return nil
            }
            return matches[index]
        }
        switch matches.count {
        case 0:
            deviceConditions[key] = .pending("no device with this ID is present")
            return nil
        case 1: return matches[0]
        default:
            block(key, "\(matches.count) devices match (\(matches.map(described).joined(separator: ", "))); add 'index: N' (0 is the first by address)")
            return nil
        }
    }

    /// `attach` and `hold` take the whole IOMMU group; `device` the device alone.
    mutating func expandGroups(_ claims: [(Binding, DeviceClaim, PCIAddress)]) -> [Ownership] {
        var result: [Ownership] = []
        for (binding, claim, address) in claims {
            if !claim.force.isEmpty { forced[address, default: []].formUnion(claim.force) }
            let group = inventory.groupNumber(of: address)
            keysOfVM[binding.vm, default: []].insert("pci \(address)")
            if claim.group != .device, let group {
                for member in endpoints(ofGroup: group) { keysOfVM[binding.vm, default: []].insert("pci \(member)") }
            }
            result.append(Ownership(address: address, vm: binding.vm, attach: true, via: address, group: group))
            claimedForPassthrough[address] = claimedForPassthrough[address] ?? binding.vm
            guard claim.group != .device, let group else { continue }
            for sibling in endpoints(ofGroup: group) where sibling != address {
                claimedForPassthrough[sibling] = claimedForPassthrough[sibling] ?? binding.vm
                result.append(Ownership(address: sibling, vm: binding.vm, attach: claim.group == .attach, via: address, group: group))
            }
        }
        for ownership in result {
            claimants[ownership.address, default: []].append(Claimant(vm: ownership.vm, via: ownership.via, attach: ownership.attach))
        }
        return result
    }

    /// A device owned by two bindings, or a group split between two VMs, is a
    /// conflict: blocked for all of them; everything else proceeds.
    mutating func resolveConflicts(_ candidates: [Ownership]) {
        var byAddress: [PCIAddress: [Ownership]] = [:]
        for candidate in candidates { byAddress[candidate.address, default: []].append(candidate) }
        var vmsOfGroup: [Int: Set<String>] = [:]
        for candidate in candidates { if let group = candidate.group { vmsOfGroup[group, default: []].insert(candidate.vm) } }
        for (address, owners) in byAddress {
            let vms = Set(owners.map(\.vm))
            if vms.count > 1 {
                frozen.insert(address)
                block("pci \(address)", "claimed by more than one VM (\(vms.sorted().joined(separator: ", "))); a device belongs to one VM")
                continue
            }
            if let group = owners[0].group, let groupVMs = vmsOfGroup[group], groupVMs.count > 1 {
                frozen.insert(address)
                block("pci \(address)", "IOMMU group \(group) is split between VMs \(groupVMs.sorted().joined(separator: " and ")); VFIO gives a group to one VM only")
                continue
            }
            // A device claimed directly wins over being a sibling of another claim.
            var chosen = owners.first { $0.via == address } ?? owners[0]
            chosen.attach = owners.contains { $0.attach }
            owned[address] = chosen
        }
    }

    /// Devices the host needs are never detached, and neither is any member
    /// of their group that the same VM owns (the group moves as one).
    mutating func applySafety() {
        var reasons: [PCIAddress: String] = [:]
        for address in manifest.host.protect { reasons[address] = "\(address) is needed by the host: listed in host.protect" }
        for use in observed.hostUses where reasons[use.address] == nil {
            // A use the operator hands over for this device does not block it.
            if let ownership = owned[use.address], let kind = HandOver(rawValue: use.kind.rawValue), use.kind.isForcible,
                forced[ownership.via]?.contains(kind) == true
            {
                if use.kind == .console { consoleHandovers.insert(use.address) }
                notes.append("\(use.reason): handed over to \(ownership.vm) (force: [\(kind.rawValue)])")
                continue
            }
            // Reasons that name the chain start at the device itself.
            reasons[use.address] = use.reason.hasPrefix(use.address.description)
                ? "needed by the host: \(use.reason)" : "\(use.address) is needed by the host: \(use.reason)"
        }
        // A device another VM uses while it runs is never moved nor given away.
        for (address, ownership) in owned {
            guard let user = vmUses[address], user.vm != ownership.vm else { continue }
            reasons[address] = reasons[address] ?? "running \(user.vm) holds \(address) through \(user.use.description)"
        }
        var units: [String: [PCIAddress]] = [:]
        for (address, ownership) in owned {
            units[ownership.group.map { "\(ownership.vm)#\($0)" } ?? "\(ownership.vm)@\(address)", default: []].append(address)
        }
        for (_, members) in units.sorted(by: { $0.key < $1.key }) {
            guard let critical = members.sorted().first(where: { reasons[$0] != nil }) else { continue }
            for member in members {
                let why = critical == member
                    ? reasons[critical]!
                    : "IOMMU group \(owned[member]?.group.map(String.init) ?? "?") holds \(critical), which cannot move (\(reasons[critical]!)); the group moves as one"
                owned[member] = nil
                frozen.insert(member)
                block("pci \(member)", why)
            }
        }
    }

    /// `group: device` is refused while a sibling is on a host driver: QEMU
    /// would fail with the seed's "group N is not viable".
    mutating func checkViability() {
        for address in owned.keys.sorted() {
            guard let ownership = owned[address], let group = ownership.group else { continue }
            let strangers = endpoints(ofGroup: group).filter { $0 != address && owned[$0] == nil }
            let onHost = strangers.filter { driver($0).map { !Planner.viableDrivers.contains($0) } ?? false }
            guard !onHost.isEmpty else { continue }
            owned[address] = nil
            frozen.insert(address)
            let list = onHost.map { "\($0) (\(driver($0) ?? "no driver"))" }.joined(separator: ", ")
            block("pci \(address)",
                "group \(group) is not viable: its other devices \(list) are on host drivers; claim it with group: attach or hold, or bind them to vfio-pci")
        }
    }

    /// A running domain that has this PCI device in its live XML.
    func liveUser(_ address: PCIAddress) -> String? { liveUsers[address] }

    /// `hostdevctl release`: back to the host driver now, whatever the
    /// manifest says, until the manifest next changes. Only a device on
    /// vfio-pci is released; one on any other driver is left where it is.
    mutating func planReleasesByHand() {
        for address in releasedByHand.sorted() {
            let key = "pci \(address)"
            let waitForEdit = "bound again after the next manifest edit"
            guard let current = device(address)?.driver, current == Planner.vfioDriver else {
                deviceConditions[key] = .pending("released by hand (hostdevctl release); \(waitForEdit)")
                continue
            }
            if let unknown = unknownVMUses(for: nil) {
                deviceConditions[key] = .pending("released by hand, but \(unknown); not released")
                continue
            }
            if let user = liveUser(address),
                domainByName[user]?.liveHostdevs.contains(where: { $0.source == .pci(address) && !$0.isOurs }) == true
            {
                deviceConditions[key] = .blocked("released by hand, but running \(user) holds it through a hand-written <hostdev>; remove it there first")
                continue
            }
            let original = ledger.devices[address]?.originalDriver
            steps.append(Step(.restore(address, driver: original), reason: "released by hand (hostdevctl release)"))
            deviceConditions[key] = .pending("released by hand to \(original ?? "its host driver"); \(waitForEdit)")
        }
    }

    mutating func planDrivers() {
        for (address, ownership) in owned.sorted(by: { $0.key < $1.key }) {
            guard let binding = bindingByVM[ownership.vm] else { continue }
            let current = driver(address)
            let key = "pci \(address)"
            if releasedByHand.contains(address) { continue }
            let wantVFIO: Bool
            if binding.release == .never {
                wantVFIO = true
            } else if let active = isActive(binding.vm) {
                wantVFIO = active
            } else {
                deviceConditions[key] = .pending("\(unknownActivity(binding.vm)!); nothing bound or released")
                continue
            }
            if wantVFIO {
                if current != Planner.vfioDriver, let unknown = unknownVMUses(for: ownership.vm) {
                    deviceConditions[key] = .pending("\(unknown); not bound")
                } else if current != Planner.vfioDriver {
                    let why = ownership.via == address
                        ? "claimed by \(ownership.vm)"
                        : "IOMMU group \(ownership.group.map(String.init) ?? "?") sibling of \(ownership.via), owned by \(ownership.vm)"
                            + (ownership.attach ? "" : " (held, not attached)")
                    if consoleHandovers.contains(address) {
                        steps.append(Step(.releaseConsole(address), reason: "single-GPU passthrough: force: [console] for \(ownership.vm)"))
                    }
                    steps.append(Step(.bind(address, driver: Planner.vfioDriver, vm: ownership.vm), reason: why))
                    deviceConditions[key] = .pending("to be bound to vfio-pci for \(ownership.vm)")
                } else {
                    deviceConditions[key] = deviceConditions[key] ?? .ready
                }
            } else if current == Planner.vfioDriver, let entry = ledger.devices[address] {
                if let unknown = unknownVMUses(for: ownership.vm) {
                    deviceConditions[key] = .pending("\(unknown); not released")
                    continue
                }
                if let user = liveUser(address) {
                    deviceConditions[key] = .pending("in use by running \(user); released when it stops")
                    continue
                }
                steps.append(Step(.restore(address, driver: entry.originalDriver),
                    reason: "\(ownership.vm) is shut off and its binding says release: onStop"))
                deviceConditions[key] = .pending("to be released to \(entry.originalDriver ?? "its host driver")")
            } else {
                deviceConditions[key] = deviceConditions[key] ?? .ready
            }
        }
    }

    /// Devices this tool bound that nothing owns any more go back to the
    /// driver they had; devices on vfio-pci that it did not bind are foreign.
    mutating func planOrphans() {
        for (address, entry) in ledger.devices.sorted(by: { $0.key < $1.key })
        where owned[address] == nil && !frozen.contains(address) && !releasedByHand.contains(address) {
            let key = "pci \(address)"
            guard device(address) != nil else {
                steps.append(Step(.restore(address, driver: entry.originalDriver), reason: "\(address) is gone from the host; forget it"))
                continue
            }
            guard manifest.host.orphans == .release else {
                notes.append("\(address) is an orphan kept on vfio-pci (host.orphans: keep)")
                continue
            }
            // Any VM may hold an orphan (a binding removed while it ran).
            if let unknown = unknownVMUses(for: nil) {
                deviceConditions[key] = .pending("orphan: \(unknown); not released")
                continue
            }
            if let user = liveUser(address) {
                deviceConditions[key] = .pending("orphan in use by running \(user); released when it stops")
                continue
            }
            if driver(address) == Planner.vfioDriver || driver(address) == nil {
                steps.append(Step(.restore(address, driver: entry.originalDriver),
                    reason: "no binding claims it any more (was \(entry.vm ?? "unowned")); back to \(entry.originalDriver ?? "its host driver")"))
            } else {
                // Someone else moved it already: just forget it.
                steps.append(Step(.restore(address, driver: driver(address)), reason: "already back on \(driver(address)!); forget it"))
            }
        }
        for device in inventory.devices where device.driver == Planner.vfioDriver {
            guard let address = device.pci?.address, owned[address] == nil, ledger.devices[address] == nil,
                !releasedByHand.contains(address)
            else { continue }
            notes.append("\(address) is on vfio-pci but was not bound by hostdevd (foreign): left alone")
        }
    }

    /// The domains' `<hostdev>` entries this tool manages, config and live.
    mutating func planDomains() {
        var desired: [String: [HostdevEntry]] = usbEntries
        for (address, ownership) in owned.sorted(by: { $0.key < $1.key }) where ownership.attach && !releasedByHand.contains(address) {
            desired[ownership.vm, default: []].append(vfEntries[address] ?? .ours(.pci(address)))
        }
        for binding in manifest.bindings {
            guard observed.libvirtReachable else {
                bindingConditions[binding.vm] = .pending("libvirt is not reachable; domain config not checked")
                continue
            }
            guard let domain = domainByName[binding.vm] else {
                let hint = Suggestion.closest(to: binding.vm, among: domainByName.keys).map { "; did you mean '\($0)'?" } ?? ""
                bindingConditions[binding.vm] = .pending("VM '\(binding.vm)' is not defined in libvirt\(hint); its devices are reserved per 'release'")
                continue
            }
            if !domain.persistent { notes.append("\(binding.vm) is transient: only its live XML can change") }
        }
        guard observed.libvirtReachable else { return }
        for domain in observed.domains {
            let want = desired[domain.name] ?? []
            let binding = bindingByVM[domain.name]
            // Hand-written entries, by the physical device they name: a USB
            // device written by ID and by bus/device is one device.
            let handWritten = Set(domain.configHostdevs.filter { !$0.isOurs }.map { physical($0.source) })
                .union(domain.uses.compactMap { use -> HostdevEntry.Source? in
                    if case .pci(let address) = use.target, use.element.hasPrefix("<interface") { return .pci(address) }
                    return nil
                })
            for entry in domain.configHostdevs where entry.managed && !entry.isOurs {
                if case .pci(let address) = entry.source, owned[address]?.vm == domain.name {
                    notes.append("\(domain.name) has a hand-written managed='yes' <hostdev> for \(address): libvirt gives it back to the host driver when \(domain.name) stops")
                }
            }
            let haveOurs = domain.configHostdevs.filter(\.isOurs)
            if domain.persistent {
                for entry in want where !haveOurs.contains(where: { $0.isSameElement(as: entry) }) {
                    if handWritten.contains(physical(entry.source)) {
                        notes.append("\(domain.name) already has a hand-written <hostdev> for \(entry); hostdevd leaves it as it is")
                        continue
                    }
                    steps.append(Step(.attachConfig(vm: domain.name, entry), reason: "\(entry) belongs to \(domain.name) per the manifest"))
                    if case .ready = deviceConditions[entry.description] ?? .ready {
                        deviceConditions[entry.description] = .pending("to be added to \(domain.name)'s config")
                    }
                }
                for entry in haveOurs where !want.contains(where: { $0.isSameElement(as: entry) }) {
                    if case .pci(let address) = entry.source, frozen.contains(address) { continue }
                    if frozenSources.contains(entry.source) { continue }
                    steps.append(Step(.detachConfig(vm: domain.name, entry), reason: "no longer claimed by \(domain.name)"))
                }
            }
            guard domain.isActive else { continue }
            let liveOurs = domain.liveHostdevs.filter(\.isOurs)
            let liveHand = Set(domain.liveHostdevs.filter { !$0.isOurs }.map(\.source))
            if binding?.live == true {
                for entry in want where !liveOurs.contains(where: { $0.isSameElement(as: entry) }) && !liveHand.contains(entry.source) {
                    steps.append(Step(.attachLive(vm: domain.name, entry), reason: "\(domain.name) runs and its binding has live: true"))
                }
            }
            for entry in liveOurs where !want.contains(where: { $0.isSameElement(as: entry) }) {
                if case .pci(let address) = entry.source, frozen.contains(address) { continue }
                if frozenSources.contains(entry.source) { continue }
                if releasedSources.contains(entry.source) {
                    steps.append(Step(.detachLive(vm: domain.name, entry), reason: "released by hand (hostdevctl release --force) while \(domain.name) runs"))
                } else if binding?.live == true || (binding == nil && ledger.liveVMs.contains(domain.name)) {
                    steps.append(Step(.detachLive(vm: domain.name, entry), reason: "no longer claimed by running \(domain.name), whose binding has live: true"))
                } else {
                    // Removing a claim is gentle: a typo in a VM name must not
                    // pull a GPU out of a running guest.
                    let why = binding == nil
                        ? "its binding is gone from the manifest, which never said live: true"
                        : "its binding has live: false"
                    deviceConditions[entry.description] = .pending("still assigned to running \(domain.name) (\(why)); released when \(domain.name) stops")
                }
            }
        }
        // Releases that wait on a live user unplugged in this same plan can go ahead.
        let unplugged = Set(steps.compactMap { step -> PCIAddress? in
            if case .detachLive(_, let entry) = step.action, case .pci(let address) = entry.source { return address }
            return nil
        })
        for address in unplugged.sorted()
        where ledger.devices[address] != nil && owned[address] == nil && driver(address) == Planner.vfioDriver && !releasedByHand.contains(address) {
            if !steps.contains(where: { if case .restore(address, _) = $0.action { return true } else { return false } }),
                manifest.host.orphans == .release
            {
                steps.append(Step(.restore(address, driver: ledger.devices[address]!.originalDriver),
                    reason: "unplugged and claimed by no binding; back to \(ledger.devices[address]!.originalDriver ?? "its host driver")"))
                deviceConditions["pci \(address)"] = .pending("to be unplugged, then released")
            }
        }
    }

    mutating func planSRIOV() {
        for setting in manifest.host.sriov {
            let key = "sriov \(setting.pf)"
            guard let pf = device(setting.pf) else {
                deviceConditions[key] = .pending("\(setting.pf) is not present")
                continue
            }
            guard let sriov = pf.pci?.sriov else {
                block(key, "\(setting.pf) has no SR-IOV capability (no sriov_totalvfs)")
                continue
            }
            guard setting.numVFs <= sriov.totalVFs else {
                block(key, "numvfs \(setting.numVFs) is more than \(setting.pf) supports (\(sriov.totalVFs))")
                continue
            }
            guard setting.numVFs != sriov.numVFs else {
                deviceConditions[key] = .ready
                continue
            }
            if let unknown = unknownVMUses(for: nil) {
                deviceConditions[key] = .pending("\(unknown) of its VFs; numvfs not changed")
                continue
            }
            let busy = sriov.virtualFunctions.filter { owned[$0] != nil || ledger.devices[$0] != nil || liveUser($0) != nil }
            if !busy.isEmpty {
                block(key, "changing numvfs removes VFs that are in use (\(busy.map(\.description).joined(separator: ", "))); release them first")
                continue
            }
            steps.append(Step(.setNumVFs(pf: setting.pf, count: setting.numVFs),
                reason: "host.sriov asks for \(setting.numVFs) VFs (now \(sriov.numVFs))"))
            deviceConditions[key] = .pending("numvfs \(sriov.numVFs) → \(setting.numVFs)")
        }
    }

    /// A USB source by the physical device it names: by bus/device when the
    /// inventory can tell (an ID that matches exactly one device), so that
    /// either form of the same device compares equal.
    func physical(_ source: HostdevEntry.Source) -> HostdevEntry.Source {
        guard case .usbID(let vendor, let product) = source else { return source }
        let matches = inventory.devices.filter { $0.capability == .usbDevice && $0.hasID(vendor: vendor, product: product) }
        guard matches.count == 1, let bus = matches[0].usb?.bus, let device = matches[0].usb?.device else { return source }
        return .usbAddress(bus: bus, device: device)
    }

    /// A GPU whose console was handed over gets it back right after it
    /// returns to its host driver.
    mutating func giveConsolesBack() {
        for step in steps {
            guard case .restore(let address, _) = step.action, ledger.consoles[address] != nil else { continue }
            steps.append(Step(.restoreConsole(address), reason: "\(address) is back on its host driver"))
        }
    }

    /// Without the vfio-pci driver every bind would fail after its read-back
    /// times out: say so before any step instead.
    mutating func requireVFIO() {
        guard observed.vfioLoaded == false else { return }
        let binding = Set(steps.compactMap { step -> String? in
            if case .bind = step.action { return step.action.deviceKey }
            return nil
        })
        guard !binding.isEmpty else { return }
        steps.removeAll { binding.contains($0.action.deviceKey) }
        for key in binding {
            block(key, "the vfio-pci driver is not loaded: modprobe vfio-pci (hostdevd.service loads it when it starts; list it in /etc/modules-load.d/ to load it at boot)")
        }
    }

    /// Steps for devices whose last attempt failed wait for their retry time.
    mutating func holdBack() {
        guard !backoff.retries.isEmpty else { return }
        steps.removeAll { step in
            let key = step.action.deviceKey
            guard let retry = backoff.waiting(key, now: now) else { return false }
            deviceConditions[key] = .pending(
                "retrying at \(clockTime(retry.notBefore)) (attempt \(retry.attempt + 1)); last error: \(retry.lastError)")
            return true
        }
    }

    /// Unplug before unbind, bind before plug; by address within a kind.
    mutating func order() {
        func rank(_ action: Action) -> Int {
            switch action {
            case .detachLive: return 0
            case .detachConfig: return 1
            case .restore, .removeMdev, .restoreVF: return 2
            case .restoreConsole: return 3
            case .setNumVFs: return 4
            case .releaseConsole: return 5
            case .bind, .createMdev, .configureVF: return 6
            case .attachConfig: return 7
            case .attachLive: return 8
            }
        }
        steps = steps.enumerated().sorted { (rank($0.element.action), $0.offset) < (rank($1.element.action), $1.offset) }.map(\.element)
    }

    // MARK: conditions

    func result() -> Plan {
        var bindings = bindingConditions
        var stepsOfVM: [String: Int] = [:]
        for step in steps {
            switch step.action {
            case .bind(_, _, let vm), .attachConfig(let vm, _), .detachConfig(let vm, _), .attachLive(let vm, _), .detachLive(let vm, _),
                .createMdev(_, let vm), .configureVF(_, _, _, let vm):
                stepsOfVM[vm, default: 0] += 1
            case .restoreVF(let target, _, _):
                if let vm = owned[target.vf]?.vm { stepsOfVM[vm, default: 0] += 1 }
            case .restore(let address, _):
                if let vm = owned[address]?.vm { stepsOfVM[vm, default: 0] += 1 }
            case .removeMdev(let spec, _):
                if let vm = mdevClaims.first(where: { $0.spec.uuid == spec.uuid })?.vm { stepsOfVM[vm, default: 0] += 1 }
            case .setNumVFs, .releaseConsole, .restoreConsole: break
            }
        }
        for binding in manifest.bindings {
            let keys = (keysOfVM[binding.vm] ?? []).sorted()
            let conditions = keys.compactMap { deviceConditions[$0] }
            let blocked = conditions.compactMap { if case .blocked(let why) = $0 { return why } else { return nil } }
            if !blocked.isEmpty {
                bindings[binding.vm] = .blocked(Array(Set(blocked)).sorted().joined(separator: "; "))
                continue
            }
            if bindings[binding.vm] != nil { continue }
            if let count = stepsOfVM[binding.vm], count > 0 {
                bindings[binding.vm] = .pending("\(count) step(s) to apply")
            } else if let waiting = conditions.first(where: { if case .pending = $0 { return true } else { return false } }) {
                bindings[binding.vm] = waiting
            } else {
                bindings[binding.vm] = .ready
            }
        }
        var plan = Plan(steps: steps, bindings: bindings, devices: deviceConditions, notes: notes)
        plan.claimants = claimants
        plan.sourceClaimants = sourceClaimants
        for (address, ownership) in owned { if let kinds = forced[ownership.via] { plan.handedOver[address] = kinds } }
        // A live binding is remembered while its VM may still hold our entries.
        plan.liveVMs = Set(manifest.bindings.filter(\.live).map(\.vm)).union(ledger.liveVMs.filter { vm in
            guard observed.coverage == .all else { return true }
            return domainByName[vm]?.liveHostdevs.contains(where: \.isOurs) ?? false
        })
        return plan
    }
}
