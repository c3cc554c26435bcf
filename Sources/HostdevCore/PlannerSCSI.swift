extension Planning {
    /// SCSI devices: given to a VM as `<hostdev type='scsi'>` (QEMU opens
    /// the device's `/dev/sg` node; nothing moves between drivers), never
    /// one the host uses — mounted, swap, a pool member, or beneath any of
    /// these — nor one another running VM holds.
    mutating func planSCSI() {
        let resolved = scsiClaims.map { (vm: $0.vm, selector: $0.selector, address: resolveSCSI($0.selector)) }
        // One device named twice (by address and by a path, say) for two VMs: both blocked.
        var vmsOfAddress: [SCSIAddress: Set<String>] = [:]
        for claim in resolved { if case .success(let address) = claim.address { vmsOfAddress[address, default: []].insert(claim.vm) } }
        for (vm, selector, resolution) in resolved {
            let key = selector.description
            keysOfVM[vm, default: []].insert(key)
            let address: SCSIAddress
            switch resolution {
            case .failure(let why):
                deviceConditions[key] = why.condition
                continue
            case .success(let found): address = found
            }
            recordClaim(of: .scsi(address), by: vm, as: selector)
            let entry = HostdevEntry.ours(.scsi(address))
            if releasedSources.contains(entry.source) {
                // Nothing moves between drivers: leaving the VM is the whole release.
                deviceConditions[key] = .pending("released by hand (hostdevctl release): out of \(vm); given back after the next manifest edit")
                continue
            }
            if let vms = vmsOfAddress[address], vms.count > 1 {
                frozenSources.insert(entry.source)
                block(key, "\(address) is claimed by more than one VM (\(vms.sorted().joined(separator: ", "))); a device belongs to one VM")
                continue
            }
            if let use = scsiHostUse(address) {
                frozenSources.insert(entry.source)
                block(key, "\(address) is needed by the host: \(use.reason); a SCSI device the host uses is never passed to a VM")
                continue
            }
            if let other = observed.domains.first(where: { domain in
                domain.isActive && domain.name != vm && domain.liveHostdevs.contains { $0.source == .scsi(address) }
            }) {
                frozenSources.insert(entry.source)
                block(key, "running \(other.name) holds \(address); a SCSI device belongs to one VM")
                continue
            }
            // libvirt hands QEMU the generic node; without it the VM would not start.
            guard observed.genericNode(ofSCSI: address) != nil else {
                frozenSources.insert(entry.source)
                deviceConditions[key] = .pending(
                    "\(address) has no SCSI generic node (/dev/sgN), through which QEMU opens it: modprobe sg (list sg in /etc/modules-load.d/ to load it at boot)")
                continue
            }
            usbEntries[vm, default: []].append(entry)
            deviceConditions[key] = .ready
        }
    }

    /// The SCSI address a claim names, or the condition that says why not.
    func resolveSCSI(_ selector: DeviceSelector) -> Result<SCSIAddress, SCSIResolution> { observed.scsiAddress(claimedBy: selector) }

    /// A storage use of one of the device's block devices.
    func scsiHostUse(_ address: SCSIAddress) -> HostUse? { observed.storageUses(ofSCSI: address).first }
}

extension ObservedHost {
    /// The SCSI address a `scsi:` claim names (by H:B:T:L or by a `/dev`
    /// name), or the condition that says why there is none.
    public func scsiAddress(claimedBy selector: DeviceSelector) -> Result<SCSIAddress, SCSIResolution> {
        switch selector {
        case .scsi(let address):
            return scsiDevice(at: address) != nil ? .success(address) : .failure(SCSIResolution(.pending("no SCSI device \(address) on this host")))
        case .scsiPath(let path): return scsiAddress(ofPath: path)
        default:
            preconditionFailure("not a SCSI selector")
        }
    }

    /// The inventory's `scsi` device at `address`.
    public func scsiDevice(at address: SCSIAddress) -> HostDevice? {
        inventory.devices.first { $0.capability == .scsi && SCSIAddress($0.scsi) == address }
    }

    /// The generic node (`/dev/sg1`) of the SCSI device at `address`: none
    /// while the `sg` module is not loaded.
    public func genericNode(ofSCSI address: SCSIAddress) -> String? {
        guard let device = scsiDevice(at: address) else { return nil }
        return inventory.devices.first { $0.parent == device.name && $0.capability == .scsiGeneric }.map { $0.deviceNode ?? $0.name }
    }

    /// The block devices (`sdb`, without `/dev/`) of the SCSI device at `address`.
    public func disks(ofSCSI address: SCSIAddress) -> [String] {
        guard let device = scsiDevice(at: address) else { return [] }
        return inventory.devices.filter { $0.parent == device.name && $0.capability == .storage }.compactMap { $0.deviceNode.map { String($0.dropFirst(5)) } }
    }

    /// The SCSI address behind a stable `/dev` name (`/dev/disk/by-id/…`,
    /// `/dev/sdb`), or the condition that says why there is none.
    public func scsiAddress(ofPath path: String) -> Result<SCSIAddress, SCSIResolution> {
        let name = diskLinks?[path] ?? (path.hasPrefix("/dev/") && !path.dropFirst(5).contains("/") ? String(path.dropFirst(5)) : nil)
        guard let name else {
            return .failure(SCSIResolution(.pending("\(path) does not exist on this host")))
        }
        guard let disk = inventory.devices.first(where: { $0.deviceNode == "/dev/" + name }) else {
            return .failure(SCSIResolution(.pending("\(path) (\(name)) is not a device this host lists")))
        }
        guard let parent = inventory.device(named: disk.parent), parent.capability == .scsi, let address = SCSIAddress(parent.scsi) else {
            return .failure(SCSIResolution(.blocked("\(path) is \(name), which is not a SCSI device (its parent is \(disk.parent)); pass it as a PCI device or a <disk> instead")))
        }
        return .success(address)
    }

    /// The host's storage uses of the SCSI device's block devices (the
    /// use's chain starts at the controller, then names the disk).
    public func storageUses(ofSCSI address: SCSIAddress) -> [HostUse] {
        let disks = Set(disks(ofSCSI: address))
        return hostUses.filter { use in use.kind == .storage && use.chain.count > 1 && disks.contains(use.chain[1]) }
    }
}

/// Why a SCSI claim does not resolve, as the condition it gets.
public struct SCSIResolution: Error, Sendable {
    public var condition: Condition
    init(_ condition: Condition) { self.condition = condition }
}
