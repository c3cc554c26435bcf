import ArgumentParser
import FoundationEssentials
import HostdevController
import HostdevCore
import HostdevLibvirt
import HostdevManifest
import HostdevSysfs

#if canImport(Glibc)
    import Glibc
#endif

/// Options of the commands that plan: where the manifest and the ledger are.
struct StateOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The manifest.", valueName: "file"))
    var manifest: String = "/etc/hostdevd/bindings.yaml"

    @Option(help: ArgumentHelp("Where the ledger (what hostdevd changed) is kept.", valueName: "dir"))
    var stateDir: String = "/var/lib/hostdevd"
}

/// Reads a whole file; the error names the file and what to do.
func readText(_ path: String, what: String, hint: String) throws -> String {
    switch fileContents(path) {
    case .success(let bytes): return String(decoding: bytes, as: UTF8.self)
    case .failure(let error):
        throw Failure(message: "cannot read \(what) \(path): \(String(cString: strerror(error.errno))); \(hint)")
    }
}

func loadManifest(_ path: String) throws -> Manifest {
    let text = try readText(path, what: "manifest", hint: "create it (see manifests/examples/) or pass --manifest")
    do {
        return try ManifestDecoder.decode(text, file: path)
    } catch {
        throw Failure(message: "\(error)\n\(error.diagnostics.count) error(s) in \(path); 'hostdevctl validate --manifest \(path)' checks it")
    }
}

/// The host as observed now, or as recorded in `--observed FILE`.
func observe(host: HostOptions, observedFile: String?, connection: LibvirtConnection? = nil) throws -> ObservedHost {
    if let observedFile {
        let text = try readText(observedFile, what: "snapshot", hint: "write one with 'hostdevctl snapshot > FILE'")
        do {
            return try JSONDecoder().decode(ObservedHost.self, from: Data(text.utf8))
        } catch {
            throw Failure(message: "\(observedFile) is not a hostdevctl snapshot: \(error)")
        }
    }
    let root = SysfsRoot(host.sysfsRoot)
    let sources = HostSources(sysfsRoot: root, useUdev: root.path == "/", libvirtURI: host.connect)
    return try Observer(sources: sources, connection: connection).observe(warn: printError)
}

struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Check a manifest and report every error with file:line:column.")

    @Option(name: [.customShort("f"), .customLong("manifest")], help: ArgumentHelp("The manifest.", valueName: "file"))
    var manifest: String = "/etc/hostdevd/bindings.yaml"

    func run() throws {
        let parsed: Manifest
        do { parsed = try loadManifest(manifest) } catch { throw fail(error) }
        let devices = parsed.bindings.reduce(0) { $0 + $1.devices.count }
        emit("\(manifest): valid (\(parsed.bindings.count) binding\(parsed.bindings.count == 1 ? "" : "s"), \(devices) device\(devices == 1 ? "" : "s"))\n")
    }
}

struct Snapshot: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write the observed host (devices, domains, host uses) as JSON, for offline planning with --observed.")

    @OptionGroup var host: HostOptions

    func run() throws {
        do {
            let observed = try observe(host: host, observedFile: nil)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            emit(String(decoding: try encoder.encode(observed), as: UTF8.self) + "\n")
        } catch {
            throw fail(error)
        }
    }
}

struct PlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Show what apply would change, and why.",
        discussion: "Exit status: 0 nothing to do, 2 changes pending, 1 error.")

    @OptionGroup var host: HostOptions
    @OptionGroup var state: StateOptions

    @Option(help: ArgumentHelp("Plan against a recorded snapshot instead of this host.", valueName: "file"))
    var observed: String?

    func run() throws {
        let plan: Plan
        do {
            let manifest = try loadManifest(state.manifest)
            let observedHost = try observe(host: host, observedFile: observed)
            let ledger = try LedgerStore(directory: state.stateDir).load()
            plan = Planner.plan(manifest: manifest, observed: observedHost, ledger: ledger)
        } catch {
            throw fail(error)
        }
        emit(PlanReport(plan: plan).text())
        if !plan.isEmpty { throw ExitCode(2) }
    }
}

struct Apply: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Make the host match the manifest once, printing each step as it completes.",
        discussion: "Exit status: 0 all steps done, 1 a step failed or an error (the rest still ran).")

    @OptionGroup var host: HostOptions
    @OptionGroup var state: StateOptions

    func run() throws {
        let store = LedgerStore(directory: state.stateDir)
        var failures = 0
        do {
            let manifest = try loadManifest(state.manifest)
            try store.withLock {
                let connection = try? LibvirtConnection(uri: host.connect)
                let observed = try observe(host: host, observedFile: nil, connection: connection)
                var ledger = try store.load()
                let plan = Planner.plan(manifest: manifest, observed: observed, ledger: ledger)
                if plan.isEmpty {
                    emit("No changes. The host matches the manifest.\n")
                    return
                }
                let faultAfter = ProcessInfo.processInfo.environment["HOSTDEV_FAULT_KILL_AFTER_STEP"].flatMap { Int($0) }
                let executor = Executor(
                    drivers: PCIDriverControl(root: SysfsRoot(host.sysfsRoot)), domains: connection, store: store,
                    afterStep: { index, step, outcome in
                        switch outcome {
                        case .done: emit("done    \(step.action.summary)\n        \(step.reason)\n")
                        case .skipped(let why): emit("skipped \(step.action.summary): \(why)\n")
                        case .failed(let error): emit("FAILED  \(step.action.summary)\n        \(error)\n")
                        }
                        // Test-only fault injection: die as a crash would, after this step.
                        if faultAfter == index + 1 { kill(getpid(), SIGKILL) }
                    })
                let outcomes = try executor.run(plan, ledger: &ledger)
                failures = outcomes.filter { if case .failed = $0 { return true } else { return false } }.count
                let after = Planner.plan(manifest: manifest, observed: try observe(host: host, observedFile: nil, connection: connection), ledger: ledger)
                emit("\n" + PlanReport(plan: after).conditions())
            }
        } catch {
            throw fail(error)
        }
        if failures > 0 {
            printError("error: \(failures) step(s) failed; the others were applied. Fix the cause and run apply again.")
            throw ExitCode.failure
        }
    }
}

struct Release: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Emergency release: give devices back to their host driver now, whatever the manifest says.",
        discussion: "The devices leave the ledger and stay released until the manifest is next edited.")

    @OptionGroup var host: HostOptions
    @OptionGroup var state: StateOptions

    @Flag(help: "Release even a device a running VM uses.")
    var force = false

    @Argument(help: ArgumentHelp("PCI addresses (0000:01:00.0).", valueName: "device"))
    var devices: [String]

    func validate() throws {
        for device in devices where PCIAddress(device) == nil {
            throw ValidationError("'\(device)' is not a PCI address; write it as DDDD:BB:SS.F, e.g. 0000:01:00.0")
        }
    }

    func run() throws {
        let store = LedgerStore(directory: state.stateDir)
        let control = PCIDriverControl(root: SysfsRoot(host.sysfsRoot))
        let fingerprint = (try? readText(state.manifest, what: "manifest", hint: "")).map(Manifest.fingerprint(of:)) ?? ""
        var failed = false
        do {
            try store.withLock {
                var ledger = try store.load()
                let domains = (try? LibvirtConnection(uri: host.connect).domains()) ?? []
                for address in devices.compactMap({ PCIAddress($0) }) {
                    if !force, let user = domains.first(where: { $0.isActive && $0.liveHostdevs.contains { $0.source == .pci(address) } }) {
                        printError("error: \(address) is in use by running \(user.name); shut it down or unplug the device first (or --force)")
                        failed = true
                        continue
                    }
                    let original = ledger.devices[address]?.originalDriver
                    do {
                        try control.restore(address, to: original)
                        ledger.devices[address] = nil
                        ledger.released[address] = fingerprint
                        try store.save(ledger)
                        emit("released \(address) to \(control.driver(of: address) ?? "no driver (none matched)")\n")
                    } catch {
                        printError("error: releasing \(address): \(error)")
                        failed = true
                    }
                }
            }
        } catch {
            throw fail(error)
        }
        if failed { throw ExitCode.failure }
    }
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show each binding's and device's condition: Ready, Pending or Blocked, and why.")

    @OptionGroup var host: HostOptions
    @OptionGroup var state: StateOptions

    @Option(help: ArgumentHelp("Status against a recorded snapshot instead of this host.", valueName: "file"))
    var observed: String?

    @Option(help: "Output format: text or json.")
    var format: StatusFormat = .text

    @Option(help: ArgumentHelp("The running daemon's status file; read when present (and --live is not given).", valueName: "file"))
    var statusFile: String = "/run/hostdevd/status.json"

    @Flag(help: "Observe the host now instead of reading the daemon's status file.")
    var live = false

    enum StatusFormat: String, ExpressibleByArgument, CaseIterable { case text, json }

    func run() throws {
        if !live, observed == nil, let text = try? readText(statusFile, what: "status", hint: "") {
            emit(format == .json ? text : DaemonStatus.text(text, path: statusFile))
            return
        }
        let plan: Plan
        do {
            plan = Planner.plan(
                manifest: try loadManifest(state.manifest), observed: try observe(host: host, observedFile: observed),
                ledger: try LedgerStore(directory: state.stateDir).load())
        } catch {
            throw fail(error)
        }
        let report = PlanReport(plan: plan)
        switch format {
        case .json: emit(report.json().rendered() + "\n")
        case .text:
            emit(report.conditions() + (plan.notes.isEmpty ? "" : "Notes:\n" + plan.notes.map { "  - \($0)\n" }.joined()))
            if !plan.isEmpty { emit("\(plan.steps.count) change(s) pending: 'hostdevctl plan' shows them.\n") }
        }
    }
}

/// The daemon's status.json for people: its summary, then each condition.
enum DaemonStatus {
    struct File: Decodable {
        struct Entry: Decodable {
            var condition: String
            var reason: String?
        }
        var summary: String?
        var libvirt: String?
        var reconciles: Int?
        var manifestError: String?
        var bindings: [String: Entry]?
        var devices: [String: Entry]?
        var notes: [String]?
    }

    static func text(_ json: String, path: String) -> String {
        guard let status = try? JSONDecoder().decode(File.self, from: Data(json.utf8)) else {
            return "\(path) is not readable status JSON; run 'hostdevctl status --live'\n"
        }
        var out = "hostdevd: \(status.summary ?? "?") (libvirt \(status.libvirt ?? "?"), \(status.reconciles ?? 0) reconciles)\n"
        if let error = status.manifestError { out += "manifest error (the last good manifest is in force):\n  \(error)\n" }
        for (title, entries) in [("Bindings", status.bindings ?? [:]), ("Devices", status.devices ?? [:])] where !entries.isEmpty {
            let rows: [[String]] = entries.sorted { $0.key < $1.key }.map { entry in
                let reason = entry.value.reason.map { ": " + $0 } ?? ""
                return ["  " + entry.key, entry.value.condition + reason]
            }
            out += title + ":\n" + alignColumns(rows)
        }
        if let notes = status.notes, !notes.isEmpty { out += "Notes:\n" + notes.map { "  - \($0)\n" }.joined() }
        return out
    }
}
