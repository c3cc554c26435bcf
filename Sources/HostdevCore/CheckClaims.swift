/// `hostdevctl check --manifest`: will each claim of the manifest work on
/// this host? One finding (pass, warn or fail, with a remedy) per fact a
/// claim needs, from the same observation the planner plans with.
extension CheckReport {
    /// Findings for every claim of `manifest` on `observed`: PCI functions
    /// (`pci` when none matches, then `iommu-group`) and SR-IOV VFs (`vf`,
    /// then `iommu-group`), mediated devices (`mdev`),
    /// SCSI devices (`scsi`) and USB devices (`usb`).
    public static func claims(_ manifest: Manifest, observed: ObservedHost) -> [Finding] {
        var results: [Finding] = []
        var checkedGroups = Set<Int>()
        /// A group is reported once, for the first claim in it.
        func viability(_ address: PCIAddress, _ claim: DeviceClaim, vm: String) {
            guard let group = observed.inventory.device(at: address)?.pci?.iommuGroup, checkedGroups.insert(group).inserted else { return }
            results.append(groupViability(of: address, group: group, mode: claim.group, vm: vm, inventory: observed.inventory))
        }
        for binding in manifest.bindings {
            for claim in binding.devices {
                switch claim.selector {
                case .pci, .pciID:
                    switch pciFunction(claimedBy: claim.selector, vm: binding.vm, in: observed.inventory) {
                    case .success(let address): viability(address, claim, vm: binding.vm)
                    case .failure(let why): results.append(why.finding)
                    }
                case .vf(let spec):
                    let (findings, vf) = virtualFunction(spec, claim: claim, vm: binding.vm, manifest: manifest, observed: observed)
                    results += findings
                    if let vf { viability(vf, claim, vm: binding.vm) }
                case .mdev(let spec):
                    results.append(mediatedDevice(spec, vm: binding.vm, mediated: observed.mediated, inventory: observed.inventory))
                case .scsi, .scsiPath:
                    results.append(scsiDevice(claim.selector, vm: binding.vm, observed: observed))
                case .usbID, .usbAddress:
                    results.append(usbDevice(claim.selector, vm: binding.vm, inventory: observed.inventory))
                }
            }
        }
        return results
    }

    /// The PCI function a claim names: by address, or by vendor/device ID
    /// (with `index` among several, by address, as the planner picks); or
    /// the `pci` finding that says why there is none to check.
    static func pciFunction(claimedBy selector: DeviceSelector, vm: String, in inventory: Inventory) -> Result<PCIAddress, FindingError> {
        func failure(_ what: String, _ remedy: String, device: String? = nil) -> Result<PCIAddress, FindingError> {
            .failure(FindingError(Finding(.fail, check: "pci", "\(selector) (\(vm)): \(what)", remedy: remedy, device: device, vm: vm)))
        }
        switch selector {
        case .pci(let address):
            guard let device = inventory.device(at: address) else {
                return failure("no PCI function \(address) on this host", "fix the address: 'hostdevctl devices --caps pci' lists the host's functions", device: DeviceIdentifier.pci(address))
            }
            if device.pci?.isBridge == true {
                return failure("\(address) is a PCI bridge; bridges are never detached or assigned", "claim the device behind the bridge instead", device: DeviceIdentifier.pci(address))
            }
            return .success(address)
        case .pciID(let vendor, let product, let index):
            let matches = inventory.devices.compactMap { device -> PCIAddress? in
                guard device.hasID(vendor: vendor, product: product) else { return nil }
                return device.pci?.address
            }.sorted()
            if let index {
                guard index < matches.count else {
                    return failure("index \(index) asked, but \(matches.count) function(s) match", "fix 'index:' (0 is the first by address)")
                }
                return .success(matches[index])
            }
            switch matches.count {
            case 0: return failure("no PCI function with this ID on this host", "fix the ID: 'hostdevctl devices --caps pci' lists the host's functions and their IDs")
            case 1: return .success(matches[0])
            default:
                return failure("\(matches.count) functions match (\(matches.map(\.description).joined(separator: ", ")))", "add 'index: N' to the claim (0 is the first by address), or claim by address")
            }
        default: preconditionFailure("not a PCI selector")
        }
    }

    /// A finding carried as the failure of a lookup.
    struct FindingError: Error {
        var finding: Finding
        init(_ finding: Finding) { self.finding = finding }
    }

    /// IOMMU group `group` of the claimed `address` must be all on vfio-pci
    /// (or bridges, or no driver) when its VM starts: say which siblings
    /// stand in the way, and whether hostdevd moves them (`mode`).
    public static func groupViability(of address: PCIAddress, group: Int, mode: GroupMode, vm: String, inventory: Inventory) -> Finding {
        let id = DeviceIdentifier.pci(address)
        let members = inventory.group(group)?.members ?? [address]
        let strangers = members.compactMap { inventory.device(at: $0) }
            .filter { !($0.pci?.isBridge ?? false) && $0.driver != "vfio-pci" && $0.driver != "pci-stub" && $0.driver != nil }
        let list = strangers.map { "\($0.pci!.address) (\($0.driver!))" }.joined(separator: ", ")
        if strangers.isEmpty {
            return Finding(.pass, check: "iommu-group", "IOMMU group \(group) of \(address) (\(vm)): \(members.count) device(s), all ready", device: id, vm: vm)
        }
        guard mode == .device else {
            let others = strangers.filter { $0.pci?.address != address }.map { "\($0.pci!.address) (\($0.driver!))" }
            guard !others.isEmpty else {
                return Finding(.pass, check: "iommu-group", "IOMMU group \(group) of \(address) (\(vm)): \(members.count) device(s), hostdevd moves them together", device: id, vm: vm)
            }
            return Finding(.warn, check: "iommu-group", "IOMMU group \(group) of \(address) (\(vm)): hostdevd will also take \(others.joined(separator: ", ")) off their host drivers (group: \(mode.rawValue))",
                remedy: "make sure the host can spare them (hostdevd refuses any the host visibly uses, but a chipset function such as an LPC bridge or SMBus has uses it cannot see)",
                device: id, vm: vm)
        }
        return Finding(.fail, check: "iommu-group", "group \(group) is not viable for \(address) (\(vm)): \(list) still on host drivers",
            remedy: "VFIO needs every non-bridge device of the group on vfio-pci or on no driver: claim the whole group (group: attach, or hold for devices the VM should not see), or unbind those devices (allowing unsafe interrupts does not help here: that option is about interrupt remapping, not viability)",
            device: id, vm: vm)
    }

    /// An SR-IOV VF claim: its PF, the VF's presence (VFs enabled), its
    /// host uses, and the PF's network interface its settings go through.
    /// Returns the VF's own address when its IOMMU group is to be checked
    /// like any PCI function's.
    public static func virtualFunction(_ spec: VFSpec, claim: DeviceClaim, vm: String, manifest: Manifest, observed: ObservedHost)
        -> (findings: [Finding], vf: PCIAddress?)
    {
        let id = spec.description
        let inventory = observed.inventory
        func finding(_ verdict: Verdict, _ what: String, remedy: String? = nil) -> Finding {
            Finding(verdict, check: "vf", what, remedy: remedy, device: id, vm: vm)
        }
        let sysfs = "/sys/bus/pci/devices/\(spec.pf)/sriov_numvfs"
        let vf: PCIAddress
        switch inventory.virtualFunction(spec) {
        case .success(let found): vf = found
        case .failure(.noPF):
            return ([finding(.fail, "PF \(spec.pf) of VF \(spec.index) (\(vm)) is not present on this host (no /sys/bus/pci/devices/\(spec.pf))",
                remedy: "fix 'pf:' in the manifest: 'hostdevctl devices --caps pci' lists the host's functions; a PF shows sriov totalvfs")], nil)
        case .failure(.notSRIOV):
            return ([finding(.fail, "\(spec.pf) (\(vm)) is not an SR-IOV physical function (no sriov_totalvfs); it has no VF \(spec.index)",
                remedy: "name the PF of the VF in 'pf:' (the function with sriov_totalvfs), or give the VM this function itself with 'pci:'")], nil)
        case .failure(.notEnabled(_, let total)) where spec.index >= total:
            return ([finding(.fail, "\(spec.pf) (\(vm)) supports \(total) VFs (sriov_totalvfs); there is no VF \(spec.index)",
                remedy: "choose an index below \(total)")], nil)
        case .failure(.notEnabled(let enabled, let total)):
            if let setting = manifest.host.sriov.first(where: { $0.pf == spec.pf }), setting.numVFs > spec.index {
                return ([finding(.warn, "VF \(spec.index) of \(spec.pf) (\(vm)) does not exist yet: \(enabled) of \(total) VFs enabled; hostdevd enables \(setting.numVFs) (host.sriov)",
                    remedy: "run 'hostdevctl apply' (or let the daemon reconcile) and check again to see the VF's IOMMU group")], nil)
            }
            let needed = spec.index + 1
            let how = enabled == 0
                ? "echo \(needed) > \(sysfs)"
                : "echo 0 > \(sysfs) && echo \(needed) > \(sysfs) (the kernel changes a non-zero count only through 0, which removes the VFs in use)"
            return ([finding(.fail, "VF \(spec.index) of \(spec.pf) (\(vm)) is not enabled: sriov_numvfs is \(enabled) of \(total)",
                remedy: "let hostdevd enable the VFs: host.sriov: [{pf: \"\(spec.pf)\", numvfs: \(needed)}] in the manifest; or by hand: \(how)")], nil)
        case .failure(.missing(let vf)):
            return ([finding(.fail, "VF \(spec.index) of \(spec.pf) (\(vm)) is \(vf) (virtfn\(spec.index)), which is not present on this host",
                remedy: "re-enable the VFs (echo 0, then the count, to \(sysfs)) and check again")], nil)
        case .failure(.sharesPFGroup(_, let group)):
            return ([finding(.fail, "VF \(spec.index) of \(spec.pf) (\(vm)) shares IOMMU group \(group) with its PF; hostdevd never detaches the PF for a VF",
                remedy: "enable ACS (firmware, or a platform whose root ports isolate VFs), or give the VM the PF itself with 'pci:'")], nil)
        }
        let sriov = inventory.device(at: spec.pf)?.pci?.sriov
        var results = [finding(.pass, "VF \(spec.index) of \(spec.pf) (\(vm)) is \(vf) (\(inventory.device(at: vf)?.driver ?? "no driver")); "
            + "\(sriov?.numVFs ?? 0) of \(sriov?.totalVFs ?? 0) VFs enabled")]
        if manifest.host.protect.contains(vf) {
            results.append(finding(.fail, "\(vf), VF \(spec.index) of \(spec.pf) (\(vm)), is listed in host.protect",
                remedy: "claim another VF, or take \(vf) out of host.protect"))
        }
        for use in observed.hostUses where use.address == vf {
            if use.kind.isForcible, let kind = HandOver(rawValue: use.kind.rawValue), claim.force.contains(kind) {
                results.append(finding(.warn, "\(vf), VF \(spec.index) of \(spec.pf) (\(vm)), is used by the host: \(use.reason); handed over (force: [\(kind.rawValue)])",
                    remedy: "the host loses that use when the VF goes to \(vm)"))
            } else {
                results.append(finding(.fail, "\(vf), VF \(spec.index) of \(spec.pf) (\(vm)), is needed by the host: \(use.reason)",
                    remedy: use.kind == .network
                        ? "take the address and routes off the VF's interface (or out of the bridge or bond above it), or claim another VF"
                        : "stop the host's use of it, or claim another VF"))
            }
        }
        if !spec.settings.isEmpty {
            if let interface = inventory.networkInterfaces(of: spec.pf).first {
                results.append(finding(.pass, "\(spec.settings) of VF \(spec.index) (\(vm)) are set through \(spec.pf)'s interface \(interface)"))
            } else {
                results.append(finding(.fail, "\(spec.pf) (\(vm)) has no network interface: \(spec.settings) of VF \(spec.index) cannot be set (they go through the PF's netdev)",
                    remedy: "bind the PF to its network driver (\(inventory.device(at: spec.pf)?.driver.map { "it is on \($0)" } ?? "it has none")); the PF stays with the host. Or drop mac/vlan/trust/spoofchk from the claim"))
            }
        }
        return (results, vf)
    }

    /// A mediated device claim: it exists as claimed, or its parent offers
    /// its type with an instance left.
    public static func mediatedDevice(_ spec: MdevSpec, vm: String, mediated: MediatedDevices?, inventory: Inventory) -> Finding {
        let id = DeviceIdentifier.source(.mdev(spec.uuid))
        func finding(_ verdict: Verdict, _ what: String, remedy: String? = nil) -> Finding {
            Finding(verdict, check: "mdev", what, remedy: remedy, device: id, vm: vm)
        }
        guard let mediated else {
            return finding(.warn, "mediated devices were not observed; \(spec.uuid) (\(vm)) not checked", remedy: "run check on the host itself")
        }
        if let existing = mediated.device(spec.uuid) {
            guard existing.parent == spec.parent, existing.type == spec.type else {
                return finding(.fail, "\(spec.uuid) (\(vm)) already exists as \(existing.type) on \(existing.parent), not \(spec.type) on \(spec.parent)",
                    remedy: "choose another uuid, or remove that device (echo 1 > /sys/bus/mdev/devices/\(spec.uuid)/remove)")
            }
            return finding(.pass, "\(spec.uuid) (\(vm)) exists: \(spec.type) on \(spec.parent)")
        }
        guard let parent = inventory.device(at: spec.parent) else {
            return finding(.fail, "parent \(spec.parent) of \(spec.uuid) (\(vm)) is not present on this host",
                remedy: "fix 'parent:' in the manifest: 'hostdevctl devices' shows the functions that offer mediated devices (mdev types)")
        }
        guard let types = mediated.parents[spec.parent] else {
            return finding(.fail, "\(spec.parent) (\(parent.driver ?? "no driver")) offers no mediated devices (no mdev_supported_types) for \(spec.uuid) (\(vm))",
                remedy: "load its driver with mediated-device support (i915 with enable_gvt=1, the NVIDIA vGPU host driver), or choose another parent")
        }
        guard let type = types.first(where: { $0.id == spec.type }) else {
            let offered = types.map(\.id).sorted()
            return finding(.fail, "\(spec.parent) offers no type '\(spec.type)' for \(spec.uuid) (\(vm))\(Suggestion.hint(for: spec.type, among: offered)); it offers \(offered.joined(separator: ", "))",
                remedy: "choose one of the offered types in 'type:'")
        }
        if let left = type.availableInstances, left <= 0 {
            return finding(.fail, "\(spec.parent) has no instance of \(spec.type) left (available_instances 0) for \(spec.uuid) (\(vm))",
                remedy: "remove another \(spec.type) device of \(spec.parent), or choose a smaller type")
        }
        let left = type.availableInstances.map { ", \($0) instance(s) left" } ?? ""
        return finding(.pass, "\(spec.parent) offers \(spec.type) for \(spec.uuid) (\(vm))\(left); hostdevd creates it")
    }

    /// A SCSI claim: the device exists (by H:B:T:L or by a stable name),
    /// and the host does not use it (mounted, swap, pool member).
    public static func scsiDevice(_ selector: DeviceSelector, vm: String, observed: ObservedHost) -> Finding {
        let address: SCSIAddress
        switch observed.scsiAddress(claimedBy: selector) {
        case .failure(let why):
            return Finding(.fail, check: "scsi", "\(selector) (\(vm)): \(why.condition.reason ?? "not found")",
                remedy: "fix the claim: 'hostdevctl devices --caps scsi' lists the SCSI devices, ls -l /dev/disk/by-id their stable names",
                device: selector.scsiIdentifier, vm: vm)
        case .success(let found): address = found
        }
        let id = DeviceIdentifier.source(.scsi(address))
        let disks = observed.disks(ofSCSI: address)
        let named = "\(selector) (\(vm))" + (selector == .scsi(address) ? "" : " is \(address)") + (disks.isEmpty ? "" : " (\(disks.joined(separator: ", ")))")
        if let use = observed.storageUses(ofSCSI: address).first {
            return Finding(.fail, check: "scsi", "\(named) is needed by the host: \(use.reason)",
                remedy: "unmount it, swapoff it or take it out of its pool (and /etc/fstab) first, or claim another disk; hostdevd never passes a disk the host uses",
                device: id, vm: vm)
        }
        return Finding(.pass, check: "scsi", "\(named) is present and not used by the host", device: id, vm: vm)
    }

    /// A USB claim: the device is attached (by ID, `index` among several, or by bus:device).
    public static func usbDevice(_ selector: DeviceSelector, vm: String, inventory: Inventory) -> Finding {
        switch selector {
        case .usbID(let vendor, let product, let index):
            let id = DeviceIdentifier.source(.usbID(vendor: vendor, product: product))
            let matches = inventory.usbDevices(vendor: vendor, product: product)
            let names = matches.map { "\($0.usb?.bus ?? 0):\($0.usb?.device ?? 0)" }.joined(separator: ", ")
            if let index, index >= matches.count {
                return Finding(.fail, check: "usb", "\(selector) (\(vm)): index \(index) asked, but \(matches.count) device(s) match",
                    remedy: "plug the device in, or fix 'index:' (0 is the first by bus and device number)", device: id, vm: vm)
            }
            switch (matches.count, index) {
            case (0, _):
                return Finding(.fail, check: "usb", "\(selector) (\(vm)): no USB device with this ID is attached",
                    remedy: "plug it in; 'hostdevctl devices --caps usb_device' lists the attached devices and their IDs", device: id, vm: vm)
            case (1, _), (_, .some):
                return Finding(.pass, check: "usb", "\(selector) (\(vm)) is attached at \(matches[index ?? 0].usb.map { "\($0.bus ?? 0):\($0.device ?? 0)" } ?? "?")", device: id, vm: vm)
            default:
                return Finding(.fail, check: "usb", "\(selector) (\(vm)): \(matches.count) devices match (\(names))",
                    remedy: "add 'index: N' to the claim (0 is the first by bus and device number)", device: id, vm: vm)
            }
        case .usbAddress(let bus, let number):
            let id = DeviceIdentifier.source(.usbAddress(bus: bus, device: number))
            if let device = inventory.usbDevice(bus: bus, device: number) {
                let names = [device.vendor, device.product].compactMap { $0 }.joined(separator: " ")
                return Finding(.pass, check: "usb", "\(selector) (\(vm)) is attached" + (names.isEmpty ? "" : " (\(names))"), device: id, vm: vm)
            }
            return Finding(.fail, check: "usb", "\(selector) (\(vm)): no USB device at bus \(bus), device \(number)",
                remedy: "bus:device numbers change on every replug: claim it by ID (usb: {vendor: …, product: …}) instead", device: id, vm: vm)
        default: preconditionFailure("not a USB selector")
        }
    }
}

extension DeviceSelector {
    /// `scsi H:B:T:L` for a claim by address; nil for one by path (a path is no device identifier).
    var scsiIdentifier: String? {
        if case .scsi(let address) = self { return DeviceIdentifier.source(.scsi(address)) }
        return nil
    }
}
