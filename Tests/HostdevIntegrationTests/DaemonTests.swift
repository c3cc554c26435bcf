#if canImport(Glibc)
    import Glibc
#endif
import Foundation
import HostdevController
import HostdevCore
import HostdevLibvirt
import HostdevSysfs
import HostdevTestSupport
import Testing

/// hostdevd as a process under umockdev (its libudev monitor gets the events
/// this test sends), with a sysfs tree answered by the fake kernel, domains
/// in a private libvirtd, and this test as systemd's notify socket.
final class DaemonRig {
    let tree = SysfsTree.workstation()
    let state = FileTree.makeTemporaryDirectory(prefix: "hostdev-daemon")
    let server: FakeKernelServer
    let keeper: LibvirtConnection
    let notify = NotifyListener()
    let daemon: ChildProcess
    var manifest: String { state + "/bindings.yaml" }
    var statusFile: String { state + "/status.json" }

    init(libvirtd: LibvirtDaemon, manifest text: String) throws {
        server = FakeKernelServer(tree: tree)
        keeper = try LibvirtConnection(uri: libvirtd.uri)
        for vm in ["win11", "late"] { try keeper.undefine(vm) }
        try keeper.define(xml: domainXML("win11"))
        FileTree.write(state + "/bindings.yaml", text)
        var environment = ProcessInfo.processInfo.environment
        environment["UMOCKDEV_DIR"] = tree.root
        environment["NOTIFY_SOCKET"] = notify.path
        daemon = try ChildProcess(
            RealComponent.umockdevWrapper.rawValue,
            [BuiltProducts.hostdevd, "--sysfs-root", tree.root, "--connect", libvirtd.uri, "--manifest", state + "/bindings.yaml",
                "--state-dir", state, "--status-file", state + "/status.json", "--resync", "3600"],
            environment: environment)
    }

    /// Replaces the manifest by rename, as editors and git do.
    func edit(_ text: String) {
        FileTree.write(state + "/bindings.new", text)
        rename(state + "/bindings.new", state + "/bindings.yaml")
    }

    func status() -> [String: Any] {
        guard let text = FileTree.read(statusFile), let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) else { return [:] }
        return object as? [String: Any] ?? [:]
    }

    func ours(_ vm: String) -> [HostdevEntry] {
        ((try? DomainXML.hostdevs(keeper.configXML(vm), source: vm)) ?? []).filter(\.isOurs)
    }

    deinit {
        daemon.terminate()
        server.stop()
        FileTree.remove(state)
    }
}

let gpu0 = PCIAddress("0000:01:00.0")!

@Suite(.serialized, .enabled(if: RealComponent.libvirtd.shouldRun && RealComponent.umockdevWrapper.shouldRun, "needs libvirtd and umockdev"))
struct DaemonTests {
    @Test func readyThenReactsToManifestEditsAndKeepsTheLastGoodOne() throws {
        let libvirtd = try LibvirtDaemon()
        defer { libvirtd.stop() }
        let rig = try DaemonRig(libvirtd: libvirtd, manifest: "version: 1\n")
        let ready = try #require(rig.notify.next(), "no READY from hostdevd")
        #expect(ready.hasPrefix("READY=1\nSTATUS=0 bindings"))
        #expect(rig.status()["reconciles"] as? Int == 1)

        // A binding added by an edit (rename) is applied.
        rig.edit("version: 1\nbindings:\n  - vm: win11\n    devices:\n      - pci: \"0000:01:00.0\"\n")
        #expect(eventually { rig.tree.driver(of: gpu0) == "vfio-pci" && rig.ours("win11").count == 2 })
        #expect(eventually { (rig.status()["bindings"] as? [String: [String: String]])?["win11"]?["condition"] == "Ready" })

        // A bad edit: reported, the last good manifest stays in force.
        rig.edit("version: 1\nbindings:\n  - vm: win11\n    devices:\n      - pci: \"0000:01:00\"\n")
        #expect(eventually { (rig.status()["manifestError"] as? String)?.contains("is not a PCI address") == true })
        #expect(rig.tree.driver(of: gpu0) == "vfio-pci")
        #expect(rig.daemon.isRunning)

        // The binding removed: devices go back, config entries go.
        rig.edit("version: 1\n")
        #expect(eventually { rig.tree.driver(of: gpu0) == "nouveau" && rig.ours("win11").isEmpty })
        #expect(eventually { rig.status()["manifestError"] is NSNull })
    }

    @Test func reactsToDomainAndHotplugEvents() throws {
        let libvirtd = try LibvirtDaemon()
        defer { libvirtd.stop() }
        let rig = try DaemonRig(libvirtd: libvirtd, manifest: """
            version: 1
            bindings:
              - vm: late
                devices:
                  - pci: "0000:06:00.0"

            """)
        _ = try #require(rig.notify.next())
        // Neither the VM nor the device exists yet.
        #expect((rig.status()["bindings"] as? [String: [String: String]])?["late"]?["condition"] == "Pending")

        // The device is hot-added: sysfs first, then the kernel's uevent.
        let nic = PCIAddress("0000:06:00.0")!
        let path = rig.tree.addPCI(.init(nic.description, vendor: "8086", device: "10d3", classCode: 0x020000, driver: "e1000e", iommuGroup: 30))
        let socket = try #require(UeventSender.sockets(in: rig.tree.root).first, "hostdevd opened no monitor")
        try UeventSender.send(to: socket, action: "add", devpath: String(path.dropFirst(4)), subsystem: "pci", seqnum: 100, properties: [("DRIVER", "e1000e")])
        #expect(eventually { rig.tree.driver(of: nic) == "vfio-pci" })

        // The VM is defined: its config gets the hostdev.
        try rig.keeper.define(xml: domainXML("late"))
        #expect(eventually { rig.ours("late").map(\.source) == [.pci(nic)] })
        let ledger = try LedgerStore(directory: rig.state).load()
        #expect(ledger.devices[nic]?.originalDriver == "e1000e")
    }

    @Test func sigtermStopsCleanly() throws {
        let libvirtd = try LibvirtDaemon()
        defer { libvirtd.stop() }
        let rig = try DaemonRig(libvirtd: libvirtd, manifest: "version: 1\n")
        _ = try #require(rig.notify.next())
        kill(rig.daemon.pid, SIGTERM)
        #expect(eventually { !rig.daemon.isRunning })
        #expect(rig.daemon.wait() == 0)
        #expect(rig.notify.next(timeout: 1)?.contains("STOPPING=1") == true)
    }
}
