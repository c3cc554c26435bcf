import ArgumentParser
import HostdevController
import HostdevCore
import HostdevLibvirt
import HostdevManifest
import HostdevSysfs

#if canImport(Glibc)
    import Glibc
#endif

/// libvirt's QEMU hook: binds a VM's devices before it starts (`prepare`)
/// and gives `release: onStop` devices back after it stops (`release`),
/// through the same controller path as the daemon, scoped to this VM's
/// driver moves. It never calls libvirt (libvirtd holds the domain while
/// the hook runs: a call back deadlocks it), waits for the state lock a few
/// seconds at most, and never stops a VM the manifest does not claim.
struct Hook: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run as libvirt's QEMU hook (manifests/libvirt/hooks/qemu.d/hostdevd); reads the domain XML on stdin.",
        discussion: """
            A failure on 'prepare' exits 1 and libvirt refuses to start the VM, showing the error; only a VM the \
            manifest gives devices to can fail. With no manifest, or an invalid one and no last good one saved by \
            hostdevd or apply, the VM starts and a warning is printed.
            """)

    @OptionGroup var host: HostOptions
    @OptionGroup var state: StateOptions

    @Argument(help: "The domain name.") var vm: String
    @Argument(help: "libvirt's operation: prepare, start, started, stopped, release, …") var operation: String
    @Argument(help: "libvirt's sub-operation.") var subOperation: String = "-"
    @Argument(help: "libvirt's extra argument.") var extra: String = "-"

    @Option(help: "Seconds to wait for the state lock before failing.")
    var lockTimeout: Int = 5


    func run() throws {
        guard operation == "prepare" || operation == "release" else { return }
        // The XML libvirt passes: read it (bounded), then decide.
        let xml: Result<String, Failure> = readStdin(limit: FileLimits.domainXML)
        guard let manifest = hookManifest(), manifest.bindings.contains(where: { $0.vm == vm }) else {
            if case .failure(let error) = xml { printError("warning: hook for \(vm): \(error); hostdevd claims no devices for it") }
            return
        }
        // A VM the manifest claims devices for: its XML must be what libvirt
        // says it is, or nothing is done for it.
        let domainXML: String
        switch xml {
        case .failure(let error): throw fail(Failure(message: "hook for \(vm): \(error); not \(operation == "prepare" ? "binding" : "releasing") its devices"))
        case .success(let text): domainXML = text
        }
        if !domainXML.isEmpty {
            let name: String?
            do {
                name = try XMLElement.parse(domainXML, source: "the domain XML on stdin").text(of: "name")
            } catch {
                throw fail(Failure(message: "hook for \(vm): \(error); not \(operation == "prepare" ? "binding" : "releasing") its devices"))
            }
            guard name == vm else { throw fail(Failure(message: "hook called for \(vm) with the XML of \(name ?? "a domain without a name")")) }
        }
        var controller = controller(host, state)
        controller.lockTimeout = .seconds(lockTimeout)
        var failures: [String] = []
        do {
            let observed = try controller.observeForHook(vm: vm, active: operation == "prepare")
            let (plan, ledger) = try controller.plan(manifest: manifest, observed: observed)
            if operation == "prepare", let condition = plan.bindings[vm], condition.isBlocked {
                throw Failure(message: "\(vm): \(condition)")
            }
            let (steps, outcomes) = try controller.act(plan, ledger: ledger, scope: .hook(vm: vm), domains: nil)
            for (step, outcome) in zip(steps, outcomes) {
                if case .failed(let error) = outcome { failures.append("\(step.action.summary): \(error)") }
            }
            if operation == "prepare", failures.isEmpty {
                failures += unusable(domainXML, plan: plan)
            }
        } catch {
            throw fail(Failure(message: "hostdevd cannot \(operation) \(vm)'s devices: \(error)"))
        }
        if !failures.isEmpty {
            printError("error: hostdevd cannot \(operation == "prepare" ? "prepare" : "release") \(vm)'s devices: " + failures.joined(separator: "; "))
            throw ExitCode.failure
        }
    }

    /// The manifest in force for the hook: the file, or the last good one
    /// hostdevd or apply saved when the file is unreadable or invalid; nil
    /// (with a warning) when there is neither: then the hook does nothing.
    func hookManifest() -> Manifest? {
        let saved = LastGoodManifest(stateDirectory: absolutePath(state.stateDir))
        do {
            return try loadManifest(state.manifest)
        } catch {
            if let parts = saved.load(), let manifest = try? ManifestDecoder.decode(parts: parts, host: currentHostName()) {
                printError("warning: \(error); using the last good manifest \(saved.path)")
                return manifest
            }
            printError("warning: \(error); no last good manifest either: \(vm) starts without hostdevd")
            return nil
        }
    }

    /// `<hostdev>`s QEMU could not open: hostdevd's own entries (and
    /// hand-written managed='no' ones) for PCI devices not on vfio-pci
    /// after the binds, and hostdevd's own for mediated devices that do not
    /// exist (released by hand while libvirt was away, say). Saying why
    /// beats QEMU's "failed to open /dev/vfio/N".
    func unusable(_ xml: String, plan: Plan) -> [String] {
        guard !xml.isEmpty, let entries = try? DomainXML.hostdevs(xml, source: vm) else { return [] }
        let root = SysfsRoot(host.sysfsRoot)
        let control = PCIDriverControl(root: root)
        let mediated = MediatedDeviceControl(root: root)
        return entries.compactMap { entry in
            if case .mdev(let uuid) = entry.source, entry.isOurs, !mediated.exists(uuid) {
                let why = plan.devices[DeviceIdentifier.source(entry.source)].map { " (\($0))" } ?? ""
                return "\(vm)'s <hostdev> written by hostdevd for mdev \(uuid) needs that mediated device, but it does not exist\(why); "
                    + "run 'hostdevctl plan' to see why, or remove the <hostdev>"
            }
            guard case .pci(let address) = entry.source, !entry.managed else { return nil }
            let driver = control.driver(of: address)
            guard driver != Planner.vfioDriver else { return nil }
            let why = plan.devices["pci \(address)"].map { " (\($0))" } ?? ""
            return "\(vm)'s <hostdev> \(entry.isOurs ? "written by hostdevd" : "with managed='no'") for \(address) needs it on vfio-pci, "
                + "but it is on \(driver ?? "no driver")\(why); run 'hostdevctl plan' to see why, or remove the <hostdev>"
        }
    }
}

/// Reads stdin up to `limit` bytes (libvirt waits for the hook to read it
/// all); more than that is refused, never buffered.
func readStdin(limit: Int) -> Result<String, Failure> {
    switch readBounded(fd: 0, limit: limit) {
    case .success(let bytes): return .success(String(decoding: bytes, as: UTF8.self))
    case .failure(let error): return .failure(Failure(message: "the domain XML: \(error)"))
    }
}
