@testable import HostdevCore
import Testing

/// A small tree: a root port with a GPU (two functions), a SATA controller
/// with a disk chain, a USB controller with a hub and a device.
func sampleInventory() -> Inventory {
    let gpu = PCIAddress("0000:01:00.0")!
    let audio = PCIAddress("0000:01:00.1")!
    let port = PCIAddress("0000:00:01.0")!
    return Inventory(
        devices: [
            HostDevice(
                name: gpu.nodeDeviceName, capability: .pci, parent: port.nodeDeviceName, driver: "nouveau",
                vendorID: "0x10de", productID: "0x1b80", vendor: "NVIDIA Corporation", product: "GP104 [GeForce GTX 1080]",
                pci: PCIFunction(address: gpu, classCode: 0x030000, iommuGroup: 1, bootVGA: false, numaNode: 0)),
            HostDevice(
                name: audio.nodeDeviceName, capability: .pci, parent: port.nodeDeviceName, driver: "snd_hda_intel",
                vendorID: "0x10de", productID: "0x10f0", pci: PCIFunction(address: audio, classCode: 0x040300, iommuGroup: 1)),
            HostDevice(
                name: port.nodeDeviceName, capability: .pci, driver: "pcieport", vendorID: "0x8086", productID: "0x1901",
                pci: PCIFunction(address: port, classCode: 0x060400, iommuGroup: 1)),
            HostDevice(name: "scsi_host0", capability: .scsiHost, parent: "pci_0000_00_17_0", scsi: SCSIInfo(host: 0)),
            HostDevice(name: "scsi_target0_0_0", capability: .scsiTarget, parent: "scsi_host0"),
            HostDevice(name: "scsi_0_0_0_0", capability: .scsi, parent: "scsi_target0_0_0"),
            HostDevice(name: "block_sda", capability: .storage, parent: "scsi_0_0_0_0", deviceNode: "/dev/sda"),
            HostDevice(
                name: "pci_0000_00_17_0", capability: .pci, driver: "ahci",
                pci: PCIFunction(address: PCIAddress("0000:00:17.0")!, classCode: 0x010601, iommuGroup: 4)),
            HostDevice(name: "usb_usb1", capability: .usbDevice, parent: "pci_0000_00_14_0", usb: USBInfo(bus: 1, device: 1, isRootHub: true)),
            HostDevice(
                name: "usb_1_4", capability: .usbDevice, parent: "usb_usb1", vendorID: "0x046d", productID: "0xc52b",
                vendor: "Logitech, Inc.", product: "Unifying \"Receiver\"", usb: USBInfo(bus: 1, device: 4)),
        ],
        iommuGroups: [IOMMUGroup(number: 1, members: [gpu, audio, port])])
}

@Suite struct InventoryReportTests {
    @Test func treeIndentsChildrenUnderParents() {
        let tree = InventoryReport(inventory: sampleInventory()).render(.tree)
        let lines = tree.split(separator: "\n").map(String.init)
        #expect(lines.first == "computer")
        // Parents come first; children are one level (4 spaces) deeper.
        #expect(lines.contains { $0.hasPrefix("    pci_0000_00_01_0 [pci] 8086:1901 ") })
        #expect(lines.contains { $0.hasPrefix("        pci_0000_01_00_0 [pci] 10de:1b80 NVIDIA Corporation GP104 [GeForce GTX 1080] driver=nouveau iommu_group=1 assignable") })
        // computer → pci → scsi_host → target → scsi → block: depth 5.
        #expect(lines.contains("                    block_sda [storage] /dev/sda"))
        // The USB hub hangs at the root: its parent controller is not listed.
        #expect(lines.contains("    usb_usb1 [usb_device] bus=1 device=1"))
        #expect(lines.contains { $0.hasPrefix("        usb_1_4 [usb_device] 046d:c52b") && $0.hasSuffix("assignable") })
    }

    @Test func capabilityFilterHangsMatchesUnderNearestShownAncestor() {
        let report = InventoryReport(inventory: sampleInventory(), capabilities: [.pci, .storage])
        let rows = report.rows.map { ($0.device.name, $0.shownParent, $0.depth) }
        #expect(rows.contains { $0 == ("block_sda", "pci_0000_00_17_0", 2) })
        #expect(rows.contains { $0 == ("pci_0000_01_00_0", "pci_0000_00_01_0", 2) })
        #expect(!rows.contains { $0.0.hasPrefix("scsi") || $0.0.hasPrefix("usb") })
        let tree = report.render(.tree)
        #expect(tree.contains("\n        block_sda [storage] /dev/sda\n"))
    }

    @Test func jsonHasVDSMShape() {
        let json = InventoryReport(inventory: sampleInventory(), capabilities: [.pci]).render(.json)
        #expect(json.hasPrefix("{\n  \"pci_0000_00_01_0\": {\n    \"device\": \"pci 0000:00:01.0\",\n    \"params\": {\n      \"capability\": \"pci\",\n      \"parent\": \"computer\","))
        #expect(json.contains("\"iommu_group\": \"1\""))
        #expect(json.contains("\"vendor_id\": \"0x10de\""))
        #expect(json.contains("\"class\": \"0x030000\""))
        #expect(json.contains("\"vmId\": \"\""))
        #expect(json.contains("\"is_assignable\": true"))
        #expect(!json.contains("scsi_host0"))
    }

    @Test func jsonEscapesStringsAndShowsOwners() {
        let report = InventoryReport(
            inventory: sampleInventory(), capabilities: [.usbDevice], owners: ["usb_1_4": "win11"])
        let json = report.render(.json)
        #expect(json.contains("\"product\": \"Unifying \\\"Receiver\\\"\""))
        #expect(json.contains("\"vmId\": \"win11\""))
        // A root hub is never assignable; a device behind it is.
        #expect(json.contains("\"usb_usb1\": {\n    \"device\": \"usb 1:1\",\n    \"params\": {\n      \"capability\": \"usb_device\",\n      \"parent\": \"pci_0000_00_14_0\",\n      \"vendor\": \"\","))
    }

    @Test func tableAlignsColumns() {
        let table = InventoryReport(inventory: sampleInventory(), capabilities: [.pci]).render(.table)
        let lines = table.split(separator: "\n").map(String.init)
        #expect(lines[0].hasPrefix("NAME              CAPABILITY  PARENT            DRIVER"))
        let column = lines[0].distance(from: lines[0].startIndex, to: lines[0].firstRange(of: "DRIVER")!.lowerBound)
        for line in lines.dropFirst() {
            #expect(line.count > column)
            #expect(line[line.index(line.startIndex, offsetBy: column - 2)..<line.index(line.startIndex, offsetBy: column)] == "  ")
            #expect(!line.hasSuffix(" "))
        }
        #expect(lines.count == 5)
    }

    @Test func treeOrderSurvivesMissingParentsAndCycles() {
        let inventory = Inventory(devices: [
            HostDevice(name: "b", capability: .net, parent: "a"),
            HostDevice(name: "a", capability: .net, parent: "b"),
            HostDevice(name: "orphan", capability: .net, parent: "gone"),
        ])
        #expect(Set(inventory.devices.map(\.name)) == ["a", "b", "orphan"])
        #expect(InventoryReport(inventory: inventory).rows.count == 3)
    }
}

@Suite struct AssignabilityTests {
    @Test(arguments: [
        (PCIFunction(address: PCIAddress("0000:01:00.0")!, classCode: 0x030000, iommuGroup: 1), true),
        (PCIFunction(address: PCIAddress("0000:01:00.0")!, classCode: 0x030000, iommuGroup: nil), false),
        (PCIFunction(address: PCIAddress("0000:00:01.0")!, classCode: 0x060400, iommuGroup: 1), false),
        // A host bridge has a type-0 header: VFIO takes it as an endpoint.
        (PCIFunction(address: PCIAddress("0000:00:00.0")!, classCode: 0x060000, iommuGroup: 0), true),
    ])
    func pci(function: PCIFunction, assignable: Bool) {
        #expect(HostDevice(name: "x", capability: .pci, pci: function).isAssignable == assignable)
    }

    @Test func usbAndOthers() {
        #expect(HostDevice(name: "u", capability: .usbDevice, usb: USBInfo(bus: 1, device: 4)).isAssignable)
        #expect(!HostDevice(name: "u", capability: .usbDevice, usb: USBInfo(bus: 1, device: 1, isRootHub: true)).isAssignable)
        #expect(!HostDevice(name: "n", capability: .net).isAssignable)
        #expect(!HostDevice(name: "s", capability: .storage).isAssignable)
    }
}

@Suite struct InventoryUpdateTests {
    @Test func replacesAddsAndRemovesDevices() {
        let inventory = sampleInventory()
        var gpu = inventory.device(named: "pci_0000_01_00_0")!
        gpu.driver = "vfio-pci"
        let added = HostDevice(
            name: "pci_0000_05_00_0", capability: .pci, sysfsPath: "/sys/devices/pci0000:00/0000:05:00.0",
            pci: PCIFunction(address: PCIAddress("0000:05:00.0")!, classCode: 0x020000, iommuGroup: 9))
        var audio = inventory.device(named: "pci_0000_01_00_1")!
        audio.sysfsPath = "/sys/devices/x/0000:01:00.1"
        let base = Inventory(devices: inventory.devices.map { $0.name == audio.name ? audio : $0 }, iommuGroups: inventory.iommuGroups)
        let updated = base.updating([gpu, added], removingPaths: ["/sys/devices/x/0000:01:00.1"])
        #expect(updated.device(named: "pci_0000_01_00_0")?.driver == "vfio-pci")
        #expect(updated.device(named: "pci_0000_05_00_0") != nil)
        #expect(updated.device(named: "pci_0000_01_00_1") == nil)
        #expect(updated.group(9)?.members == [PCIAddress("0000:05:00.0")!])
        #expect(updated.group(1)?.members.map(\.description) == ["0000:00:01.0", "0000:01:00.0"])
        #expect(updated.devices.count == base.devices.count)
    }
}

/// `updating` works in proportion to the change; whatever it does, the result
/// must equal a fresh inventory of the same devices (order, groups, lookups).
@Suite struct IncrementalUpdateTests {
    static func pci(_ address: String, parent: String = DeviceNaming.computer, group: Int?, driver: String? = nil) -> HostDevice {
        let parsed = PCIAddress(address)!
        return HostDevice(
            name: DeviceNaming.libvirtName(subsystem: "pci", sysname: address),
            capability: .pci, parent: parent, sysfsPath: "/sys/devices/pci0000:00/\(address)", driver: driver,
            pci: PCIFunction(address: parsed, classCode: address.hasSuffix("00:01.0") ? 0x060400 : 0x020000, iommuGroup: group))
    }

    static let bridge = pci("0000:00:01.0", group: 1)
    static let base: [HostDevice] = [
        pci("0000:00:00.0", group: 0),
        bridge,
        pci("0000:02:00.0", parent: bridge.name, group: 2, driver: "ixgbe"),
        pci("0000:02:00.2", parent: bridge.name, group: 2, driver: "ixgbe"),
        HostDevice(name: "net_eth0", capability: .net, parent: "pci_0000_02_00_0", sysfsPath: "/sys/devices/pci0000:00/0000:02:00.0/net/eth0"),
        pci("0000:03:00.0", group: 3),
        pci("0000:05:00.0", group: 5),
    ]

    static func groups(of devices: [HostDevice]) -> [IOMMUGroup] {
        var members: [Int: [PCIAddress]] = [:]
        for device in devices { if let pci = device.pci, let group = pci.iommuGroup { members[group, default: []].append(pci.address) } }
        return members.map { IOMMUGroup(number: $0.key, members: $0.value) }
    }

    static func reference(_ devices: [HostDevice]) -> Inventory {
        Inventory(devices: devices, iommuGroups: groups(of: devices), iommuEnabled: true)
    }

    @Test(arguments: [
        ("root-level device added first", [pci("0000:00:00.1", group: 9)], []),
        ("root-level device added between", [pci("0000:04:00.0", group: 4)], []),
        ("root-level device added last", [pci("0000:f0:00.0", group: 90)], []),
        ("added first under the bridge", [pci("0000:02:00.1", parent: bridge.name, group: 2)], []),
        ("added after a sibling with children", [pci("0000:02:00.1", parent: bridge.name, group: 7)], []),
        ("added last under the bridge", [pci("0000:02:00.7", parent: bridge.name, group: 2)], []),
        ("added under a device that is not listed", [pci("0000:09:00.0", parent: "pci_0000_08_00_0", group: 8)], []),
        ("driver changed in place", [pci("0000:02:00.2", parent: bridge.name, group: 2, driver: "vfio-pci")], []),
        ("moved to another group", [pci("0000:03:00.0", group: 5)], []),
        ("leaf removed", [], ["/sys/devices/pci0000:00/0000:05:00.0"]),
        ("last member of a group removed", [], ["/sys/devices/pci0000:00/0000:03:00.0"]),
        ("removed and another added", [pci("0000:06:00.0", group: 6)], ["/sys/devices/pci0000:00/0000:03:00.0"]),
        ("re-parented", [pci("0000:05:00.0", parent: bridge.name, group: 5)], []),
        (
            "two removed, two added", [pci("0000:00:00.1", group: 9), pci("0000:02:00.7", parent: bridge.name, group: 2)],
            ["/sys/devices/pci0000:00/0000:03:00.0", "/sys/devices/pci0000:00/0000:00:00.0"]
        ),
    ] as [(String, [HostDevice], [String])])
    func equalsAFreshInventory(_ change: String, updated: [HostDevice], removed: [String]) {
        var expected = Self.base.filter { !removed.contains($0.sysfsPath ?? "") }
        for device in updated {
            if let index = expected.firstIndex(where: { $0.name == device.name }) { expected[index] = device } else { expected.append(device) }
        }
        let result = Self.reference(Self.base).updating(updated, removingPaths: Set(removed))
        #expect(result == Self.reference(expected), "\(change)")
        for device in expected {
            if let pci = device.pci { #expect(result.device(at: pci.address) == device, "\(change): lookup of \(pci.address)") }
            #expect(result.device(named: device.name) == device, "\(change): lookup of \(device.name)")
            #expect(result.device(atSysfsPath: device.sysfsPath!) == device, "\(change): lookup of \(device.sysfsPath!)")
        }
        for path in removed { #expect(result.device(atSysfsPath: path) == nil, "\(change): \(path) still found") }
    }

    /// A storm's many changes take the one-sort path: the same result.
    @Test func manyChangesAtOnceEqualAFreshInventory() {
        let added = (0..<40).map { Self.pci("0000:02:1\($0 / 8).\($0 % 8)", parent: Self.bridge.name, group: 100 + $0) }
        let changed = Self.pci("0000:02:00.2", parent: Self.bridge.name, group: 2, driver: "vfio-pci")
        let removed = "/sys/devices/pci0000:00/0000:03:00.0"
        #expect(added.count + 2 > Inventory.changesUpdatedOneByOne)
        let expected = Self.base.filter { $0.sysfsPath != removed }.map { $0.name == changed.name ? changed : $0 } + added
        let result = Self.reference(Self.base).updating(added.reversed() + [changed], removingPaths: [removed])
        #expect(result == Self.reference(expected))
        for device in expected { #expect(result.device(named: device.name) == device) }
    }

    /// Unplug and replug, many times, as the hotplug benchmark does.
    @Test func unplugReplugCycles() {
        var inventory = Self.reference(Self.base)
        let device = Self.pci("0000:04:00.0", group: 4)
        for _ in 0..<20 {
            inventory = inventory.updating([device], removingPaths: [])
            inventory = inventory.updating([], removingPaths: [device.sysfsPath!])
        }
        #expect(inventory == Self.reference(Self.base))
    }
}

@Suite struct UsedByTests {
    @Test func hostAndVMUsesAreShownPerDevice() {
        let nic = PCIAddress("0000:05:00.0")!
        let vf = PCIAddress("0000:03:10.0")!
        var ci = DomainState(name: "ci", state: .running)
        ci.uses = [VMUse(element: "<interface type='hostdev'>", target: .pci(vf), devices: [vf])]
        let off = DomainState(name: "win11", state: .shutoff, configHostdevs: [.ours(.pci(nic))])
        let used = InventoryReport.usedBy(
            hostUses: [HostUse(address: nic, reason: "0000:05:00.0 → enp5s0 → vmbr0, which carries the default route")], domains: [ci, off])
        #expect(used["pci_0000_05_00_0"] == "0000:05:00.0 → enp5s0 → vmbr0, which carries the default route; off: win11 through hostdevd's <hostdev>")
        #expect(used["pci_0000_03_10_0"] == "ci through <interface type='hostdev'>")
        let device = HostDevice(name: "pci_0000_03_10_0", capability: .pci, pci: PCIFunction(address: vf))
        let report = InventoryReport(inventory: Inventory(devices: [device]), usedBy: used)
        #expect(report.facts(device).contains("used by: ci through <interface type='hostdev'>"))
    }
}
