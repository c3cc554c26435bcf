#if canImport(Glibc)
    import Glibc
#endif
import Foundation
@testable import HostdevController
import HostdevCore
import HostdevLibvirt
import HostdevSysfs
import HostdevTestSupport
@testable import HostdevUdev
import Logging
import Synchronization
import Testing

/// libvirt's hook as libvirtd runs it (XML on stdin), against a workstation
/// tree answered by the fake kernel, with a state directory of its own.
final class HookRig {
    let tree = SysfsTree.workstation()
    let state = FileTree.makeTemporaryDirectory(prefix: "hostdev-hook")
    let server: FakeKernelServer
    var manifest: String { state + "/bindings.yaml" }
    static let claims = "version: 1\nbindings:\n  - vm: win11\n    release: onStop\n    devices:\n      - pci: \"0000:01:00.0\"\n"

    init() { server = FakeKernelServer(tree: tree) }

    deinit {
        server.stop()
        FileTree.remove(state)
    }

    /// Runs the hook with `stdin` (a file's contents) as libvirt's XML.
    func hook(_ vm: String, _ operation: String, stdin: String? = nil, extra: [String] = []) throws -> (status: Int32, stdout: String, stderr: String) {
        FileTree.write(state + "/domain.xml", stdin ?? domainXML(vm))
        return try hook(vm, operation, stdinFile: state + "/domain.xml", extra: extra)
    }

    func hook(_ vm: String, _ operation: String, stdinFile: String, extra: [String] = []) throws -> (status: Int32, stdout: String, stderr: String) {
        try ChildProcess.run("/bin/sh", ["-c",
            "vm=$1 op=$2 root=$3 manifest=$4 state=$5 input=$6; shift 6; "
                + "exec \"$0\" hook \"$vm\" \"$op\" begin - --sysfs-root \"$root\" --manifest \"$manifest\" --state-dir \"$state\" --connect bogus:///no-libvirt-in-hooks \"$@\" < \"$input\"",
            BuiltProducts.hostdevctl, vm, operation, tree.root, manifest, state, stdinFile] + extra)
    }

    var gpuDriver: String? { tree.driver(of: gpu0) }
}

@Suite(.serialized) struct HookFailSafeTests {
    @Test func noManifestLetsTheVMStartWithAWarning() throws {
        let rig = HookRig()
        let result = try rig.hook("win11", "prepare")
        #expect(result.status == 0)
        #expect(result.stderr.contains("warning: cannot read manifest"))
        #expect(result.stderr.contains("no last good manifest either: win11 starts without hostdevd"))
    }

    @Test func anInvalidManifestFallsBackToTheLastGoodOne() throws {
        let rig = HookRig()
        LastGoodManifest(stateDirectory: rig.state).save(Array(HookRig.claims.utf8))
        FileTree.write(rig.manifest, "version: 1\nbindings: [\n")
        let result = try rig.hook("win11", "prepare")
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("using the last good manifest \(rig.state)/manifest.last-good"))
        #expect(rig.gpuDriver == "vfio-pci")
    }

    @Test func anInvalidManifestWithoutALastGoodOneBlocksNothing() throws {
        let rig = HookRig()
        FileTree.write(rig.manifest, "version: 1\nbindings: [\n")
        let result = try rig.hook("win11", "prepare")
        #expect(result.status == 0)
        #expect(result.stderr.contains("no last good manifest either"))
        #expect(rig.gpuDriver == "nouveau")
    }

    /// The hook waits for the state lock a bounded time, then fails with a
    /// clear message: libvirtd, which waits for it, is never stuck.
    @Test func aHeldLockFailsTheHookInBoundedTime() throws {
        let rig = HookRig()
        FileTree.write(rig.manifest, HookRig.claims)
        let holding = Mutex(true)
        let locked = Mutex(false)
        let store = LedgerStore(directory: rig.state)
        Thread.detachNewThread {
            try? store.withLock {
                locked.withLock { $0 = true }
                while holding.withLock({ $0 }) { usleep(10_000) }
            }
        }
        #expect(eventually { locked.withLock { $0 } })
        let start = ContinuousClock.now
        let result = try rig.hook("win11", "prepare", extra: ["--lock-timeout", "1"])
        holding.withLock { $0 = false }
        #expect(ContinuousClock.now - start < .seconds(10))
        #expect(result.status == 1)
        #expect(result.stderr.contains("/lock: another hostdevd reconcile, apply, release or hook holds it"), "\(result.stderr)")
        #expect(rig.gpuDriver == "nouveau")
    }

    @Test(arguments: [
        ("<domain><name>win11</name>", "the domain XML on stdin"),
        ("<domain><name>other</name></domain>", "hook called for win11 with the XML of other"),
    ])
    func badXMLForAClaimedVMBindsNothing(xml: String, message: String) throws {
        let rig = HookRig()
        FileTree.write(rig.manifest, HookRig.claims)
        let result = try rig.hook("win11", "prepare", stdin: xml)
        #expect(result.status == 1)
        #expect(result.stderr.contains(message), "\(result.stderr)")
        #expect(rig.gpuDriver == "nouveau")
    }

    @Test func badXMLForAnUnclaimedVMIsAWarning() throws {
        let rig = HookRig()
        FileTree.write(rig.manifest, HookRig.claims)
        let result = try rig.hook("other", "prepare", stdin: String(repeating: "x", count: 17 << 20))
        #expect(result.status == 0)
        #expect(result.stderr.contains("warning: hook for other"))
    }

    @Test func endlessStdinIsRefused() throws {
        let rig = HookRig()
        FileTree.write(rig.manifest, HookRig.claims)
        let result = try rig.hook("win11", "prepare", stdinFile: "/dev/zero")
        #expect(result.status == 1)
        #expect(rig.gpuDriver == "nouveau")
    }

    /// After `hostdevctl release` the device is off vfio-pci; if hostdevd's
    /// `<hostdev>` for it is still in the VM's XML (libvirt was away when it
    /// was released), prepare refuses with the reason, not QEMU's "failed
    /// to open /dev/vfio/N".
    @Test func prepareRefusesAHostdevItCannotBackWithVFIO() throws {
        let rig = HookRig()
        FileTree.write(rig.manifest, HookRig.claims)
        var ledger = Ledger()
        ledger.released = [.pci(gpu0): Manifest.fingerprint(of: HookRig.claims)]
        try LedgerStore(directory: rig.state).save(ledger)
        let xml = domainXML("win11", extra: DomainXML.element(.ours(.pci(gpu0))))
        let result = try rig.hook("win11", "prepare", stdin: xml)
        #expect(result.status == 1)
        #expect(result.stderr.contains("win11's <hostdev> written by hostdevd for 0000:01:00.0 needs it on vfio-pci, but it is on nouveau"), "\(result.stderr)")
        #expect(result.stderr.contains("released by hand"))
    }

    /// A mediated device released (and removed) while libvirt was away
    /// leaves hostdevd's `<hostdev>` in the XML: prepare says so.
    @Test func prepareRefusesAnMdevHostdevWhoseDeviceIsGone() throws {
        let rig = HookRig()
        FileTree.write(rig.manifest, HookRig.claims)
        let uuid = "4b20d080-1b54-4048-85b3-a6a62d165c01"
        var ledger = Ledger()
        ledger.released = [.mdev(uuid): Manifest.fingerprint(of: HookRig.claims)]
        try LedgerStore(directory: rig.state).save(ledger)
        let xml = domainXML("win11", extra: DomainXML.element(.ours(.mdev(uuid))))
        let result = try rig.hook("win11", "prepare", stdin: xml)
        #expect(result.status == 1)
        #expect(result.stderr.contains(
            "win11's <hostdev> written by hostdevd for mdev \(uuid) needs that mediated device, but it does not exist (Pending: released by hand (hostdevctl release): not on the host"),
            "\(result.stderr)")
    }
}

/// `hostdevctl release` acts only on devices on vfio-pci (or in the
/// ledger), never on one the host uses, and never blind.
@Suite(.serialized, .enabled(if: RealComponent.libvirtd.shouldRun, "libvirtd missing: apt-get install libvirt-daemon"))
struct ReleaseCommandTests {
    func release(_ rig: ApplyRig, _ arguments: String..., connect: String? = nil) throws -> (status: Int32, stdout: String, stderr: String) {
        try ChildProcess.run(
            BuiltProducts.hostdevctl,
            ["release"] + arguments + ["--sysfs-root", rig.tree.root, "--connect", connect ?? rig.uri, "--manifest", rig.manifestFile, "--state-dir", rig.state])
    }

    /// The NVMe that holds `/` is on its host driver: nothing to release.
    @Test func aDeviceOnItsHostDriverIsNeverTouched() throws {
        let daemon = try LibvirtDaemon()
        defer { daemon.stop() }
        let rig = try ApplyRig(daemon: daemon)
        let nvme = PCIAddress("0000:02:00.0")!
        let result = try release(rig, nvme.description, "--force")
        #expect(result.status == 1)
        #expect(result.stderr.contains("it is on nvme, not on vfio-pci, and hostdevd did not bind it: nothing to release"), "\(result.stderr)")
        #expect(rig.tree.driver(of: nvme) == "nvme")
        #expect(rig.server.kernel.writes.isEmpty)
    }

    @Test func libvirtAwayRefusesUnlessForced() throws {
        let daemon = try LibvirtDaemon()
        defer { daemon.stop() }
        let rig = try ApplyRig(daemon: daemon)
        #expect(try rig.apply().status == 0)
        let refused = try release(rig, ApplyRig.newNIC.description, connect: "test+unix:///default?socket=/nonexistent/sock")
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("libvirt unreachable"), "\(refused.stderr)")
        #expect(rig.tree.driver(of: ApplyRig.newNIC) == "vfio-pci")
        let forced = try release(rig, ApplyRig.newNIC.description, "--force", connect: "test+unix:///default?socket=/nonexistent/sock")
        #expect(forced.status == 0, "\(forced.stderr)")
        #expect(rig.tree.driver(of: ApplyRig.newNIC) == "igb")
    }

    /// Released with the VM off: hostdevd's `<hostdev>` leaves the config,
    /// so the VM still starts (without the device).
    @Test func releaseTakesTheHostdevOutOfTheConfig() throws {
        let daemon = try LibvirtDaemon()
        defer { daemon.stop() }
        let rig = try ApplyRig(daemon: daemon)
        #expect(try rig.apply().status == 0)
        #expect(try rig.hostdevs("win11").contains(.ours(.pci(ApplyRig.newNIC))))
        let result = try release(rig, ApplyRig.newNIC.description)
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(rig.tree.driver(of: ApplyRig.newNIC) == "igb")
        #expect(!(try rig.hostdevs("win11")).contains(.ours(.pci(ApplyRig.newNIC))))
        // plan now has nothing to do, but says the binding waits: exit 3.
        let plan = try hostdevctl("plan", "--sysfs-root", rig.tree.root, "--connect", rig.uri, "--manifest", rig.manifestFile, "--state-dir", rig.state)
        #expect(plan.status == 3, "\(plan.stdout)")
        #expect(plan.stdout.contains("released by hand"))
    }

    /// A SCSI disk named as libvirt names it: only hostdevd's entry leaves
    /// win11; a mediated device hostdevd knows nothing of is refused, and
    /// so is a USB device (the error names the forms release takes).
    @Test func releasesASCSIDiskAndRefusesWhatItDoesNotManage() throws {
        let daemon = try LibvirtDaemon()
        defer { daemon.stop() }
        let rig = try ApplyRig(daemon: daemon)
        rig.tree.addSCSIDisk(under: rig.tree.pciPath(PCIAddress("0000:00:17.0")!), host: 1, disk: "sdb", generic: "sg1", vendor: "ATA", model: "ST4000VN008")
        FileTree.write(rig.manifestFile, "version: 1\nbindings:\n  - vm: win11\n    devices:\n      - scsi: {host: 1, bus: 0, target: 0, unit: 0}\n")
        #expect(try rig.apply().status == 0)
        let disk = HostdevEntry.ours(.scsi(SCSIAddress(host: 1, bus: 0, target: 0, unit: 0)))
        #expect(try rig.hostdevs("win11").contains(disk))
        let writes = rig.server.kernel.writes.count
        let result = try release(rig, "scsi_1_0_0_0")
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout == """
            done    remove <hostdev> scsi 1:0:0:0 from win11's config
            released scsi 1:0:0:0: released by hand (hostdevctl release): out of win11; given back after the next manifest edit

            """, "\(result.stdout)")
        #expect(!(try rig.hostdevs("win11")).contains(disk))
        #expect(rig.server.kernel.writes.count == writes, "no driver moves")

        let unknown = try release(rig, "mdev_11111111_2222_3333_4444_555555555555")
        #expect(unknown.status == 1)
        #expect(unknown.stderr.contains(
            "error: not releasing mdev 11111111-2222-3333-4444-555555555555: no such mediated device on this host, and no binding claims it: nothing to release"),
            "\(unknown.stderr)")
        let usb = try release(rig, "usb 1:4")
        #expect(usb.status == 64)
        #expect(usb.stderr.contains("'usb 1:4' is not a device release takes; write \(ReleaseByHand.forms)"), "\(usb.stderr)")
    }
}

/// The daemon's pass, in process, with an injected clock: a device whose
/// driver will not let go is tried at its retry times, not at every event
/// its own rollback causes, and is never left without a driver.
@Suite(.serialized) struct FlappingTests {
    /// Writes go to the fake kernel, except unbinding `stuckdrv`, which the
    /// driver accepts but never completes (the device stays bound).
    final class StuckDriver: SysfsWriter {
        let kernel: FakeKernel
        let stuckUnbinds = Mutex(0)
        init(kernel: FakeKernel) { self.kernel = kernel }
        func write(_ value: String, to kernelPath: String) throws(SysfsError) {
            if kernelPath.hasSuffix("/driver/unbind"), kernel.tree.driver(of: PCIAddress(value)!) == "stuckdrv" {
                stuckUnbinds.withLock { $0 += 1 }
                return
            }
            try kernel.write(value, to: kernelPath)
        }
    }

    @Test func attemptsAreSpacedByBackoff() throws {
        let tree = SysfsTree.workstation()
        let state = FileTree.makeTemporaryDirectory(prefix: "hostdev-flap")
        defer { FileTree.remove(state) }
        let stuck = PCIAddress("0000:00:05.0")!
        tree.addPCI(.init(stuck.description, vendor: "8086", device: "10d3", classCode: 0x020000, driver: "stuckdrv", iommuGroup: 31))
        FileTree.write(state + "/bindings.yaml", "version: 1\nbindings:\n  - vm: win11\n    devices:\n      - pci: \"0000:00:05.0\"\n")
        let kernel = FakeKernel(tree: tree)
        let reconciler = testReconciler(tree: tree, state: state)
        let writer = StuckDriver(kernel: kernel)
        reconciler.writer = writer
        let clock = Mutex(1_000.0)
        reconciler.now = { clock.withLock { $0 } }
        func unbinds() -> Int { writer.stuckUnbinds.withLock { $0 } }
        let devpath = "/devices/pci0000:00/0000:00:05.0"

        let first = reconciler.reconcile([.all])
        #expect(unbinds() == 1)
        #expect(first.retryAfter != nil)
        // The failed bind's own uevents arrive at once: no new attempt.
        for _ in 0..<3 { _ = reconciler.reconcile([.device(subsystem: "pci", devpath: devpath)]) }
        #expect(unbinds() == 1)
        #expect(tree.driver(of: stuck) == "stuckdrv")
        let status = FileTree.read(state + "/status.json") ?? ""
        #expect(status.contains("retrying at 00:16:41 UTC (attempt 2)"), "\(status)")
        // At the retry time: one more attempt, then a longer wait.
        clock.withLock { $0 += 1 }
        _ = reconciler.reconcile([.retry])
        #expect(unbinds() == 2)
        clock.withLock { $0 += 1 }
        _ = reconciler.reconcile([.retry])
        #expect(unbinds() == 2, "the second failure waits 2 s")
        #expect(tree.driver(of: stuck) == "stuckdrv")
    }

    /// A release refused because a process holds the VFIO group backs off
    /// to 10 s at most (the holder's exit sends no event), and goes through
    /// on the first retry after the holder is gone.
    @Test func aReleaseWaitingOnAHolderIsRetriedWithinSeconds() throws {
        let tree = SysfsTree.workstation()
        let state = FileTree.makeTemporaryDirectory(prefix: "hostdev-held")
        defer { FileTree.remove(state) }
        let nic = PCIAddress("0000:00:05.0")!
        tree.addPCI(.init(nic.description, vendor: "8086", device: "10d3", classCode: 0x020000, driver: "e1000e", iommuGroup: 31))
        let kernel = FakeKernel(tree: tree)
        _ = try PCIDriverControl(root: tree.sysfs, writer: kernel).bind(nic, to: "vfio-pci")
        var ledger = Ledger()
        ledger.devices[nic] = Ledger.Entry(originalDriver: "e1000e", vm: "win11")
        try LedgerStore(directory: state).save(ledger)
        tree.addProcess(4242, comm: "qemu-system-x86", openFiles: ["/dev/vfio/31"])
        FileTree.write(state + "/bindings.yaml", "version: 1\nbindings: []\n")
        let reconciler = testReconciler(tree: tree, state: state)
        reconciler.writer = kernel
        let clock = Mutex(1_000.0)
        reconciler.now = { clock.withLock { $0 } }
        var waits: [Duration] = []
        for _ in 0..<8 {
            let outcome = reconciler.reconcile([.all])
            waits.append(try #require(outcome.retryAfter))
            clock.withLock { $0 += 60 }
        }
        #expect(tree.driver(of: nic) == "vfio-pci", "released while held")
        #expect(waits.allSatisfy { $0 <= .seconds(10) }, "\(waits)")
        #expect(FileTree.read(state + "/status.json")?.contains("qemu-system-x86 (pid 4242)") == true)
        tree.removeProcess(4242)
        _ = reconciler.reconcile([.retry])
        #expect(tree.driver(of: nic) == "e1000e")
    }
}

/// Deadlock and unknown-state scenarios against a running hostdevd.
@Suite(.serialized, .enabled(if: RealComponent.libvirtd.shouldRun && RealComponent.umockdevWrapper.shouldRun, "needs libvirtd and umockdev"))
struct DaemonFailSafeTests {
    static let onStop = "version: 1\nbindings:\n  - vm: win11\n    release: onStop\n    devices:\n      - pci: \"0000:01:00.0\"\n"

    /// libvirtd holds a domain while it runs the hook; here it is frozen
    /// (SIGSTOP) while hostdevd reconciles, so hostdevd's libvirt calls
    /// hang. The hook, run as libvirtd runs it, must still get the state
    /// lock: hostdevd never holds it across a libvirt call.
    @Test func theHookNeverWaitsForADaemonStuckInLibvirt() throws {
        let libvirtd = try LibvirtDaemon()
        defer { libvirtd.stop() }
        let rig = try DaemonRig(libvirtd: libvirtd, manifest: Self.onStop)
        _ = try #require(rig.notify.next(), "no READY from hostdevd")
        kill(libvirtd.pid, SIGSTOP)
        defer { kill(libvirtd.pid, SIGCONT) }
        kill(rig.daemon.pid, SIGHUP)  // a pass that will hang in libvirt
        usleep(300_000)
        let start = ContinuousClock.now
        FileTree.write(rig.state + "/domain.xml", domainXML("win11"))
        let hook = try ChildProcess.run("/bin/sh", ["-c",
            "exec \"$0\" hook win11 prepare begin - --sysfs-root \"$1\" --manifest \"$2\" --state-dir \"$3\" --lock-timeout 5 < \"$4\"",
            BuiltProducts.hostdevctl, rig.tree.root, rig.manifest, rig.state, rig.state + "/domain.xml"])
        #expect(hook.status == 0, "\(hook.stderr)")
        #expect(ContinuousClock.now - start < .seconds(5))
        #expect(rig.tree.driver(of: gpu0) == "vfio-pci")
    }

    /// libvirtd dies while win11 (release: onStop) runs: hostdevd cannot
    /// tell whether it still runs, so it releases nothing, and says why.
    @Test func libvirtdGoneReleasesNothing() throws {
        let libvirtd = try LibvirtDaemon()
        defer { libvirtd.stop() }
        let rig = try DaemonRig(libvirtd: libvirtd, manifest: Self.onStop)
        _ = try #require(rig.notify.next(), "no READY from hostdevd")
        try rig.keeper.start("win11")
        #expect(eventually { rig.tree.driver(of: gpu0) == "vfio-pci" })
        libvirtd.kill()
        kill(rig.daemon.pid, SIGHUP)
        #expect(eventually { (rig.status()["summary"] as? String)?.contains("libvirt unreachable") == true })
        #expect(rig.tree.driver(of: gpu0) == "vfio-pci")
        let devices = rig.status()["devices"] as? [String: [String: String]] ?? [:]
        #expect(devices["pci 0000:01:00.0"]?["reason"]?.contains("cannot tell whether win11 runs") == true, "\(devices)")
    }

    /// A bridge with the default route appears over a NIC that win11
    /// claims (`onStop`, off): the next pass reads the host's uses afresh,
    /// the NIC is Blocked with the whole chain, and it is never unbound,
    /// not even when win11 starts.
    @Test func aBridgeOverAClaimedNICBlocksIt() throws {
        let libvirtd = try LibvirtDaemon()
        defer { libvirtd.stop() }
        let nic = PCIAddress("0000:05:00.0")!
        let manifest = "version: 1\nbindings:\n  - vm: win11\n    release: onStop\n    devices:\n      - pci: \"0000:05:00.0\"\n"
        let rig = try DaemonRig(libvirtd: libvirtd, manifest: manifest) { tree, _ in
            let path = tree.addPCI(.init(nic.description, vendor: "8086", device: "10d3", classCode: 0x020000, driver: "e1000e", iommuGroup: 40))
            tree.addNet("enp5s0", under: path, mac: "52:54:00:00:05:00", up: true)
        }
        _ = try #require(rig.notify.next(), "no READY from hostdevd")
        _ = rig.tree.addUpperNet("vmbr0", kind: .bridge, lowers: ["enp5s0"])
        rig.tree.addRoute("vmbr0")
        kill(rig.daemon.pid, SIGHUP)
        let chain = "0000:05:00.0 → enp5s0 → vmbr0, which carries the default route"
        #expect(eventually { (rig.status()["devices"] as? [String: [String: String]])?["pci 0000:05:00.0"]?["reason"]?.contains(chain) == true },
            "\(rig.status()["devices"] ?? "")")
        try rig.keeper.start("win11")
        #expect(eventually { (rig.status()["trigger"] as? [String])?.contains("vm win11") == true })
        #expect(rig.tree.driver(of: nic) == "e1000e")
        #expect(!rig.server.kernel.writes.contains { $0.value.contains(nic.description) }, "\(rig.server.kernel.writes)")
    }

    @Test func statusSaysWhenTheDaemonIsGone() throws {
        let libvirtd = try LibvirtDaemon()
        defer { libvirtd.stop() }
        let rig = try DaemonRig(libvirtd: libvirtd, manifest: "version: 1\n")
        _ = try #require(rig.notify.next())
        kill(rig.daemon.pid, SIGTERM)
        #expect(rig.daemon.wait() == 0)
        let shown = try hostdevctl("status", "--status-file", rig.statusFile)
        #expect(shown.status == 3)
        #expect(shown.stderr.contains("hostdevd is not running (pid \(rig.daemon.pid) is gone)"), "\(shown.stderr)")
    }

    /// A rejected edit reverted to the good text: the error clears at once,
    /// and STATUS= named it while it stood.
    @Test func aRevertedManifestClearsItsError() throws {
        let libvirtd = try LibvirtDaemon()
        defer { libvirtd.stop() }
        let good = "version: 1\n"
        let rig = try DaemonRig(libvirtd: libvirtd, manifest: good)
        _ = try #require(rig.notify.next())
        rig.edit("version: 1\nbindings: [\n")
        #expect(eventually { rig.status()["manifestError"] is String })
        var sawError = false
        while let message = rig.notify.next(timeout: 2) { if message.contains("manifest rejected") { sawError = true; break } }
        #expect(sawError)
        rig.edit(good)
        #expect(eventually { rig.status()["manifestError"] is NSNull })
    }
}

@Suite struct SmallFixesTests {
    @Test(arguments: [
        ("1234 (hostdevd) S 1 1234 1234 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 4 0 98765 1 2 3", UInt64(98765)),
        ("77 (a (b) c) R 1 77 77 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 42 0", UInt64(42)),
    ])
    func processStartTicks(stat: String, ticks: UInt64) {
        #expect(ProcessStart.parse(stat)?.ticks == ticks)
    }

    @Test func udevBufferOverflowMeansResync() {
        #expect(UdevMonitor.loss(errno: ENOBUFS)?.isOverflow == true)
        #expect(UdevMonitor.loss(errno: EAGAIN) == nil)
    }

    /// stop() while the watcher's thread waits in poll: it wakes and the
    /// stream ends (the thread closes its own descriptors as it leaves;
    /// before, stop() closed the descriptor under a blocked read).
    @Test func manifestWatcherStopsItsThread() async throws {
        let dir = FileTree.makeTemporaryDirectory()
        defer { FileTree.remove(dir) }
        let watcher = try ManifestWatcher(path: dir + "/m.yaml")
        usleep(50_000)  // the thread is in poll
        watcher.stop()
        var changes = 0
        for await _ in watcher.changes { changes += 1 }
        #expect(changes == 0)
    }

    @Test func relativeStateDirectoriesResolveAgainstTheWorkingDirectory() throws {
        let dir = FileTree.makeTemporaryDirectory()
        defer { FileTree.remove(dir) }
        FileTree.write(dir + "/m.yaml", "version: 1\n")
        let tree = SysfsTree.workstation()
        let result = try ChildProcess.run("/bin/sh", ["-c", "cd \"$1\" && exec \"$0\" apply --manifest m.yaml --state-dir relative-state --sysfs-root \"$2\" --connect test:///default",
            BuiltProducts.hostdevctl, dir, tree.root])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(access(dir + "/relative-state/manifest.last-good", F_OK) == 0)
        #expect(access("/relative-state", F_OK) != 0)
    }
}
