#if canImport(Glibc)
    import Glibc
#endif
import Foundation
@testable import HostdevController
import HostdevCore
import HostdevLibvirt
import HostdevSysfs
import HostdevTestSupport
import Synchronization
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
    var manifest: String { state + "/bindings.yaml" }
    var statusFile: String { state + "/status.json" }

    let uri: String
    var daemon: ChildProcess

    /// `prepare` runs before hostdevd starts, after the fake kernel: a host
    /// and state left by an earlier run; a driver added there is one the
    /// fake kernel does not serve (its bind and unbind are plain files).
    /// `killAfterWrite: k`: the fake kernel SIGKILLs hostdevd as soon as the
    /// k-th write to a control file has taken effect.
    /// More hostdevd options (`--metrics …`), kept for restarts.
    let arguments: [String]

    init(
        libvirtd: LibvirtDaemon, manifest text: String, killAfterWrite: Int? = nil, arguments: [String] = [],
        prepare: (SysfsTree, String) throws -> Void = { _, _ in }
    ) throws {
        self.arguments = arguments
        server = FakeKernelServer(tree: tree)
        let child = Mutex<pid_t>(0)
        if let killAfterWrite {
            let writes = Mutex(0)
            server.onWrite { _, _ in
                if writes.withLock({ $0 += 1; return $0 }) == killAfterWrite { kill(child.withLock { $0 }, SIGKILL) }
            }
        }
        try prepare(tree, state)
        uri = libvirtd.uri
        keeper = try LibvirtConnection(uri: libvirtd.uri)
        for vm in ["win11", "late"] { try keeper.undefine(vm) }
        try keeper.define(xml: domainXML("win11"))
        FileTree.write(state + "/bindings.yaml", text)
        daemon = try Self.launch(tree: tree, state: state, uri: uri, notify: notify, arguments: arguments)
        child.withLock { $0 = daemon.pid }
    }

    static func launch(tree: SysfsTree, state: String, uri: String, notify: NotifyListener, arguments: [String] = []) throws -> ChildProcess {
        var environment = ProcessInfo.processInfo.environment
        environment["UMOCKDEV_DIR"] = tree.root
        environment["NOTIFY_SOCKET"] = notify.path
        return try ChildProcess(
            RealComponent.umockdevWrapper.rawValue,
            [BuiltProducts.hostdevd, "--sysfs-root", tree.root, "--connect", uri, "--manifest", state + "/bindings.yaml",
                "--state-dir", state, "--status-file", state + "/status.json", "--resync", "3600"] + arguments,
            environment: environment)
    }

    /// A new hostdevd on the same host and state, as systemd's restart does.
    func restart() throws {
        daemon = try Self.launch(tree: tree, state: state, uri: uri, notify: notify, arguments: arguments)
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

/// A vHBA on the test driver's fibre-channel host `scsi_host1`.
let vhbaXML = """
    <device><parent>scsi_host1</parent><capability type='scsi_host'><capability type='fc_host'>
    <wwnn>2000000011111111</wwnn><wwpn>1000000011111111</wwpn></capability></capability></device>
    """

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
        let shown = try hostdevctl("status", "--status-file", rig.statusFile)
        #expect(shown.status == 0)
        #expect(shown.stdout.hasPrefix("hostdevd: 1 bindings: 1 ready, 0 pending, 0 blocked (libvirt connected"))
        #expect(shown.stdout.contains("  win11  Ready\n"))

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

    /// A hot-added SCSI disk arrives as scsi, scsi_generic and block uevents:
    /// the first makes hostdevd read the host afresh (the disk with its block
    /// device and its host uses, never the disk alone) and gives it to its VM.
    @Test func aHotAddedSCSIDiskIsGivenToItsVM() throws {
        let libvirtd = try LibvirtDaemon()
        defer { libvirtd.stop() }
        let rig = try DaemonRig(libvirtd: libvirtd, manifest: """
            version: 1
            bindings:
              - vm: win11
                devices:
                  - scsi: {host: 5, bus: 0, target: 0, unit: 0}

            """)
        _ = try #require(rig.notify.next())
        #expect((rig.status()["devices"] as? [String: [String: String]])?["scsi 5:0:0:0"]?["reason"] == "no SCSI device 5:0:0:0 on this host")

        let disk = rig.tree.addSCSIDisk(
            under: rig.tree.pciPath(PCIAddress("0000:00:17.0")!), host: 5, disk: "sdc", generic: "sg5", vendor: "ATA", model: "ST4000VN008")
        let device = String(disk.dropLast("/block/sdc".count).dropFirst(4))
        let socket = try #require(UeventSender.sockets(in: rig.tree.root).first, "hostdevd opened no monitor")
        try UeventSender.send(to: socket, action: "add", devpath: device, subsystem: "scsi", seqnum: 300, properties: [("DEVTYPE", "scsi_device")])
        let disk5 = SCSIAddress(host: 5, bus: 0, target: 0, unit: 0)
        #expect(eventually { rig.ours("win11").map(\.source).contains(.scsi(disk5)) })
    }

    /// libvirt's node-device events are a hotplug source of their own: a
    /// device whose uevent never came is found when libvirt reports one.
    @Test func libvirtNodeDeviceEventsRereadTheHost() throws {
        let libvirtd = try LibvirtDaemon()
        defer { libvirtd.stop() }
        let rig = try DaemonRig(libvirtd: libvirtd, manifest: "version: 1\nbindings:\n  - vm: win11\n    devices:\n      - pci: \"0000:06:00.0\"\n")
        _ = try #require(rig.notify.next())
        let nic = PCIAddress("0000:06:00.0")!
        rig.tree.addPCI(.init(nic.description, vendor: "8086", device: "10d3", classCode: 0x020000, driver: "e1000e", iommuGroup: 30))
        // No uevent: the daemon cannot know yet.
        usleep(300_000)
        #expect(rig.tree.driver(of: nic) == "e1000e")
        // A vHBA created in libvirt (the test driver's one kind of node-device hotplug).
        let vhba = try rig.keeper.createNodeDevice(xml: vhbaXML)
        #expect(eventually { rig.tree.driver(of: nic) == "vfio-pci" })
        // It was that event's reconcile that bound it (status.json holds only
        // the latest reconcile's trigger; the log keeps them all).
        var line: String?
        repeat { line = rig.daemon.readLine(fromStderr: true, timeout: 5) } while line.map { !$0.contains("reconcile (node-device \(vhba))") } ?? false
        #expect(line != nil, "no reconcile for the node-device event in hostdevd's log")
        try rig.keeper.destroyNodeDevice(vhba)
    }

    /// Unplugged: marked missing (Pending, forgotten by the ledger, its
    /// `<hostdev>` taken out so the VM still starts); plugged again: bound
    /// and attached again.
    @Test func aDeviceThatDisappearsIsMarkedMissingAndBoundOnReturn() throws {
        let libvirtd = try LibvirtDaemon()
        defer { libvirtd.stop() }
        let nic = PCIAddress("0000:06:00.0")!
        let spec = SysfsTree.PCISpec(nic.description, vendor: "8086", device: "10d3", classCode: 0x020000, driver: "e1000e", iommuGroup: 30)
        let rig = try DaemonRig(libvirtd: libvirtd, manifest: "version: 1\nbindings:\n  - vm: win11\n    devices:\n      - pci: \"0000:06:00.0\"\n") { tree, _ in
            tree.addPCI(spec)
        }
        _ = try #require(rig.notify.next())
        #expect(eventually { rig.tree.driver(of: nic) == "vfio-pci" && rig.ours("win11").map(\.source) == [.pci(nic)] })
        let path = rig.tree.pciPath(nic)
        let socket = try #require(UeventSender.sockets(in: rig.tree.root).first)
        rig.tree.removePCI(nic)
        try UeventSender.send(to: socket, action: "remove", devpath: String(path.dropFirst(4)), subsystem: "pci", seqnum: 200)
        #expect(eventually {
            (rig.status()["devices"] as? [String: [String: String]])?["pci 0000:06:00.0"]?["reason"]?.contains("not present") == true
        })
        #expect(eventually { (try? LedgerStore(directory: rig.state).load().devices[nic]) == nil })
        #expect(eventually { rig.ours("win11").isEmpty })
        rig.tree.addPCI(spec)
        try UeventSender.send(to: socket, action: "add", devpath: String(path.dropFirst(4)), subsystem: "pci", seqnum: 201)
        #expect(eventually { rig.tree.driver(of: nic) == "vfio-pci" && rig.ours("win11").map(\.source) == [.pci(nic)] })
        #expect(try LedgerStore(directory: rig.state).load().devices[nic]?.originalDriver == "e1000e")
    }

    /// Devices the ledger lists but no binding claims (a manifest changed
    /// while hostdevd was down) go back to the drivers recorded for them.
    @Test func orphansAreReleased() throws {
        let libvirtd = try LibvirtDaemon()
        defer { libvirtd.stop() }
        let audio = PCIAddress("0000:01:00.1")!
        let rig = try DaemonRig(libvirtd: libvirtd, manifest: "version: 1\n") { tree, state in
            tree.unbindLink(gpu0)
            tree.bindLink(gpu0, "vfio-pci")
            tree.unbindLink(audio)
            tree.bindLink(audio, "vfio-pci")
            var ledger = Ledger()
            ledger.devices[gpu0] = Ledger.Entry(originalDriver: "nouveau", vm: "retired")
            ledger.devices[audio] = Ledger.Entry(originalDriver: "snd_hda_intel", vm: "retired")
            try LedgerStore(directory: state).save(ledger)
        }
        _ = try #require(rig.notify.next())
        #expect(eventually { rig.tree.driver(of: gpu0) == "nouveau" && rig.tree.driver(of: audio) == "snd_hda_intel" })
        #expect(eventually { (try? LedgerStore(directory: rig.state).load().devices.isEmpty) == true })
    }

    /// A device whose driver will not let go fails its step (and is retried
    /// with backoff); the other binding is applied all the same, and the
    /// stuck device keeps its driver.
    @Test func aFailingDeviceNeverBlocksTheOthers() throws {
        let libvirtd = try LibvirtDaemon()
        defer { libvirtd.stop() }
        let stuck = PCIAddress("0000:00:05.0")!
        let rig = try DaemonRig(libvirtd: libvirtd, manifest: """
            version: 1
            bindings:
              - vm: late
                devices:
                  - pci: "0000:00:05.0"
              - vm: win11
                devices:
                  - pci: "0000:01:00.0"

            """) { tree, _ in
            // A driver the fake kernel does not serve: its unbind is a plain
            // file, so the device never leaves it.
            tree.addPCI(.init(stuck.description, vendor: "8086", device: "10d3", classCode: 0x020000, driver: "stuckdrv", iommuGroup: 31))
        }
        _ = try #require(rig.notify.next(timeout: 30))
        #expect(eventually(timeout: 20) { rig.tree.driver(of: gpu0) == "vfio-pci" && rig.ours("win11").count == 2 })
        #expect(eventually(timeout: 20) { ((rig.status()["failedSteps"] as? Int) ?? 0) > 0 })
        #expect(rig.tree.driver(of: stuck) == "stuckdrv")
        #expect(rig.daemon.isRunning)
    }

    @Test func vmStartAndStopBindAndReleaseOnStopDevices() throws {
        let libvirtd = try LibvirtDaemon()
        defer { libvirtd.stop() }
        let rig = try DaemonRig(libvirtd: libvirtd, manifest: "version: 1\nbindings:\n  - vm: win11\n    release: onStop\n    devices:\n      - pci: \"0000:01:00.0\"\n")
        _ = try #require(rig.notify.next())
        // Shut off: config entries added, drivers untouched.
        #expect(eventually { rig.ours("win11").count == 2 })
        #expect(rig.tree.driver(of: gpu0) == "nouveau")
        try rig.keeper.start("win11")
        #expect(eventually { rig.tree.driver(of: gpu0) == "vfio-pci" })
        try rig.keeper.destroy("win11")
        #expect(eventually { rig.tree.driver(of: gpu0) == "nouveau" })
        // Undefined (or migrated away): released like a stop, and nothing else breaks.
        try rig.keeper.start("win11")
        #expect(eventually { rig.tree.driver(of: gpu0) == "vfio-pci" })
        try rig.keeper.destroy("win11")
        try rig.keeper.undefine("win11")
        #expect(eventually { rig.tree.driver(of: gpu0) == "nouveau" })
        #expect(eventually { (rig.status()["bindings"] as? [String: [String: String]])?["win11"]?["reason"]?.contains("not defined") == true })
    }

    @Test func survivesLibvirtdRestartsAndResyncs() throws {
        let libvirtd = try LibvirtDaemon()
        defer { libvirtd.stop() }
        let rig = try DaemonRig(libvirtd: libvirtd, manifest: "version: 1\nbindings:\n  - vm: win11\n    devices:\n      - pci: \"0000:01:00.0\"\n")
        _ = try #require(rig.notify.next())
        #expect(eventually { rig.ours("win11").count == 2 })
        libvirtd.kill()
        #expect(eventually { (rig.status()["libvirt"] as? String) == "unreachable" || rig.daemon.isRunning })
        #expect(rig.daemon.isRunning)
        try libvirtd.restart()
        // The test driver starts empty: win11 comes back by hand, and hostdevd
        // (reconnected) gives it its hostdevs again.
        let keeper = try LibvirtConnection(uri: libvirtd.uri)
        try keeper.define(xml: domainXML("win11"))
        #expect(eventually(timeout: 20) {
            ((try? DomainXML.hostdevs(keeper.configXML("win11"), source: "win11")) ?? []).filter(\.isOurs).count == 2
        })
        #expect(eventually { (rig.status()["libvirt"] as? String) == "connected" })
        #expect(rig.tree.driver(of: gpu0) == "vfio-pci")
    }

    @Test func sigkillMidReconcileThenRestartConverges() throws {
        let libvirtd = try LibvirtDaemon()
        defer { libvirtd.stop() }
        let rig = try DaemonRig(
            libvirtd: libvirtd, manifest: "version: 1\nbindings:\n  - vm: win11\n    devices:\n      - pci: \"0000:01:00.0\"\n",
            killAfterWrite: 3)
        #expect(eventually { !rig.daemon.isRunning })
        #expect(rig.daemon.wait() == 128 + SIGKILL)
        // Killed in the second bind, after its unbind (writes: unbind,
        // drivers_probe per device): hostdevd waits for that device's probe,
        // which the fake kernel answers only after the kill, so nothing
        // reached libvirt. (After the 4th write the bind showed before the
        // kill landed, and a loaded machine let hostdevd edit the domain.)
        #expect(rig.ours("win11").isEmpty)
        try rig.restart()
        #expect(eventually { rig.ours("win11").count == 2 })
        #expect(rig.tree.driver(of: gpu0) == "vfio-pci")
        // The last step's outcome is journaled just after its effect shows.
        #expect(eventually { (try? LedgerStore(directory: rig.state).load()).map { $0.devices[gpu0]?.originalDriver == "nouveau" && $0.intent == nil } ?? false })
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

struct SystemdNotifierTests {
    /// A manager that is slow to read must not stall the reconcile loop: the
    /// socket queue holds only `net.unix.max_dgram_qlen` (10) messages.
    @Test func neverBlocksWhenTheManagerDoesNotRead() throws {
        let listener = NotifyListener()
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": listener.path])
        let finished = Mutex(false)
        Thread.detachNewThread {
            for i in 0..<200 { notifier.notify("STATUS=reconcile \(i)") }
            finished.withLock { $0 = true }
        }
        #expect(eventually(timeout: 10) { finished.withLock { $0 } }, "notify blocked on a full socket queue")
        #expect(listener.next(timeout: 1) == "STATUS=reconcile 0")
    }
}

struct ReconcileTriggerTests {
    /// A storm's thousands of device keys are summed up, not listed.
    @Test(arguments: [(1, ["pci vf0"]), (8, nil), (2048, nil)] as [(Int, [String]?)])
    func triggersListAFewKeysThenCount(count: Int, expected: [String]?) {
        let keys = Set((0..<count).map { ReconcileKey.device(subsystem: "pci", devpath: "/devices/pci0000:00/0000:81:00.0/vf\($0)") })
        let triggers = Reconciler.triggers(keys)
        if let expected { #expect(triggers == expected) }
        #expect(triggers.count == min(count, 9))
        if count > 8 { #expect(triggers.last == "and \(count - 8) more") }
    }
}

struct NodeDeviceKeyTests {
    let tree = SysfsTree.workstation()

    /// libvirt names a device; the cache or the PCI bus link places it.
    @Test func nodeDeviceNamesMapToDevicePaths() throws {
        let reader = InventoryReader(root: tree.sysfs)
        let inventory = try reader.read()
        let gpuPath = String(tree.pciPath(gpu0).dropFirst(4))
        #expect(Reconciler.change(forNodeDevice: "pci_0000_01_00_0", in: inventory, reader: reader)! == ("pci", gpuPath))
        // Not cached yet, present on the bus.
        let nic = tree.addPCI(.init("0000:06:00.0", vendor: "8086", device: "10d3", classCode: 0x020000, iommuGroup: 30))
        #expect(Reconciler.change(forNodeDevice: "pci_0000_06_00_0", in: inventory, reader: reader)! == ("pci", String(nic.dropFirst(4))))
        // A USB device the cache knows.
        let usb = try #require(inventory.devices.first { $0.capability == .usbDevice && $0.usb?.isRootHub == false })
        #expect(Reconciler.change(forNodeDevice: usb.name, in: inventory, reader: reader)?.subsystem == "usb")
        // Neither: the caller re-reads the host.
        #expect(Reconciler.change(forNodeDevice: "scsi_host12", in: inventory, reader: reader) == nil)
        #expect(Reconciler.change(forNodeDevice: "pci_0000_09_00_0", in: inventory, reader: reader) == nil)
    }
}

struct PhaseClockTests {
    /// The debug line says where a slow reaction's time went, queue wait first.
    @Test func namesEachPhaseInOrder() {
        var clock = PhaseClock(queued: 2.5)
        clock.lap("observe")
        clock.lap("plan")
        #expect(clock.phases.map(\.name) == ["queued", "observe", "plan"])
        #expect(clock.description.hasSuffix("(queued 2.5, observe \(PhaseClock.format(clock.phases[1].milliseconds)), plan \(PhaseClock.format(clock.phases[2].milliseconds)))"))
        #expect(clock.totalMilliseconds >= clock.phases[1].milliseconds + clock.phases[2].milliseconds - 0.001)
        #expect(PhaseClock().phases.isEmpty)
    }
}
