/// `hostdevctl release DEVICE…`, the emergency release: which devices it
/// takes, and why it refuses one before anything is marked released. What a
/// release then does is the planner's (`planReleasesByHand`,
/// `planMdevReleasesByHand`, `planSCSI`): the same plan every pass makes
/// while the ledger says the device is released under this manifest.
public enum ReleaseByHand {
    /// The forms `release` takes, for its help and its errors.
    public static let forms =
        "a PCI address (0000:01:00.0, 01:00.0, pci_0000_01_00_0), a mediated device's UUID (UUID, mdev UUID, mdev_UUID with _ for -) or a SCSI device (1:0:0:0, scsi 1:0:0:0, scsi_1_0_0_0, /dev/disk/by-id/…)"

    /// Whether `release` takes devices of the query's kind at all (USB
    /// devices are given to VMs by reference only: nothing to release).
    public static func takes(_ query: DeviceQuery) -> Bool {
        switch query {
        case .pci, .mdev, .scsi, .scsiPath: return true
        case .usbID, .usbAddress, .usbNodeDevice: return false
        }
    }

    /// The device a query names on this host, or why there is none.
    public static func resolve(_ query: DeviceQuery, observed: ObservedHost) -> Result<HostdevEntry.Source, ReleaseRefusal> {
        switch query {
        case .scsiPath(let path):
            switch observed.scsiAddress(ofPath: path) {
            case .success(let address): return .success(.scsi(address))
            case .failure(let why): return .failure(ReleaseRefusal(device: query.description, reason: why.condition.reason ?? "not a SCSI device"))
            }
        default:
            guard takes(query), let source = query.source else {
                return .failure(ReleaseRefusal(device: query.description, reason: "release takes \(forms)"))
            }
            return .success(source)
        }
    }

    /// Why `source` may not be released now, or nil. `claims` are the
    /// bindings that claim each mediated or SCSI device (the plan's
    /// `sourceClaimants`). With `force`, libvirt unreachable has already
    /// been taken as "no VM uses it" (the operator vouches).
    public static func refusal(
        _ source: HostdevEntry.Source, observed: ObservedHost, ledger: Ledger, claims: [HostdevEntry.Source: [SourceClaimant]], force: Bool
    ) -> String? {
        switch source {
        case .pci(let address): return pciRefusal(address, observed: observed, ledger: ledger, force: force)
        case .mdev(let uuid):
            let known = ledger.mdevs[uuid] != nil || claims[source] != nil || hasOurs(source, observed)
            guard known else {
                return observed.mediated?.device(uuid) == nil
                    ? "no such mediated device on this host, and no binding claims it: nothing to release"
                    : "hostdevd did not create it and no binding claims it: nothing to release"
            }
            return domainRefusal(source, observed: observed, force: force)
        case .scsi(let address):
            guard claims[source] != nil || hasOurs(source, observed) else {
                return observed.scsiDevice(at: address) == nil
                    ? "no such SCSI device on this host, and no binding claims it: nothing to release"
                    : "no binding claims it and hostdevd gave it to no VM: nothing to release"
            }
            return domainRefusal(source, observed: observed, force: force)
        case .usbID, .usbAddress:
            return "release takes \(forms)"
        }
    }

    /// The device's condition in `plan`: under its identifier, or under the
    /// name a binding claims it by (`scsi /dev/disk/by-id/…`).
    public static func condition(of source: HostdevEntry.Source, in plan: Plan) -> Condition? {
        plan.devices[DeviceIdentifier.source(source)]
            ?? plan.sourceClaimants[source]?.lazy.compactMap { plan.devices[$0.selector] }.first
    }

    static func pciRefusal(_ address: PCIAddress, observed: ObservedHost, ledger: Ledger, force: Bool) -> String? {
        guard let device = observed.inventory.device(at: address) else { return "no such PCI device on this host" }
        guard device.driver == Planner.vfioDriver || ledger.devices[address] != nil else {
            return "it is on \(device.driver ?? "no driver"), not on vfio-pci, and hostdevd did not bind it: nothing to release"
        }
        let uses = observed.hostUses.filter { $0.address == address }
        if !uses.isEmpty {
            return "the host uses it (\(uses.map(\.reason).joined(separator: "; "))); it is never moved, not even with --force"
        }
        if let unreachable = unreachable(observed) { return unreachable }
        return runningUser(.pci(address), observed: observed, force: force)
    }

    /// A mediated or SCSI device: a hand-written `<hostdev>` for it is
    /// never touched (and removing the device under it would break that
    /// VM); otherwise as for a PCI function.
    static func domainRefusal(_ source: HostdevEntry.Source, observed: ObservedHost, force: Bool) -> String? {
        if let unreachable = unreachable(observed) { return unreachable }
        if let domain = observed.domains.first(where: { domain in
            (domain.configHostdevs + domain.liveHostdevs).contains { $0.source == source && !$0.isOurs }
        }) {
            return "\(domain.name) has a hand-written <hostdev> for it, which hostdevd never touches, not even with --force; remove it there (virsh edit \(domain.name)), or shut \(domain.name) down and leave it"
        }
        return runningUser(source, observed: observed, force: force)
    }

    static func unreachable(_ observed: ObservedHost) -> String? {
        guard case .unreachable(let why) = observed.coverage else { return nil }
        return "libvirt unreachable (\(why)): cannot tell whether a running VM uses it; start libvirtd, or --force if you know none does"
    }

    static func runningUser(_ source: HostdevEntry.Source, observed: ObservedHost, force: Bool) -> String? {
        guard !force, let user = observed.domains.first(where: { $0.isActive && $0.liveHostdevs.contains { $0.source == source } }) else { return nil }
        return "running \(user.name) uses it; shut \(user.name) down first, or --force to unplug it from the running VM"
    }

    /// Some domain has hostdevd's own `<hostdev>` for it (config or live).
    static func hasOurs(_ source: HostdevEntry.Source, _ observed: ObservedHost) -> Bool {
        observed.domains.contains { domain in (domain.configHostdevs + domain.liveHostdevs).contains { $0.source == source && $0.isOurs } }
    }
}

/// Why `hostdevctl release` will not release a device.
public struct ReleaseRefusal: Error, Sendable, Equatable, CustomStringConvertible {
    /// The device as output names it (`pci 0000:01:00.0`, `mdev UUID`, `scsi 1:0:0:0`).
    public var device: String
    public var reason: String
    public var description: String { "\(device): \(reason)" }

    public init(device: String, reason: String) {
        self.device = device
        self.reason = reason
    }
}
