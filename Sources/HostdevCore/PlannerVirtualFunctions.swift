/// SR-IOV virtual functions given to a VM as network interfaces: the VF is
/// found through its PF's `virtfnN` link, bound to vfio-pci like any PCI
/// function (its IOMMU group and host uses decide, never the PF's), set up
/// through the PF (MAC, VLAN, trust, spoofchk) and written into the domain
/// as `<interface type='hostdev'>`. The PF stays with the host: a VF that
/// shares its PF's IOMMU group is refused rather than take the PF along.
extension Planning {
    /// The VF a claim names, or nil with the claim's condition saying why.
    mutating func resolveVF(_ spec: VFSpec, for vm: String) -> PCIAddress? {
        let key = spec.description
        keysOfVM[vm, default: []].insert(key)
        let vf: PCIAddress
        switch inventory.virtualFunction(spec) {
        case .success(let found): vf = found
        case .failure(.noPF):
            block(key, "its PF \(spec.pf) is not present on this host (no /sys/bus/pci/devices/\(spec.pf))")
            return nil
        case .failure(.notSRIOV):
            block(key, "\(spec.pf) is not an SR-IOV physical function (no sriov_totalvfs); it has no VF \(spec.index)")
            return nil
        case .failure(.notEnabled(let enabled, let total)):
            if let setting = manifest.host.sriov.first(where: { $0.pf == spec.pf }), setting.numVFs > spec.index,
                setting.numVFs != device(spec.pf)?.pci?.sriov?.numVFs
            {
                deviceConditions[key] = .pending("\(spec.pf) has no virtfn\(spec.index) yet; waits for host.sriov to enable \(setting.numVFs) VFs")
                return nil
            }
            block(key, "\(spec.pf) has no VF \(spec.index) (no virtfn\(spec.index) link: \(enabled) of \(total) VFs enabled); "
                + "enable at least \(spec.index + 1) with host.sriov (numvfs) or sriov_numvfs")
            return nil
        case .failure(.missing(let vf)):
            block(key, "VF \(spec.index) of \(spec.pf) is \(vf), which is not present on this host")
            return nil
        case .failure(.sharesPFGroup(let vf, let group)):
            frozen.insert(vf)
            block(key, "VF \(spec.index) of \(spec.pf) (\(vf)) shares IOMMU group \(group) with its PF; the PF carries the host's traffic and is never detached for a VF (enable ACS, or give the VM the PF itself with pci:)")
            return nil
        }
        vfClaims.append((vm, spec, vf))
        vfEntries[vf] = .oursInterface(vf, HostdevEntry.Interface(mac: spec.settings.mac, vlan: spec.settings.vlan))
        return vf
    }

    /// Each claimed VF's settings are set while it is given to its VM, and
    /// the settings the ledger journaled go back once it is not: when the
    /// claim goes, `release: onStop` finds the VM shut off, or the VF is
    /// released by hand. Runs after `planDomains`, so that an unplug in the
    /// same plan lets the settings go back. Each claim's condition follows
    /// its VF's.
    mutating func planVirtualFunctions() {
        var given = Set<PCIAddress>()
        let releasing = Set(steps.compactMap { step -> PCIAddress? in
            if case .restore(let address, _) = step.action { return address }
            return nil
        })
        for (vm, spec, vf) in vfClaims {
            let key = spec.description
            let vfKey = DeviceIdentifier.pci(vf)
            defer { deviceConditions[key] = deviceConditions[key] ?? deviceConditions[vfKey] ?? .ready }
            guard let ownership = owned[vf], ownership.vm == vm, !releasedByHand.contains(vf), !releasing.contains(vf),
                let binding = bindingByVM[vm]
            else { continue }
            let active = binding.release == .never ? true : isActive(vm)
            guard let active else {
                // Not known whether it runs: its settings stay as they are.
                given.insert(vf)
                continue
            }
            guard active else { continue }
            given.insert(vf)
            guard !spec.settings.isEmpty else { continue }
            guard let current = observed.vfSettings?[vf] else {
                deviceConditions[key] = .pending("the settings of VF \(spec.index) of \(spec.pf) were not read (rtnetlink); \(spec.settings) not set")
                continue
            }
            guard !spec.settings.isSatisfied(by: current) else { continue }
            let target = VFTarget(pf: spec.pf, index: spec.index, vf: vf)
            let first = spec.settings.previous(in: current)
            let previous = ledger.vfs[vf].map { $0.previous.filling(from: first) } ?? first
            steps.append(Step(.configureVF(target, spec.settings, previous: previous, vm: vm), reason: "claimed by \(vm) with \(spec.settings)"))
            if case .ready = deviceConditions[vfKey] ?? .ready { deviceConditions[vfKey] = .pending("\(spec.settings) to be set for \(vm)") }
        }
        let unplugged = Set(steps.compactMap { step -> PCIAddress? in
            if case .detachLive(_, let entry) = step.action, case .pci(let address) = entry.source { return address }
            return nil
        })
        for (vf, entry) in ledger.vfs.sorted(by: { $0.key < $1.key }) where !given.contains(vf) {
            let target = VFTarget(pf: entry.pf, index: entry.index, vf: vf)
            let key = DeviceIdentifier.pci(vf)
            guard device(vf) != nil, device(entry.pf) != nil else {
                steps.append(Step(.restoreVF(target, entry.previous, apply: false), reason: "\(target) is gone from the host; forget its settings"))
                continue
            }
            if let unknown = unknownVMUses(for: entry.vm) {
                deviceConditions[key] = .pending("\(unknown); its settings are not given back")
                continue
            }
            if let user = liveUser(vf), !unplugged.contains(vf) {
                deviceConditions[key] = deviceConditions[key] ?? .pending("in use by running \(user); its settings go back when it stops")
                continue
            }
            steps.append(Step(.restoreVF(target, entry.previous, apply: true),
                reason: "no longer given to \(entry.vm ?? "a VM"); back to its settings before hostdevd"))
        }
    }
}

extension VFSettings {
    /// These settings, with the ones they lack taken from `other`.
    public func filling(from other: VFSettings) -> VFSettings {
        VFSettings(mac: mac ?? other.mac, vlan: vlan ?? other.vlan, trust: trust ?? other.trust, spoofchk: spoofchk ?? other.spoofchk)
    }
}
