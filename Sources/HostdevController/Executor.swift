public import HostdevCore
public import HostdevLibvirt
public import HostdevSysfs

/// What can edit a domain's `<hostdev>`s; libvirt in production.
public protocol DomainEditor {
    func attach(_ entry: HostdevEntry, to vm: String, live: Bool) throws
    func detach(_ entry: HostdevEntry, from vm: String, live: Bool) throws
}

extension LibvirtConnection: DomainEditor {}

/// How one step went (the core's type, so that reports can render it).
public typealias StepOutcome = StepOutcomeValue

/// Runs a plan step by step. A driver move holds the state lock only
/// around itself: the ledger is re-read under the lock, the step's facts are
/// checked again (the device is still where the plan saw it; nothing on the
/// host uses it now), the intent and the driver to give back are journaled,
/// the move is made, the outcome journaled. Domain edits go to libvirt with
/// no lock held: libvirtd runs the QEMU hook while it holds a domain, and the
/// hook needs the lock. A step that fails skips the later steps of the same
/// device; the rest still run.
public struct Executor {
    public let drivers: PCIDriverControl
    /// The host console's side of single-GPU passthrough, over the same writer.
    public var consoles: ConsoleControl { ConsoleControl(root: drivers.root, writer: drivers.writer) }
    /// Mediated devices' create and remove, over the same writer.
    public var mdevs: MediatedDeviceControl { MediatedDeviceControl(root: drivers.root, writer: drivers.writer) }
    public let domains: (any DomainEditor)?
    public let store: LedgerStore
    /// How long a driver move waits for the state lock (nil: as long as it takes).
    public var lockTimeout: Duration?
    /// The host's uses of one device, read now: checked right before a bind.
    public var hostUses: (PCIAddress) -> [HostUse]
    /// Processes that hold a VFIO group open (`/dev/vfio/N`), read now:
    /// unbinding vfio-pci from a held device blocks in the kernel until they
    /// let go, so such a release is refused instead.
    public var groupHolders: (PCIAddress) -> [String]
    /// The same for a mediated device, by UUID: removing one a process
    /// holds open blocks in the kernel too.
    public var mdevHolders: (String) -> [String]
    /// The host's uses of a SCSI device's disks, read now: checked right
    /// before the device is added to a domain.
    public var scsiHostUses: (SCSIAddress) -> [HostUse]
    /// Sets SR-IOV VFs' settings through their PF (nil: none on this host:
    /// such a step fails and says so).
    public var vfs: (any VFConfigurator)?
    /// Called after each step: where `apply` prints progress and the daemon logs.
    public var afterStep: (Int, Step, StepOutcome) -> Void
    /// Asked before each step: true stops the run there (SIGTERM finishes
    /// the step in flight, then stops; the next run picks up the rest).
    public var shouldStop: () -> Bool

    public init(
        drivers: PCIDriverControl, domains: (any DomainEditor)?, store: LedgerStore, lockTimeout: Duration? = nil,
        hostUses: @escaping (PCIAddress) -> [HostUse] = { _ in [] },
        groupHolders: @escaping (PCIAddress) -> [String] = { _ in [] },
        mdevHolders: @escaping (String) -> [String] = { _ in [] },
        scsiHostUses: @escaping (SCSIAddress) -> [HostUse] = { _ in [] },
        vfs: (any VFConfigurator)? = nil,
        afterStep: @escaping (Int, Step, StepOutcome) -> Void = { _, _, _ in }, shouldStop: @escaping () -> Bool = { false }
    ) {
        self.drivers = drivers
        self.domains = domains
        self.store = store
        self.lockTimeout = lockTimeout
        self.hostUses = hostUses
        self.groupHolders = groupHolders
        self.mdevHolders = mdevHolders
        self.scsiHostUses = scsiHostUses
        self.vfs = vfs
        self.afterStep = afterStep
        self.shouldStop = shouldStop
    }

    /// Runs `plan`'s steps; returns each step's outcome (a step not reached
    /// because of `shouldStop` has none). Throws only when the state
    /// directory cannot be used at all.
    public func run(_ plan: Plan) throws -> [StepOutcome] {
        var failed = Set<String>()
        var outcomes: [StepOutcome] = []
        for (index, step) in plan.steps.enumerated() {
            if shouldStop() { break }
            let key = step.action.deviceKey
            let outcome: StepOutcome
            if failed.contains(key) {
                outcome = .skipped("an earlier step for \(key) failed")
            } else if step.action.movesDriver {
                outcome = try store.withLock(timeout: lockTimeout) { try move(step.action, handedOver: plan.handedOver) }
            } else {
                outcome = edit(step.action)
            }
            if outcome.isFailure { failed.insert(key) }
            outcomes.append(outcome)
            afterStep(index, step, outcome)
        }
        return outcomes
    }

    /// One driver move, under the lock.
    func move(_ action: Action, handedOver: [PCIAddress: Set<HandOver>] = [:]) throws -> StepOutcome {
        var ledger = try store.load()
        if let stale = recheck(action, ledger: ledger, handedOver: handedOver) { return stale }
        ledger.intent = action
        if case .bind(let address, _, let vm) = action, ledger.devices[address] == nil {
            // Recorded before the driver moves: after a crash the ledger
            // still knows which driver to give back.
            ledger.devices[address] = Ledger.Entry(originalDriver: drivers.driver(of: address), vm: vm)
        }
        if case .createMdev(let spec, let vm) = action, ledger.mdevs[spec.uuid] == nil {
            // Recorded before the create: after a crash between the two,
            // the ledger still knows the device is hostdevd's to remove.
            ledger.mdevs[spec.uuid] = Ledger.MdevEntry(parent: spec.parent, type: spec.type, vm: vm)
        }
        if case .configureVF(let target, _, let previous, let vm) = action {
            // What to put back, recorded before the change: after a crash
            // between the two, a release still restores it. A setting
            // recorded earlier keeps its first value.
            let earlier = ledger.vfs[target.vf]?.previous ?? VFSettings()
            ledger.vfs[target.vf] = Ledger.VFEntry(pf: target.pf, index: target.index, previous: earlier.filling(from: previous), vm: vm)
        }
        if case .releaseConsole(let gpu) = action, ledger.consoles[gpu] == nil {
            // What will be unbound, recorded first for the same reason.
            ledger.consoles[gpu] = consoles.handover(of: gpu)
        }
        // Written, not synced: LedgerStore's note says why that is enough.
        try store.save(ledger, durable: false)
        let outcome: StepOutcome
        do {
            try perform(action, ledger: &ledger)
            outcome = .done
        } catch {
            outcome = .failed(String(describing: error))
            if case .bind(let address, _, _) = action, drivers.driver(of: address) != Planner.vfioDriver,
                ledger.devices[address]?.originalDriver == drivers.driver(of: address)
            {
                // The bind rolled back to the original driver: nothing to give back.
                ledger.devices[address] = nil
            }
            if case .createMdev(let spec, _) = action, !mdevs.exists(spec.uuid) {
                // Nothing was created: nothing to remove.
                ledger.mdevs[spec.uuid] = nil
            }
        }
        ledger.intent = nil
        try store.save(ledger)
        return outcome
    }

    /// The facts a driver move depends on, read again under the lock: the
    /// plan was made without it, and the hook or `apply` may have moved the
    /// device since. Returns why the step no longer applies, if it does not.
    func recheck(_ action: Action, ledger: Ledger, handedOver: [PCIAddress: Set<HandOver>]) -> StepOutcome? {
        switch action {
        case .bind(let address, let driver, _):
            guard drivers.exists(address) else { return .failed("\(address) is no longer present") }
            if drivers.driver(of: address) == driver { return .skipped("\(address) is already on \(driver)") }
            let allowed = handedOver[address] ?? []
            let uses = hostUses(address).filter { use in
                !(use.kind.isForcible && HandOver(rawValue: use.kind.rawValue).map(allowed.contains) == true)
            }
            if !uses.isEmpty {
                return .failed("\(address) is needed by the host now: \(uses.map(\.reason).joined(separator: "; ")); not bound")
            }
        case .restore(let address, _):
            guard drivers.exists(address), drivers.driver(of: address) == Planner.vfioDriver else { return nil }
            let holders = groupHolders(address)
            if !holders.isEmpty {
                return .failed(
                    "\(address)'s VFIO group is held open by \(holders.joined(separator: ", ")); unbinding it would block until they let go, so it is not released now")
            }
        case .createMdev(let spec, _):
            if let existing = mdevs.instance(spec.uuid) {
                guard existing.parent == spec.parent, existing.type == spec.type else {
                    return .failed("\(spec.uuid) now exists as \(existing.type) on \(existing.parent); not created")
                }
                return .skipped("\(spec) already exists")
            }
            guard drivers.exists(spec.parent) else { return .failed("its parent \(spec.parent) is no longer present") }
            guard let left = mdevs.availableInstances(spec.type, of: spec.parent) else {
                return .failed("\(spec.parent) no longer offers \(spec.type) (is its host driver still bound?)")
            }
            if left <= 0 { return .failed("\(spec.parent) has no instances of \(spec.type) left now; not created") }
        case .removeMdev(let spec, let destroy):
            guard destroy, mdevs.exists(spec.uuid) else { return nil }
            let holders = mdevHolders(spec.uuid)
            if !holders.isEmpty {
                return .failed(
                    "\(spec.uuid)'s VFIO group is held open by \(holders.joined(separator: ", ")); removing it would block until they let go, so it is not removed now")
            }
        case .configureVF(let target, _, _, _):
            guard vfs != nil else { return .failed(Self.noConfigurator(target)) }
            guard drivers.exists(target.vf) else { return .failed("\(target.vf) (VF \(target.index) of \(target.pf)) is no longer present") }
        case .restoreVF(let target, _, let apply):
            if apply, vfs == nil { return .failed(Self.noConfigurator(target)) }
        case .setNumVFs, .releaseConsole, .restoreConsole, .attachConfig, .detachConfig, .attachLive, .detachLive: break
        }
        return nil
    }

    func perform(_ action: Action, ledger: inout Ledger) throws {
        switch action {
        case .bind(let address, let driver, _):
            try drivers.bind(address, to: driver)
        case .restore(let address, let driver):
            if drivers.exists(address), drivers.driver(of: address) != driver || driver == nil {
                try drivers.restore(address, to: driver)
            }
            ledger.devices[address] = nil
        case .setNumVFs(let pf, let count):
            try drivers.setNumVFs(pf, count)
        case .releaseConsole(let gpu):
            ledger.consoles[gpu] = try consoles.releaseConsole(of: gpu)
        case .restoreConsole(let gpu):
            if let handover = ledger.consoles[gpu] { try consoles.restoreConsole(handover) }
            ledger.consoles[gpu] = nil
        case .createMdev(let spec, _):
            try mdevs.create(spec)
        case .removeMdev(let spec, let destroy):
            if destroy { try mdevs.remove(spec.uuid) }
            ledger.mdevs[spec.uuid] = nil
        case .configureVF(let target, let settings, _, _):
            try vfs?.apply(settings, toVF: target.index, of: target.pf)
        case .restoreVF(let target, let settings, let apply):
            if apply { try vfs?.apply(settings, toVF: target.index, of: target.pf) }
            ledger.vfs[target.vf] = nil
        case .attachConfig, .detachConfig, .attachLive, .detachLive:
            preconditionFailure("domain edits are not driver moves")
        }
    }

    static func noConfigurator(_ target: VFTarget) -> String {
        "no rtnetlink access to \(target.pf)'s VF settings here (hostdevd sets them only on the live host, sysfs root /); not changed"
    }

    /// One domain edit, through libvirt, with no lock held.
    func edit(_ action: Action) -> StepOutcome {
        guard let domains else { return .failed("libvirt is not connected; the domain was not changed") }
        switch action {
        case .attachConfig(_, let entry), .attachLive(_, let entry):
            if case .scsi(let address) = entry.source {
                let uses = scsiHostUses(address)
                if !uses.isEmpty {
                    return .failed("\(address) is needed by the host now: \(uses.map(\.reason).joined(separator: "; ")); not given to a VM")
                }
            }
        default: break
        }
        do {
            switch action {
            case .attachConfig(let vm, let entry): try domains.attach(entry, to: vm, live: false)
            case .detachConfig(let vm, let entry): try domains.detach(entry, from: vm, live: false)
            case .attachLive(let vm, let entry): try domains.attach(entry, to: vm, live: true)
            case .detachLive(let vm, let entry): try domains.detach(entry, from: vm, live: true)
            case .bind, .restore, .setNumVFs, .releaseConsole, .restoreConsole, .createMdev, .removeMdev, .configureVF, .restoreVF:
                preconditionFailure("driver moves are not domain edits")
            }
            return .done
        } catch {
            return .failed(String(describing: error))
        }
    }

    /// After a pass: saves what the plan says the ledger should remember of
    /// `live: true` bindings, and clears an interrupted step's intent that
    /// the pass's plan was made with (it finished or undid it), under the
    /// lock, when anything changed.
    public func settle(liveVMs: Set<String>, interrupted: Action?) throws {
        try store.withLock(timeout: lockTimeout) {
            var ledger = try store.load()
            let clearIntent = interrupted != nil && ledger.intent == interrupted
            guard ledger.liveVMs != liveVMs || clearIntent else { return }
            ledger.liveVMs = liveVMs
            if clearIntent { ledger.intent = nil }
            try store.save(ledger)
        }
    }
}
