import ArgumentParser
import HostdevController
import HostdevCore
import HostdevLibvirt

/// One device end to end, from the same observe → plan path as `plan`.
struct Describe: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Explain one device (PCI, USB, mediated or SCSI): what it is, its IOMMU group, drivers, users, the binding that claims it, its condition and hostdevd's last actions on it.",
        discussion: "DEVICE is \(DeviceQuery.forms).")

    @OptionGroup var host: HostOptions
    @OptionGroup var state: StateOptions

    @Option(help: ArgumentHelp("Describe against a recorded snapshot instead of this host.", valueName: "file"))
    var observed: String?

    @Option(help: ArgumentHelp("The running daemon's status file, for its last actions on the device.", valueName: "file"))
    var statusFile: String = "/run/hostdevd/status.json"

    @OptionGroup var output: FormatOption

    @Argument(help: ArgumentHelp("The device.", valueName: "device"))
    var device: String

    func validate() throws {
        if DeviceQuery.parse(device) == nil {
            throw ValidationError("'\(device)' names no device; write \(DeviceQuery.forms)")
        }
    }

    func run() throws {
        let query = DeviceQuery.parse(device)!
        let document: DescribeDocument
        do {
            let controller = controller(host, state)
            let observedHost = try observe(host: host, observedFile: observed)
            // Without a readable manifest the device is still described; nothing claims it then.
            let manifest: Manifest
            do { manifest = try loadManifest(state.manifest) } catch {
                printError("warning: \(error)")
                manifest = Manifest()
            }
            let (plan, ledger) = try controller.plan(manifest: manifest, observed: observedHost)
            document = DescribeDocument(
                query: query, observed: observedHost, plan: plan, ledger: ledger, manifest: state.manifest,
                history: Reconciler.history(inStatusFile: statusFile))
        } catch {
            throw fail(error)
        }
        emit(output.format == .json ? document.json.rendered() + "\n" : document.text())
        if !document.isPresent { throw ExitCode.failure }
    }

}
