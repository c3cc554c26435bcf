/// How `hostdevctl plan`, `apply` and `status` show a plan to a person:
/// like `terraform plan`, each change with its reason underneath.
public struct PlanReport: Sendable {
    public var plan: Plan

    public init(plan: Plan) { self.plan = plan }

    public func text() -> String {
        var out = ""
        if plan.steps.isEmpty {
            out += "No changes. The host matches the manifest.\n"
        } else {
            out += "hostdevd will make \(plan.steps.count) change\(plan.steps.count == 1 ? "" : "s"):\n\n"
            for step in plan.steps { out += Self.line(step) }
        }
        out += "\n" + conditions()
        if !plan.notes.isEmpty {
            out += "\nNotes:\n" + plan.notes.map { "  - \($0)\n" }.joined()
        }
        return out
    }

    /// `  + bind 0000:01:00.0 to vfio-pci` and its reason, indented below.
    public static func line(_ step: Step) -> String {
        "  \(step.action.symbol) \(step.action.summary)\n      \(step.reason)\n"
    }

    public func conditions() -> String {
        var out = ""
        if !plan.bindings.isEmpty {
            out += "Bindings:\n" + alignColumns(plan.bindings.sorted { $0.key < $1.key }.map { ["  " + $0.key, $0.value.description] })
        }
        if !plan.devices.isEmpty {
            out += "Devices:\n" + alignColumns(plan.devices.sorted { $0.key < $1.key }.map { ["  " + $0.key, $0.value.description] })
        }
        return out
    }
}
