/// Mediated devices: created on their parent (which stays on its host
/// driver, shared with the host) when the binding wants them, removed when
/// nothing claims them any more and hostdevd created them. A device mdevctl
/// defines is the host's own: used when claimed, never removed.
extension Planning {
    /// A running domain that uses mediated device `uuid` (our `<hostdev>`
    /// or any other element naming it), other than `except`.
    func mdevUser(_ uuid: String, except: String? = nil) -> String? {
        observed.domains.first { domain in
            domain.isActive && domain.name != except
                && (domain.liveHostdevs.contains { $0.source == .mdev(uuid) }
                    || domain.uses.contains { $0.target == .mdev(uuid) })
        }?.name
    }

    mutating func planMediatedDevices() {
        for (vm, spec) in mdevClaims {
            let key = spec.description
            keysOfVM[vm, default: []].insert(key)
            guard let binding = bindingByVM[vm] else { continue }
            // Released by hand: not created nor given to the VM until the next manifest edit.
            if releasedSources.contains(.mdev(spec.uuid)) { continue }
            guard let mediated = observed.mediated else {
                deviceConditions[key] = .pending("mediated devices were not observed (an older snapshot); nothing created")
                frozenSources.insert(.mdev(spec.uuid))
                continue
            }
            let existing = mediated.device(spec.uuid)
            if let existing, existing.parent != spec.parent || existing.type != spec.type {
                frozenSources.insert(.mdev(spec.uuid))
                block(key, "\(spec.uuid) already exists as \(existing.type) on \(existing.parent), not \(spec.type) on \(spec.parent); choose another uuid or remove that device")
                continue
            }
            if let other = mdevUser(spec.uuid, except: vm), existing != nil {
                frozenSources.insert(.mdev(spec.uuid))
                block(key, "running \(other) uses \(spec.uuid); a mediated device belongs to one VM")
                continue
            }
            if let owner = claimedForPassthrough[spec.parent] {
                frozenSources.insert(.mdev(spec.uuid))
                block(key, "its parent \(spec.parent) is claimed for passthrough by \(owner); a parent of mediated devices stays on its host driver")
                continue
            }
            if existing == nil {
                guard device(spec.parent) != nil else {
                    deviceConditions[key] = .pending("its parent \(spec.parent) is not present on this host")
                    continue
                }
                guard let types = mediated.parents[spec.parent] else {
                    frozenSources.insert(.mdev(spec.uuid))
                    block(key, "\(spec.parent) offers no mediated devices (no mdev_supported_types; is its driver loaded with mediated-device support, e.g. i915 with enable_gvt=1 or the NVIDIA vGPU host driver?)")
                    continue
                }
                guard let type = types.first(where: { $0.id == spec.type }) else {
                    frozenSources.insert(.mdev(spec.uuid))
                    block(key, "\(spec.parent) offers no type '\(spec.type)'; it offers \(types.map(\.id).sorted().joined(separator: ", "))")
                    continue
                }
                if let api = type.deviceAPI, api != "vfio-pci" {
                    frozenSources.insert(.mdev(spec.uuid))
                    block(key, "type '\(spec.type)' is a \(api) device; hostdevd gives VMs vfio-pci mediated devices only")
                    continue
                }
            }
            usbEntries[vm, default: []].append(.ours(.mdev(spec.uuid)))
            let wantPresent: Bool
            if binding.release == .never {
                wantPresent = true
            } else if let active = observed.isActive(vm) {
                wantPresent = active
            } else {
                deviceConditions[key] = .pending("\(unknownActivity(vm)!); nothing created or removed")
                continue
            }
            switch (wantPresent, existing) {
            case (true, nil):
                let type = mediated.type(spec.type, of: spec.parent)
                if let left = type?.availableInstances, left <= 0 {
                    block(key, "\(spec.parent) has no instances of \(spec.type) left (available_instances 0); remove another \(spec.type) device or choose a smaller type")
                    continue
                }
                steps.append(Step(.createMdev(spec, vm: vm), reason: "claimed by \(vm)"))
                deviceConditions[key] = .pending("to be created for \(vm)")
            case (false, let existing?) where ledger.mdevs[spec.uuid] != nil && !existing.definedByMdevctl:
                if let user = mdevUser(spec.uuid) {
                    deviceConditions[key] = .pending("in use by running \(user); removed when it stops")
                    continue
                }
                steps.append(Step(.removeMdev(spec, destroy: true), reason: "\(vm) is shut off and its binding says release: onStop"))
                deviceConditions[key] = .pending("to be removed while \(vm) is shut off")
            default:
                deviceConditions[key] = deviceConditions[key] ?? .ready
            }
        }
    }

    /// `hostdevctl release` of a mediated device: its `<hostdev>` leaves
    /// the VMs (`planDomains`, which runs first, so an unplug planned there
    /// lets the removal go ahead); then one hostdevd created is removed, so
    /// that its parent gets the instance back. One mdevctl defines, or that
    /// hostdevd did not create, stays on the host.
    mutating func planMdevReleasesByHand() {
        let unplugged = unpluggedMdevs()
        let waitForEdit = "created and given back after the next manifest edit"
        let uuids = releasedSources.compactMap { if case .mdev(let uuid) = $0 { uuid } else { nil } }
        for uuid in uuids.sorted() {
            let key = DeviceIdentifier.source(.mdev(uuid))
            let remembered = ledger.mdevs[uuid]
            guard let mediated = observed.mediated, let existing = mediated.device(uuid) else {
                deviceConditions[key] = .pending("released by hand (hostdevctl release): not on the host; \(waitForEdit)")
                continue
            }
            guard let remembered, !existing.definedByMdevctl, !mediated.mdevctlDefined.contains(uuid) else {
                let whose = remembered == nil ? "hostdevd did not create it" : "mdevctl defines it (/etc/mdevctl.d): the host's own"
                deviceConditions[key] = .pending("released by hand (hostdevctl release): out of the VM; left on \(existing.parent), as \(whose); \(waitForEdit)")
                continue
            }
            if let unknown = unknownVMUses(for: nil) {
                deviceConditions[key] = .pending("released by hand, but \(unknown); not removed")
                continue
            }
            if let user = mdevUser(uuid), !unplugged.contains(uuid) {
                let handWritten = domainByName[user]?.liveHostdevs.contains { $0.source == .mdev(uuid) && $0.isOurs } != true
                deviceConditions[key] = handWritten
                    ? .blocked("released by hand, but running \(user) holds it through a hand-written <hostdev>; remove it there first")
                    : .pending("released by hand; removed when running \(user) lets go of it")
                continue
            }
            let spec = MdevSpec(uuid: uuid, parent: remembered.parent, type: remembered.type)
            steps.append(Step(.removeMdev(spec, destroy: true), reason: "released by hand (hostdevctl release); \(spec.parent) gets its instance back"))
            deviceConditions[key] = .pending("released by hand: removed from \(spec.parent); \(waitForEdit)")
        }
    }

    /// Mediated devices whose `<hostdev>` this plan unplugs from a running VM.
    func unpluggedMdevs() -> Set<String> {
        Set(steps.compactMap { step -> String? in
            if case .detachLive(_, let entry) = step.action, case .mdev(let uuid) = entry.source { return uuid }
            return nil
        })
    }

    /// Mediated devices hostdevd created that no binding claims any more
    /// are removed (once no running VM uses them); one mdevctl now defines
    /// is the host's: forgotten, left in place. Runs after `planDomains`,
    /// so an unplug planned in the same pass lets the removal go ahead.
    mutating func planMdevOrphans() {
        let claimed = Set(mdevClaims.map(\.spec.uuid))
        let unplugged = unpluggedMdevs()
        for (uuid, entry) in ledger.mdevs.sorted(by: { $0.key < $1.key }) where !claimed.contains(uuid) && !releasedSources.contains(.mdev(uuid)) {
            let spec = MdevSpec(uuid: uuid, parent: entry.parent, type: entry.type)
            let key = spec.description
            guard let mediated = observed.mediated else { continue }
            guard let existing = mediated.device(uuid) else {
                steps.append(Step(.removeMdev(spec, destroy: false), reason: "\(uuid) is gone from the host; forget it"))
                continue
            }
            if existing.definedByMdevctl || mediated.mdevctlDefined.contains(uuid) {
                steps.append(Step(.removeMdev(spec, destroy: false),
                    reason: "mdevctl defines \(uuid) (/etc/mdevctl.d): the host's own now; forgotten, not removed"))
                continue
            }
            guard manifest.host.orphans == .release else {
                notes.append("\(key) is an orphan kept on the host (host.orphans: keep)")
                continue
            }
            if let unknown = unknownVMUses(for: nil) {
                deviceConditions[key] = .pending("orphan: \(unknown); not removed")
                continue
            }
            if let user = mdevUser(uuid), !unplugged.contains(uuid) {
                deviceConditions[key] = .pending("orphan in use by running \(user); removed when it stops")
                continue
            }
            steps.append(Step(.removeMdev(spec, destroy: true),
                reason: "no binding claims it any more (was \(entry.vm ?? "unowned")); removed"))
        }
    }
}
