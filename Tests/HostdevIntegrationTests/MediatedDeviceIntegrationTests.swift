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
private let gvt8 = "i915-GVTg_V5_8"

/// The workstation tree with its iGPU a GVT-g parent: one instance of
/// V5_4 left, two of V5_8.
func gvtTree() -> SysfsTree {
    let tree = SysfsTree.workstation()
    tree.addMdevParent(igpu, types: [
        .init(gvt4, name: "GVTg_V5_4", description: "low_gm_size: 128MB\nresolution: 1920x1200", available: 1),
        .init(gvt8, name: "GVTg_V5_8", available: 2),
    ])
    return tree
}

private let vgpuManifest = """
    version: 1
    bindings:
      - vm: win11
        devices:
          - mdev: {parent: "0000:00:02.0", type: "i915-GVTg_V5_4"}
    """

private var vgpuUUID: String { MdevSpec.derivedUUID(vm: "win11", parent: igpu, type: gvt4, ordinal: 0) }

@Suite struct MediatedDeviceControlTests {
    @Test func readsParentsTypesDevicesAndMdevctlDefinitions() throws {
        let tree = gvtTree()
        #expect(tree.addMdev("11111111-2222-3333-4444-555555555555", parent: igpu, type: gvt8, iommuGroup: 300))
        tree.defineWithMdevctl("11111111-2222-3333-4444-555555555555", parent: igpu, type: gvt8)
        let read = MediatedDeviceControl(root: tree.sysfs).read()
        #expect(read.parents[igpu]?.map(\.id) == [gvt4, gvt8])
        #expect(read.type(gvt4, of: igpu) == MdevType(
            id: gvt4, name: "GVTg_V5_4", description: "low_gm_size: 128MB\nresolution: 1920x1200", availableInstances: 1, deviceAPI: "vfio-pci"))
        #expect(read.type(gvt8, of: igpu)?.availableInstances == 1)
        #expect(read.devices == [MdevInstance(uuid: "11111111-2222-3333-4444-555555555555", parent: igpu, type: gvt8, definedByMdevctl: true)])
        // The inventory lists the same types on the parent.
        let inventory = try InventoryReader(root: tree.sysfs).read()
        #expect(inventory.device(at: igpu)?.pci?.mdevTypes == read.parents[igpu])
        #expect(inventory.device(at: PCIAddress("0000:01:00.0")!)?.pci?.mdevTypes == nil)
    }

    /// The fake kernel answers as `mdev_device_create` does: EUSERS with no
    /// instance left, EEXIST for a UUID in use, EINVAL for a non-UUID; the
    /// control confirms by reading the device back.
    @Test func createAndRemoveThroughTheKernelsFiles() throws {
        let tree = gvtTree()
        let control = MediatedDeviceControl(root: tree.sysfs, writer: FakeKernel(tree: tree))
        let spec = MdevSpec(uuid: "4b20d080-1b54-4048-85b3-a6a62d165c01", parent: igpu, type: gvt4)
        try control.create(spec)
        #expect(control.instance(spec.uuid) == MdevInstance(uuid: spec.uuid, parent: igpu, type: gvt4))
        #expect(control.availableInstances(gvt4, of: igpu) == 0)
        #expect(control.iommuGroup(spec.uuid) != nil)
        #expect(throws: SysfsError.self) { try control.create(MdevSpec(uuid: "5b20d080-1b54-4048-85b3-a6a62d165c01", parent: igpu, type: gvt4)) }
        do {
            try control.create(MdevSpec(uuid: spec.uuid, parent: igpu, type: gvt8))
            Issue.record("a UUID in use was created again")
        } catch { #expect(error.errno == EEXIST) }
        try control.remove(spec.uuid)
        #expect(!control.exists(spec.uuid))
        #expect(control.availableInstances(gvt4, of: igpu) == 1)
        try control.remove(spec.uuid)  // gone: nothing to do
    }
}

@Suite struct MediatedDeviceDomainXMLTests {
    @Test func theElementRoundTripsAndIsAUseWhenHandWritten() throws {
        let uuid = "4b20d080-1b54-4048-85b3-a6a62d165c01"
        let xml = try DomainXML.adding(.ours(.mdev(uuid)), to: domainXML("t"), source: "t")
        #expect(xml.contains("<hostdev mode=\"subsystem\" type=\"mdev\" model=\"vfio-pci\"><source><address uuid=\"\(uuid)\"/></source><alias name=\"ua-hostdevd-mdev-\(uuid)\"/></hostdev>"))
        #expect(try DomainXML.hostdevs(xml, source: "t").filter(\.isOurs) == [.ours(.mdev(uuid))])
        // Ours is not a use of another VM's; a hand-written one is.
        #expect(try DomainXML.uses(xml, source: "t").allSatisfy { $0.target != .mdev(uuid) })
        let hand = domainXML("t", extra: "<hostdev mode='subsystem' type='mdev' model='vfio-pci'><source><address uuid='\(uuid.uppercased())'/></source></hostdev>")
        #expect(try DomainXML.uses(hand, source: "t").contains { $0.target == .mdev(uuid) })
        if RealComponent.virtXMLValidate.shouldRun { try expectValidDomainXML(xml) }
        #expect(try DomainXML.removing(.ours(.mdev(uuid)), from: xml, source: "t").contains("mdev") == false)
    }
}

/// The executor in process: the fake kernel creates and removes mediated
/// devices, libvirt's test driver holds win11.
@Suite struct MediatedDeviceExecutorTests {
    let tree = gvtTree()
    let state = FileTree.makeTemporaryDirectory(prefix: "hostdev-state")

    func run(_ yaml: String, connection: LibvirtConnection, kernel: FakeKernel) throws -> (Plan, [StepOutcome]) {
        try applyOnce(yaml, tree: tree, state: state, connection: connection, kernel: kernel)
    }

    @Test func createsAttachesThenRemoves() throws {
        defer { FileTree.remove(state) }
        let connection = try LibvirtConnection(uri: exampleHostURI)
        let kernel = FakeKernel(tree: tree)
        let (plan, outcomes) = try run(vgpuManifest, connection: connection, kernel: kernel)
        #expect(plan.steps.map(\.action.summary) == [
            "create mdev \(vgpuUUID) (\(gvt4) on 0000:00:02.0) for win11", "add <hostdev> mdev \(vgpuUUID) to win11's config",
        ])
        #expect(outcomes == [.done, .done])
        #expect(tree.mdevExists(vgpuUUID))
        #expect(tree.availableInstances(gvt4, of: igpu) == 0)
        // The parent stays on its host driver.
        #expect(tree.driver(of: igpu) == "i915")
        let ledger = try LedgerStore(directory: state).load()
        #expect(ledger.mdevs == [vgpuUUID: Ledger.MdevEntry(parent: igpu, type: gvt4, vm: "win11")])
        #expect(ledger.intent == nil)
        let config = try connection.configXML("win11")
        #expect(try DomainXML.hostdevs(config, source: "win11").filter(\.isOurs).map(\.source) == [.mdev(vgpuUUID)])
        if RealComponent.virtXMLValidate.shouldRun { try expectValidDomainXML(config) }

        // Idempotent.
        #expect(try run(vgpuManifest, connection: connection, kernel: kernel).0.steps.isEmpty)

        // The binding removed: the entry goes, then the device.
        let (release, releaseOutcomes) = try run("version: 1\n", connection: connection, kernel: kernel)
        #expect(release.steps.map(\.action.summary) == [
            "remove <hostdev> mdev \(vgpuUUID) from win11's config", "remove mdev \(vgpuUUID) (\(gvt4) on 0000:00:02.0)",
        ])
        #expect(releaseOutcomes == [.done, .done])
        #expect(!tree.mdevExists(vgpuUUID))
        #expect(tree.availableInstances(gvt4, of: igpu) == 1)
        #expect(try LedgerStore(directory: state).load().mdevs.isEmpty)
    }

    /// A device mdevctl defines, claimed by UUID: used, and left in place
    /// when the claim goes.
    @Test func anMdevctlDeviceIsUsedButNeverRemoved() throws {
        defer { FileTree.remove(state) }
        let uuid = "11111111-2222-3333-4444-555555555555"
        #expect(tree.addMdev(uuid, parent: igpu, type: gvt8, iommuGroup: 300))
        tree.defineWithMdevctl(uuid, parent: igpu, type: gvt8)
        let connection = try LibvirtConnection(uri: exampleHostURI)
        let kernel = FakeKernel(tree: tree)
        let claim = "version: 1\nbindings:\n  - vm: win11\n    devices:\n      - mdev: {parent: \"0000:00:02.0\", type: \(gvt8), uuid: \"\(uuid)\"}\n"
        #expect(try run(claim, connection: connection, kernel: kernel).0.steps.map(\.action.summary) == ["add <hostdev> mdev \(uuid) to win11's config"])
        #expect(try run("version: 1\n", connection: connection, kernel: kernel).0.steps.map(\.action.summary)
            == ["remove <hostdev> mdev \(uuid) from win11's config"])
        #expect(tree.mdevExists(uuid))
        #expect(kernel.writes.allSatisfy { !$0.path.hasSuffix("/remove") })
    }

    /// A failed create (no instance left by the time it runs) leaves no
    /// ledger entry behind.
    @Test func aFailedCreateIsNotRemembered() throws {
        defer { FileTree.remove(state) }
        let connection = try LibvirtConnection(uri: exampleHostURI)
        let kernel = FakeKernel(tree: tree)
        let controller = Controller(
            sources: HostSources(sysfsRoot: tree.sysfs, useUdev: false, libvirtURI: ""), stateDirectory: state, writer: kernel)
        let (plan, ledger) = try controller.plan(manifest: try manifest(vgpuManifest), observed: try controller.observe(connection: connection))
        // Someone else takes the last instance between plan and act.
        #expect(tree.addMdev("99999999-2222-3333-4444-555555555555", parent: igpu, type: gvt4, iommuGroup: 301))
        let outcomes = try controller.act(plan, ledger: ledger, scope: .everything, domains: connection).outcomes
        #expect(outcomes.first == .failed("0000:00:02.0 has no instances of \(gvt4) left now; not created"))
        #expect(try LedgerStore(directory: state).load().mdevs.isEmpty)
        #expect(!tree.mdevExists(vgpuUUID))
    }

    /// A crash right after the ledger recorded the create (before or after
    /// the kernel made the device): the next pass finishes or undoes it.
    @Test(arguments: [
        // (device made before the crash, manifest still claims it) → next pass's steps
        (true, true, ["add <hostdev> mdev \(MdevSpec.derivedUUID(vm: "win11", parent: PCIAddress("0000:00:02.0")!, type: "i915-GVTg_V5_4", ordinal: 0)) to win11's config"]),
        (false, true, ["create mdev \(MdevSpec.derivedUUID(vm: "win11", parent: PCIAddress("0000:00:02.0")!, type: "i915-GVTg_V5_4", ordinal: 0)) (i915-GVTg_V5_4 on 0000:00:02.0) for win11", "add <hostdev> mdev \(MdevSpec.derivedUUID(vm: "win11", parent: PCIAddress("0000:00:02.0")!, type: "i915-GVTg_V5_4", ordinal: 0)) to win11's config"]),
        (true, false, ["remove mdev \(MdevSpec.derivedUUID(vm: "win11", parent: PCIAddress("0000:00:02.0")!, type: "i915-GVTg_V5_4", ordinal: 0)) (i915-GVTg_V5_4 on 0000:00:02.0)"]),
        (false, false, ["forget mdev \(MdevSpec.derivedUUID(vm: "win11", parent: PCIAddress("0000:00:02.0")!, type: "i915-GVTg_V5_4", ordinal: 0)) (left on the host)"]),
    ])
    func aCrashMidCreateIsFinishedOrUndone(made: Bool, claimed: Bool, expected: [String]) throws {
        defer { FileTree.remove(state) }
        let spec = MdevSpec(uuid: vgpuUUID, parent: igpu, type: gvt4)
        try LedgerStore(directory: state).save(Ledger(intent: .createMdev(spec, vm: "win11"), mdevs: [vgpuUUID: .init(parent: igpu, type: gvt4, vm: "win11")]))
        if made { #expect(tree.addMdev(vgpuUUID, parent: igpu, type: gvt4, iommuGroup: 300)) }
        let connection = try LibvirtConnection(uri: exampleHostURI)
        let (plan, outcomes) = try run(claimed ? vgpuManifest : "version: 1\n", connection: connection, kernel: FakeKernel(tree: tree))
        #expect(plan.steps.map(\.action.summary) == expected)
        #expect(plan.notes.contains { $0.hasPrefix("a step was interrupted (create mdev") })
        #expect(outcomes.allSatisfy { $0 == .done })
        let ledger = try LedgerStore(directory: state).load()
        #expect(ledger.intent == nil)
        #expect(tree.mdevExists(vgpuUUID) == claimed)
        #expect(ledger.mdevs.keys.sorted() == (claimed ? [vgpuUUID] : []))
    }
}

/// `devices --source libvirt`: a parent's `mdev_types` capability, as
/// libvirt's node-device XML gives it (inline and through the test driver).
@Suite struct MediatedDeviceLibvirtInventoryTests {
    static let parentXML = """
        <device><name>pci_0000_00_02_0</name><parent>computer</parent><capability type='pci'><class>0x030000</class>\
        <domain>0</domain><bus>0</bus><slot>2</slot><function>0</function><product id='0x3e92'/><vendor id='0x8086'/>\
        <capability type='mdev_types'><type id='i915-GVTg_V5_4'><name>GVTg_V5_4</name><deviceAPI>vfio-pci</deviceAPI>\
        <availableInstances>1</availableInstances></type><type id='i915-GVTg_V5_8'><deviceAPI>vfio-pci</deviceAPI>\
        <availableInstances>2</availableInstances></type></capability></capability></device>
        """
    static let expected = [
        MdevType(id: "i915-GVTg_V5_4", name: "GVTg_V5_4", availableInstances: 1, deviceAPI: "vfio-pci"),
        MdevType(id: "i915-GVTg_V5_8", availableInstances: 2, deviceAPI: "vfio-pci"),
    ]

    @Test func readsMdevTypesFromNodeDeviceXML() throws {
        let inventory = try NodeDeviceInventory().inventory(fromXML: [Self.parentXML], source: "inline")
        #expect(inventory.device(at: igpu)?.pci?.mdevTypes == Self.expected)
    }

    @Test func readsMdevTypesThroughTheTestDriver() throws {
        let dir = FileTree.makeTemporaryDirectory(prefix: "hostdev-mdev-host")
        defer { FileTree.remove(dir) }
        FileTree.write(dir + "/host.xml", "<node><cpu><mode>host-model</mode></cpu>\(Self.parentXML)</node>\n")
        let inventory = try NodeDeviceInventory().read(try LibvirtConnection(uri: "test://" + dir + "/host.xml"))
        #expect(inventory.device(at: igpu)?.pci?.mdevTypes == Self.expected)
    }
}

/// libvirt's hook for a VM runs that VM's creates and removes (sysfs under
/// the lock, no libvirt call), never another VM's nor a domain edit.
@Suite struct MediatedDeviceHookScopeTests {
    @Test func theHookRunsItsOwnVMsCreatesAndRemoves() {
        let mine = MdevSpec(uuid: "4b20d080-1b54-4048-85b3-a6a62d165c01", parent: igpu, type: gvt4)
        let other = MdevSpec(uuid: "5b20d080-1b54-4048-85b3-a6a62d165c01", parent: igpu, type: gvt4)
        let ledger = Ledger(mdevs: [mine.uuid: .init(parent: igpu, type: gvt4, vm: "win11"), other.uuid: .init(parent: igpu, type: gvt4, vm: "ci")])
        let plan = Plan(steps: [
            Step(.removeMdev(mine, destroy: true), reason: ""), Step(.removeMdev(other, destroy: true), reason: ""),
            Step(.createMdev(mine, vm: "win11"), reason: ""), Step(.createMdev(other, vm: "ci"), reason: ""),
            Step(.attachConfig(vm: "win11", .ours(.mdev(mine.uuid))), reason: ""),
        ])
        let scoped = Controller.steps(of: plan, in: .hook(vm: "win11"), ledger: ledger).steps.map(\.action)
        #expect(scoped == [.removeMdev(mine, destroy: true), .createMdev(mine, vm: "win11")])
    }
}
