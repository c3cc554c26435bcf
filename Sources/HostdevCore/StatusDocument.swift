/// `hostdevctl status --format json`, and the daemon's `status.json` (which
/// `status` prints as it is while the daemon runs): each binding's and
/// device's condition, the steps still to apply, notes, and each device's
/// last actions. `source` says who observed: `daemon` (with the daemon's
/// fields: summary, time, pid, …) or `live` (hostdevctl, just now).
/// `exitCode` is `status`'s: 0 every binding Ready and no step pending, 3 otherwise.
public struct StatusDocument: JSONDocument, Sendable {
    /// What only the daemon's status.json has.
    public struct Daemon: Sendable {
        public var summary: String
        public var time: Int
        public var pid: Int
        /// The daemon process's start time (clock ticks since boot).
        public var started: Int
        public var reconciles: Int
        public var trigger: [String]
        public var manifest: String
        public var manifestError: String?
        public var libvirtConnected: Bool
        public var failedSteps: Int
        public var durationMs: Int?

        public init(
            summary: String, time: Int, pid: Int, started: Int, reconciles: Int, trigger: [String], manifest: String,
            manifestError: String?, libvirtConnected: Bool, failedSteps: Int, durationMs: Int?
        ) {
            self.summary = summary
            self.time = time
            self.pid = pid
            self.started = started
            self.reconciles = reconciles
            self.trigger = trigger
            self.manifest = manifest
            self.manifestError = manifestError
            self.libvirtConnected = libvirtConnected
            self.failedSteps = failedSteps
            self.durationMs = durationMs
        }
    }

    public var daemon: Daemon?
    /// nil while the daemon has no valid manifest yet.
    public var plan: Plan?
    public var inventory: Inventory?
    public var history: DeviceHistory

    public init(daemon: Daemon?, plan: Plan?, inventory: Inventory?, history: DeviceHistory = DeviceHistory()) {
        self.daemon = daemon
        self.plan = plan
        self.inventory = inventory
        self.history = history
    }

    public var exitCode: Int32 { plan?.verdict == .converged ? 0 : Plan.Verdict.waiting.exitCode }

    public var json: JSONText {
        // The daemon's fields keep their places and names from before this
        // document existed: readers of older status files keep working.
        var fields: [(String, JSONText)] = []
        if let daemon {
            fields += [
                ("summary", .string(daemon.summary)),
                ("time", .number(daemon.time)),
                ("pid", .number(daemon.pid)),
                ("started", .number(daemon.started)),
                ("reconciles", .number(daemon.reconciles)),
                ("trigger", .array(daemon.trigger.map { .string($0) })),
                ("manifest", .string(daemon.manifest)),
                ("manifestError", daemon.manifestError.map { .string($0) } ?? .null),
                ("libvirt", .string(daemon.libvirtConnected ? "connected" : "unreachable")),
                ("failedSteps", .number(daemon.failedSteps)),
                ("durationMs", daemon.durationMs.map { .number($0) } ?? .null),
            ]
        }
        fields += [("kind", .string("status")), ("source", .string(daemon == nil ? "live" : "daemon")), ("exitCode", .number(Int(exitCode)))]
        if let plan {
            let plan = PlanFields(plan: plan, inventory: inventory)
            fields += plan.conditions + [plan.steps, plan.notes]
        }
        fields.append(("history", history.json))
        return .object(fields)
    }
}
