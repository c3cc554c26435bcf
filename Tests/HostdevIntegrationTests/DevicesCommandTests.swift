import Foundation
import HostdevCore
import HostdevTestSupport
import Testing

@Suite struct DevicesCommandTests {
    let tree = SysfsTree.workstation()

    @Test func treeFromSysfs() throws {
        let result = try hostdevctl("devices", "--sysfs-root", tree.root)
        #expect(result.status == 0)
        let lines = result.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first == "computer")
        #expect(lines.contains { $0.hasPrefix("    pci_0000_00_01_0 [pci] 8086:1901") && $0.contains("bridge") })
        #expect(lines.contains { $0.hasPrefix("        pci_0000_01_00_0 [pci] 10de:1b80") && $0.contains("driver=nouveau iommu_group=1") })
        #expect(lines.contains { $0.hasPrefix("            block_nvme0n1_S4EWNX0R123456 [storage]") })
        #expect(result.stderr.isEmpty)
    }

    @Test func jsonFromSysfsHasVDSMShape() throws {
        let result = try hostdevctl("devices", "--sysfs-root", tree.root, "--format", "json")
        #expect(result.status == 0)
        let json = try parseDevicesJSON(result.stdout)
        let gpu = try #require(params(json, "pci_0000_01_00_0"))
        #expect(gpu["capability"] as? String == "pci")
        #expect(gpu["parent"] as? String == "pci_0000_00_01_0")
        #expect(gpu["vendor_id"] as? String == "0x10de")
        #expect(gpu["product_id"] as? String == "0x1b80")
        #expect(gpu["iommu_group"] as? String == "1")
        #expect(gpu["driver"] as? String == "nouveau")
        #expect(gpu["is_assignable"] as? Bool == true)
        #expect(json["pci_0000_01_00_0"]?["vmId"] as? String == "")
        #expect(params(json, "usb_1_4")?["bus"] as? Int == 1)
        #expect(params(json, "net_eno1_3c_7c_3f_1e_22_10")?["interface"] as? String == "eno1")
    }

    @Test func capsFilterAndTable() throws {
        let result = try hostdevctl("devices", "--sysfs-root", tree.root, "--caps", "usb_device,storage", "--format", "table")
        #expect(result.status == 0)
        let lines = result.stdout.split(separator: "\n").map(String.init)
        #expect(lines[0].hasPrefix("NAME "))
        #expect(lines.dropFirst().map { String($0.prefix { $0 != " " }) }.sorted()
            == ["block_nvme0n1_S4EWNX0R123456", "block_sda", "usb_1_4", "usb_usb1"])
        // A disk hangs under its nearest shown ancestor: none here, so the root.
        #expect(lines.contains { $0.hasPrefix("block_sda ") && $0.contains(" computer ") })
        #expect(lines.contains { $0.hasPrefix("usb_1_4 ") && $0.contains(" usb_usb1 ") })
    }

    @Test(arguments: InventoryFormat.allCases)
    func libvirtSourceInEveryFormat(format: InventoryFormat) throws {
        let result = try hostdevctl("devices", "--source", "libvirt", "--connect", exampleHostURI, "--format", format.rawValue)
        #expect(result.status == 0)
        #expect(result.stdout.contains("pci_0000_01_00_0"))
        #expect(result.stdout.contains("GP104 [GeForce GTX 1080]"))
        if format == .json { #expect(params(try parseDevicesJSON(result.stdout), "pci_0000_01_00_1")?["iommu_group"] as? String == "1") }
    }

    @Test func sameTopologyFromBothSources() throws {
        // The shipped libvirt example and the sysfs workstation describe the same GPU group.
        let fromLibvirt = try parseDevicesJSON(try hostdevctl("devices", "--source", "libvirt", "--connect", exampleHostURI, "--format", "json", "--caps", "pci").stdout)
        let fromSysfs = try parseDevicesJSON(try hostdevctl("devices", "--sysfs-root", tree.root, "--format", "json", "--caps", "pci").stdout)
        for name in ["pci_0000_01_00_0", "pci_0000_01_00_1", "pci_0000_00_02_0"] {
            for key in ["parent", "vendor_id", "product_id", "iommu_group", "class"] {
                #expect(params(fromLibvirt, name)?[key] as? String == params(fromSysfs, name)?[key] as? String, "\(name) \(key)")
            }
        }
    }

    @Test func listsARecordedSnapshot() throws {
        let result = try hostdevctl("devices", "--observed", repositoryRoot + "/manifests/examples/workstation-host.json", "--format", "json")
        #expect(result.status == 0)
        let json = try parseDevicesJSON(result.stdout)
        #expect(params(json, "pci_0000_01_00_0")?["driver"] as? String == "nouveau")
        // Recorded before the link state was kept as a word: `isUp` still reads.
        #expect(params(json, "net_eno1_3c_7c_3f_1e_22_10")?["operstate"] as? String == "up")
    }

    @Test func saysPlainlyWhenIOMMUIsOff() throws {
        let bare = SysfsTree()
        bare.addPCI(.init("0000:00:03.0", vendor: "1af4", device: "1041", classCode: 0x020000, driver: "virtio-pci"))
        let result = try hostdevctl("devices", "--sysfs-root", bare.root)
        #expect(result.status == 0)
        #expect(result.stderr.hasPrefix("note: IOMMU is not enabled on this host"))
        #expect(result.stderr.contains("intel_iommu=on"))
        #expect(result.stdout.contains("pci_0000_00_03_0"))
    }

    /// This very machine: no IOMMU, virtio devices. Read-only.
    @Test func worksOnThisMachine() throws {
        let result = try hostdevctl("devices", "--format", "json")
        #expect(result.status == 0)
        let json = try parseDevicesJSON(result.stdout)
        #expect(json.keys.contains { $0.hasPrefix("pci_") })
        if (try? FileManager.default.contentsOfDirectory(atPath: "/sys/kernel/iommu_groups"))?.isEmpty ?? true {
            #expect(result.stderr.contains("IOMMU is not enabled"))
        }
    }

    @Test(arguments: [
        (["devices", "--sysfs-root", "/nonexistent/root"], "error: open /nonexistent/root/sys failed"),
        (["devices", "--source", "libvirt", "--connect", "bogus://nowhere"], "error: libvirt: connecting to bogus://nowhere failed"),
        (["devices", "--caps", "pci,gpu"], "unknown capability 'gpu'"),
        (["devices", "--format", "yaml"], "yaml"),
    ])
    func badInputIsOneClearLine(arguments: [String], message: String) throws {
        let result = try ChildProcess.run(BuiltProducts.hostdevctl, arguments)
        #expect(result.status != 0)
        #expect(result.stdout.isEmpty)
        #expect(result.stderr.contains(message))
        #expect(!result.stderr.contains("Fatal error"))
    }
}
