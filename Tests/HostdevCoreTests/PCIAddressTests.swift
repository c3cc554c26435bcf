import HostdevCore
import Testing

@Suite struct PCIAddressTests {
    @Test(arguments: [
        ("0000:01:00.0", "0000:01:00.0"),
        ("01:00.1", "0000:01:00.1"),
        ("0000:AF:1F.7", "0000:af:1f.7"),
        ("10000:00:02.0", "10000:00:02.0"),
        ("ffffffff:ff:1f.7", "ffffffff:ff:1f.7"),
        ("0000:00:00.0", "0000:00:00.0"),
    ])
    func parsesAndPrints(input: String, printed: String) {
        #expect(PCIAddress(input)?.description == printed)
    }

    @Test(arguments: ["", "0000:01:00", "0000:01:20.0", "0000:01:00.8", "0000:1:00.0", "zz:00.0", "0000:01:00.0.1", "0000:01:00.00", "0000:0\u{11}:00.0"])
    func rejects(input: String) {
        #expect(PCIAddress(input) == nil)
    }

    @Test(arguments: [
        ("10de", 0x10de), ("0x10de", 0x10de), ("0X10DE", 0x10de), ("ffff", 0xffff), ("0", 0), ("0x0", 0),
        ("", nil), ("0x", nil), ("10000", nil), ("1g", nil), ("-1", nil), (" 10de", nil), ("10de\n", nil),
    ] as [(String, Int?)])
    func hexIDs(text: String, value: Int?) {
        #expect(UInt16(hexText: text).map(Int.init) == value)
    }

    @Test func libvirtName() {
        #expect(PCIAddress("0000:01:00.1")?.nodeDeviceName == "pci_0000_01_00_1")
        #expect(PCIAddress(nodeDeviceName: "pci_0000_01_00_1") == PCIAddress("0000:01:00.1"))
        for other in ["scsi_host12", "pci_0000_01_00", "pci_0000_01_00_1_2", "usb_1_4", "pci_0000_01_20_0"] {
            #expect(PCIAddress(nodeDeviceName: other) == nil, "\(other)")
        }
    }

    @Test func ordersByDomainBusSlotFunction() {
        let sorted = ["0000:02:00.0", "0000:01:00.1", "0000:01:00.0", "0001:00:00.0"].compactMap { PCIAddress($0) }.sorted()
        #expect(sorted.map(\.description) == ["0000:01:00.0", "0000:01:00.1", "0000:02:00.0", "0001:00:00.0"])
    }

    @Test(arguments: [
        ("usb", "1-4", nil, "usb_1_4"),
        ("usb", "1-4:1.0", nil, "usb_1_4_1_0"),
        ("usb", "usb1", nil, "usb_usb1"),
        ("net", "eth0", "52:54:00:12:34:56", "net_eth0_52_54_00_12_34_56"),
        ("block", "sda", "WDC_WD40-68N", "block_sda_WDC_WD40_68N"),
        ("scsi", "0:0:0:0", nil, "scsi_0_0_0_0"),
    ] as [(String, String, String?, String)])
    func deviceNames(subsystem: String, sysname: String, suffix: String?, expected: String) {
        #expect(DeviceNaming.libvirtName(subsystem: subsystem, sysname: sysname, suffix: suffix) == expected)
    }

    @Test func scsiHostAndTargetNames() {
        #expect(DeviceNaming.scsiName(sysname: "host0") == "scsi_host0")
        #expect(DeviceNaming.scsiName(sysname: "target0:0:1") == "scsi_target0_0_1")
    }
}

@Suite struct TrimmingTests {
    @Test(arguments: [("  a b \n", "a b", "  a b"), ("", "", ""), ("   ", "", ""), ("x", "x", "x")])
    func trims(text: String, both: String, end: String) {
        #expect(text.trimming() == both)
        #expect(text.trimmingEnd() == end)
    }

    @Test func trimsOnlyWhatIsAsked() {
        #expect("  a  \n".trimming { $0 == " " } == "a  \n")
        #expect("a\n\n".trimmingEnd { $0 == "\n" } == "a")
    }
}
