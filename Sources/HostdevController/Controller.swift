#if canImport(Glibc)
    import Glibc
#endif
public import HostdevCore
public import HostdevLibvirt
public import HostdevSysfs

/// The one controller path the daemon, `apply`, `release` and libvirt's hook
/// share: observe (no lock) → plan (pure) → act (the lock only around each
/// driver move; libvirt never under it). The executables only parse
/// arguments and print what it returns.
public struct Controller {
    public let sources: HostSources
    public let store: LedgerStore
    /// How long a driver move waits for the state lock (nil: as long as it takes).
    public var lockTimeout: Duration?
    /// Where sysfs writes go (the kernel; a fake one in tests).
    public var writer: (any SysfsWriter)?
    /// How long one sysfs write may stay blocked in the kernel before the
    /// step fails (the write stays in flight; the device is left alone).
    public var writeDeadline: Duration = .seconds(10)

    public init(sources: HostSources, stateDirectory: String, lockTimeout: Duration? = .seconds(30), writer: (any SysfsWriter)? = nil) {
        self.sources = sources
        self.store = LedgerStore(directory: stateDirectory)
        self.lockTimeout = lockTimeout
        self.writer = writer
    }

    /// Which of a plan's steps an entry point may run.
    public enum Scope: Sendable, Equatable {
        /// Everything (the daemon, `apply`).
        case everything
        /// libvirt's hook for this VM: its own driver moves only, never a
        /// domain edit (libvirt forbids calls back into it from a hook).
        case hook(vm: String)
        /// `release`: the steps about these devices only.
        case devices(Set<HostdevEntry.Source>)
    }

    /// The steps of `plan` that `scope` allows, in the plan's order.
    public static func steps(of plan: Plan, in scope: Scope, ledger: Ledger) -> Plan {
        var scoped = plan
        switch scope {
        case .everything: break
        case .hook(let vm):
            scoped.steps = plan.steps.filter { step in
                switch step.action {
                case .bind(_, _, let owner): return owner == vm
                case .restore(let address, _): return ledger.devices[address]?.vm == vm
                case .createMdev(_, let owner): return owner == vm
                case .removeMdev(let spec, _): return ledger.mdevs[spec.uuid]?.vm == vm
                case .configureVF(_, _, _, let owner): return owner == vm
                case .restoreVF(let target, _, _): return ledger.vfs[target.vf]?.vm == vm
                default: return false
                }
            }
        case .devices(let sources):
            let keys = Set(sources.map(DeviceIdentifier.source))
            scoped.steps = plan.steps.filter { keys.contains($0.action.deviceKey) }
        }
        return scoped
    }

    public func observe(connection: LibvirtConnection?, warn: (String) -> Void = { _ in }) throws -> ObservedHost {
        try Observer(sources: sources, connection: connection).observe(warn: warn)
    }

    /// The host as libvirt's hook sees it: sysfs and host uses, and one
    /// domain, whose state libvirt's call tells (`active`: it is being
    /// started); the hook must not ask libvirt about the others.
    public func observeForHook(vm: String, active: Bool) throws -> ObservedHost {
        let reader = InventoryReader(root: sources.sysfsRoot)
        let inventory = try reader.read()
        let observer = Observer(sources: sources)
        var observed = ObservedHost(
            inventory: inventory, domains: [DomainState(name: vm, state: active ? .running : .shutoff, active: active)], coverage: .hook(vm))
        observer.readHostFacts(into: &observed)
        return observed
    }

    public func plan(manifest: Manifest, observed: ObservedHost, backoff: Backoff = Backoff(), now: Double = 0) throws -> (Plan, Ledger) {
        let ledger = try store.load()
        return (Planner.plan(manifest: manifest, observed: observed, ledger: ledger, backoff: backoff, now: now), ledger)
    }

    public func executor(
        domains: (any DomainEditor)?, afterStep: @escaping (Int, Step, StepOutcome) -> Void = { _, _, _ in },
        shouldStop: @escaping () -> Bool = { false }
    ) -> Executor {
        let root = sources.sysfsRoot
        let scanner = HostUseScanner(root: root)
        return Executor(
            drivers: PCIDriverControl(root: root, writer: DeadlineWriter(base: writer ?? KernelSysfsWriter(root: root), deadline: writeDeadline)),
            domains: domains, store: store, lockTimeout: lockTimeout,
            hostUses: { scanner.uses(of: $0) },
            groupHolders: { address in
                guard let group = root.linkName("/sys/bus/pci/devices/\(address)/iommu_group").flatMap({ Int($0) }) else { return [] }
                return VFIOHolders(root: root).holders(ofGroup: group).map(\.description)
            },
            mdevHolders: { uuid in
                guard let group = MediatedDeviceControl(root: root).iommuGroup(uuid) else { return [] }
                return VFIOHolders(root: root).holders(ofGroup: group).map(\.description)
            },
            scsiHostUses: { scanner.storageUses(ofSCSI: $0) },
            vfs: sources.vfConfigurator,
            afterStep: afterStep, shouldStop: shouldStop)
    }

    /// Acts on the steps of `plan` that `scope` allows, then saves what the
    /// ledger must remember (live bindings; a settled interrupted step).
    public func act(
        _ plan: Plan, ledger: Ledger, scope: Scope, domains: (any DomainEditor)?,
        afterStep: @escaping (Int, Step, StepOutcome) -> Void = { _, _, _ in }
    ) throws -> (steps: [Step], outcomes: [StepOutcome]) {
        let scoped = Self.steps(of: plan, in: scope, ledger: ledger)
        let executor = executor(domains: domains, afterStep: afterStep)
        let outcomes = try executor.run(scoped)
        if scope == .everything, plan.liveVMs != ledger.liveVMs || ledger.intent != nil {
            try executor.settle(liveVMs: plan.liveVMs, interrupted: ledger.intent)
        }
        return (scoped.steps, outcomes)
    }
}

extension Controller {
    /// `hostdevctl release`: resolves each device (a PCI function, a
    /// mediated or a SCSI device), checks it (returns why one may not be
    /// released), marks the others released under the manifest
    /// `fingerprint`, and acts on their steps only. `force` releases a
    /// device a running VM holds (unplugging it) and goes ahead when libvirt
    /// cannot be asked; it never releases a device the host uses for
    /// storage or networking, nor touches a hand-written `<hostdev>`.
    public func release(
        _ queries: [DeviceQuery], manifest: Manifest, force: Bool, connection: LibvirtConnection?,
        afterStep: @escaping (Int, Step, StepOutcome) -> Void = { _, _, _ in }
    ) throws -> (refused: [ReleaseRefusal], released: [HostdevEntry.Source], steps: [Step], outcomes: [StepOutcome], plan: Plan) {
        var observed = try observe(connection: connection)
        if case .unreachable = observed.coverage, force {
            // --force: the operator vouches that no VM uses these devices.
            observed.coverage = .all
            observed.domains = []
        }
        // Who claims each device, from the plan as it stands before the release.
        let (before, ledger) = try plan(manifest: manifest, observed: observed)
        var refused: [ReleaseRefusal] = []
        var accepted: [HostdevEntry.Source] = []
        for query in queries {
            switch ReleaseByHand.resolve(query, observed: observed) {
            case .failure(let refusal): refused.append(refusal)
            case .success(let source):
                if let reason = ReleaseByHand.refusal(source, observed: observed, ledger: ledger, claims: before.sourceClaimants, force: force) {
                    refused.append(ReleaseRefusal(device: DeviceIdentifier.source(source), reason: reason))
                } else if !accepted.contains(source) {
                    accepted.append(source)
                }
            }
        }
        guard !accepted.isEmpty else { return (refused, [], [], [], Plan()) }
        try store.withLock(timeout: lockTimeout) {
            var ledger = try store.load()
            for source in accepted { ledger.released[source] = manifest.fingerprint }
            try store.save(ledger)
        }
        let (plan, marked) = try self.plan(manifest: manifest, observed: observed)
        let (steps, outcomes) = try act(plan, ledger: marked, scope: .devices(Set(accepted)), domains: connection, afterStep: afterStep)
        return (refused, accepted, steps, outcomes, plan)
    }
}
