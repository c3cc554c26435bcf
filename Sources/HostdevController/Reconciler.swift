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
    /// The name bindings' `hosts:` globs are matched against.
    public var hostName: String

    public init(
        manifestPath: String, stateDirectory: String, statusFile: String, sysfsRoot: SysfsRoot, libvirtURI: String,
        resyncInterval: Duration, udevSource: String, hostName: String = currentHostName()
    ) {
        self.hostName = hostName
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
/// triggered: the keys only say why it runs. Observing and domain edits
/// hold no lock; each driver move holds the state lock only around itself.
public final class Reconciler: @unchecked Sendable {
    // @unchecked: used by the daemon's single reconcile thread only (the
    // work queue never runs two passes at once).

    public let configuration: DaemonConfiguration
    let logger: Logger
    var lastGood: Manifest?
    var manifestError: String?
    public var connection: LibvirtConnection?
    public private(set) var reconciles = 0
    /// The host's devices and domains as last observed, kept up to date by
    /// events between full resyncs (an informer cache): a hotplug event
    /// re-reads one device. Host uses are never taken from it: they are
    /// read afresh on every pass.
    var cache: ObservedHost?
    /// Failed steps, by device: a device is tried again at its retry time,
    /// not whenever an event (its own rollback's uevents) wakes the loop.
    public private(set) var backoff = Backoff()
    /// The last actions on each device, for status.json and `describe`;
    /// carried over from the previous run's status file at start.
    public private(set) var history = DeviceHistory()
    /// Wall-clock seconds since the epoch; tests inject a clock.
    public var now: @Sendable () -> Double = { Double(time(nil)) }
    /// How long a driver move waits for the state lock.
    public var lockTimeout: Duration? = .seconds(30)
    /// Where sysfs writes go: the kernel (nil), or a fake one in tests.
    public var writer: (any SysfsWriter)?
    /// Reads and sets SR-IOV VFs' settings: nil for `HostSources`' own
    /// choice (rtnetlink on the live host), a fake in tests.
    public var vfConfigurator: (any VFConfigurator)?
    /// Checked before each step: SIGTERM finishes the step in flight and stops.
    public var shouldStop: @Sendable () -> Bool = { false }
    /// When the daemon started, for status readers to tell a stale file.
    let started = ProcessStart.current()
    /// Gets a record of every pass (the daemon's metrics); nil: none kept.
    public var recorder: (any PassRecorder)?
    /// Counts the manifest texts accepted, for the metrics.
    var manifestGeneration = 0
    /// The rejected text last counted as a failure (counted once, not per pass).
    var rejectedFingerprint: String?
    /// This pass's failures, bind latencies, plan and event time (monotonic ms).
    var passFailures: [FailureKind: Int] = [:]
    var bindLatencies: [Double] = []
    var passPlan: Plan?
    var eventTime: Double = 0

    public init(configuration: DaemonConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        // A missing or unreadable earlier status only means the history starts afresh.
        history = Self.history(inStatusFile: configuration.statusFile) ?? DeviceHistory()
    }

    /// The per-device history in a status file; nil when there is no
    /// readable status file (a file from before histories: an empty one).
    public static func history(inStatusFile path: String) -> DeviceHistory? {
        struct Status: Decodable { var history: DeviceHistory? }
        guard case .success(let bytes) = fileContents(path, limit: FileLimits.state),
            let status = try? JSONDecoder().decode(Status.self, from: Data(bytes))
        else { return nil }
        return status.history ?? DeviceHistory()
    }

    public struct Outcome: Sendable {
        /// The pass itself failed or libvirt is away: the queue retries its keys with backoff.
        public var failed: Bool
        public var summary: String
        /// When a device held back by its backoff may be tried again.
        public var retryAfter: Duration?
    }

    var sources: HostSources {
        HostSources(
            sysfsRoot: configuration.sysfsRoot, useUdev: configuration.sysfsRoot.path == "/", libvirtURI: configuration.libvirtURI,
            vfConfigurator: vfConfigurator)
    }

    /// `queued`: how long the batch's oldest key waited for this pass (ms).
    public func reconcile(_ keys: Set<ReconcileKey>, queued: Double = 0) -> Outcome {
        let start = PhaseClock.now()
        eventTime = start - queued
        (passFailures, bindLatencies, passPlan) = ([:], [], nil)
        let outcome = pass(keys, queued: queued)
        if let recorder {
            recorder.record(PassRecord(
                duration: (PhaseClock.now() - start) / 1000,
                bindings: passPlan.map { PassRecord.count($0.bindings.values) },
                devices: passPlan.map { PassRecord.count($0.devices.values) },
                libvirtConnected: connection != nil, manifestGeneration: manifestGeneration,
                manifestRejected: manifestError != nil, failures: passFailures, bindLatencies: bindLatencies, time: now()))
        }
        return outcome
    }

    func pass(_ keys: Set<ReconcileKey>, queued: Double) -> Outcome {
        reconciles += 1
        var clock = PhaseClock(queued: queued)
        loadManifest()
        guard let manifest = lastGood else {
            let summary = "waiting for a valid manifest at \(configuration.manifestPath)"
                + (manifestError.map { ": \($0.split(separator: "\n").first ?? "")" } ?? "")
            writeStatus(plan: nil, summary: summary, keys: keys, failedSteps: 0)
            return Outcome(failed: false, summary: summary)
        }
        let store = LedgerStore(directory: configuration.stateDirectory)
        do {
            if connection == nil { connection = try? LibvirtConnection(uri: configuration.libvirtURI) }
            var observer = Observer(sources: sources, connection: connection)
            let observedAll = try refreshCache(keys, observer)
            if cache!.coverage != .all, connection != nil {
                // The connection died (libvirtd restarted): one fresh try now.
                connection = try? LibvirtConnection(uri: configuration.libvirtURI)
                observer.connection = connection
                refreshDomains([.all], observer)
            }
            let libvirtMissing = cache!.coverage != .all
            if libvirtMissing { connection = nil }
            // A full observation has just read them.
            if !observedAll { observer.readHostFacts(into: &cache!) }
            let ledger = try store.load()
            clock.lap("observe")
            var plan = Planner.plan(manifest: manifest, observed: cache!, ledger: ledger, backoff: backoff, now: now())
            clock.lap("plan")
            var failedSteps = 0
            let executor = makeExecutor(store, observer)
            if !plan.isEmpty {
                logger.info("reconcile (\(Self.triggers(keys).joined(separator: ", "))): \(plan.steps.count) step(s)")
                let outcomes = try executor.run(plan)
                for (step, outcome) in zip(plan.steps, outcomes) {
                    history.record(step, outcome: outcome, time: Int(now()))
                    switch outcome {
                    case .done: backoff.succeeded(step.action.deviceKey)
                    // A step skipped after its device's failure forgives nothing.
                    case .skipped: break
                    case .failed(let error):
                        backoff.failed(step.action.deviceKey, error: error, now: now(), maximumDelay: Self.maximumDelay(step.action, executor))
                    }
                }
                failedSteps = outcomes.filter(\.isFailure).count
                if failedSteps > 0 { passFailures[.step, default: 0] += failedSteps }
                clock.lap("act")
                // The re-plan only reports: it keeps the pass's host uses
                // (read before acting; every next pass reads them again).
                try refreshCache(Self.touched(by: plan, reader: InventoryReader(root: configuration.sysfsRoot)), observer)
                // VF settings the steps changed are read back, so the report shows them set.
                if plan.steps.contains(where: { $0.action.kind == "configureVF" || $0.action.kind == "restoreVF" }) {
                    cache!.vfSettings = observer.vfSettings(cache!.inventory)
                }
                plan = Planner.plan(manifest: manifest, observed: cache!, ledger: try store.load(), backoff: backoff, now: now())
                clock.lap("re-plan")
            }
            if plan.liveVMs != ledger.liveVMs || ledger.intent != nil {
                try executor.settle(liveVMs: plan.liveVMs, interrupted: ledger.intent)
            }
            passPlan = plan
            if libvirtMissing { passFailures[.libvirt, default: 0] += 1 }
            let summary = Self.summary(plan, failedSteps: failedSteps) + (libvirtMissing ? "; libvirt unreachable, retrying" : "")
                + (manifestError.map { "; manifest rejected, the last good one is in force: \($0.split(separator: "\n").first ?? "")" } ?? "")
            writeStatus(plan: plan, summary: summary, keys: keys, failedSteps: failedSteps, duration: clock.totalMilliseconds)
            clock.lap("report")
            logger.debug("reconcile (\(Self.triggers(keys).joined(separator: ", "))) took \(clock.description)")
            let retry = backoff.nextRetry(after: now()).map { Duration.milliseconds(Int64(max(($0 - now()) * 1000, 1))) }
            return Outcome(failed: libvirtMissing, summary: summary, retryAfter: retry)
        } catch {
            cache = nil
            passFailures[.reconcile, default: 0] += 1
            logger.error("reconcile failed: \(error)")
            writeStatus(plan: nil, summary: "reconcile failed: \(error)", keys: keys, failedSteps: 0)
            return Outcome(failed: true, summary: "reconcile failed: \(error)")
        }
    }

    /// How long a failed step may wait at most: a release refused because a
    /// process holds the VFIO group is tried again within seconds of the
    /// holder's exit (which no event announces); anything else backs off
    /// to minutes, so a driver that will not let go does not flap.
    static func maximumDelay(_ action: Action, _ executor: Executor) -> Double {
        if case .restore(let address, _) = action, !executor.groupHolders(address).isEmpty { return Backoff.holderDelay }
        return Backoff.maximumDelay
    }

    func makeExecutor(_ store: LedgerStore, _ observer: Observer) -> Executor {
        Controller(sources: sources, stateDirectory: configuration.stateDirectory, lockTimeout: lockTimeout, writer: writer).executor(
            domains: connection,
            afterStep: { [logger, self] _, step, outcome in
                switch outcome {
                case .done:
                    if case .bind = step.action { bindLatencies.append((PhaseClock.now() - eventTime) / 1000) }
                    logger.info("\(step.action.summary): \(step.reason)")
                case .skipped(let why): logger.warning("skipped \(step.action.summary): \(why)")
                case .failed(let error): logger.error("\(step.action.summary) failed: \(error)")
                }
            }, shouldStop: shouldStop)
    }

    /// The udev subsystems the daemon listens to: PCI and USB devices (and
    /// the VFIO group nodes) are placed in the cache one by one; a SCSI disk
    /// arrives as several events (the device, its generic node, its block
    /// device) and an mdev changes its parent's instances, so those make the
    /// next pass read the whole host: a disk known without its block device
    /// would hide the host's use of it.
    public static let watchedSubsystems = ["pci", "usb", "vfio", "scsi", "scsi_generic", "block", "mdev"]
    static let placedOneByOne: Set = ["pci", "usb", "vfio"]

    /// A full observation at start, on resync and whenever the cache is in
    /// doubt; otherwise just the devices and VMs that changed, in place.
    /// On an error the cache is dropped: the next pass observes afresh.
    /// Returns whether it observed the whole host.
    @discardableResult
    func refreshCache(_ keys: Set<ReconcileKey>, _ observer: Observer) throws -> Bool {
        guard cache != nil, !keys.contains(.all) else {
            try observeAll(observer)
            return true
        }
        // Taken out of the optional so that it is uniquely referenced.
        var observed = cache.take()!
        var changes: [(subsystem: String, devpath: String)] = []
        let reader = InventoryReader(root: configuration.sysfsRoot)
        for key in keys {
            switch key {
            case .device(let subsystem, let devpath):
                guard Self.placedOneByOne.contains(subsystem) else {
                    try observeAll(observer)
                    return true
                }
                changes.append((subsystem, devpath))
            case .nodeDevice(let name):
                guard let change = Self.change(forNodeDevice: name, in: observed.inventory, reader: reader) else {
                    // Not a device the cache can place: read the host afresh.
                    try observeAll(observer)
                    return true
                }
                changes.append(change)
            case .all, .manifest, .vm, .retry: break
            }
        }
        if !changes.isEmpty { reader.refresh(&observed.inventory, changes: changes) }
        cache = observed
        refreshDomains(keys, observer)
        return false
    }

    /// The domains the keys name, or all of them when the cache does not
    /// know them all. A libvirt error makes every domain unknown: a VM the
    /// cache says is off may have started meanwhile.
    func refreshDomains(_ keys: Set<ReconcileKey>, _ observer: Observer) {
        guard let connection = observer.connection, cache!.coverage == .all, !keys.contains(.all) else {
            (cache!.domains, cache!.coverage) = observer.domains()
            return
        }
        for case .vm(let name) in keys {
            do {
                cache!.domains.removeAll { $0.name == name }
                if var domain = try connection.domain(named: name) {
                    VMUseResolver(root: configuration.sysfsRoot).resolve(&domain.uses)
                    cache!.domains.append(domain)
                }
            } catch {
                (cache!.domains, cache!.coverage) = ([], .unreachable(String(describing: error)))
                return
            }
        }
        cache!.domains.sort { $0.name < $1.name }
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
            case .bind(let address, _, _), .restore(let address, _), .setNumVFs(let address, _), .releaseConsole(let address),
                .restoreConsole(let address):
                if let devpath = reader.devpath(of: address) { keys.insert(.device(subsystem: "pci", devpath: devpath)) }
                // A VF count change adds and removes devices: re-read everything.
                if case .setNumVFs = step.action { keys.insert(.all) }
            case .createMdev(let spec, _), .removeMdev(let spec, _):
                // The parent's instances left changed.
                if let devpath = reader.devpath(of: spec.parent) { keys.insert(.device(subsystem: "pci", devpath: devpath)) }
            case .attachConfig(let vm, _), .detachConfig(let vm, _), .attachLive(let vm, _), .detachLive(let vm, _):
                keys.insert(.vm(vm))
            case .configureVF, .restoreVF:
                break  // VF settings are read afresh on every pass (and after acting)
            }
        }
        return keys
    }

    /// The manifest and its drop-ins, read afresh; the last good manifest
    /// stays in force when any file is unreadable or invalid.
    func loadManifest() {
        let parts: [ManifestPart]
        switch ManifestFiles.read(configuration.manifestPath) {
        case .success(let read): parts = read
        case .failure(let error):
            rejected(error.description, fingerprint: "unreadable " + error.description)
            logger.error("manifest rejected, keeping the last good one: \(error)")
            return
        }
        if let lastGood, lastGood.fingerprint == ManifestPart.fingerprint(of: parts) {
            // The good text is back (an edit was reverted): the error is gone.
            if manifestError != nil { logger.info("manifest is valid again") }
            (manifestError, rejectedFingerprint) = (nil, nil)
            return
        }
        do {
            lastGood = try ManifestDecoder.decode(parts: parts, host: configuration.hostName)
            manifestGeneration += 1
            if manifestError != nil { logger.info("manifest is valid again") }
            (manifestError, rejectedFingerprint) = (nil, nil)
            LastGoodManifest(stateDirectory: configuration.stateDirectory).save(parts, logger: logger)
        } catch {
            rejected(error.description, fingerprint: ManifestPart.fingerprint(of: parts))
            logger.error("manifest rejected, keeping the last good one: \(error.diagnostics.first?.description ?? "")")
        }
    }

    /// Records a rejected manifest; a text already rejected is not a new failure.
    func rejected(_ error: String, fingerprint: String) {
        manifestError = error
        if rejectedFingerprint != fingerprint { passFailures[.manifest, default: 0] += 1 }
        rejectedFingerprint = fingerprint
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
        let daemon = StatusDocument.Daemon(
            summary: summary, time: Int(time(nil)), pid: Int(getpid()), started: Int(started.ticks), reconciles: reconciles,
            trigger: Self.triggers(keys), manifest: configuration.manifestPath, manifestError: manifestError,
            libvirtConnected: connection != nil, failedSteps: failedSteps, durationMs: duration.map { Int($0.rounded(.up)) })
        let text = StatusDocument(daemon: daemon, plan: plan, inventory: cache?.inventory, history: history).json.rendered() + "\n"
        do {
            try writeStatusFile(configuration.statusFile, Array(text.utf8))
        } catch {
            logger.warning("\(error)")
        }
    }
}
