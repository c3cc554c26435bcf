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

private let igpu = PCIAddress("0000:00:02.0")!
private let gvt4 = "i915-GVTg_V5_4"
private let spare = SCSIAddress(host: 1, bus: 0, target: 0, unit: 0)
private var vgpuUUID: String { MdevSpec.derivedUUID(vm: "win11", parent: igpu, type: gvt4, ordinal: 0) }

private let vgpuManifest = """
    version: 1
    bindings:
      - vm: win11
        devices:
          - mdev: {parent: "0000:00:02.0", type: "i915-GVTg_V5_4"}
    """

private let spareDiskManifest = """
    version: 1
    bindings:
      - vm: win11
        devices:
          - scsi: "/dev/disk/by-id/wwn-0x5000c500a1b2c3d4"
    """

/// `hostdevctl release` of a mediated and a SCSI device through the
/// controller: libvirt's test driver holds win11, the fake kernel creates
/// and removes mediated devices in a temporary sysfs tree.
@Suite struct ReleaseKindsIntegrationTests {
    let tree: SysfsTree = {
        let tree = SysfsTree.workstation()
        tree.addMdevParent(igpu, types: [.init(gvt4, name: "GVTg_V5_4", available: 1)])
        tree.addSCSIDisk(under: tree.pciPath(PCIAddress("0000:00:17.0")!), host: 1, disk: "sdb", generic: "sg1", vendor: "ATA", model: "ST4000VN008")
        FileTree.makeDirectory(tree.host("/dev/disk/by-id"))
        FileTree.link(tree.host("/dev/disk/by-id/wwn-0x5000c500a1b2c3d4"), to: "../../sdb")
        return tree
    }()
    let state = FileTree.makeTemporaryDirectory(prefix: "hostdev-release")

    func controller(_ kernel: FakeKernel) -> Controller {
        Controller(sources: HostSources(sysfsRoot: tree.sysfs, useUdev: false, libvirtURI: ""), stateDirectory: state, writer: kernel)
    }

    func release(_ text: String, _ yaml: String, force: Bool = false, connection: LibvirtConnection?, kernel: FakeKernel) throws
        -> (refused: [ReleaseRefusal], released: [HostdevEntry.Source], steps: [String], outcomes: [StepOutcome])
    {
        let query = try #require(DeviceQuery.parse(text))
        let result = try controller(kernel).release([query], manifest: try manifest(yaml), force: force, connection: connection)
        return (result.refused, result.released, result.steps.map(\.action.summary), result.outcomes)
    }

    func ours(_ connection: LibvirtConnection) throws -> [HostdevEntry.Source] {
        try DomainXML.hostdevs(try connection.configXML("win11"), source: "win11").filter(\.isOurs).map(\.source)
    }

    /// Released with win11 off (named as libvirt names it): the entry
    /// leaves the config, then the device is removed and the parent has its
    /// instance back; until the next manifest edit, apply leaves it so.
    @Test func anMdevLeavesTheVMAndIsRemovedUntilTheNextEdit() throws {
        defer { FileTree.remove(state) }
        let connection = try LibvirtConnection(uri: exampleHostURI)
        let kernel = FakeKernel(tree: tree)
        #expect(try applyOnce(vgpuManifest, tree: tree, state: state, connection: connection, kernel: kernel).1 == [.done, .done])
        #expect(tree.availableInstances(gvt4, of: igpu) == 0)

        let result = try release("mdev_" + vgpuUUID.replacingOccurrences(of: "-", with: "_"), vgpuManifest, connection: connection, kernel: kernel)
        #expect(result.refused.isEmpty)
        #expect(result.released == [.mdev(vgpuUUID)])
        #expect(result.steps == ["remove <hostdev> mdev \(vgpuUUID) from win11's config", "remove mdev \(vgpuUUID) (\(gvt4) on 0000:00:02.0)"])
        #expect(result.outcomes == [.done, .done])
        #expect(!tree.mdevExists(vgpuUUID))
        #expect(tree.availableInstances(gvt4, of: igpu) == 1)
        #expect(try ours(connection).isEmpty)
        let ledger = try LedgerStore(directory: state).load()
        #expect(ledger.released == [.mdev(vgpuUUID): Manifest.fingerprint(of: vgpuManifest)])
        #expect(ledger.mdevs.isEmpty && ledger.intent == nil)

        let (unchanged, _) = try applyOnce(vgpuManifest, tree: tree, state: state, connection: connection, kernel: kernel)
        #expect(unchanged.steps.isEmpty)
        #expect(unchanged.devices["mdev \(vgpuUUID)"]?.description.contains("created and given back after the next manifest edit") == true)
        let (edited, outcomes) = try applyOnce(vgpuManifest + "\n# edited\n", tree: tree, state: state, connection: connection, kernel: kernel)
        #expect(edited.steps.map(\.action.summary) == [
            "create mdev \(vgpuUUID) (\(gvt4) on 0000:00:02.0) for win11", "add <hostdev> mdev \(vgpuUUID) to win11's config",
        ])
        #expect(outcomes == [.done, .done])
        #expect(tree.mdevExists(vgpuUUID))
    }

    /// One mdevctl defines is the host's: it leaves the VM and stays.
    @Test func anMdevctlDeviceLeavesTheVMButStays() throws {
        defer { FileTree.remove(state) }
        let uuid = "11111111-2222-3333-4444-555555555555"
        #expect(tree.addMdev(uuid, parent: igpu, type: gvt4, iommuGroup: 300))
        tree.defineWithMdevctl(uuid, parent: igpu, type: gvt4)
        let claim = "version: 1\nbindings:\n  - vm: win11\n    devices:\n      - mdev: {parent: \"0000:00:02.0\", type: \(gvt4), uuid: \"\(uuid)\"}\n"
        let connection = try LibvirtConnection(uri: exampleHostURI)
        let kernel = FakeKernel(tree: tree)
        _ = try applyOnce(claim, tree: tree, state: state, connection: connection, kernel: kernel)
        #expect(try ours(connection) == [.mdev(uuid)])
        let result = try release(uuid, claim, connection: connection, kernel: kernel)
        #expect(result.steps == ["remove <hostdev> mdev \(uuid) from win11's config"])
        #expect(tree.mdevExists(uuid))
        #expect(kernel.writes.allSatisfy { !$0.path.hasSuffix("/remove") })
    }

    /// A SCSI device claimed by its stable name, released by that name: only
    /// the domain entry goes; no driver moves.
    @Test func aSCSIDeviceOnlyLeavesTheVM() throws {
        defer { FileTree.remove(state) }
        let connection = try LibvirtConnection(uri: exampleHostURI)
        let kernel = FakeKernel(tree: tree)
        _ = try applyOnce(spareDiskManifest, tree: tree, state: state, connection: connection, kernel: kernel)
        #expect(try ours(connection) == [.scsi(spare)])
        let writes = kernel.writes.count
        let result = try release("/dev/disk/by-id/wwn-0x5000c500a1b2c3d4", spareDiskManifest, connection: connection, kernel: kernel)
        #expect(result.released == [.scsi(spare)])
        #expect(result.steps == ["remove <hostdev> scsi 1:0:0:0 from win11's config"])
        #expect(result.outcomes == [.done])
        #expect(try ours(connection).isEmpty)
        #expect(kernel.writes.count == writes)
        #expect(try applyOnce(spareDiskManifest, tree: tree, state: state, connection: connection, kernel: kernel).0.steps.isEmpty)
        #expect(try applyOnce(spareDiskManifest + "\n", tree: tree, state: state, connection: connection, kernel: kernel).0.steps.map(\.action.summary)
            == ["add <hostdev> scsi 1:0:0:0 to win11's config"])
    }

    /// win11 running with the device: refused without --force, nothing
    /// marked; libvirt away: refused, then with --force the mdev goes.
    @Test func refusedWhileAVMRunsOrLibvirtIsAway() throws {
        defer { FileTree.remove(state) }
        let connection = try LibvirtConnection(uri: exampleHostURI)
        let kernel = FakeKernel(tree: tree)
        _ = try applyOnce(vgpuManifest, tree: tree, state: state, connection: connection, kernel: kernel)
        try connection.start("win11")
        let running = try release(vgpuUUID, vgpuManifest, connection: connection, kernel: kernel)
        #expect(running.refused == [ReleaseRefusal(device: "mdev \(vgpuUUID)",
            reason: "running win11 uses it; shut win11 down first, or --force to unplug it from the running VM")])
        #expect(running.steps.isEmpty)
        #expect(try LedgerStore(directory: state).load().released.isEmpty)
        try connection.destroy("win11")

        let away = try release(vgpuUUID, vgpuManifest, connection: nil, kernel: kernel)
        #expect(away.refused.first?.reason.hasPrefix("libvirt unreachable") == true)
        #expect(tree.mdevExists(vgpuUUID))
        let forced = try release(vgpuUUID, vgpuManifest, force: true, connection: nil, kernel: kernel)
        #expect(forced.refused.isEmpty)
        #expect(forced.steps == ["remove mdev \(vgpuUUID) (\(gvt4) on 0000:00:02.0)"])
        #expect(!tree.mdevExists(vgpuUUID))
        // The first pass that reaches libvirt takes the entry out of the config.
        let (next, outcomes) = try applyOnce(vgpuManifest, tree: tree, state: state, connection: connection, kernel: kernel)
        #expect(next.steps.map(\.action.summary) == ["remove <hostdev> mdev \(vgpuUUID) from win11's config"])
        #expect(outcomes == [.done])
    }

    /// A hand-written `<hostdev>` for the device is never touched.
    @Test func aHandWrittenHostdevRefuses() throws {
        defer { FileTree.remove(state) }
        let connection = try LibvirtConnection(uri: exampleHostURI)
        let kernel = FakeKernel(tree: tree)
        _ = try applyOnce(spareDiskManifest, tree: tree, state: state, connection: connection, kernel: kernel)
        try connection.detach(.ours(.scsi(spare)), from: "win11", live: false)
        let hand = "<hostdev mode='subsystem' type='scsi'><source><adapter name='scsi_host1'/><address bus='0' target='0' unit='0'/></source></hostdev>"
        try connection.define(xml: try connection.configXML("win11").replacingOccurrences(of: "</devices>", with: hand + "</devices>"))
        let result = try release("scsi_1_0_0_0", spareDiskManifest, force: true, connection: connection, kernel: kernel)
        #expect(result.refused.first?.reason.hasPrefix("win11 has a hand-written <hostdev> for it, which hostdevd never touches") == true, "\(result.refused)")
        #expect(result.steps.isEmpty)
        #expect(try connection.configXML("win11").contains("scsi_host1"))
    }

    /// A crash after the release was marked and the removal journaled:
    /// the next pass finishes it (the same intent as a PCI move).
    @Test func aCrashMidReleaseIsFinishedByTheNextPass() throws {
        defer { FileTree.remove(state) }
        let connection = try LibvirtConnection(uri: exampleHostURI)
        let kernel = FakeKernel(tree: tree)
        _ = try applyOnce(vgpuManifest, tree: tree, state: state, connection: connection, kernel: kernel)
        let spec = MdevSpec(uuid: vgpuUUID, parent: igpu, type: gvt4)
        let store = LedgerStore(directory: state)
        var ledger = try store.load()
        ledger.released[.mdev(vgpuUUID)] = Manifest.fingerprint(of: vgpuManifest)
        ledger.intent = .removeMdev(spec, destroy: true)
        try store.save(ledger)
        let (plan, outcomes) = try applyOnce(vgpuManifest, tree: tree, state: state, connection: connection, kernel: kernel)
        #expect(plan.notes.contains { $0.hasPrefix("a step was interrupted (remove mdev") })
        #expect(plan.steps.map(\.action.summary) == ["remove <hostdev> mdev \(vgpuUUID) from win11's config", "remove mdev \(vgpuUUID) (\(gvt4) on 0000:00:02.0)"])
        #expect(outcomes == [.done, .done])
        #expect(!tree.mdevExists(vgpuUUID))
        #expect(try store.load().intent == nil)
        #expect(try store.load().mdevs.isEmpty)
    }
}
