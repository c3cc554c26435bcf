#if canImport(Glibc)
    import Glibc
#endif
import Foundation
import HostdevController
import HostdevCore
import HostdevLibvirt
import HostdevManifest
import HostdevSysfs
import HostdevTestSupport
import Logging
import Testing

func manifest(_ yaml: String) throws -> Manifest { try ManifestDecoder.decode(yaml, file: "test.yaml") }

/// One controller pass (observe, plan, act) over `tree`, as `apply` runs it.
func applyOnce(
    _ yaml: String, tree: SysfsTree, state: String, connection: LibvirtConnection, kernel: FakeKernel
) throws -> (Plan, [StepOutcome]) {
    let controller = Controller(
        sources: HostSources(sysfsRoot: tree.sysfs, useUdev: false, libvirtURI: ""), stateDirectory: state, writer: kernel)
    let (plan, ledger) = try controller.plan(manifest: try manifest(yaml), observed: try controller.observe(connection: connection))
    let outcomes = try controller.act(plan, ledger: ledger, scope: .everything, domains: connection).outcomes
    return (plan, outcomes)
}

/// A daemon's reconciler over `tree` with its manifest, ledger and status
/// file in `state` (the manifest at `manifest`, default bindings.yaml),
/// libvirt's test driver with the example host, no resync.
func testReconciler(tree: SysfsTree, state: String, manifest: String = "bindings.yaml") -> Reconciler {
    Reconciler(
        configuration: DaemonConfiguration(
            manifestPath: state + "/" + manifest, stateDirectory: state, statusFile: state + "/status.json", sysfsRoot: tree.sysfs,
            libvirtURI: exampleHostURI, resyncInterval: .seconds(3600), udevSource: "udev"),
        logger: Logger(label: "test"))
}

let gpuGroupManifest = """
    version: 1
    bindings:
      - vm: win11
        devices:
          - pci: "0000:01:00.0"
    """

/// Domain XML of a shut-off VM with one hand-written hostdev (the USB receiver).
func domainXML(_ name: String, extra: String = "") -> String {
    """
    <domain type='test'>
      <name>\(name)</name>
      <memory>1048576</memory>
      <os><type arch='x86_64'>hvm</type></os>
      <devices>
        <hostdev mode='subsystem' type='usb' managed='no'>
          <source><vendor id='0x046d'/><product id='0xc52b'/></source>
        </hostdev>
        \(extra)
      </devices>
    </domain>
    """
}

/// Checks domain XML against libvirt's schema with virt-xml-validate.
func expectValidDomainXML(_ xml: String, sourceLocation: Testing.SourceLocation = #_sourceLocation) throws {
    let file = FileTree.makeTemporaryDirectory() + "/domain.xml"
    defer { FileTree.remove(SysfsPath.parent(file)) }
    FileTree.write(file, xml)
    let result = try ChildProcess.run(RealComponent.virtXMLValidate.rawValue, [file, "domain"])
    #expect(result.status == 0, "virt-xml-validate: \(result.stdout)\(result.stderr)", sourceLocation: sourceLocation)
}

@Suite struct DomainXMLTests {
    @Test(.enabled(if: RealComponent.virtXMLValidate.shouldRun, "virt-xml-validate missing: apt-get install libvirt-clients"))
    func editsKeepHandWrittenEntriesAndValidate() throws {
        let original = domainXML("t", extra: "<hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0x0000' bus='0x05' slot='0x00' function='0x0'/></source></hostdev><!-- keep me -->")
        var xml = original
        for entry in [HostdevEntry.ours(.pci(PCIAddress("0000:01:00.0")!)), .ours(.usbAddress(bus: 1, device: 4)), .ours(.usbID(vendor: 0x1234, product: 0xabcd))] {
            xml = try DomainXML.adding(entry, to: xml, source: "t")
            try expectValidDomainXML(xml)
        }
        let entries = try DomainXML.hostdevs(xml, source: "t")
        #expect(entries.filter(\.isOurs).count == 3)
        #expect(entries.filter { !$0.isOurs }.map(\.source) == [.usbID(vendor: 0x046d, product: 0xc52b), .pci(PCIAddress("0000:05:00.0")!)])
        #expect(xml.contains("<!-- keep me -->"))
        for entry in entries where entry.isOurs { xml = try DomainXML.removing(entry, from: xml, source: "t") }
        #expect(try DomainXML.hostdevs(xml, source: "t") == DomainXML.hostdevs(original, source: "t"))
        try expectValidDomainXML(xml)
    }
}

/// The executor in process: the fake kernel answers sysfs writes, libvirt's
/// test driver (a custom host file) holds the domains.
@Suite struct ExecutorTests {
    let tree = SysfsTree.workstation()
    let state = FileTree.makeTemporaryDirectory(prefix: "hostdev-state")

    func run(_ yaml: String, connection: LibvirtConnection, kernel: FakeKernel) throws -> (Plan, [StepOutcome]) {
        try applyOnce(yaml, tree: tree, state: state, connection: connection, kernel: kernel)
    }

    @Test func appliesThenReleasesAndKeepsHandWrittenHostdevs() throws {
        defer { FileTree.remove(state) }
        let connection = try LibvirtConnection(uri: exampleHostURI)
        let kernel = FakeKernel(tree: tree)
        let (plan, outcomes) = try run(gpuGroupManifest, connection: connection, kernel: kernel)
        #expect(plan.steps.count == 4)
        #expect(outcomes == Array(repeating: .done, count: 4))
        #expect(tree.driver(of: PCIAddress("0000:01:00.0")!) == "vfio-pci")
        #expect(tree.driver(of: PCIAddress("0000:01:00.1")!) == "vfio-pci")
        let ledger = try LedgerStore(directory: state).load()
        #expect(ledger.devices[PCIAddress("0000:01:00.0")!] == Ledger.Entry(originalDriver: "nouveau", vm: "win11"))
        #expect(ledger.devices[PCIAddress("0000:01:00.1")!] == Ledger.Entry(originalDriver: "snd_hda_intel", vm: "win11"))
        #expect(ledger.intent == nil)
        let config = try DomainXML.hostdevs(try connection.configXML("win11"), source: "win11")
        #expect(config.filter(\.isOurs).map(\.source) == [.pci(PCIAddress("0000:01:00.0")!), .pci(PCIAddress("0000:01:00.1")!)])
        #expect(config.filter { !$0.isOurs }.map(\.source) == [.usbID(vendor: 0x046d, product: 0xc52b)])
        if RealComponent.virtXMLValidate.shouldRun { try expectValidDomainXML(try connection.configXML("win11")) }

        // Idempotent: nothing left to do.
        #expect(try run(gpuGroupManifest, connection: connection, kernel: kernel).0.steps.isEmpty)

        // The binding removed: config entries go, drivers come back, ledger empties.
        let (release, releaseOutcomes) = try run("version: 1\n", connection: connection, kernel: kernel)
        #expect(release.steps.map(\.action.summary) == [
            "remove <hostdev> pci 0000:01:00.0 from win11's config", "remove <hostdev> pci 0000:01:00.1 from win11's config",
            "release 0000:01:00.0 to nouveau", "release 0000:01:00.1 to snd_hda_intel",
        ])
        #expect(releaseOutcomes.allSatisfy { $0 == .done })
        #expect(tree.driver(of: PCIAddress("0000:01:00.0")!) == "nouveau")
        #expect(tree.driver(of: PCIAddress("0000:01:00.1")!) == "snd_hda_intel")
        #expect(try LedgerStore(directory: state).load().devices.isEmpty)
        #expect(try DomainXML.hostdevs(try connection.configXML("win11"), source: "win11").map(\.source) == [.usbID(vendor: 0x046d, product: 0xc52b)])
    }

    /// Without the vfio-pci driver no bind can succeed: the plan says so
    /// before any step, and nothing is unbound (the real kernel would leave
    /// the device driverless until the read-back gave up).
    @Test func vfioMissingIsSaidBeforeAnyStep() throws {
        defer { FileTree.remove(state) }
        let connection = try LibvirtConnection(uri: exampleHostURI)
        FileTree.remove(tree.host("/sys/bus/pci/drivers/vfio-pci"))
        let kernel = FakeKernel(tree: tree)
        let (plan, outcomes) = try run(gpuGroupManifest, connection: connection, kernel: kernel)
        #expect(plan.steps.isEmpty && outcomes.isEmpty)
        #expect(plan.devices["pci 0000:01:00.0"]?.description.contains("the vfio-pci driver is not loaded: modprobe vfio-pci") == true)
        #expect(plan.bindings["win11"]?.isBlocked == true)
        #expect(kernel.writes.isEmpty)
        #expect(tree.driver(of: PCIAddress("0000:01:00.0")!) == "nouveau")
    }
}

@Suite struct ManifestFilesTests {
    var examples: [String] {
        let dir = repositoryRoot + "/manifests/examples"
        return ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [])
            .filter { ($0.hasSuffix(".yaml") || $0.hasSuffix(".json")) && !$0.hasSuffix("-host.json") }.sorted().map { dir + "/" + $0 }
    }

    @Test func everyExamplePassesSchemaAndDecoder() throws {
        #expect(examples.count >= 3)
        let schema = try ChildProcess.run("/usr/bin/python3", [repositoryRoot + "/manifests/validate-schema.py"] + examples)
        #expect(schema.status == 0, "\(schema.stdout)\(schema.stderr)")
        for file in examples {
            let result = try hostdevctl("validate", "-f", file)
            #expect(result.status == 0, "\(file): \(result.stderr)")
        }
    }

    @Test func aBadManifestFailsBoth() throws {
        let dir = FileTree.makeTemporaryDirectory()
        defer { FileTree.remove(dir) }
        let file = dir + "/bad.yaml"
        FileTree.write(file, "version: 1\nbindings:\n  - vm: a\n    devices:\n      - pci: \"0000:01:00\"\n        grup: hold\n")
        let schema = try ChildProcess.run("/usr/bin/python3", [repositoryRoot + "/manifests/validate-schema.py", file])
        #expect(schema.status == 1)
        let result = try hostdevctl("validate", "-f", file)
        #expect(result.status == 1)
        #expect(result.stderr.contains("\(file):5:14: error: '0000:01:00' is not a PCI address"))
        #expect(result.stderr.contains("\(file):6:9: error: unknown key 'grup' in a device; did you mean 'group'?"))
        #expect(result.stderr.contains("2 error(s)"))
    }
}

@Suite struct PlanCommandTests {
    let snapshot = repositoryRoot + "/manifests/examples/workstation-host.json"
    let example = repositoryRoot + "/manifests/examples/workstation.yaml"

    @Test func exampleReadsWellAndExitsTwo() throws {
        let result = try hostdevctl("plan", "--manifest", example, "--observed", snapshot, "--state-dir", "/nonexistent/state")
        #expect(result.status == 2)
        #expect(result.stdout.hasPrefix("hostdevd will make 2 changes:\n\n  + add <hostdev> pci 0000:01:00.0 to win11's config\n"))
        #expect(result.stdout.contains("build-runner  Blocked: 0000:00:17.0 is needed by the host: holds /srv/data set (/dev/sda1)"))
        #expect(result.stdout.contains("win11 already has a hand-written <hostdev> for usb 046d:c52b"))
    }

    @Test func noChangesExitsZero() throws {
        let dir = FileTree.makeTemporaryDirectory()
        defer { FileTree.remove(dir) }
        FileTree.write(dir + "/m.yaml", "version: 1\n")
        let result = try hostdevctl("plan", "--manifest", dir + "/m.yaml", "--observed", snapshot, "--state-dir", dir)
        #expect(result.status == 0)
        #expect(result.stdout.hasPrefix("No changes."))
    }

    @Test func statusAsJSON() throws {
        let result = try hostdevctl("status", "--manifest", example, "--observed", snapshot, "--state-dir", "/nonexistent/state", "--format", "json")
        // Blocked and Pending bindings: not converged.
        #expect(result.status == 3)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        let bindings = try #require(json["bindings"] as? [String: [String: String]])
        #expect(bindings["build-runner"]?["condition"] == "Blocked")
        #expect(bindings["win11"]?["condition"] == "Pending")
    }

    @Test(arguments: [
        (["plan", "--manifest", "/nonexistent.yaml"], "error: cannot read manifest /nonexistent.yaml: No such file or directory; create it"),
        (["plan", "--observed", "/etc/hostname", "--manifest", "MANIFEST"], "is not a hostdevctl snapshot"),
        (["release", "0000:01:00"], "'0000:01:00' is not a device release takes; write a PCI address (0000:01:00.0"),
    ])
    func badInputIsClear(arguments: [String], message: String) throws {
        let args = arguments.map { $0 == "MANIFEST" ? example : $0 }
        let result = try ChildProcess.run(BuiltProducts.hostdevctl, args)
        #expect(result.status != 0 && result.status != 2)
        #expect(result.stderr.contains(message), "\(result.stderr)")
    }
}
