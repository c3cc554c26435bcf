public import HostdevCore
public import HostdevLibvirt
public import HostdevSysfs

/// What can edit a domain's `<hostdev>`s; libvirt in production.
public protocol DomainEditor {
    func attach(_ entry: HostdevEntry, to vm: String, live: Bool) throws
    func detach(_ entry: HostdevEntry, from vm: String, live: Bool) throws
}

extension LibvirtConnection: DomainEditor {}

/// How one step went.
public enum StepOutcome: Sendable, Equatable {
    case done
    case skipped(String)
    case failed(String)
}

/// Runs a plan step by step. Before each step it writes the intent (and,
/// for a bind, the driver to give back) to the ledger; after it, the
/// outcome. A step that fails is reported and the steps that depend on the
/// same device are skipped; the rest still run.
public struct Executor {
    public let drivers: PCIDriverControl
    public let domains: (any DomainEditor)?
    public let store: LedgerStore
    /// Called after each step is saved: the test seam for crash injection,
    /// and where `apply` prints progress.
    public var afterStep: (Int, Step, StepOutcome) -> Void
    /// Asked before each step: true stops the run there (SIGTERM finishes
    /// the step in flight, then stops; the next run picks up the rest).
    public var shouldStop: () -> Bool

    public init(
        drivers: PCIDriverControl, domains: (any DomainEditor)?, store: LedgerStore,
        afterStep: @escaping (Int, Step, StepOutcome) -> Void = { _, _, _ in }, shouldStop: @escaping () -> Bool = { false }
    ) {
        self.drivers = drivers
        self.domains = domains
        self.store = store
        self.afterStep = afterStep
        self.shouldStop = shouldStop
    }

    /// Runs `plan` against `ledger`, saving it as it goes; returns each step's outcome.
    public func run(_ plan: Plan, ledger: inout Ledger) throws -> [StepOutcome] {
        var failed = Set<String>()
        var outcomes: [StepOutcome] = []
        // An intent left by a run that stopped mid-step: the plan was made
        // from the host as it is now, so it already finishes or undoes it.
        if ledger.intent != nil {
            ledger.intent = nil
            try store.save(ledger)
        }
        for (index, step) in plan.steps.enumerated() {
            if shouldStop() { break }
            let key = Self.deviceKey(step.action)
            let outcome: StepOutcome
            if let key, failed.contains(key) {
                outcome = .skipped("an earlier step for \(key) failed")
            } else {
                ledger.intent = step.action
                if case .bind(let address, _, let vm) = step.action, ledger.devices[address] == nil {
                    // Recorded before the driver moves: after a crash the
                    // ledger still knows which driver to give back.
                    ledger.devices[address] = Ledger.Entry(originalDriver: drivers.driver(of: address), vm: vm)
                }
                try store.save(ledger)
                do {
                    try perform(step.action, ledger: &ledger)
                    outcome = .done
                } catch {
                    outcome = .failed(String(describing: error))
                    if let key { failed.insert(key) }
                    if case .bind(let address, _, _) = step.action, drivers.driver(of: address) != "vfio-pci",
                        ledger.devices[address]?.originalDriver == drivers.driver(of: address)
                    {
                        // The bind rolled back to the original driver: nothing to give back.
                        ledger.devices[address] = nil
                    }
                }
                ledger.intent = nil
                try store.save(ledger)
            }
            outcomes.append(outcome)
            afterStep(index, step, outcome)
        }
        return outcomes
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
        case .attachConfig(let vm, let entry): try editor().attach(entry, to: vm, live: false)
        case .detachConfig(let vm, let entry): try editor().detach(entry, from: vm, live: false)
        case .attachLive(let vm, let entry): try editor().attach(entry, to: vm, live: true)
        case .detachLive(let vm, let entry): try editor().detach(entry, from: vm, live: true)
        }
    }

    func editor() throws -> any DomainEditor {
        guard let domains else { throw StateError(description: "libvirt is not connected; domain edits were not made") }
        return domains
    }

    /// The device a step is about, so a failure skips its later steps.
    static func deviceKey(_ action: Action) -> String? {
        switch action {
        case .bind(let a, _, _), .restore(let a, _): return "pci \(a)"
        case .attachConfig(_, let e), .detachConfig(_, let e), .attachLive(_, let e), .detachLive(_, let e): return e.description
        case .setNumVFs(let pf, _): return "sriov \(pf)"
        }
    }
}
