#if canImport(Glibc)
    import Glibc
#endif
import Foundation
import HostdevController
import HostdevCore
import HostdevLibvirt
import HostdevSysfs
import HostdevTestSupport
import Synchronization
import Testing

/// A host for `hostdevctl apply` as a separate process: a workstation tree
/// whose control files are pipes to a fake kernel in this process, domains
/// in a private libvirtd, a state directory. win11 gets the GPU group and a
/// NIC; "old" VM's two NIC functions are released.
final class ApplyRig {
    let tree = SysfsTree.workstation()
    let state = FileTree.makeTemporaryDirectory(prefix: "hostdev-state")
    let manifestFile: String
    let server: FakeKernelServer
    let keeper: LibvirtConnection
    let uri: String
    static let oldNIC = [PCIAddress("0000:04:00.0")!, PCIAddress("0000:04:00.1")!]
    static let newNIC = PCIAddress("0000:05:00.0")!
    static let gpuGroup = [PCIAddress("0000:01:00.0")!, PCIAddress("0000:01:00.1")!]

    init(daemon: LibvirtDaemon) throws {
        for address in Self.oldNIC {
            tree.addPCI(.init(address.description, vendor: "8086", device: "1521", classCode: 0x020000, driver: "igb", iommuGroup: 9))
            tree.unbindLink(address)
            tree.bindLink(address, "vfio-pci")
            FileTree.write(tree.host(tree.pciPath(address) + "/driver_override"), "vfio-pci\n")
        }
        tree.addPCI(.init(Self.newNIC.description, vendor: "8086", device: "1533", classCode: 0x020000, driver: "igb", iommuGroup: 10))
        server = FakeKernelServer(tree: tree)
        try LedgerStore(directory: state).save(Ledger(devices: Dictionary(uniqueKeysWithValues: Self.oldNIC.map { ($0, Ledger.Entry(originalDriver: "igb", vm: "old")) })))
        manifestFile = state + "/bindings.yaml"
        FileTree.write(manifestFile, """
            version: 1
            bindings:
              - vm: win11
                devices:
                  - pci: "0000:01:00.0"
                  - pci: "0000:05:00.0"

            """)
        uri = daemon.uri
        keeper = try LibvirtConnection(uri: daemon.uri)
        for vm in ["win11", "old"] { try keeper.undefine(vm) }
        try keeper.define(xml: domainXML("win11"))
        let ours = Self.oldNIC.map { DomainXML.element(.ours(.pci($0))) }.joined()
        try keeper.define(xml: domainXML("old", extra: ours))
    }

    /// Runs `hostdevctl apply`; with `killAfterWrite: k` the fake kernel
    /// SIGKILLs it as soon as the k-th write to a control file (`unbind`,
    /// `drivers_probe`, `bind`) has taken effect: a crash in the middle of
    /// a driver move, as well as between steps.
    func apply(killAfterWrite: Int? = nil, _ extra: String...) throws -> (status: Int32, stdout: String, stderr: String) {
        let child = Mutex<pid_t>(0)
        let writes = Mutex(0)
        server.onWrite { _, _ in
            let count = writes.withLock { $0 += 1; return $0 }
            if count == killAfterWrite { kill(child.withLock { $0 }, SIGKILL) }
        }
        defer { server.onWrite { _, _ in } }
        let result = try ChildProcess.run(
            BuiltProducts.hostdevctl,
            ["apply", "--sysfs-root", tree.root, "--connect", uri, "--manifest", manifestFile, "--state-dir", state] + extra,
            started: { pid in child.withLock { $0 = pid } })
        lastWrites = writes.withLock { $0 }
        return result
    }

    /// Control-file writes of the last `apply`.
    var lastWrites = 0

    func hostdevs(_ vm: String) throws -> [HostdevEntry] { try DomainXML.hostdevs(keeper.configXML(vm), source: vm) }

    /// The end state the plan describes, checked piece by piece.
    func expectConverged(_ context: String) throws {
        for address in Self.gpuGroup + [Self.newNIC] { #expect(tree.driver(of: address) == "vfio-pci", "\(context): \(address)") }
        for address in Self.oldNIC { #expect(tree.driver(of: address) == "igb", "\(context): \(address)") }
        // No device that had a driver is left without one.
        for address in (tree.sysfs.list("/sys/bus/pci/devices") ?? []).compactMap({ PCIAddress($0) }) where tree.nativeDrivers[address] != nil {
            #expect(tree.driver(of: address) != nil, "\(context): \(address) has no driver")
        }
        let win11 = try hostdevs("win11")
        #expect(win11.filter(\.isOurs).map(\.source).sorted { "\($0)" < "\($1)" } == (Self.gpuGroup + [Self.newNIC]).map { .pci($0) }.sorted { "\($0)" < "\($1)" }, "\(context): win11 config")
        #expect(win11.filter { !$0.isOurs }.count == 1, "\(context): win11 hand-written")
        let old = try hostdevs("old")
        #expect(old.filter(\.isOurs).isEmpty, "\(context): old config")
        #expect(old.filter { !$0.isOurs }.count == 1, "\(context): old hand-written")
        let ledger = try LedgerStore(directory: state).load()
        #expect(Set(ledger.devices.keys) == Set(Self.gpuGroup + [Self.newNIC]), "\(context): ledger")
        #expect(ledger.devices[Self.newNIC]?.originalDriver == "igb" && ledger.devices[Self.gpuGroup[0]]?.originalDriver == "nouveau", "\(context): originals")
        #expect(ledger.intent == nil, "\(context): intent")
    }

    deinit {
        server.stop()
        FileTree.remove(state)
    }
}

@Suite(.serialized, .enabled(if: RealComponent.libvirtd.shouldRun, "libvirtd missing: apt-get install libvirt-daemon"))
struct CrashSafetyTests {
    @Test func applyConvergesInOneRun() throws {
        let daemon = try LibvirtDaemon()
        defer { daemon.stop() }
        let rig = try ApplyRig(daemon: daemon)
        let result = try rig.apply()
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.components(separatedBy: "\ndone ").count + (result.stdout.hasPrefix("done ") ? 1 : 0) - 1 == 10)
        try rig.expectConverged("single run")
        let again = try rig.apply()
        #expect(again.stdout == "No changes. The host matches the manifest.\n")
        // The inventory names the owning VM from the ledger (VDSM's vmId).
        let listed = try parseDevicesJSON(try hostdevctl("devices", "--sysfs-root", rig.tree.root, "--state-dir", rig.state, "--format", "json").stdout)
        #expect(listed["pci_0000_01_00_1"]?["vmId"] as? String == "win11")
        #expect(listed["pci_0000_00_02_0"]?["vmId"] as? String == "")
    }

    /// SIGKILL right after each control-file write of the ten-step plan (in
    /// the middle of a bind: after `unbind`, before `drivers_probe`; and
    /// after each driver move), then apply again: the host ends exactly as
    /// planned, wherever the crash fell.
    @Test func sigkillAfterEveryWriteThenApplyConverges() throws {
        let daemon = try LibvirtDaemon()
        defer { daemon.stop() }
        let full = try ApplyRig(daemon: daemon)
        #expect(try full.apply().status == 0)
        let total = full.lastWrites
        #expect(total == 10, "3 binds and 2 releases, two control-file writes each")
        for step in 1...total {
            let rig = try ApplyRig(daemon: daemon)
            let killed = try rig.apply(killAfterWrite: step)
            #expect(killed.status == 128 + SIGKILL, "write \(step): \(killed.stdout)\(killed.stderr)")
            // Between crash and restart: every device still has a driver.
            for address in (rig.tree.sysfs.list("/sys/bus/pci/devices") ?? []).compactMap({ PCIAddress($0) }) where rig.tree.nativeDrivers[address] != nil {
                // Killed between unbind and drivers_probe, a device may
                // wait driverless for the next run: never one hostdevd did
                // not journal first.
                if rig.tree.driver(of: address) == nil {
                    #expect(try LedgerStore(directory: rig.state).load().devices[address] != nil, "write \(step): \(address) driverless and not in the ledger")
                }
            }
            let resumed = try rig.apply()
            #expect(resumed.status == 0, "write \(step): \(resumed.stdout)\(resumed.stderr)")
            try rig.expectConverged("killed after write \(step)")
        }
    }

    @Test func emergencyReleaseHoldsUntilTheManifestChanges() throws {
        let daemon = try LibvirtDaemon()
        defer { daemon.stop() }
        let rig = try ApplyRig(daemon: daemon)
        #expect(try rig.apply().status == 0)
        let released = try ChildProcess.run(
            BuiltProducts.hostdevctl,
            ["release", "0000:05:00.0", "--sysfs-root", rig.tree.root, "--connect", rig.uri, "--manifest", rig.manifestFile, "--state-dir", rig.state])
        #expect(released.status == 0, "\(released.stderr)")
        #expect(released.stdout.hasSuffix("released pci 0000:05:00.0: on igb\n"), "\(released.stdout)")
        #expect(rig.tree.driver(of: ApplyRig.newNIC) == "igb")
        // Apply leaves it released while the manifest is unchanged (and says
        // the binding waits: exit 3)…
        #expect(try rig.apply().status == 3)
        #expect(rig.tree.driver(of: ApplyRig.newNIC) == "igb")
        // …and binds it again after an edit.
        FileTree.write(rig.manifestFile, (FileTree.read(rig.manifestFile) ?? "") + "\n# edited\n")
        #expect(try rig.apply().status == 0)
        #expect(rig.tree.driver(of: ApplyRig.newNIC) == "vfio-pci")
    }
}
