import Foundation
import HostdevCore
import HostdevTestSupport
import Testing

/// `hostdevctl check --manifest` on fake sysfs trees: every kind of claim
/// gets its findings, in text and in JSON that matches check.schema.json.
@Suite struct CheckClaimsCommandTests {
    /// `check --manifest` with `yaml` on `tree`, text and JSON; the JSON is
    /// schema-checked and its findings of `check` are returned.
    func check(_ tree: SysfsTree, _ yaml: String, kind: String) throws -> (text: String, status: Int32, findings: [[String: Any]]) {
        let dir = FileTree.makeTemporaryDirectory()
        defer { FileTree.remove(dir) }
        FileTree.write(dir + "/m.yaml", yaml)
        let text = try hostdevctl("check", "--sysfs-root", tree.root, "--connect", "test:///default", "--manifest", dir + "/m.yaml")
        let json = try hostdevctl("check", "--sysfs-root", tree.root, "--connect", "test:///default", "--manifest", dir + "/m.yaml", "--format", "json")
        #expect(json.status == text.status)
        try expectValid("check", json.stdout)
        let findings = try #require(try jsonObject(json.stdout)["findings"] as? [[String: Any]])
        return (text.stdout + text.stderr, text.status, findings.filter { $0["check"] as? String == kind })
    }

    @Test func virtualFunctions() throws {
        let tree = sriovTree()
        let ready = try check(tree, """
            version: 1
            bindings:
              - vm: win11
                devices:
                  - vf: {pf: "0000:03:00.0", index: 1, mac: "52:54:00:12:34:56", vlan: 100}
            """, kind: "vf")
        #expect(ready.text.contains("ok    VF 1 of 0000:03:00.0 (win11) is 0000:04:00.1 (igbvf); 2 of 7 VFs enabled"), "\(ready.text)")
        #expect(ready.text.contains("ok    mac 52:54:00:12:34:56 vlan 100 of VF 1 (win11) are set through 0000:03:00.0's interface enp3s0f0"))
        #expect(ready.text.contains("ok    IOMMU group 21 of 0000:04:00.1 (win11): 1 device(s), hostdevd moves them together"))
        #expect(ready.findings.map { $0["device"] as? String } == ["vf 0000:03:00.0 index 1", "vf 0000:03:00.0 index 1"])

        let disabled = try check(tree, """
            version: 1
            bindings:
              - vm: win11
                devices:
                  - vf: {pf: "0000:03:00.0", index: 3}
            """, kind: "vf")
        #expect(disabled.text.contains("FAIL  VF 3 of 0000:03:00.0 (win11) is not enabled: sriov_numvfs is 2 of 7"), "\(disabled.text)")
        #expect(disabled.text.contains("echo 0 > /sys/bus/pci/devices/0000:03:00.0/sriov_numvfs && echo 4 > /sys/bus/pci/devices/0000:03:00.0/sriov_numvfs"))
        #expect(disabled.findings.first?["verdict"] as? String == "fail")
        #expect(disabled.status == 1)
    }

    /// A VF whose interface is up with an address is the host's: a failure naming the chain.
    @Test func aVFTheHostUsesFails() throws {
        let tree = sriovTree()
        tree.addNet("enp4s0f1", under: tree.pciPath(PCIAddress("0000:04:00.1")!), mac: "a0:36:9f:00:00:11", up: true, ifindex: 7)
        tree.addRoute("enp4s0f1")
        let result = try check(tree, "version: 1\nbindings:\n  - vm: win11\n    devices:\n      - vf: {pf: \"0000:03:00.0\", index: 1}\n", kind: "vf")
        let failure = try #require(result.findings.first { $0["verdict"] as? String == "fail" })
        #expect((failure["what"] as? String)?.hasPrefix("0000:04:00.1, VF 1 of 0000:03:00.0 (win11), is needed by the host: 0000:04:00.1 → enp4s0f1") == true, "\(failure)")
        #expect(failure["remedy"] as? String != nil)
        #expect(result.status == 1)
    }

    @Test func mediatedDevices() throws {
        let tree = gvtTree()
        let offered = try check(tree, "version: 1\nbindings:\n  - vm: win11\n    devices:\n      - mdev: {parent: \"0000:00:02.0\", type: \"i915-GVTg_V5_4\"}\n", kind: "mdev")
        let uuid = MdevSpec.derivedUUID(vm: "win11", parent: PCIAddress("0000:00:02.0")!, type: "i915-GVTg_V5_4", ordinal: 0)
        #expect(offered.text.contains("ok    0000:00:02.0 offers i915-GVTg_V5_4 for \(uuid) (win11), 1 instance(s) left; hostdevd creates it"), "\(offered.text)")
        #expect(offered.findings.first?["device"] as? String == "mdev \(uuid)")
        let misspelt = try check(tree, "version: 1\nbindings:\n  - vm: win11\n    devices:\n      - mdev: {parent: \"0000:00:02.0\", type: \"i915-GVTg_V5_2\"}\n", kind: "mdev")
        #expect(misspelt.text.contains("FAIL  0000:00:02.0 offers no type 'i915-GVTg_V5_2'"), "\(misspelt.text)")
        #expect(misspelt.text.contains("it offers i915-GVTg_V5_4, i915-GVTg_V5_8"))
        #expect(misspelt.status == 1)
    }

    @Test func scsiDevices() throws {
        let tree = scsiTree()
        let result = try check(tree, """
            version: 1
            bindings:
              - vm: win11
                devices:
                  - scsi: "/dev/disk/by-id/wwn-0x5000c500a1b2c3d4"
                  - scsi: {host: 0, bus: 0, target: 0, unit: 0}
            """, kind: "scsi")
        #expect(result.text.contains("ok    scsi /dev/disk/by-id/wwn-0x5000c500a1b2c3d4 (win11) is 1:0:0:0 (sdb) is present and not used by the host"), "\(result.text)")
        #expect(result.text.contains("FAIL  scsi 0:0:0:0 (win11) (sda) is needed by the host: 0000:00:17.0 → sda → sda1, mounted at /srv/data set"))
        #expect(result.findings.map { $0["device"] as? String } == ["scsi 1:0:0:0", "scsi 0:0:0:0"])
        #expect(result.status == 1)
    }

    /// A pci: claim that names no function is a failure, no longer skipped.
    @Test func pciClaimsThatNameNothing() throws {
        let result = try check(SysfsTree.workstation(), """
            version: 1
            bindings:
              - vm: win11
                devices:
                  - pci: "0000:0a:00.0"
                  - pci: {vendor: "10de", device: "2204"}
            """, kind: "pci")
        #expect(result.text.contains("FAIL  pci 0000:0a:00.0 (win11): no PCI function 0000:0a:00.0 on this host"), "\(result.text)")
        #expect(result.text.contains("FAIL  pci 10de:2204 (win11): no PCI function with this ID on this host"))
        #expect(result.findings.map { $0["device"] as? String } == ["pci 0000:0a:00.0", nil])
        #expect(result.status == 1)
    }

    @Test func usbDevices() throws {
        let tree = SysfsTree.workstation()
        let result = try check(tree, """
            version: 1
            bindings:
              - vm: win11
                devices:
                  - usb: {vendor: "046d", product: "c52b"}
                  - usb: {bus: 1, device: 9}
                  - usb: {vendor: "dead", product: "beef"}
            """, kind: "usb")
        #expect(result.text.contains("ok    usb 046d:c52b (win11) is attached at 1:4"), "\(result.text)")
        #expect(result.text.contains("FAIL  usb bus 1 device 9 (win11): no USB device at bus 1, device 9"))
        #expect(result.text.contains("claim it by ID"))
        #expect(result.findings.map { $0["verdict"] as? String } == ["pass", "fail", "fail"])
        // The remedy's command is one hostdevctl takes.
        #expect(result.text.contains("→ plug it in; 'hostdevctl devices --caps usb_device' lists the attached devices and their IDs"))
        let listed = try hostdevctl("devices", "--caps", "usb_device", "--sysfs-root", tree.root, "--state-dir", "/nonexistent/state")
        #expect(listed.status == 0, "\(listed.stderr)")
        #expect(listed.stdout.contains("046d"), "\(listed.stdout)")
    }
}
