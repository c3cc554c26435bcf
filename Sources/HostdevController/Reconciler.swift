#if canImport(Glibc)
    import Glibc
#endif
import FoundationEssentials
public import HostdevCore
public import HostdevLibvirt
import HostdevManifest
public import HostdevSysfs
public import Logging

/// Where the daemon reads and writes.
public struct DaemonConfiguration: Sendable {
    public var manifestPath: String
    public var stateDirectory: String
    public var statusFile: String
    public var sysfsRoot: SysfsRoot
    public var libvirtURI: String
    public var resyncInterval: Duration
    public var udevSource: String

    public init(
        manifestPath: String, stateDirectory: String, statusFile: String, sysfsRoot: SysfsRoot, libvirtURI: String,
        resyncInterval: Duration, udevSource: String
    ) {
        self.manifestPath = manifestPath
        self.stateDirectory = stateDirectory
        self.statusFile = statusFile
        self.sysfsRoot = sysfsRoot
        self.libvirtURI = libvirtURI
        self.resyncInterval = resyncInterval
        self.udevSource = udevSource
    }
}

/// One reconcile pass of the daemon: re-read the manifest (keeping the last
/// good one when the new text is bad), observe, plan, act, report. Level
/// triggered: the keys only say why it runs.
public final class Reconciler: @unchecked Sendable {
    // @unchecked: used by the daemon's single reconcile loop only (the work
    // queue never runs two at once); `connection` is reset from that loop too.

    public let configuration: DaemonConfiguration
    let logger: Logger
    var lastGood: Manifest?
    var manifestError: String?
    public var connection: LibvirtConnection?
    public private(set) var reconciles = 0
    /// The host as last observed, kept up to date by events between full
    /// resyncs (an informer cache): a hotplug event re-reads one device.
    var cache: ObservedHost?
    /// Checked before each step: SIGTERM finishes the step in flight and stops.
    public var shouldStop: @Sendable () -> Bool = { false }

    public init(configuration: DaemonConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    public struct Outcome: Sendable {
        public var failed: Bool
        public var summary: String
    }

    /// `queued`: how long the batch's oldest key waited for this pass (ms).
    public func reconcile(_ keys: Set<ReconcileKey>, queued: Double = 0) -> Outcome {
        reconciles += 1
        var clock = PhaseClock(queued: queued)
        loadManifest()
        guard let manifest = lastGood else {
            let summary = "waiting for a valid manifest at \(configuration.manifestPath)"
            writeStatus(plan: nil, summary: summary, keys: keys, failedSteps: 0)
            return Outcome(failed: false, summary: summary)
        }
        let store = LedgerStore(directory: configuration.stateDirectory)
        do {
            return try store.withLock {
                if connection == nil { connection = try? LibvirtConnection(uri: configuration.libvirtURI) }
                let sources = HostSources(sysfsRoot: configuration.sysfsRoot, useUdev: configuration.sysfsRoot.path == "/", libvirtURI: configuration.libvirtURI)
                let observer = Observer(sources: sources, connection: connection)
                // The cache is used in place, never copied into a local: a
                // hotplug event then updates a large host's device list
                // without copying it.
                try refreshCache(keys, observer)
                if cache?.libvirtReachable == false, connection != nil {
                    // The connection died (libvirtd restarted): one fresh try now.
                    connection = try? LibvirtConnection(uri: configuration.libvirtURI)
                    cache = nil
                    try refreshCache([.all], Observer(sources: sources, connection: connection))
                }
                let libvirtMissing = cache?.libvirtReachable != true
                if libvirtMissing { connection = nil }
                var ledger = try store.load()
                clock.lap("observe")
                var plan = Planner.plan(manifest: manifest, observed: cache!, ledger: ledger)
                clock.lap("plan")
                var failedSteps = 0
                if !plan.isEmpty {
                    logger.info("reconcile (\(Self.triggers(keys).joined(separator: ", "))): \(plan.steps.count) step(s)")
                    let stop = shouldStop
                    // Test-only fault injection: die as a crash would, after step N.
                    let faultAfter = ProcessInfo.processInfo.environment["HOSTDEV_FAULT_KILL_AFTER_STEP"].flatMap { Int($0) }
                    let executor = Executor(
                        drivers: PCIDriverControl(root: configuration.sysfsRoot), domains: connection, store: store,
                        afterStep: { [logger] index, step, outcome in
                            switch outcome {
                            case .done: logger.info("\(step.action.summary): \(step.reason)")
                            case .skipped(let why): logger.warning("skipped \(step.action.summary): \(why)")
                            case .failed(let error): logger.error("\(step.action.summary) failed: \(error)")
                            }
                            if faultAfter == index + 1 { kill(getpid(), SIGKILL) }
                        }, shouldStop: stop)
                    let outcomes = try executor.run(plan, ledger: &ledger)
                    failedSteps = outcomes.filter { if case .failed = $0 { return true } else { return false } }.count
                    clock.lap("act")
                    try refreshCache(Self.touched(by: plan, reader: InventoryReader(root: configuration.sysfsRoot)), observer)
                    plan = Planner.plan(manifest: manifest, observed: cache!, ledger: ledger)
                    clock.lap("re-plan")
                }
                let summary = Self.summary(plan, failedSteps: failedSteps) + (libvirtMissing ? "; libvirt unreachable, retrying" : "")
                writeStatus(plan: plan, summary: summary, keys: keys, failedSteps: failedSteps, duration: clock.totalMilliseconds)
                clock.lap("report")
                logger.debug("reconcile (\(Self.triggers(keys).joined(separator: ", "))) took \(clock.description)")
                // libvirt away counts as a failure: the queue retries with backoff.
                return Outcome(failed: failedSteps > 0 || libvirtMissing, summary: summary)
            }
        } catch {
            cache = nil
            logger.error("reconcile failed: \(error)")
            writeStatus(plan: nil, summary: "reconcile failed: \(error)", keys: keys, failedSteps: 0)
            return Outcome(failed: true, summary: "reconcile failed: \(error)")
        }
    }

    /// A full observation at start, on resync and whenever the cache is in
    /// doubt; otherwise just the devices and VMs that changed, in place.
    /// On an error the cache is dropped: the next pass observes afresh.
    func refreshCache(_ keys: Set<ReconcileKey>, _ observer: Observer) throws {
        guard cache != nil, !keys.contains(.all), cache!.libvirtReachable, let connection else {
            return try observeAll(observer)
        }
        // Taken out of the optional so that it is uniquely referenced.
        var observed = cache.take()!
        var changes: [(subsystem: String, devpath: String)] = []
        let reader = InventoryReader(root: configuration.sysfsRoot)
        for key in keys {
            switch key {
            case .device(let subsystem, let devpath): changes.append((subsystem, devpath))
            case .nodeDevice(let name):
                guard let change = Self.change(forNodeDevice: name, in: observed.inventory, reader: reader) else {
                    // Not a device the cache can place: read the host afresh.
                    return try observeAll(observer)
                }
                changes.append(change)
            case .vm(let name):
                observed.domains.removeAll { $0.name == name }
                if let domain = try connection.domain(named: name) { observed.domains.append(domain) }
            case .all, .manifest: break
            }
        }
        if !changes.isEmpty { reader.refresh(&observed.inventory, changes: changes) }
        observed.domains.sort { $0.name < $1.name }
        cache = observed
    }

    /// The whole host read afresh into the cache (the old one dropped first:
    /// two large inventories are never held at once).
    func observeAll(_ observer: Observer) throws {
        cache = nil
        cache = try observer.observe { [logger] in logger.warning("\($0)") }
    }

    /// The device behind a libvirt node-device name: one the cache knows
    /// (also when it is gone now), or a PCI function by its bus link.
    static func change(forNodeDevice name: String, in inventory: Inventory, reader: InventoryReader) -> (subsystem: String, devpath: String)? {
        if let known = inventory.device(named: name), let path = known.sysfsPath,
            known.capability == .pci || known.capability == .usbDevice
        {
            return (known.capability == .pci ? "pci" : "usb", String(path.dropFirst(4)))
        }
        guard let address = PCIAddress(nodeDeviceName: name), let devpath = reader.devpath(of: address) else { return nil }
        return ("pci", devpath)
    }

    /// What a plan's steps changed, as keys to refresh the cache with.
    static func touched(by plan: Plan, reader: InventoryReader) -> Set<ReconcileKey> {
        var keys = Set<ReconcileKey>()
        for step in plan.steps {
            switch step.action {
            case .bind(let address, _, _), .restore(let address, _), .setNumVFs(let address, _):
                if let devpath = reader.devpath(of: address) { keys.insert(.device(subsystem: "pci", devpath: devpath)) }
                // A VF count change adds and removes devices: re-read everything.
                if case .setNumVFs = step.action { keys.insert(.all) }
            case .attachConfig(let vm, _), .detachConfig(let vm, _), .attachLive(let vm, _), .detachLive(let vm, _):
                keys.insert(.vm(vm))
            }
        }
        return keys
    }

    func loadManifest() {
        let text: String
        switch fileContents(configuration.manifestPath) {
        case .success(let bytes): text = String(decoding: bytes, as: UTF8.self)
        case .failure(let error):
            manifestError = error.description
            logger.error("\(error); keeping the last good manifest")
            return
        }
        if let lastGood, lastGood.fingerprint == Manifest.fingerprint(of: text) { return }
        do {
            lastGood = try ManifestDecoder.decode(text, file: configuration.manifestPath)
            if manifestError != nil { logger.info("manifest is valid again") }
            manifestError = nil
        } catch {
            manifestError = error.description
            logger.error("manifest rejected, keeping the last good one: \(error.diagnostics.first?.description ?? "")")
        }
    }

    /// Why a reconcile ran, for its log line and status: a VF storm batches
    /// thousands of device keys, of which the first few say enough.
    static func triggers(_ keys: Set<ReconcileKey>, limit: Int = 8) -> [String] {
        let sorted = keys.map(\.description).sorted()
        guard sorted.count > limit else { return sorted }
        return sorted.prefix(limit) + ["and \(sorted.count - limit) more"]
    }

    static func summary(_ plan: Plan, failedSteps: Int) -> String {
        let counts = plan.bindings.values.reduce(into: (ready: 0, pending: 0, blocked: 0)) { counts, condition in
            switch condition {
            case .ready: counts.ready += 1
            case .pending: counts.pending += 1
            case .blocked: counts.blocked += 1
            }
        }
        return "\(plan.bindings.count) bindings: \(counts.ready) ready, \(counts.pending) pending, \(counts.blocked) blocked"
            + (failedSteps > 0 ? "; \(failedSteps) step(s) failed, retrying" : "")
    }

    /// `status.json`, replaced atomically after every reconcile.
    func writeStatus(plan: Plan?, summary: String, keys: Set<ReconcileKey>, failedSteps: Int, duration: Double? = nil) {
        var fields: [(String, JSONText)] = [
            ("summary", .string(summary)),
            ("time", .number(Int(time(nil)))),
            ("pid", .number(Int(getpid()))),
            ("reconciles", .number(reconciles)),
            ("trigger", .array(Self.triggers(keys).map { .string($0) })),
            ("manifest", .string(configuration.manifestPath)),
            ("manifestError", manifestError.map { .string($0) } ?? .null),
            ("libvirt", .string(connection == nil ? "unreachable" : "connected")),
            ("failedSteps", .number(failedSteps)),
            ("durationMs", duration.map { .number(Int($0.rounded(.up))) } ?? .null),
        ]
        if let plan, case .object(let report) = PlanReport(plan: plan).json() { fields += report }
        let text = JSONText.object(fields).rendered() + "\n"
        let path = configuration.statusFile
        let directory = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : "."
        mkdir(directory, 0o755)
        do {
            try replaceFile(path, with: Array(text.utf8), mode: 0o644, durable: false)
        } catch {
            logger.warning("\(error)")
        }
    }
}
