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
    static let configuration = CommandConfiguration(
        abstract: "Check manifests and report every error with file:line:column.",
        discussion: "Each FILE is checked on its own; - reads standard input. Exit status: 0 every file valid, 1 otherwise.")

    @Option(name: [.customShort("f"), .customLong("manifest")], help: ArgumentHelp("A manifest (default: /etc/hostdevd/bindings.yaml when no FILE is given).", valueName: "file"))
    var manifest: String?

    @Argument(help: ArgumentHelp("Manifests to check; - is standard input.", valueName: "file"))
    var files: [String] = []

    @OptionGroup var output: FormatOption

    func validate() throws {
        if files.filter({ $0 == "-" }).count > 1 { throw ValidationError("standard input (-) can be read only once") }
    }

    /// One file's verdict: its counts, or every error with line and column.
    static func check(_ file: String) -> ValidateDocument.FileResult {
        // A named manifest comes with the drop-ins of its bindings.d/; every
        // binding is checked, for every host: a fleet's manifest is checked whole.
        let read: Result<[ManifestPart], FileReadError> =
            file == "-"
            ? readBounded(fd: 0, limit: FileLimits.manifest).map { [ManifestPart(file: "<stdin>", bytes: $0)] }
            : ManifestFiles.read(file)
        let parts: [ManifestPart]
        switch read {
        case .success(let content): parts = content
        case .failure(let error):
            return ValidateDocument.FileResult(file: file, problems: [.init(line: 0, column: 0, message: error.description, hint: nil)])
        }
        do {
            let parsed = try ManifestDecoder.decode(parts: parts, host: nil)
            return ValidateDocument.FileResult(file: file, bindings: parsed.bindings.count, devices: parsed.bindings.reduce(0) { $0 + $1.devices.count })
        } catch {
            let main = parts.first?.file
            return ValidateDocument.FileResult(file: file, problems: error.diagnostics.map {
                .init(
                    dropIn: $0.location.file == main || $0.location.file.isEmpty ? nil : $0.location.file,
                    line: $0.location.line, column: $0.location.column, message: $0.message, hint: $0.hint)
            })
        }
    }

    func run() throws {
        let all = (manifest.map { [$0] } ?? []) + files
        let document = ValidateDocument(files: (all.isEmpty ? ["/etc/hostdevd/bindings.yaml"] : all).map(Self.check))
        switch output.format {
        case .json: emit(document.json.rendered() + "\n")
        case .text:
            for file in document.files {
                let name = file.file == "-" ? "<stdin>" : file.file
                if file.valid {
                    emit("\(name): valid (\(file.bindings) binding\(file.bindings == 1 ? "" : "s"), \(file.devices) device\(file.devices == 1 ? "" : "s"))\n")
                } else if file.problems.count == 1, file.problems[0].line == 0 {
                    printError("error: \(file.problems[0].message)")
                } else {
                    for problem in file.problems {
                        printError("\(problem.dropIn ?? name):\(problem.line):\(problem.column): error: \(problem.message)" + (problem.hint.map { "; \($0)" } ?? ""))
                    }
                    printError("\(file.problems.count) error(s) in \(name)")
                }
            }
        }
        if document.exitCode != 0 { throw ExitCode(document.exitCode) }
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

    @OptionGroup var output: FormatOption

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
        let observedHost: ObservedHost
        do {
            let manifest = try loadManifest(state.manifest, host: hostName ?? currentHostName())
            observedHost = try observe(host: host, observedFile: observed)
            plan = try controller(host, state).plan(manifest: manifest, observed: observedHost).0
        } catch {
            throw fail(error)
        }
        switch output.format {
        case .text: emit(PlanReport(plan: plan).text())
        case .json: emit(PlanDocument(plan: plan, inventory: observedHost.inventory).json.rendered() + "\n")
        }
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

    @OptionGroup var output: FormatOption

    func run() throws {
        let controller = controller(host, state)
        let json = output.format == .json
        var failures = 0
        var after = Plan()
        do {
            let manifest = try loadManifest(state.manifest)
            let connection = try? LibvirtConnection(uri: host.connect)
            let observed = try controller.observe(connection: connection, warn: printError)
            let (plan, ledger) = try controller.plan(manifest: manifest, observed: observed)
            LastGoodManifest(stateDirectory: controller.store.directory).save(try readManifestParts(state.manifest))
            if plan.verdict == .converged {
                emit(json ? ApplyResultDocument(after: plan, stepsRun: 0, failedSteps: 0).json.compact() + "\n" : "No changes. The host matches the manifest.\n")
                return
            }
            // Numbered and with each device's driver as the plan saw it, before any step moves it.
            let documents = StepDocument.steps(of: plan, inventory: observed.inventory)
            let (steps, outcomes) = try controller.act(plan, ledger: ledger, scope: .everything, domains: connection) { index, step, outcome in
                if json {
                    let document = index < documents.count && documents[index].step == step ? documents[index] : StepDocument(order: index + 1, step: step, currentDriver: nil)
                    emit(ApplyStepRecord(step: document, outcome: outcome).json.compact() + "\n")
                    return
                }
                switch outcome {
                case .done: emit("done    \(step.action.summary)\n        \(step.reason)\n")
                case .skipped(let why): emit("skipped \(step.action.summary): \(why)\n")
                case .failed(let error): emit("FAILED  \(step.action.summary)\n        \(error)\n")
                }
            }
            failures = outcomes.filter(\.isFailure).count
            after = try controller.plan(manifest: manifest, observed: try controller.observe(connection: connection)).0
            let result = ApplyResultDocument(after: after, stepsRun: steps.count, failedSteps: failures)
            emit(json ? result.json.compact() + "\n" : "\n" + PlanReport(plan: after).conditions())
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
        abstract: "Emergency release: take devices from their VMs and give them back to the host now, whatever the manifest says.",
        discussion: """
            DEVICE is \(ReleaseByHand.forms). hostdevd's own <hostdev> for it leaves the VM's config, so the VM \
            still starts (without it); a PCI function goes back from vfio-pci to its host driver; a mediated device \
            hostdevd created is removed, so its parent gets the instance back (one mdevctl defines, or that \
            hostdevd did not create, stays); a SCSI device only leaves the VM. They stay released until the \
            manifest is next edited. Refused: a device hostdevd does not manage (nothing to release), one a running \
            VM holds (unless --force), any while libvirt cannot be asked (unless --force), a device with a \
            hand-written <hostdev> (never touched), and a PCI device the host uses for storage or networking (not \
            even with --force).
            """)

    @OptionGroup var host: HostOptions
    @OptionGroup var state: StateOptions

    @Flag(help: "Unplug a device a running VM uses, and go ahead when libvirt cannot be asked whether a VM uses it.")
    var force = false

    @Argument(help: ArgumentHelp(
        "PCI functions (0000:01:00.0, 01:00.0, pci_0000_01_00_0), mediated devices (UUID, mdev_UUID) or SCSI devices (1:0:0:0, scsi_1_0_0_0, /dev/disk/by-id/…).",
        valueName: "device"))
    var devices: [String]

    func validate() throws {
        for device in devices {
            guard let query = DeviceQuery.parse(device), ReleaseByHand.takes(query) else {
                throw ValidationError("'\(device)' is not a device release takes; write \(ReleaseByHand.forms)")
            }
        }
    }

    var queries: [DeviceQuery] { devices.compactMap(DeviceQuery.parse) }

    func run() throws {
        let controller = controller(host, state)
        var failed = false
        do {
            // Without a readable manifest the release still happens; it
            // then lasts until a manifest is read again.
            let manifest = (try? loadManifest(state.manifest)) ?? Manifest(host: HostPolicy(), bindings: [], fingerprint: "")
            let connection = try? LibvirtConnection(uri: host.connect)
            let result = try controller.release(queries, manifest: manifest, force: force, connection: connection) {
                _, step, outcome in
                switch outcome {
                case .done: emit("done    \(step.action.summary)\n")
                case .skipped(let why): emit("skipped \(step.action.summary): \(why)\n")
                case .failed(let error): emit("FAILED  \(step.action.summary)\n        \(error)\n")
                }
            }
            for refusal in result.refused { printError("error: not releasing \(refusal)") }
            failed = !result.refused.isEmpty || result.outcomes.contains(where: \.isFailure)
            for source in result.released {
                let id = DeviceIdentifier.source(source)
                let condition = ReleaseByHand.condition(of: source, in: result.plan)
                if let condition, condition.isBlocked {
                    printError("error: not releasing \(id): \(condition)")
                    failed = true
                } else if zip(result.steps, result.outcomes).contains(where: { $0.0.action.deviceKey == id && $0.1.isFailure }) {
                    continue  // its FAILED step says why
                } else if case .pci(let address) = source {
                    emit("released \(id): on \(PCIDriverControl(root: controller.sources.sysfsRoot).driver(of: address) ?? "no driver")\n")
                } else {
                    emit("released \(id)\(condition?.reason.map { ": " + $0 } ?? "")\n")
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

    @OptionGroup var output: FormatOption

    @Option(help: ArgumentHelp("The running daemon's status file; read when present (and --live is not given).", valueName: "file"))
    var statusFile: String = "/run/hostdevd/status.json"

    @Flag(help: "Observe the host now instead of reading the daemon's status file.")
    var live = false

    func run() throws {
        if !live, observed == nil, case .failure(let error) = fileContents(statusFile), error.problem == .system(EACCES) {
            // The daemon runs; only this user may not read what it says.
            throw fail(Failure(message: "cannot read status \(statusFile): Permission denied; members of group \(ReaderGroup.name) read it without root ('adduser \(currentUser()) \(ReaderGroup.name)', then log in again), or run as root"))
        }
        if !live, observed == nil, let text = try? readText(statusFile, what: "status", hint: "") {
            let staleness = DaemonStatus.staleness(text)
            if let staleness { printError("warning: \(statusFile): \(staleness)") }
            emit(output.format == .json ? text : DaemonStatus.text(text, path: statusFile))
            if staleness != nil { throw ExitCode(Plan.Verdict.waiting.exitCode) }
            return
        }
        let plan: Plan
        let observedHost: ObservedHost
        do {
            let controller = controller(host, state)
            observedHost = try observe(host: host, observedFile: observed)
            plan = try controller.plan(manifest: try loadManifest(state.manifest), observed: observedHost).0
        } catch {
            throw fail(error)
        }
        let report = PlanReport(plan: plan)
        switch output.format {
        case .json: emit(StatusDocument(daemon: nil, plan: plan, inventory: observedHost.inventory).json.rendered() + "\n")
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
