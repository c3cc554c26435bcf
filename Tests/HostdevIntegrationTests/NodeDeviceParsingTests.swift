import Foundation
import HostdevCore
import HostdevLibvirt
import Testing

/// A root port's node-device XML, with its class, address fields and extra
/// sub-capabilities as given.
private func pci(class code: String? = nil, address: String = "<domain>0</domain><bus>0</bus><slot>28</slot><function>0</function>", extra: String = "") -> String {
    """
    <device><name>pci_0000_00_1c_0</name><parent>computer</parent><driver><name>pcieport</name></driver>
    <capability type='pci'>\(code.map { "<class>\($0)</class>" } ?? "")\(address)
    <product id='0x8c10'>8 Series/C220 Series Chipset Family PCI Express Root Port #1</product><vendor id='0x8086'>Intel Corporation</vendor>
    \(extra)<iommuGroup number='8'><address domain='0x0000' bus='0x00' slot='0x1c' function='0x0'/></iommuGroup>
    </capability></device>
    """
}

/// Node-device XML read field by field: libvirt's bridge capabilities, the
/// link state as given, and a field that does not parse left empty while
/// the device is still listed.
@Suite struct NodeDeviceParsingTests {
    static func one(_ xml: String) throws -> HostDevice {
        let inventory = try NodeDeviceInventory().inventory(fromXML: [xml], source: "inline")
        return try #require(inventory.devices.first)
    }

    @Test(arguments: [
        // (class element, sub-capability, bridge?)
        (String?.none, "<capability type='pci-bridge'/>", true),  // a root port without <class>: libvirt's capability says it
        (nil, "<capability type='cardbus-bridge'/>", true),
        (nil, "", false),  // nothing says so: not known to be a bridge
        ("0x060400", "", true),
        ("0x060400", "<capability type='pci-bridge'/>", true),
        ("0x060100", "", false),  // ISA/LPC bridge: a type-0 function
        ("0x060000", "", false),  // host bridge
    ])
    func bridges(classCode: String?, capability: String, isBridge: Bool) throws {
        let device = try Self.one(pci(class: classCode, extra: capability))
        #expect(device.pci?.isBridge == isBridge)
        #expect(device.isAssignable == !isBridge)
        #expect(VDSMDeviceList.isAssignable(device) == !isBridge)
    }

    @Test(arguments: [
        ("<link state='up'/>", String?.some("up"), Bool?.some(true)),
        ("<link state='down'/>", "down", false),
        ("<link state='unknown'/>", "unknown", nil),
        ("<link state='dormant'/>", "dormant", false),
        ("", nil, nil),
    ])
    func linkState(link: String, operstate: String?, isUp: Bool?) throws {
        let device = try Self.one(
            "<device><name>net_eth0_52_54_00_12_34_56</name><parent>pci_0000_00_03_0</parent><capability type='net'><interface>eth0</interface><address>52:54:00:12:34:56</address>\(link)<capability type='80203'/></capability></device>"
        )
        #expect(device.net?.operstate == operstate)
        #expect(device.net?.isUp == isUp)
    }

    /// One field that does not parse: the device is listed, that field is
    /// empty, the others are read.
    @Test(arguments: [
        ("pci address", pci(address: "<domain>0</domain><bus>0x1zz</bus><slot>28</slot><function>0</function>")),
        ("pci class", pci(class: "root port")),
        ("iommu group", pci().replacingOccurrences(of: "number='8'", with: "number='eight'")),
        ("numa node", pci(extra: "<numa node='x'/>")),
        ("usb bus", "<device><name>usb_1_4</name><parent>usb_usb1</parent><capability type='usb_device'><bus>one</bus><device>4</device><product id='0xc52b'/><vendor id='0x046d'/></capability></device>"),
        ("scsi lun", "<device><name>scsi_0_0_0_0</name><parent>scsi_target0_0_0</parent><capability type='scsi'><host>0</host><bus>0</bus><target>0</target><lun>-</lun><type>disk</type></capability></device>"),
        ("mdev instances", pci(extra: "<capability type='mdev_types'><type id='nvidia-22'><name>GRID M60-8Q</name><availableInstances>many</availableInstances></type></capability>")),
    ])
    func aFieldThatDoesNotParseIsLeftEmpty(field: String, xml: String) throws {
        let device = try Self.one(xml)
        switch field {
        case "pci address":
            // No address: not found by address nor assignable, but listed with what it is.
            #expect(device.pci == nil && !device.isAssignable)
            #expect(device.vendorID == "0x8086" && device.driver == "pcieport")
        case "pci class":
            #expect(device.pci?.classCode == nil && device.pci?.address == PCIAddress("0000:00:1c.0"))
        case "iommu group":
            #expect(device.pci?.iommuGroup == nil && device.pci?.address == PCIAddress("0000:00:1c.0"))
        case "numa node":
            #expect(device.pci?.numaNode == nil && device.pci?.iommuGroup == 8)
        case "usb bus":
            #expect(device.usb?.bus == nil && device.usb?.device == 4 && device.vendorID == "0x046d")
        case "scsi lun":
            #expect(device.scsi == SCSIInfo(host: 0, bus: 0, target: 0, lun: nil, type: "disk"))
        case "mdev instances":
            #expect(device.pci?.mdevTypes == [MdevType(id: "nvidia-22", name: "GRID M60-8Q", deviceAPI: nil)])
        default:
            Issue.record("no expectation for \(field)")
        }
    }

    @Test func mdevTypesAreRead() throws {
        let device = try Self.one(
            pci(extra: "<capability type='mdev_types'><type id='nvidia-11'><name>GRID M60-0B</name><deviceAPI>vfio-pci</deviceAPI><availableInstances>16</availableInstances></type><type id='i915-GVTg_V5_4'><deviceAPI>vfio-pci</deviceAPI><availableInstances>2</availableInstances></type></capability>"))
        #expect(device.pci?.mdevTypes == [
            MdevType(id: "nvidia-11", name: "GRID M60-0B", availableInstances: 16, deviceAPI: "vfio-pci"),
            MdevType(id: "i915-GVTg_V5_4", availableInstances: 2, deviceAPI: "vfio-pci"),
        ])
    }
}
