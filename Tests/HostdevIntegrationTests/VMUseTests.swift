import Foundation
import HostdevCore
import HostdevLibvirt
import HostdevSysfs
import HostdevTestSupport
import Testing

/// Every element of a domain's XML that uses a host device, in the shapes of
/// libvirt's own domain XML test files (tests/qemuxml2argvdata).
@Suite struct DomainUsesTests {
    static let xml = """
        <domain type='kvm'>
          <name>guest</name>
          <devices>
            <disk type='block' device='disk'><source dev='/dev/sdb'/><target dev='vda' bus='virtio'/></disk>
            <disk type='file' device='disk'><source file='/var/lib/libvirt/images/a.qcow2'/><target dev='vdb'/></disk>
            <interface type='hostdev' managed='yes'>
              <mac address='52:54:00:6d:90:02'/>
              <source><address type='pci' domain='0x0000' bus='0x03' slot='0x10' function='0x0'/></source>
            </interface>
            <interface type='direct'><source dev='enp4s0f0' mode='bridge'/><model type='virtio'/></interface>
            <interface type='network'><source network='default'/></interface>
            <hostdev mode='subsystem' type='scsi' managed='no'>
              <source><adapter name='scsi_host0'/><address bus='0' target='0' unit='0'/></source>
            </hostdev>
            <hostdev mode='subsystem' type='scsi_host'><source protocol='vhost' wwpn='naa.5123456789abcde0'/></hostdev>
            <hostdev mode='subsystem' type='mdev' model='vfio-pci'>
              <source><address uuid='53764d0e-85a0-42b4-af5c-2046b460b1dc'/></source>
            </hostdev>
            <hostdev mode='subsystem' type='pci' managed='yes'>
              <source><address domain='0x0000' bus='0x04' slot='0x00' function='0x1'/></source>
            </hostdev>
            <hostdev mode='subsystem' type='usb'><source><address bus='1' device='4'/></source></hostdev>
            <hostdev mode='subsystem' type='pci' managed='no'>
              <source><address domain='0x0000' bus='0x01' slot='0x00' function='0x0'/></source><alias name='ua-hostdevd-pci-0000-01-00-0'/>
            </hostdev>
          </devices>
        </domain>
        """

    @Test func everyUseIsSeen() throws {
        let uses = try DomainXML.uses(Self.xml, source: "guest")
        #expect(uses.map(\.description) == [
            "<disk type='block'> (/dev/sdb)", "<interface type='hostdev'>", "<interface type='direct'> (enp4s0f0)",
            "<hostdev type='scsi'> (scsi_host0)", "<hostdev type='scsi_host'> (naa.5123456789abcde0)",
            "<hostdev type='mdev'> (53764d0e-85a0-42b4-af5c-2046b460b1dc)", "<hostdev type='pci'>", "<hostdev type='usb'>",
        ])
        #expect(uses[1].target == .pci(PCIAddress("0000:03:10.0")!))
        #expect(uses[6].target == .pci(PCIAddress("0000:04:00.1")!))
    }

    /// Targets resolved on a host tree: a macvtap's NIC, a SCSI adapter's
    /// controller, a block device through its partition.
    @Test func targetsResolveToPCIFunctions() {
        let tree = SysfsTree.workstation()
        let resolver = VMUseResolver(root: tree.sysfs)
        let nvme = resolver.resolve(VMUse(element: "<disk type='block'>", target: .block("/dev/nvme0n1p1")))
        #expect(nvme == [PCIAddress("0000:02:00.0")!], "\(nvme)")
        let nic = resolver.resolve(VMUse(element: "<interface type='direct'>", target: .netdev("eno1")))
        #expect(nic == [PCIAddress("0000:00:1f.6")!], "\(nic)")
        #expect(resolver.resolve(VMUse(element: "<hostdev type='scsi_host'>", target: .vhostSCSI("naa.1"))).isEmpty)
    }
}

/// The same elements through libvirt itself: a domain defined in the test
/// driver and read back the way the observer reads every domain.
@Suite struct LibvirtDomainUsesTests {
    @Test func theObserverSeesEveryUseElement() throws {
        let connection = try LibvirtConnection(uri: "test:///default")
        let xml = DomainUsesTests.xml.replacingOccurrences(of: "<domain type='kvm'>", with: "<domain type='test'>")
            .replacingOccurrences(of: "<name>guest</name>", with: "<name>guest</name><memory>1048576</memory><os><type arch='x86_64'>hvm</type></os>")
        try connection.define(xml: xml)
        defer { try? connection.undefine("guest") }
        let guest = try #require(try connection.domain(named: "guest"))
        #expect(guest.uses.map(\.element).sorted() == [
            "<disk type='block'>", "<hostdev type='mdev'>", "<hostdev type='pci'>", "<hostdev type='scsi'>", "<hostdev type='scsi_host'>",
            "<hostdev type='usb'>", "<interface type='direct'>", "<interface type='hostdev'>",
        ], "\(guest.uses)")
    }
}
