/// The JSON that `--format json` prints, one type per command. Each has a
/// stable shape described by a JSON Schema in `manifests/schemas/` (tests
/// validate real output against it) and renders through `JSONText`, so
/// the bytes are the same from run to run. Devices are named as
/// `DeviceIdentifier` says, in every document.
public protocol JSONDocument {
    var json: JSONText { get }
}

extension Condition {
    /// `{"condition": "Blocked", "reason": "…"}`; no reason when Ready.
    public var json: JSONText {
        switch self {
        case .ready: return .object([("condition", .string("Ready"))])
        case .pending(let why): return .object([("condition", .string("Pending")), ("reason", .string(why))])
        case .blocked(let why): return .object([("condition", .string("Blocked")), ("reason", .string(why))])
        }
    }
}

extension Plan.Verdict {
    /// `converged`, `changes`, `waiting`.
    public var name: String {
        switch self {
        case .converged: return "converged"
        case .changes: return "changes"
        case .waiting: return "waiting"
        }
    }
}

extension Action {
    /// The action's kind as JSON names it: the case name (`bind`, `restore`, `attachConfig`, …).
    public var kind: String {
        switch self {
        case .bind: return "bind"
        case .restore: return "restore"
        case .attachConfig: return "attachConfig"
        case .detachConfig: return "detachConfig"
        case .attachLive: return "attachLive"
        case .detachLive: return "detachLive"
        case .setNumVFs: return "setNumVFs"
        case .releaseConsole: return "releaseConsole"
        case .restoreConsole: return "restoreConsole"
        case .createMdev: return "createMdev"
        case .removeMdev: return "removeMdev"
        case .configureVF: return "configureVF"
        case .restoreVF: return "restoreVF"
        }
    }

    /// The device the step is about, as `DeviceIdentifier` names it (an
    /// SR-IOV count change: its physical function).
    public var device: String {
        switch self {
        case .bind(let a, _, _), .restore(let a, _), .releaseConsole(let a), .restoreConsole(let a), .setNumVFs(let a, _):
            return DeviceIdentifier.pci(a)
        case .attachConfig(_, let e), .detachConfig(_, let e), .attachLive(_, let e), .detachLive(_, let e): return e.description
        case .createMdev(let spec, _), .removeMdev(let spec, _): return DeviceIdentifier.source(.mdev(spec.uuid))
        case .configureVF(let target, _, _, _), .restoreVF(let target, _, _): return DeviceIdentifier.pci(target.vf)
        }
    }
}

/// One step of a plan: `{"order": 1, "action": "bind", "device": "pci 0000:01:00.0",
/// "vm": "win11", "driver": {"from": "nouveau", "to": "vfio-pci"}, "summary": …, "reason": …}`.
/// `vm` is there when the step concerns one; `driver` for driver moves
/// (`from`: the driver it is on now, null for none; `to`: null for "whatever
/// the kernel matches"); `numVFs` for SR-IOV count changes.
public struct StepDocument: JSONDocument, Sendable {
    public var order: Int
    public var step: Step
    /// The driver the device is on now (driver moves only).
    public var currentDriver: String?

    public init(order: Int, step: Step, currentDriver: String?) {
        self.order = order
        self.step = step
        self.currentDriver = currentDriver
    }

    /// The steps of `plan`, numbered from 1, with each device's driver now.
    public static func steps(of plan: Plan, inventory: Inventory?) -> [StepDocument] {
        plan.steps.enumerated().map { index, step in
            StepDocument(order: index + 1, step: step, currentDriver: step.action.pciAddress.flatMap { inventory?.device(at: $0)?.driver })
        }
    }

    public var fields: [(String, JSONText)] {
        var fields: [(String, JSONText)] = [
            ("order", .number(order)), ("action", .string(step.action.kind)), ("device", .string(step.action.device)),
        ]
        if let vm = step.action.vm { fields.append(("vm", .string(vm))) }
        switch step.action {
        case .bind(_, let driver, _):
            fields.append(("driver", .object([("from", currentDriver.map { .string($0) } ?? .null), ("to", .string(driver))])))
        case .restore(_, let driver):
            fields.append(("driver", .object([("from", currentDriver.map { .string($0) } ?? .null), ("to", driver.map { .string($0) } ?? .null)])))
        case .setNumVFs(_, let count): fields.append(("numVFs", .number(count)))
        case .configureVF(let target, let settings, _, _): fields.append(("vf", Self.vf(target, settings)))
        case .restoreVF(let target, let settings, let apply): fields.append(("vf", Self.vf(target, settings, restores: apply)))
        case .createMdev(let spec, _): fields.append(("mdev", Self.mdev(spec)))
        case .removeMdev(let spec, let destroy): fields.append(("mdev", Self.mdev(spec, destroys: destroy)))
        case .attachConfig(_, let entry), .detachConfig(_, let entry), .attachLive(_, let entry), .detachLive(_, let entry):
            if case .scsi(let address) = entry.source { fields.append(("scsi", Self.scsi(address))) }
        default: break
        }
        fields.append(("summary", .string(step.action.summary)))
        fields.append(("reason", .string(step.reason)))
        return fields
    }

    public var json: JSONText { .object(fields) }

    /// `{"pf": …, "index": 2, "address": the VF's own function, then the
    /// settings present: "mac", "vlan", "trust", "spoofchk"}`: for
    /// `configureVF` the settings it sets, for `restoreVF` the ones it puts
    /// back, with `"restore": false` when the VF is gone and they are only
    /// forgotten.
    static func vf(_ target: VFTarget, _ settings: VFSettings, restores: Bool? = nil) -> JSONText {
        var fields: [(String, JSONText)] = [("pf", .string(target.pf.description)), ("index", .number(target.index)), ("address", .string(target.vf.description))]
        if let mac = settings.mac { fields.append(("mac", .string(mac.description))) }
        if let vlan = settings.vlan { fields.append(("vlan", .number(vlan))) }
        if let trust = settings.trust { fields.append(("trust", .bool(trust))) }
        if let spoofchk = settings.spoofchk { fields.append(("spoofchk", .bool(spoofchk))) }
        if let restores { fields.append(("restore", .bool(restores))) }
        return .object(fields)
    }

    /// `{"uuid": …, "parent": …, "type": …}`; for `removeMdev` also
    /// `"destroy"`: false when the device is only forgotten (gone, or
    /// mdevctl's now).
    static func mdev(_ spec: MdevSpec, destroys: Bool? = nil) -> JSONText {
        var fields: [(String, JSONText)] = [("uuid", .string(spec.uuid)), ("parent", .string(spec.parent.description)), ("type", .string(spec.type))]
        if let destroys { fields.append(("destroy", .bool(destroys))) }
        return .object(fields)
    }

    /// `{"host": 1, "bus": 0, "target": 0, "unit": 0}` of a SCSI `<hostdev>`.
    static func scsi(_ address: SCSIAddress) -> JSONText {
        .object([("host", .number(address.host)), ("bus", .number(address.bus)), ("target", .number(address.target)), ("unit", .number(address.unit))])
    }
}

extension Action {
    /// The PCI function a driver move or console hand-over concerns.
    public var pciAddress: PCIAddress? {
        switch self {
        case .bind(let a, _, _), .restore(let a, _), .releaseConsole(let a), .restoreConsole(let a), .setNumVFs(let a, _): return a
        case .attachConfig(_, let e), .detachConfig(_, let e), .attachLive(_, let e), .detachLive(_, let e):
            if case .pci(let a) = e.source { return a }
            return nil
        case .configureVF(let target, _, _, _), .restoreVF(let target, _, _): return target.vf
        case .createMdev, .removeMdev: return nil
        }
    }
}

/// A plan's conditions, steps and notes: the part `plan`, `apply`'s result,
/// `status` and the daemon's status.json share.
public struct PlanFields: Sendable {
    public var plan: Plan
    public var inventory: Inventory?

    public init(plan: Plan, inventory: Inventory?) {
        self.plan = plan
        self.inventory = inventory
    }

    public var conditions: [(String, JSONText)] {
        [
            ("bindings", .object(plan.bindings.sorted { $0.key < $1.key }.map { ($0.key, $0.value.json) })),
            ("devices", .object(plan.devices.sorted { $0.key < $1.key }.map { ($0.key, $0.value.json) })),
        ]
    }

    public var steps: (String, JSONText) { ("steps", .array(StepDocument.steps(of: plan, inventory: inventory).map(\.json))) }
    public var notes: (String, JSONText) { ("notes", .array(plan.notes.map { .string($0) })) }
}

/// `hostdevctl plan --format json`. `verdict` and `exitCode` are the
/// command's exit status: `converged` 0 (no steps, every binding Ready),
/// `changes` 2, `waiting` 3 (no steps, a binding Blocked or Pending).
public struct PlanDocument: JSONDocument, Sendable {
    public var plan: Plan
    public var inventory: Inventory?

    public init(plan: Plan, inventory: Inventory?) {
        self.plan = plan
        self.inventory = inventory
    }

    public var json: JSONText {
        let fields = PlanFields(plan: plan, inventory: inventory)
        return .object(
            [("kind", .string("plan")), ("verdict", .string(plan.verdict.name)), ("exitCode", .number(Int(plan.verdict.exitCode))), fields.steps]
                + fields.conditions + [fields.notes])
    }
}

/// `hostdevctl apply --format json` prints JSON Lines: one `ApplyStepRecord`
/// per completed step as it completes, then one `ApplyResultDocument`.
public struct ApplyStepRecord: JSONDocument, Sendable {
    public var step: StepDocument
    public var outcome: StepOutcomeValue

    public init(step: StepDocument, outcome: StepOutcomeValue) {
        self.step = step
        self.outcome = outcome
    }

    /// `{"kind": "step", "outcome": "done"|"skipped"|"failed", "detail": why (skipped, failed), …the step}`.
    public var json: JSONText {
        var fields: [(String, JSONText)] = [("kind", .string("step")), ("outcome", .string(outcome.name))]
        if let detail = outcome.detail { fields.append(("detail", .string(detail))) }
        return .object(fields + step.fields)
    }
}

/// How one step went (the executor's `StepOutcome`).
public enum StepOutcomeValue: Sendable, Equatable {
    case done
    case skipped(String)
    case failed(String)

    public var isFailure: Bool { if case .failed = self { return true } else { return false } }

    public var name: String {
        switch self {
        case .done: return "done"
        case .skipped: return "skipped"
        case .failed: return "failed"
        }
    }

    public var detail: String? {
        switch self {
        case .done: return nil
        case .skipped(let why), .failed(let why): return why
        }
    }
}

/// The last line of `apply --format json`: `exitCode` 0 done and every
/// binding Ready, 1 a step failed, 3 nothing failed but a binding is
/// Blocked or Pending; the conditions after the run.
public struct ApplyResultDocument: JSONDocument, Sendable {
    public var after: Plan
    public var stepsRun: Int
    public var failedSteps: Int

    public init(after: Plan, stepsRun: Int, failedSteps: Int) {
        self.after = after
        self.stepsRun = stepsRun
        self.failedSteps = failedSteps
    }

    public var exitCode: Int32 {
        if failedSteps > 0 { return 1 }
        return after.verdict == .converged ? 0 : Plan.Verdict.waiting.exitCode
    }

    public var json: JSONText {
        let fields = PlanFields(plan: after, inventory: nil)
        return .object(
            [
                ("kind", .string("result")), ("exitCode", .number(Int(exitCode))), ("steps", .number(stepsRun)),
                ("failedSteps", .number(failedSteps)),
            ] + fields.conditions + [fields.notes])
    }
}
