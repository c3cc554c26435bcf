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

/// Reads a whole file, at most `limit` bytes; the error names the file,
/// what is wrong and what to do.
func readBytes(_ path: String, what: String, limit: Int, hint: String) throws -> [UInt8] {
    switch fileContents(path, limit: limit) {
    case .success(let bytes): return bytes
    case .failure(let error):
        // "cannot read manifest /etc/…: No such file or directory; create it"
        let detail = error.description.hasPrefix("cannot read ") ? String(error.description.dropFirst(12)) : error.description
        throw Failure(message: "cannot read \(what) \(detail)\(hint.isEmpty ? "" : "; " + hint)")
    }
}

func readText(_ path: String, what: String, limit: Int = FileLimits.state, hint: String) throws -> String {
    String(decoding: try readBytes(path, what: what, limit: limit, hint: hint), as: UTF8.self)
}

/// The manifest and the drop-ins beside it, with the bindings for `host`
/// (nil: every binding, whatever its `hosts:`).
func loadManifest(_ path: String, host: String? = currentHostName()) throws -> Manifest {
    try decodeManifest(try readManifestParts(path), host: host, path: path)
}

func readManifestParts(_ path: String) throws -> [ManifestPart] {
    switch ManifestFiles.read(path) {
    case .success(let parts): return parts
    case .failure(let error):
        // "cannot read manifest /etc/…: No such file or directory; create it"
        let detail = error.description.hasPrefix("cannot read ") ? String(error.description.dropFirst(12)) : error.description
        let hint = error.path == path ? "create it (see manifests/examples/) or pass --manifest" : "fix or remove that drop-in"
        throw Failure(message: "cannot read manifest \(detail); \(hint)")
    }
}

func decodeManifest(_ parts: [ManifestPart], host: String?, path: String) throws -> Manifest {
    do {
        return try ManifestDecoder.decode(parts: parts, host: host)
    } catch {
        let files = parts.count > 1 ? "\(path) and its drop-ins" : path
        throw Failure(message: "\(error)\n\(error.diagnostics.count) error(s) in \(files); 'hostdevctl validate --manifest \(path)' checks it")
    }
}

/// The host as observed now, or as recorded in `--observed FILE`.
func observe(host: HostOptions, observedFile: String?, connection: LibvirtConnection? = nil) throws -> ObservedHost {
    if let observedFile {
        let text = try readText(observedFile, what: "snapshot", limit: FileLimits.snapshot, hint: "write one with 'hostdevctl snapshot > FILE'")
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
        // Every binding, for every host: a fleet's manifest is checked whole.
        do { parsed = try loadManifest(manifest, host: nil) } catch { throw fail(error) }
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
        discussion: """
            Exit status: 0 nothing to do and every binding Ready; 2 changes to apply; \
            3 nothing to apply, but a binding is Blocked or Pending (it waits for something: the reason says what); \
            1 error.
            """)

    @OptionGroup var host: HostOptions
    @OptionGroup var state: StateOptions

    @Option(help: ArgumentHelp("Plan against a recorded snapshot instead of this host.", valueName: "file"))
    var observed: String?

    @Option(
        name: .customLong("host"),
        help: ArgumentHelp("Plan as the host of this name: the bindings whose 'hosts:' match it (default: this host's name). With --observed, plans another host of a fleet from its snapshot.", valueName: "name"))
    var hostName: String?

    func validate() throws {
        if let hostName, hostName.isEmpty || hostName.contains(where: \.isWhitespace) {
            throw ValidationError("--host '\(hostName)' is not a host name; give the name 'uname -n' prints on that host")
        }
    }

    func run() throws {
        let plan: Plan
        do {
            let manifest = try loadManifest(state.manifest, host: hostName ?? currentHostName())
            let observedHost = try observe(host: host, observedFile: observed)
            plan = try controller(host, state).plan(manifest: manifest, observed: observedHost).0
        } catch {
            throw fail(error)
        }
        emit(PlanReport(plan: plan).text())
        if plan.verdict != .converged { throw ExitCode(plan.verdict.exitCode) }
    }
}

func controller(_ host: HostOptions, _ state: StateOptions) -> Controller {
    let root = SysfsRoot(host.sysfsRoot)
    return Controller(
        sources: HostSources(sysfsRoot: root, useUdev: root.path == "/", libvirtURI: host.connect),
        stateDirectory: absolutePath(state.stateDir))
}

struct Apply: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Make the host match the manifest once, printing each step as it completes.",
        discussion: """
            Exit status: 0 done and every binding Ready; 1 a step failed or an error (the other steps still ran); \
            3 nothing failed, but a binding is Blocked or still Pending (the reason says why).
            """)

    @OptionGroup var host: HostOptions
    @OptionGroup var state: StateOptions

    func run() throws {
        let controller = controller(host, state)
        var failures = 0
        var after = Plan()
        do {
            let manifest = try loadManifest(state.manifest)
            let connection = try? LibvirtConnection(uri: host.connect)
            let (plan, ledger) = try controller.plan(manifest: manifest, observed: try controller.observe(connection: connection, warn: printError))
            LastGoodManifest(stateDirectory: controller.store.directory).save(try readManifestParts(state.manifest))
            if plan.verdict == .converged {
                emit("No changes. The host matches the manifest.\n")
                return
            }
            let (_, outcomes) = try controller.act(plan, ledger: ledger, scope: .everything, domains: connection) { _, step, outcome in
                switch outcome {
                case .done: emit("done    \(step.action.summary)\n        \(step.reason)\n")
                case .skipped(let why): emit("skipped \(step.action.summary): \(why)\n")
                case .failed(let error): emit("FAILED  \(step.action.summary)\n        \(error)\n")
                }
            }
            failures = outcomes.filter(\.isFailure).count
            after = try controller.plan(manifest: manifest, observed: try controller.observe(connection: connection)).0
            emit("\n" + PlanReport(plan: after).conditions())
        } catch {
            throw fail(error)
        }
        if failures > 0 {
            printError("error: \(failures) step(s) failed; the others were applied. Fix the cause and run apply again.")
            throw ExitCode.failure
        }
        if after.verdict != .converged {
            let blocked = after.blockedBindings
            printError(blocked.isEmpty
                ? "note: some bindings are still Pending (see above); apply again or let hostdevd finish"
                : "error: blocked: \(blocked.joined(separator: ", ")) (see above)")
            throw ExitCode(Plan.Verdict.waiting.exitCode)
        }
    }
}

struct Release: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Emergency release: give devices on vfio-pci back to their host driver now, whatever the manifest says.",
        discussion: """
            Only devices hostdevd bound, or that sit on vfio-pci, are released; hostdevd's <hostdev> for them \
            leaves the VM's config, so the VM still starts (without them). They stay released until the manifest \
            is next edited. A device the host uses (storage, network) is never released, not even with --force.
            """)

    @OptionGroup var host: HostOptions
    @OptionGroup var state: StateOptions

    @Flag(help: "Unplug a device a running VM uses, and go ahead when libvirt cannot be asked whether a VM uses it.")
    var force = false

    @Argument(help: ArgumentHelp("PCI addresses (0000:01:00.0).", valueName: "device"))
    var devices: [String]

    func validate() throws {
        for device in devices where PCIAddress(device) == nil {
            throw ValidationError("'\(device)' is not a PCI address; write it as DDDD:BB:SS.F, e.g. 0000:01:00.0")
        }
    }

    func run() throws {
        let controller = controller(host, state)
        var failed = false
        do {
            // Without a readable manifest the release still happens; it
            // then lasts until a manifest is read again.
            let manifest = (try? loadManifest(state.manifest)) ?? Manifest(host: HostPolicy(), bindings: [], fingerprint: "")
            let connection = try? LibvirtConnection(uri: host.connect)
            let result = try controller.release(devices.compactMap { PCIAddress($0) }, manifest: manifest, force: force, connection: connection) {
                _, step, outcome in
                switch outcome {
                case .done: emit("done    \(step.action.summary)\n")
                case .skipped(let why): emit("skipped \(step.action.summary): \(why)\n")
                case .failed(let error): emit("FAILED  \(step.action.summary)\n        \(error)\n")
                }
            }
            for refusal in result.refused { printError("error: not releasing \(refusal)") }
            failed = !result.refused.isEmpty || result.outcomes.contains(where: \.isFailure)
            for address in devices.compactMap({ PCIAddress($0) }) where !result.refused.contains(where: { $0.address == address }) {
                if let condition = result.plan.devices["pci \(address)"], condition.isBlocked {
                    printError("error: not releasing \(address): \(condition)")
                    failed = true
                } else {
                    emit("released \(address): on \(PCIDriverControl(root: controller.sources.sysfsRoot).driver(of: address) ?? "no driver")\n")
                }
            }
        } catch {
            throw fail(error)
        }
        if failed { throw ExitCode.failure }
    }
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show each binding's and device's condition: Ready, Pending or Blocked, and why.",
        discussion: """
            Reads the running daemon's status file unless --live or --observed is given. Exit status: 0 every binding \
            Ready; 3 a binding is Blocked or Pending, changes are pending, or the status file is not from the running \
            daemon (it says which); 1 error.
            """)

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
        if !live, observed == nil, case .failure(let error) = fileContents(statusFile), error.problem == .system(EACCES) {
            // The daemon runs; only this user may not read what it says.
            throw fail(Failure(message: "cannot read status \(statusFile): Permission denied; members of group \(ReaderGroup.name) read it without root ('adduser \(currentUser()) \(ReaderGroup.name)', then log in again), or run as root"))
        }
        if !live, observed == nil, let text = try? readText(statusFile, what: "status", hint: "") {
            let staleness = DaemonStatus.staleness(text)
            if let staleness { printError("warning: \(statusFile): \(staleness)") }
            emit(format == .json ? text : DaemonStatus.text(text, path: statusFile))
            if staleness != nil { throw ExitCode(Plan.Verdict.waiting.exitCode) }
            return
        }
        let plan: Plan
        do {
            let controller = controller(host, state)
            plan = try controller.plan(manifest: try loadManifest(state.manifest), observed: try observe(host: host, observedFile: observed)).0
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
        if plan.verdict != .converged { throw ExitCode(Plan.Verdict.waiting.exitCode) }
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
        var pid: Int32?
        var started: UInt64?
        var time: Int?
        var libvirt: String?
        var reconciles: Int?
        var manifestError: String?
        var bindings: [String: Entry]?
        var devices: [String: Entry]?
        var notes: [String]?
    }

    /// Why the file does not describe a running daemon, or nil when it does:
    /// the daemon that wrote it is gone, or a newer one has not written yet.
    static func staleness(_ json: String, proc: String = "/proc") -> String? {
        guard let status = try? JSONDecoder().decode(File.self, from: Data(json.utf8)), let pid = status.pid else { return nil }
        let written = status.time.map { " (written at \(clockTime(Double($0))))" } ?? ""
        guard let running = ProcessStart.of(pid: pid, proc: proc) else {
            return "hostdevd is not running (pid \(pid) is gone); this status is from its last run\(written). Start it: systemctl start hostdevd"
        }
        if let started = status.started, started != running.ticks {
            return "pid \(pid) is not the hostdevd that wrote this status\(written): it predates the running process; wait for its first reconcile"
        }
        return nil
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

/// The name of the user running this command, for hints.
func currentUser() -> String {
    guard let entry = getpwuid(geteuid()), let name = entry.pointee.pw_name else { return "USER" }
    return String(cString: name)
}
