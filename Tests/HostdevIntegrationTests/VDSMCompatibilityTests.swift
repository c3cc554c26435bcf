import Foundation
import HostdevCore
import HostdevLibvirt
import HostdevTestSupport
import Testing

/// `devices --format vdsm` against VDSM's own host-device test data
/// (Tests/fixtures/vdsm-hostdev, see its README): the node-device XML its
/// tests read, in, and the dictionaries its tests expect, out; key for key,
/// type for type and value for value.
@Suite struct VDSMCompatibilityTests {
    static let fixtures = repositoryRoot + "/Tests/fixtures/vdsm-hostdev"

    /// Every node-device XML of the fixture, as libvirt would hand it over
    /// (bytes that are not UTF-8 repaired, as the libvirt binding does).
    static func nodeDeviceXMLs() throws -> [String] {
        let directory = fixtures + "/nodedev"
        return try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".xml") }.sorted().map {
            String(decoding: try Data(contentsOf: URL(fileURLWithPath: directory + "/" + $0)), as: UTF8.self)
        }
    }

    static func jsonObject(_ path: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
    }

    /// One (device, key) row's value as canonical JSON text: a string and a
    /// number of the same digits differ, and so do key orders' absence.
    static func canonical(_ value: Any?) -> String {
        guard let value else { return "<absent>" }
        let data = try? JSONSerialization.data(withJSONObject: [value], options: [.sortedKeys, .fragmentsAllowed])
        return data.map { String(decoding: $0, as: UTF8.self) } ?? "<not JSON>"
    }

    /// The rows (device × key, over both sides) that differ, and how many there are.
    static func compare(expected: [String: Any], actual: [String: Any]) -> (rows: Int, differences: [String]) {
        var rows = 0
        var differences: [String] = []
        for device in Set(expected.keys).union(actual.keys).sorted() {
            let want = (expected[device] as? [String: Any])?["params"] as? [String: Any] ?? [:]
            let got = (actual[device] as? [String: Any])?["params"] as? [String: Any] ?? [:]
            for key in Set(want.keys).union(got.keys).sorted() {
                rows += 1
                let (w, g) = (canonical(want[key]), canonical(got[key]))
                if w != g { differences.append("\(device) \(key): VDSM \(w), hostdevctl \(g)") }
            }
        }
        return (rows, differences)
    }

    func inventory() throws -> Inventory {
        try NodeDeviceInventory().inventory(fromXML: Self.nodeDeviceXMLs(), source: "vdsm fixtures")
    }

    @Test func matchesVDSMsExpectedDictionaries() throws {
        let expected = try Self.jsonObject(Self.fixtures + "/expected.json")
        // VDSM's tests stand in for `lsscsi -g` with this pairing.
        let lsscsi = try #require(try Self.jsonObject(Self.fixtures + "/lsscsi.json") as? [String: String])
        let output = VDSMDeviceList(inventory: try inventory(), blockPaths: lsscsi).render()
        let actual = try #require(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any])
        let (rows, differences) = Self.compare(expected: expected, actual: actual)
        #expect(differences == [])
        #expect(rows == 174)
        #expect(actual.count == 26)
    }

    /// hostdevd's own `json` differs on purpose (typed values, more facts):
    /// most rows do not match. Kept as a measure, and so that a change that
    /// makes `json` VDSM's by accident is seen.
    @Test func ownJSONIsNotVDSMs() throws {
        let expected = try Self.jsonObject(Self.fixtures + "/expected.json")
        let output = InventoryReport(inventory: try inventory()).render(.json)
        let actual = try #require(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any])
        let (rows, differences) = Self.compare(expected: expected, actual: actual)
        print("--format json against VDSM's test data: \(rows - differences.count) of \(rows) device/key rows match")
        #expect(differences.contains("pci_0000_00_02_0 is_assignable: VDSM [\"true\"], hostdevctl [false]"))
        #expect(differences.contains { $0.hasPrefix("pci_0000_00_02_0 address:") })
    }

    @Test func theCommandPrintsVDSMsShape() throws {
        let result = try hostdevctl("devices", "--source", "libvirt", "--connect", exampleHostURI, "--format", "vdsm")
        #expect(result.status == 0)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: [String: Any]])
        #expect(params(json, "computer") as? [String: String] == ["capability": "system", "is_assignable": "true"])
        let gpu = try #require(params(json, "pci_0000_01_00_0"))
        #expect(gpu["address"] as? [String: String] == ["domain": "0", "bus": "1", "slot": "0", "function": "0"])
        #expect(gpu["is_assignable"] as? String == "true")
        #expect(params(json, "pci_0000_00_01_0")?["is_assignable"] as? String == "false")
        #expect(json.values.allSatisfy { $0.keys.sorted() == ["params"] })
    }

    /// From sysfs, the header type read from config space decides: the root
    /// port is a bridge, the host bridge (class 0x0600, type 0) is not.
    @Test func fromSysfsTheHeaderTypeDecides() throws {
        let tree = SysfsTree.workstation()
        let result = try hostdevctl("devices", "--sysfs-root", tree.root, "--format", "vdsm", "--caps", "pci,scsi,net")
        #expect(result.status == 0)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: [String: Any]])
        #expect(params(json, "pci_0000_00_01_0")?["is_assignable"] as? String == "false")
        #expect(params(json, "pci_0000_00_00_0")?["is_assignable"] as? String == "true")
        #expect(params(json, "pci_0000_01_00_0")?["iommu_group"] as? String == "1")
        #expect(json["computer"] == nil)
        #expect(params(json, "net_eno1_3c_7c_3f_1e_22_10")?["interface"] as? String == "eno1")
        // The SCSI disk: its generic node and block device from its children.
        let disk = try #require(params(json, "scsi_0_0_0_0"))
        #expect(disk["udev_path"] as? String == "/dev/sg0" && disk["block_path"] as? String == "/dev/sda")
        #expect(disk["address"] as? [String: String] == ["host": "0", "bus": "0", "target": "0", "lun": "0"])
    }
}
