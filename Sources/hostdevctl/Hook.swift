import ArgumentParser
import HostdevController
import HostdevCore
import HostdevLibvirt
import HostdevSysfs

#if canImport(Glibc)
    import Glibc
#endif

/// libvirt's QEMU hook: binds a VM's devices before it starts (`prepare`)
/// and gives `release: onStop` devices back after it stops (`release`).
/// It plans for this one VM only, touches only sysfs (never libvirt: a hook
/// that calls back into libvirt deadlocks it), under the daemon's lock.
struct Hook: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run as libvirt's QEMU hook (manifests/libvirt/hooks/qemu.d/hostdevd); reads the domain XML on stdin.",
        discussion: "A failure on 'prepare' exits 1 and libvirt refuses to start the VM, showing the error.")

    @OptionGroup var host: HostOptions
    @OptionGroup var state: StateOptions

    @Argument(help: "The domain name.") var vm: String
    @Argument(help: "libvirt's operation: prepare, start, started, stopped, release, …") var operation: String
    @Argument(help: "libvirt's sub-operation.") var subOperation: String = "-"
    @Argument(help: "libvirt's extra argument.") var extra: String = "-"

    func run() throws {
        guard operation == "prepare" || operation == "release" else { return }
        // The XML libvirt passes: read it all (libvirt waits for us to), check the name.
        let xml = (try? readText("/dev/stdin", what: "domain XML", hint: "")) ?? ""
        if !xml.isEmpty, let name = try? XMLElement.parse(xml, source: "stdin").text(of: "name"), name != vm {
            throw fail(Failure(message: "hook called for \(vm) with the XML of \(name)"))
        }
        let store = LedgerStore(directory: state.stateDir)
        var failures: [String] = []
        do {
            let full = try loadManifest(state.manifest)
            guard let binding = full.bindings.first(where: { $0.vm == vm }) else { return }
            try store.withLock {
                var ledger = try store.load()
                let root = SysfsRoot(host.sysfsRoot)
                let inventory = try InventoryReader(root: root).read()
                let observed = ObservedHost(
                    inventory: inventory,
                    domains: [DomainState(name: vm, state: operation == "prepare" ? .running : .shutoff)],
                    hostUses: HostUseScanner(root: root).scan(inventory), libvirtReachable: false)
                // Only this VM: its binding, and the ledger entries made for it.
                var own = ledger
                own.devices = ledger.devices.filter { $0.value.vm == vm }
                let manifest = Manifest(host: full.host, bindings: [binding], fingerprint: full.fingerprint)
                var plan = Planner.plan(manifest: manifest, observed: observed, ledger: own)
                plan.steps = plan.steps.filter {
                    switch $0.action {
                    case .bind, .restore: return true
                    default: return false
                    }
                }
                if let blocked = plan.bindings[vm], blocked.isBlocked, operation == "prepare" {
                    failures.append("\(vm): \(blocked)")
                    return
                }
                // The steps concern this VM only; the whole ledger is journaled.
                let outcomes = try Executor(drivers: PCIDriverControl(root: root), domains: nil, store: store).run(plan, ledger: &ledger)
                for (step, outcome) in zip(plan.steps, outcomes) {
                    if case .failed(let error) = outcome { failures.append("\(step.action.summary): \(error)") }
                }
            }
        } catch {
            throw fail(error)
        }
        if !failures.isEmpty {
            printError("error: hostdevd cannot \(operation == "prepare" ? "prepare" : "release") \(vm)'s devices: " + failures.joined(separator: "; "))
            throw ExitCode.failure
        }
    }
}
