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

private let pf = PCIAddress("0000:03:00.0")!
private let vf0 = PCIAddress("0000:04:00.0")!
private let vf1 = PCIAddress("0000:04:00.1")!
private let guestMAC = MACAddress("52:54:00:12:34:56")!

private let vfManifest = """
    version: 1
    bindings:
      - vm: win11
        devices:
          - vf: {pf: "0000:03:00.0", index: 1, mac: "52:54:00:12:34:56", vlan: 100, spoofchk: false}
    """

/// The workstation with an I350 whose PF carries the host's traffic, two VFs on igbvf.
func sriovTree() -> SysfsTree {
    let tree = SysfsTree.workstation()
    tree.addSRIOVNIC()
    return tree
}

@Suite struct VirtualFunctionDomainXMLTests {
    static let entry = HostdevEntry.oursInterface(vf1, .init(mac: guestMAC, vlan: 100))

    @Test func theInterfaceIsWrittenReadBackAndNotAForeignUse() throws {
        let xml = try DomainXML.adding(Self.entry, to: domainXML("t"), source: "t")
        #expect(xml.contains(
            "<interface type=\"hostdev\" managed=\"no\"><source><address type=\"pci\" domain=\"0x0000\" bus=\"0x04\" slot=\"0x00\" function=\"0x1\"/></source>"
                + "<mac address=\"52:54:00:12:34:56\"/><vlan><tag id=\"100\"/></vlan><alias name=\"ua-hostdevd-net-pci-0000-04-00-1\"/></interface>"))
        #expect(try DomainXML.hostdevs(xml, source: "t").filter(\.isOurs) == [Self.entry])
        // Ours is not a use (another VM's view of it); a hand-written one is, and is not read as ours.
        #expect(try DomainXML.uses(xml, source: "t").allSatisfy { $0.target != .pci(vf1) })
        let hand = domainXML("t", extra: "<interface type='hostdev' managed='yes'><source><address type='pci' domain='0' bus='4' slot='0' function='1'/></source></interface>")
        #expect(try DomainXML.uses(hand, source: "t").contains { $0.target == .pci(vf1) && $0.element == "<interface type='hostdev'>" })
        #expect(try DomainXML.hostdevs(hand, source: "t").allSatisfy { $0.interface == nil })
        // Removing ours leaves a hand-written interface alone.
        let both = try DomainXML.adding(Self.entry, to: hand, source: "t")
        let removed = try DomainXML.removing(Self.entry, from: both, source: "t")
        #expect(!removed.contains("ua-hostdevd") && removed.contains("<interface type=\"hostdev\" managed=\"yes\">"))
        if RealComponent.virtXMLValidate.shouldRun { try expectValidDomainXML(xml) }
    }

    @Test func noVLANAndNoMACWriteNoElements() {
        let element = DomainXML.element(.oursInterface(vf0, .init(mac: nil, vlan: 0)))
        #expect(element == "<interface type='hostdev' managed='no'><source><address type='pci' domain='0x0000' bus='0x04' slot='0x00' function='0x0'/></source>"
            + "<alias name='ua-hostdevd-net-pci-0000-04-00-0'/></interface>")
    }
}

/// The controller in process: the fake kernel binds, the fake PF driver
/// takes the VF settings, libvirt's test driver holds win11.
@Suite struct VirtualFunctionExecutorTests {
    let tree = sriovTree()
    let state = FileTree.makeTemporaryDirectory(prefix: "hostdev-state")

    func run(_ yaml: String, connection: LibvirtConnection, vfs: FakeVFConfigurator) throws -> (Plan, [StepOutcome]) {
        let controller = Controller(
            sources: HostSources(sysfsRoot: tree.sysfs, useUdev: false, libvirtURI: "", vfConfigurator: vfs), stateDirectory: state,
            writer: FakeKernel(tree: tree))
        let (plan, ledger) = try controller.plan(manifest: try manifest(yaml), observed: try controller.observe(connection: connection))
        return (plan, try controller.act(plan, ledger: ledger, scope: .everything, domains: connection).outcomes)
    }

    @Test func givesTheVFSetsItUpAndGivesItAllBack() throws {
        defer { FileTree.remove(state) }
        let connection = try LibvirtConnection(uri: exampleHostURI)
        let vfs = FakeVFConfigurator(tree: tree)
        // A hand-written interface for VF 0 in the same VM: never touched.
        var config = try connection.configXML("win11")
        config = config.replacingOccurrences(
            of: "</devices>",
            with: "<interface type='hostdev' managed='yes'><source><address type='pci' domain='0x0000' bus='0x04' slot='0x00' function='0x0'/></source></interface></devices>")
        try connection.define(xml: config)

        let (plan, outcomes) = try run(vfManifest, connection: connection, vfs: vfs)
        #expect(plan.steps.map(\.action.summary) == [
            "bind 0000:04:00.1 to vfio-pci",
            "set VF 1 of 0000:03:00.0 (0000:04:00.1) mac 52:54:00:12:34:56 vlan 100 spoofchk off",
            "add <interface type='hostdev'> pci 0000:04:00.1 to win11's config",
        ])
        #expect(outcomes == [.done, .done, .done])
        #expect(tree.driver(of: vf1) == "vfio-pci")
        // The PF stays with the host, its settings but VF 1's untouched.
        #expect(tree.driver(of: pf) == "igb")
        #expect(vfs.current(pf, 1) == VFSettings(mac: guestMAC, vlan: 100, trust: false, spoofchk: false))
        #expect(vfs.current(pf, 0) == FakeVFConfigurator.defaults)
        let ledger = try LedgerStore(directory: state).load()
        #expect(ledger.vfs == [vf1: .init(pf: pf, index: 1, previous: VFSettings(mac: .zero, vlan: 0, spoofchk: true), vm: "win11")])
        #expect(ledger.intent == nil)
        let xml = try connection.configXML("win11")
        #expect(try DomainXML.hostdevs(xml, source: "win11").filter(\.isOurs) == [.oursInterface(vf1, .init(mac: guestMAC, vlan: 100))])
        #expect(try DomainXML.uses(xml, source: "win11").map(\.target) .contains(.pci(vf0)))
        #expect(try DomainXML.uses(xml, source: "win11").allSatisfy { $0.target != .pci(vf1) })
        if RealComponent.virtXMLValidate.shouldRun { try expectValidDomainXML(xml) }

        // Idempotent: the VF reads back as set, the element as ours.
        #expect(try run(vfManifest, connection: connection, vfs: vfs).0.steps.isEmpty)

        // The binding removed: the element goes, the VF back to igbvf, its settings back.
        let (release, releaseOutcomes) = try run("version: 1\n", connection: connection, vfs: vfs)
        #expect(release.steps.map(\.action.summary) == [
            "remove <interface type='hostdev'> pci 0000:04:00.1 from win11's config",
            "release 0000:04:00.1 to igbvf",
            "give VF 1 of 0000:03:00.0 (0000:04:00.1) back its mac 00:00:00:00:00:00 vlan 0 spoofchk on",
        ])
        #expect(releaseOutcomes == [.done, .done, .done])
        #expect(tree.driver(of: vf1) == "igbvf")
        #expect(vfs.current(pf, 1) == FakeVFConfigurator.defaults)
        #expect(try LedgerStore(directory: state).load().vfs.isEmpty)
        let after = try connection.configXML("win11")
        #expect(!after.contains("ua-hostdevd-net"))
        #expect(after.contains("function='0x0'") || after.contains("function=\"0x0\""))
        #expect(try DomainXML.uses(after, source: "win11").contains { $0.target == .pci(vf0) })
    }

    /// A PF driver that refuses the settings: the VF is bound but not
    /// given to the VM (the same device's later steps are skipped), and the
    /// ledger still knows what to put back.
    @Test func aRefusedSettingKeepsTheVFOutOfTheVM() throws {
        defer { FileTree.remove(state) }
        let connection = try LibvirtConnection(uri: exampleHostURI)
        let vfs = FakeVFConfigurator(tree: tree)
        vfs.failChanges(on: pf)
        let (plan, outcomes) = try run(vfManifest, connection: connection, vfs: vfs)
        #expect(plan.steps.map(\.action.kind) == ["bind", "configureVF", "attachConfig"])
        #expect(outcomes[0] == .done)
        #expect(outcomes[1].isFailure)
        #expect("\(outcomes[1])".contains("its driver does not support this VF setting"))
        #expect(outcomes[2] == .skipped("an earlier step for pci 0000:04:00.1 failed"))
        #expect(!(try connection.configXML("win11")).contains("ua-hostdevd-net"))
        #expect(try LedgerStore(directory: state).load().vfs[vf1]?.previous == VFSettings(mac: .zero, vlan: 0, spoofchk: true))
    }

    /// Without a configurator (a sysfs root other than /), the VF is
    /// given, its settings are not, and the plan says why.
    @Test func withoutRtnetlinkTheSettingsAreNotObserved() throws {
        defer { FileTree.remove(state) }
        let controller = Controller(sources: HostSources(sysfsRoot: tree.sysfs, useUdev: false, libvirtURI: ""), stateDirectory: state)
        #expect(controller.sources.vfConfigurator == nil)
        let connection = try LibvirtConnection(uri: exampleHostURI)
        let (plan, _) = try controller.plan(manifest: try manifest(vfManifest), observed: try controller.observe(connection: connection))
        #expect(plan.steps.map(\.action.kind) == ["bind", "attachConfig"])
        #expect(plan.devices["vf 0000:03:00.0 index 1"]?.reason?.contains("were not read (rtnetlink)") == true)
    }

    @Test func theHookRunsItsOwnVMsVFSettings() {
        let target = VFTarget(pf: pf, index: 1, vf: vf1)
        let other = VFTarget(pf: pf, index: 0, vf: vf0)
        let ledger = Ledger(vfs: [vf1: .init(pf: pf, index: 1, previous: VFSettings(vlan: 0), vm: "win11"), vf0: .init(pf: pf, index: 0, previous: VFSettings(vlan: 0), vm: "ci")])
        let plan = Plan(steps: [
            Step(.restoreVF(target, VFSettings(vlan: 0), apply: true), reason: ""), Step(.restoreVF(other, VFSettings(vlan: 0), apply: true), reason: ""),
            Step(.configureVF(target, VFSettings(vlan: 5), previous: VFSettings(vlan: 0), vm: "win11"), reason: ""),
            Step(.configureVF(other, VFSettings(vlan: 5), previous: VFSettings(vlan: 0), vm: "ci"), reason: ""),
        ])
        let scoped = Controller.steps(of: plan, in: .hook(vm: "win11"), ledger: ledger).steps.map(\.action.kind)
        #expect(scoped == ["restoreVF", "configureVF"])
    }
}

/// What `devices` and `plan` print about VFs matches their schemas.
@Suite struct VirtualFunctionOutputTests {
    @Test func devicesShowsEachVFsSettingsInProseAndJSON() throws {
        let tree = sriovTree()
        var observed = ObservedHost(inventory: try InventoryReader(root: tree.sysfs).read())
        observed.vfSettings = [vf1: VFSettings(mac: guestMAC, vlan: 100, trust: true, spoofchk: false), vf0: FakeVFConfigurator.defaults]
        let dir = FileTree.makeTemporaryDirectory(prefix: "hostdev-vf-snapshot")
        defer { FileTree.remove(dir) }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        FileTree.write(dir + "/host.json", String(decoding: try encoder.encode(observed), as: UTF8.self))

        let json = try hostdevctl("devices", "--observed", dir + "/host.json", "--state-dir", "/nonexistent/state", "--format", "json")
        #expect(json.status == 0, "\(json.stderr)")
        try expectValid("devices", json.stdout)
        let vf = try #require(params(try parseDevicesJSON(json.stdout), vf1.nodeDeviceName)?["vf"] as? [String: Any])
        #expect(vf["mac"] as? String == "52:54:00:12:34:56" && vf["vlan"] as? Int == 100 && vf["trust"] as? Bool == true && vf["spoofchk"] as? Bool == false)
        #expect(params(try parseDevicesJSON(json.stdout), pf.nodeDeviceName)?["vf"] == nil)

        let prose = try hostdevctl("devices", "--observed", dir + "/host.json", "--state-dir", "/nonexistent/state")
        #expect(prose.stdout.split(separator: "\n").contains { $0.contains(vf1.nodeDeviceName) && $0.contains("vf_mac=52:54:00:12:34:56 vf_vlan=100 vf_trust=on vf_spoofchk=off") },
            "\(prose.stdout)")
        // A bad value fails the schema: the check is not vacuous.
        let broken = json.stdout.replacingOccurrences(of: "\"vlan\": 100", with: "\"vlan\": 5000")
        #expect(broken != json.stdout)
        #expect(try !schemaCheck("devices", broken).valid)
    }

    @Test func vfStepsAndConditionsMatchThePlanSchema() throws {
        let target = VFTarget(pf: pf, index: 1, vf: vf1)
        let spec = VFSpec(pf: pf, index: 1)
        let plan = Plan(
            steps: [
                Step(.configureVF(target, VFSettings(mac: guestMAC, vlan: 100), previous: VFSettings(mac: .zero, vlan: 0), vm: "win11"), reason: "claimed by win11"),
                Step(.attachConfig(vm: "win11", .oursInterface(vf1, .init(mac: guestMAC, vlan: 100))), reason: "r"),
                Step(.restoreVF(target, VFSettings(vlan: 0), apply: true), reason: "released"),
            ],
            bindings: ["win11": .pending("3 step(s) to apply")],
            devices: [spec.description: .ready, "pci 0000:04:00.1": .pending("to be bound")], notes: [])
        let text = PlanDocument(plan: plan, inventory: nil).json.rendered()
        try expectValid("plan", text)
        #expect(text.contains("\"action\": \"configureVF\"") && text.contains("\"vf 0000:03:00.0 index 1\""), "\(text)")
        #expect(text.contains("\"summary\": \"add <interface type='hostdev'> pci 0000:04:00.1 to win11's config\""))
    }

    /// `hostdevctl plan --format json` on a snapshot of the SR-IOV host: the
    /// configureVF step says what it sets as fields.
    @Test func planJSONOfAVFClaimCarriesItsSettings() throws {
        let tree = sriovTree()
        var observed = ObservedHost(inventory: try InventoryReader(root: tree.sysfs).read(), domains: [DomainState(name: "win11", state: .shutoff)])
        observed.vfSettings = [vf1: FakeVFConfigurator.defaults]
        let dir = FileTree.makeTemporaryDirectory(prefix: "hostdev-vf-plan")
        defer { FileTree.remove(dir) }
        FileTree.write(dir + "/host.json", String(decoding: try JSONEncoder().encode(observed), as: UTF8.self))
        FileTree.write(dir + "/bindings.yaml", vfManifest)
        let result = try hostdevctl("plan", "--observed", dir + "/host.json", "--manifest", dir + "/bindings.yaml", "--state-dir", dir + "/state", "--format", "json")
        #expect(result.status == 2, "\(result.stdout)\(result.stderr)")
        try expectValid("plan", result.stdout)
        let steps = try #require(try jsonObject(result.stdout)["steps"] as? [[String: Any]])
        let configure = try #require(steps.first { $0["action"] as? String == "configureVF" }, "\(steps)")
        let vf = try #require(configure["vf"] as? [String: Any])
        #expect(vf["pf"] as? String == "0000:03:00.0" && vf["index"] as? Int == 1 && vf["address"] as? String == "0000:04:00.1")
        #expect(vf["mac"] as? String == "52:54:00:12:34:56" && vf["vlan"] as? Int == 100 && vf["spoofchk"] as? Bool == false && vf["trust"] == nil)
    }

    /// VF, mdev and SCSI steps carry their parameters as fields, not only in
    /// the summary; the schema requires them.
    @Test func stepsCarryTheirParametersAsFields() throws {
        let target = VFTarget(pf: pf, index: 1, vf: vf1)
        let mdev = MdevSpec(uuid: "4b20d080-1b54-4048-85b3-a6a62d165c01", parent: PCIAddress("0000:00:02.0")!, type: "i915-GVTg_V5_4")
        let disk = SCSIAddress(host: 1, bus: 0, target: 2, unit: 3)
        let plan = Plan(
            steps: [
                Step(.configureVF(target, VFSettings(mac: guestMAC, vlan: 100, trust: false, spoofchk: true), previous: VFSettings(), vm: "win11"), reason: "r"),
                Step(.restoreVF(target, VFSettings(mac: .zero, vlan: 0), apply: true), reason: "r"),
                Step(.restoreVF(target, VFSettings(vlan: 0), apply: false), reason: "r"),
                Step(.createMdev(mdev, vm: "win11"), reason: "r"),
                Step(.removeMdev(mdev, destroy: false), reason: "r"),
                Step(.attachConfig(vm: "win11", .ours(.scsi(disk))), reason: "r"),
                Step(.attachConfig(vm: "win11", .ours(.pci(vf1))), reason: "r"),
            ],
            bindings: ["win11": .pending("7 step(s) to apply")], devices: [:], notes: [])
        let text = PlanDocument(plan: plan, inventory: nil).json.rendered()
        try expectValid("plan", text)
        let steps = try #require(try jsonObject(text)["steps"] as? [[String: Any]])
        let configured = try #require(steps[0]["vf"] as? [String: Any])
        #expect(configured["pf"] as? String == "0000:03:00.0" && configured["index"] as? Int == 1 && configured["address"] as? String == "0000:04:00.1")
        #expect(configured["mac"] as? String == "52:54:00:12:34:56" && configured["vlan"] as? Int == 100)
        #expect(configured["trust"] as? Bool == false && configured["spoofchk"] as? Bool == true && configured["restore"] == nil)
        let restored = try #require(steps[1]["vf"] as? [String: Any])
        #expect(restored["mac"] as? String == "00:00:00:00:00:00" && restored["vlan"] as? Int == 0 && restored["restore"] as? Bool == true)
        #expect(restored["trust"] == nil && restored["spoofchk"] == nil)
        #expect((steps[2]["vf"] as? [String: Any])?["restore"] as? Bool == false)
        let created = try #require(steps[3]["mdev"] as? [String: Any])
        #expect(created["uuid"] as? String == mdev.uuid && created["parent"] as? String == "0000:00:02.0" && created["type"] as? String == "i915-GVTg_V5_4")
        #expect(created["destroy"] == nil)
        #expect((steps[4]["mdev"] as? [String: Any])?["destroy"] as? Bool == false)
        let scsi = try #require(steps[5]["scsi"] as? [String: Any])
        #expect(scsi["host"] as? Int == 1 && scsi["bus"] as? Int == 0 && scsi["target"] as? Int == 2 && scsi["unit"] as? Int == 3)
        #expect(steps[6]["scsi"] == nil && steps[6]["vf"] == nil)
        // The schema holds them to it: a step without its parameters fails.
        for (field, action) in [("vf", "configureVF"), ("mdev", "createMdev"), ("scsi", "attachConfig")] {
            var broken = try jsonObject(text)
            var brokenSteps = steps
            let index = try #require(brokenSteps.firstIndex { $0[field] != nil && $0["action"] as? String == action })
            brokenSteps[index][field] = nil
            broken["steps"] = brokenSteps
            let data = try JSONSerialization.data(withJSONObject: broken)
            #expect(try !schemaCheck("plan", String(decoding: data, as: UTF8.self)).valid, "\(field)")
        }
    }
}

/// The daemon's pass: after acting it reads the VF's settings back, so
/// its status says Ready, not "to be set".
@Suite struct VirtualFunctionDaemonPassTests {
    @Test func aPassConfiguresTheVFAndReportsItReady() throws {
        let tree = sriovTree()
        let state = FileTree.makeTemporaryDirectory(prefix: "hostdev-vf-pass")
        defer { FileTree.remove(state) }
        FileTree.write(state + "/bindings.yaml", vfManifest)
        let vfs = FakeVFConfigurator(tree: tree)
        let reconciler = testReconciler(tree: tree, state: state)
        reconciler.writer = FakeKernel(tree: tree)
        reconciler.vfConfigurator = vfs
        _ = reconciler.reconcile([.all])
        #expect(vfs.log == ["0000:03:00.0 vf 1 mac 52:54:00:12:34:56 vlan 100 spoofchk off"])
        #expect(tree.driver(of: vf1) == "vfio-pci")
        let status = try jsonObject(try #require(FileTree.read(state + "/status.json")))
        let devices = try #require(status["devices"] as? [String: [String: Any]])
        #expect(devices["vf 0000:03:00.0 index 1"]?["condition"] as? String == "Ready", "\(devices)")
        #expect(devices["pci 0000:04:00.1"]?["condition"] as? String == "Ready", "\(devices)")
        try expectValid("status", try #require(FileTree.read(state + "/status.json")))
    }
}
