import Foundation
import HostdevCore
import HostdevLibvirt
import HostdevTestSupport
import Testing

@Suite struct LibvirtSourceTests {
    @Test func readsTheExampleHostThroughTheTestDriver() throws {
        let inventory = try NodeDeviceInventory().read(LibvirtConnection(uri: exampleHostURI, readOnly: true))
        let gpu = try #require(inventory.device(named: "pci_0000_01_00_0"))
        #expect(gpu.parent == "pci_0000_00_01_0")
        #expect(gpu.vendorID == "0x10de" && gpu.vendor == "NVIDIA Corporation")
        #expect(gpu.productID == "0x1b80" && gpu.product == "GP104 [GeForce GTX 1080]")
        #expect(gpu.pci?.classCode == 0x030000)
        #expect(gpu.pci?.iommuGroup == 1)
        #expect(gpu.sysfsPath == "/sys/devices/pci0000:00/0000:01:00.0")
        #expect(inventory.group(1)?.members.map(\.description) == ["0000:00:01.0", "0000:01:00.0", "0000:01:00.1"])
        #expect(inventory.iommuEnabled)
        let pf = try #require(inventory.device(named: "pci_0000_03_00_0")?.pci?.sriov)
        #expect(pf.totalVFs == 7 && pf.numVFs == 2)
        #expect(inventory.device(named: "pci_0000_03_10_4")?.pci?.physicalFunction == PCIAddress("0000:03:00.0"))
        #expect(inventory.device(named: "usb_usb1")?.usb?.isRootHub == true)
        #expect(inventory.device(named: "usb_1_4")?.usb == USBInfo(bus: 1, device: 4))
        #expect(inventory.device(named: "usb_1_4_1_0")?.usb?.interfaceClass == 3)
        #expect(inventory.device(named: "scsi_0_0_0_0")?.scsi == SCSIInfo(host: 0, bus: 0, target: 0, lun: 0, type: "disk"))
        #expect(inventory.device(named: "scsi_target0_0_0")?.scsi?.target == 0)
        #expect(inventory.device(named: "net_eno1_3c_7c_3f_1e_22_10")?.net == NetInfo(interface: "eno1", macAddress: "3c:7c:3f:1e:22:10", isUp: true))
        #expect(inventory.device(named: "block_sda_WDC_WD40EFRX_68N_WD_WCC7K1234567")?.deviceNode == "/dev/sda")
        // The `computer` system device is the root, not a listed device.
        #expect(inventory.device(named: "computer") == nil)
    }

    @Test func defaultTestDriverHasNoIOMMU() throws {
        let inventory = try NodeDeviceInventory().read(LibvirtConnection(uri: "test:///default", readOnly: true))
        #expect(!inventory.iommuEnabled)
    }

    @Test func badURIIsALibvirtErrorWithAHint() {
        let error = #expect(throws: LibvirtError.self) { try LibvirtConnection(uri: "test:///nonexistent/host.xml") }
        #expect(error?.description.hasPrefix("libvirt: connecting to test:///nonexistent/host.xml failed:") == true)
        #expect(error?.description.contains("\n") == false)
    }

    @Test func malformedNodeDeviceXMLNamesTheSource() {
        let error = #expect(throws: XMLParseError.self) {
            try NodeDeviceInventory().inventory(fromXML: ["<device><name>x</name>"], source: "test:///x.xml")
        }
        #expect(error?.description.hasPrefix("test:///x.xml: malformed XML: line 1") == true)
    }

    @Test func unknownCapabilitiesAreSkipped() throws {
        let inventory = try NodeDeviceInventory().inventory(
            fromXML: [
                "<device><name>computer</name><capability type='system'/></device>",
                "<device><name>drm_card0</name><parent>pci_0000_00_02_0</parent><capability type='drm'><type>primary</type></capability></device>",
                "<device><name>pci_0000_00_02_0</name><capability type='pci'><domain>0</domain><bus>0</bus><slot>2</slot><function>0</function><product id='0x3e92'/><vendor id='0x8086'/></capability></device>",
            ], source: "inline")
        #expect(inventory.devices.map(\.name) == ["pci_0000_00_02_0"])
        #expect(inventory.device(named: "pci_0000_00_02_0")?.pci?.iommuGroup == nil)
    }
}

/// A real libvirtd (built-in drivers only) started by the test.
@Suite(.serialized) struct PrivateLibvirtdTests {
    @Test(.enabled(if: RealComponent.libvirtd.shouldRun, "libvirtd missing: apt-get install libvirt-daemon"))
    func listsNodeDevicesThroughTheDaemon() throws {
        let daemon = try LibvirtDaemon()
        defer { daemon.stop() }
        let inventory = try NodeDeviceInventory().read(LibvirtConnection(uri: daemon.uri))
        // The default test driver describes a few node devices of its own.
        #expect(!inventory.devices.isEmpty)
        let viaCLI = try hostdevctl("devices", "--source", "libvirt", "--connect", daemon.uri, "--format", "json")
        #expect(viaCLI.status == 0)
        let json = try parseDevicesJSON(viaCLI.stdout)
        #expect(Set(json.keys) == Set(inventory.devices.map(\.name)))
    }
}
