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

/// The workstation tree (sda on the SATA controller holds /srv/data) with
/// a spare disk sdb at 1:0:0:0 on the same controller, named by id.
func scsiTree() -> SysfsTree {
    let tree = SysfsTree.workstation()
    tree.addSCSIDisk(under: tree.pciPath(PCIAddress("0000:00:17.0")!), host: 1, disk: "sdb", generic: "sg1", vendor: "ATA", model: "ST4000VN008")
    FileTree.makeDirectory(tree.host("/dev/disk/by-id"))
    FileTree.link(tree.host("/dev/disk/by-id/wwn-0x5000c500a1b2c3d4"), to: "../../sdb")
    FileTree.link(tree.host("/dev/disk/by-id/ata-WDC_WD40EFRX"), to: "../../sda")
    return tree
}

@Suite struct SCSIDeviceIntegrationTests {
    let tree = scsiTree()
    let state = FileTree.makeTemporaryDirectory(prefix: "hostdev-state")

    func controller() -> Controller {
        Controller(sources: HostSources(sysfsRoot: tree.sysfs, useUdev: false, libvirtURI: ""), stateDirectory: state, writer: FakeKernel(tree: tree))
    }

    func run(_ yaml: String, connection: LibvirtConnection) throws -> (Plan, [StepOutcome]) {
        let controller = controller()
        let (plan, ledger) = try controller.plan(manifest: try manifest(yaml), observed: try controller.observe(connection: connection))
        return (plan, try controller.act(plan, ledger: ledger, scope: .everything, domains: connection).outcomes)
    }

    @Test func observesStableNamesAndTheDisksUses() {
        #expect(DiskLinks(root: tree.sysfs).read() == ["/dev/disk/by-id/wwn-0x5000c500a1b2c3d4": "sdb", "/dev/disk/by-id/ata-WDC_WD40EFRX": "sda"])
        let scanner = HostUseScanner(root: tree.sysfs)
        #expect(scanner.storageUses(ofSCSI: SCSIAddress(host: 0, bus: 0, target: 0, unit: 0)).map(\.chain) == [["0000:00:17.0", "sda", "sda1"]])
        #expect(scanner.storageUses(ofSCSI: SCSIAddress(host: 1, bus: 0, target: 0, unit: 0)).isEmpty)
    }

    @Test func givesASpareDiskByIdAndRefusesTheMountedOne() throws {
        defer { FileTree.remove(state) }
        let connection = try LibvirtConnection(uri: exampleHostURI)
        let yaml = """
            version: 1
            bindings:
              - vm: win11
                devices:
                  - scsi: "/dev/disk/by-id/wwn-0x5000c500a1b2c3d4"
                  - scsi: "/dev/disk/by-id/ata-WDC_WD40EFRX"
            """
        let (plan, outcomes) = try run(yaml, connection: connection)
        #expect(plan.steps.map(\.action.summary) == ["add <hostdev> scsi 1:0:0:0 to win11's config"])
        #expect(outcomes == [.done])
        let refused = try #require(plan.devices["scsi /dev/disk/by-id/ata-WDC_WD40EFRX"])
        #expect(refused == .blocked(
            "0:0:0:0 is needed by the host: 0000:00:17.0 → sda → sda1, mounted at /srv/data set; a SCSI device the host uses is never passed to a VM"))
        #expect(plan.bindings["win11"]?.isBlocked == true)
        let config = try connection.configXML("win11")
        #expect(try DomainXML.hostdevs(config, source: "win11").filter(\.isOurs).map(\.source) == [.scsi(SCSIAddress(host: 1, bus: 0, target: 0, unit: 0))])
        #expect(config.contains("<adapter name='scsi_host1'/>"))
        if RealComponent.virtXMLValidate.shouldRun { try expectValidDomainXML(config) }
        // The controller never left its driver.
        #expect(tree.driver(of: PCIAddress("0000:00:17.0")!) == "ahci")

        let (release, releaseOutcomes) = try run("version: 1\n", connection: connection)
        #expect(release.steps.map(\.action.summary) == ["remove <hostdev> scsi 1:0:0:0 from win11's config"])
        #expect(releaseOutcomes == [.done])
    }

    /// The host starts using the disk between plan and act: the executor's
    /// last check refuses it.
    @Test func theExecutorRechecksTheHostsUse() throws {
        defer { FileTree.remove(state) }
        let connection = try LibvirtConnection(uri: exampleHostURI)
        let controller = controller()
        let (plan, ledger) = try controller.plan(
            manifest: try manifest("version: 1\nbindings:\n  - vm: win11\n    devices:\n      - scsi: {host: 1, bus: 0, target: 0, unit: 0}\n"),
            observed: try controller.observe(connection: connection))
        tree.mount("sdb1", at: "/backup")
        let outcomes = try controller.act(plan, ledger: ledger, scope: .everything, domains: connection).outcomes
        #expect(outcomes == [.failed("1:0:0:0 is needed by the host now: 0000:00:17.0 → sdb → sdb1, mounted at /backup; not given to a VM")])
        #expect(try DomainXML.hostdevs(try connection.configXML("win11"), source: "win11").filter(\.isOurs).isEmpty)
    }

    @Test func aHandWrittenSCSIHostdevParsesAndMarksItsAdapter() throws {
        let xml = domainXML("t", extra: "<hostdev mode='subsystem' type='scsi'><source><adapter name='scsi_host1'/><address bus='0' target='0' unit='0'/></source></hostdev>")
        #expect(try DomainXML.hostdevs(xml, source: "t").map(\.source).contains(.scsi(SCSIAddress(host: 1, bus: 0, target: 0, unit: 0))))
        #expect(try DomainXML.uses(xml, source: "t").map(\.target).contains(.scsiHost("scsi_host1")))
        let iscsi = domainXML("t", extra: "<hostdev mode='subsystem' type='scsi'><source protocol='iscsi' name='iqn.2014-08.com.example:t/1'><host name='example.org'/></source></hostdev>")
        #expect(try DomainXML.hostdevs(iscsi, source: "t").count == 1)
    }
}
