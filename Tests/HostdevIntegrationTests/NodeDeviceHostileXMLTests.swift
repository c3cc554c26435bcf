import HostdevCore
import HostdevLibvirt
import Testing

/// Regressions found by .ci/fuzz (fuzz-nodedev-xml): node-device XML whose
/// numbers do not fit trapped ("Negative value is not representable") and
/// killed `hostdevctl devices --source libvirt`. Now the value is unknown;
/// a device whose address does not fit is listed without PCI details.
@Suite struct NodeDeviceHostileXMLTests {
    func pci(class code: String = "0x020000", domain: String = "0") -> String {
        """
        <device><name>pci_0000_03_10_4</name><parent>computer</parent>
        <capability type='pci'><class>\(code)</class><domain>\(domain)</domain><bus>3</bus><slot>16</slot><function>4</function>
        <product id='0x1520'>I350</product><vendor id='0x8086'>Intel</vendor></capability></device>
        """
    }

    @Test(arguments: ["0x020.00", "-1", "0x1ffffffff", ""])
    func aClassThatIsNotANumberIsUnknown(code: String) throws {
        let inventory = try NodeDeviceInventory().inventory(fromXML: [pci(class: code)], source: "fuzz")
        #expect(inventory.devices.count == 1)
        #expect(inventory.devices.first?.pci?.classCode == nil)
    }

    @Test(arguments: ["4294967296", "0x100000000", "-1"])
    func aDomainOutOfRangeIsNoAddress(domain: String) throws {
        let inventory = try NodeDeviceInventory().inventory(fromXML: [pci(domain: domain)], source: "fuzz")
        #expect(inventory.devices.map(\.name) == ["pci_0000_03_10_4"])
        #expect(inventory.devices.first?.pci == nil)
        #expect(inventory.devices.first?.productID == "0x1520")
    }

    @Test func aGoodDeviceStillReads() throws {
        let inventory = try NodeDeviceInventory().inventory(fromXML: [pci()], source: "fuzz")
        #expect(inventory.devices.first?.pci?.address == PCIAddress("0000:03:10.4"))
        #expect(inventory.devices.first?.pci?.classCode == 0x020000)
    }
}
