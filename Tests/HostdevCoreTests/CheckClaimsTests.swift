import HostdevCore
import Testing

/// The workstation of PlannerTests with the PF's interface `enp3s0f0`
/// (VF settings go through it) unless `pfInterface` is false.
func checkedHost(pfInterface: Bool = true, hostUses: [HostUse]? = nil, drivers: [PCIAddress: String?] = [:]) -> ObservedHost {
    var observed = workstation(drivers: drivers, hostUses: hostUses)
    if pfInterface {
        var devices = observed.inventory.devices
        devices.append(HostDevice(name: "net_enp3s0f0", capability: .net, parent: pf.nodeDeviceName, net: NetInfo(interface: "enp3s0f0")))
        observed.inventory = Inventory(devices: devices, iommuGroups: observed.inventory.iommuGroups)
    }
    return observed
}

/// `check --manifest` with one binding for win11 holding `claim`.
func checkClaim(_ claim: DeviceClaim, _ observed: ObservedHost, host: HostPolicy = HostPolicy()) -> [CheckReport.Finding] {
    CheckReport.claims(Manifest(host: host, bindings: [binding("win11", claim)]), observed: observed)
}

/// `verdict check: what` of each finding, for tables.
func lines(_ findings: [CheckReport.Finding]) -> [String] { findings.map { "\($0.verdict.rawValue) \($0.check): \($0.what)" } }

/// A row of the VF table, shown in test output by its name (not the whole host).
struct VFCheckCase: CustomTestStringConvertible, Sendable {
    var name: String, spec: VFSpec, observed: ObservedHost, host: HostPolicy, expected: [String]
    init(_ row: (String, VFSpec, ObservedHost, HostPolicy, [String])) { (name, spec, observed, host, expected) = row }
    var testDescription: String { name }
}

/// A row of the mdev table, shown by its name.
struct MdevCheckCase: CustomTestStringConvertible, Sendable {
    var name: String, spec: MdevSpec, observed: ObservedHost, expected: String
    init(_ row: (String, MdevSpec, ObservedHost, String)) { (name, spec, observed, expected) = row }
    var testDescription: String { name }
}

@Suite struct CheckClaimsTests {
    /// Each row: a VF claim (and what differs on the host) → the findings, in order.
    @Test(arguments: [
        ("a free VF with settings", VFSpec(pf: pf, index: 1, settings: VFSettings(vlan: 100)), checkedHost(), HostPolicy(), [
            "pass vf: VF 1 of 0000:03:00.0 (win11) is 0000:03:10.4 (igbvf); 2 of 7 VFs enabled",
            "pass vf: vlan 100 of VF 1 (win11) are set through 0000:03:00.0's interface enp3s0f0",
            "pass iommu-group: IOMMU group 21 of 0000:03:10.4 (win11): 1 device(s), hostdevd moves them together",
        ]),
        ("no PF", VFSpec(pf: PCIAddress("0000:3b:00.0")!, index: 0), checkedHost(), HostPolicy(), [
            "fail vf: PF 0000:3b:00.0 of VF 0 (win11) is not present on this host (no /sys/bus/pci/devices/0000:3b:00.0)",
        ]),
        ("not a PF", VFSpec(pf: gpu, index: 0), checkedHost(), HostPolicy(), [
            "fail vf: 0000:01:00.0 (win11) is not an SR-IOV physical function (no sriov_totalvfs); it has no VF 0",
        ]),
        ("beyond totalvfs", VFSpec(pf: pf, index: 7), checkedHost(), HostPolicy(), [
            "fail vf: 0000:03:00.0 (win11) supports 7 VFs (sriov_totalvfs); there is no VF 7",
        ]),
        ("not enabled", VFSpec(pf: pf, index: 4), checkedHost(), HostPolicy(), [
            "fail vf: VF 4 of 0000:03:00.0 (win11) is not enabled: sriov_numvfs is 2 of 7",
        ]),
        ("enabled by host.sriov", VFSpec(pf: pf, index: 4), checkedHost(), HostPolicy(sriov: [SRIOVSetting(pf: pf, numVFs: 6)]), [
            "warn vf: VF 4 of 0000:03:00.0 (win11) does not exist yet: 2 of 7 VFs enabled; hostdevd enables 6 (host.sriov)",
        ]),
        ("settings without a PF interface", VFSpec(pf: pf, index: 1, settings: VFSettings(trust: true)), checkedHost(pfInterface: false), HostPolicy(), [
            "pass vf: VF 1 of 0000:03:00.0 (win11) is 0000:03:10.4 (igbvf); 2 of 7 VFs enabled",
            "fail vf: 0000:03:00.0 (win11) has no network interface: trust on of VF 1 cannot be set (they go through the PF's netdev)",
            "pass iommu-group: IOMMU group 21 of 0000:03:10.4 (win11): 1 device(s), hostdevd moves them together",
        ]),
        ("a VF the host uses", VFSpec(pf: pf, index: 1),
            checkedHost(hostUses: [HostUse(address: vf1, kind: .network, chain: ["0000:03:10.4", "enp3s16f4"], why: "up with address 10.0.0.2")]), HostPolicy(), [
            "pass vf: VF 1 of 0000:03:00.0 (win11) is 0000:03:10.4 (igbvf); 2 of 7 VFs enabled",
            "fail vf: 0000:03:10.4, VF 1 of 0000:03:00.0 (win11), is needed by the host: 0000:03:10.4 → enp3s16f4, up with address 10.0.0.2",
            "pass iommu-group: IOMMU group 21 of 0000:03:10.4 (win11): 1 device(s), hostdevd moves them together",
        ]),
        ("a protected VF", VFSpec(pf: pf, index: 0), checkedHost(), HostPolicy(protect: [vf0]), [
            "pass vf: VF 0 of 0000:03:00.0 (win11) is 0000:03:10.0 (igbvf); 2 of 7 VFs enabled",
            "fail vf: 0000:03:10.0, VF 0 of 0000:03:00.0 (win11), is listed in host.protect",
            "pass iommu-group: IOMMU group 20 of 0000:03:10.0 (win11): 1 device(s), hostdevd moves them together",
        ]),
    ].map(VFCheckCase.init))
    func virtualFunctions(_ row: VFCheckCase) {
        let (name, spec, observed, host, expected) = (row.name, row.spec, row.observed, row.host, row.expected)
        let findings = checkClaim(DeviceClaim(.vf(spec)), observed, host: host)
        #expect(lines(findings) == expected, "\(name)")
        // Every finding that is not a pass says what to do.
        #expect(findings.allSatisfy { $0.verdict == .pass || $0.remedy?.isEmpty == false }, "\(name)")
        #expect(findings.filter { $0.check == "vf" }.allSatisfy { $0.device == spec.description && $0.vm == "win11" })
    }

    /// VFs not enabled: the remedy says how, through 0 when some are.
    @Test func theRemedyForVFsNotEnabledSaysHow() throws {
        let finding = try #require(checkClaim(DeviceClaim(.vf(VFSpec(pf: pf, index: 4))), checkedHost()).first)
        #expect(finding.remedy?.contains("host.sriov: [{pf: \"0000:03:00.0\", numvfs: 5}]") == true)
        #expect(finding.remedy?.contains("echo 0 > /sys/bus/pci/devices/0000:03:00.0/sriov_numvfs && echo 5 > /sys/bus/pci/devices/0000:03:00.0/sriov_numvfs") == true)
    }

    /// A VF's IOMMU group is judged exactly as a PCI function's: one the
    /// host's drivers share fails with `group: device`.
    @Test func aVFsGroupIsCheckedLikeAPCIFunctions() {
        var observed = checkedHost()
        var devices = observed.inventory.devices
        let stranger = PCIAddress("0000:03:10.1")!
        devices.append(pciDevice(stranger, "8086", "1520", 0x020000, driver: "igbvf", group: 21))
        observed.inventory = Inventory(devices: devices, iommuGroups: observed.inventory.iommuGroups.filter { $0.number != 21 } + [IOMMUGroup(number: 21, members: [vf1, stranger])])
        let findings = checkClaim(DeviceClaim(.vf(VFSpec(pf: pf, index: 1)), group: .device), observed)
        let pciFindings = checkClaim(DeviceClaim(.pci(vf1), group: .device), observed)
        #expect(findings.last == pciFindings.last)
        #expect(findings.last?.verdict == .fail)
        #expect(findings.last?.what == "group 21 is not viable for 0000:03:10.4 (win11): 0000:03:10.1 (igbvf), 0000:03:10.4 (igbvf) still on host drivers")
    }

    @Test func aVFInItsPFsGroupFails() {
        var observed = checkedHost()
        var devices = observed.inventory.devices
        for i in devices.indices where devices[i].pci?.address == vf1 { devices[i].pci?.iommuGroup = 8 }
        observed.inventory = Inventory(devices: devices, iommuGroups: observed.inventory.iommuGroups)
        let findings = checkClaim(DeviceClaim(.vf(VFSpec(pf: pf, index: 1))), observed)
        #expect(lines(findings).last == "fail vf: VF 1 of 0000:03:00.0 (win11) shares IOMMU group 8 with its PF; hostdevd never detaches the PF for a VF")
        #expect(!findings.contains { $0.check == "iommu-group" })
    }

    /// Each row: an mdev claim on the GVT-g host → its one finding.
    @Test(arguments: [
        ("offered", vgpu, gvtHost(), "pass mdev: 0000:00:02.0 offers i915-GVTg_V5_4 for \(vgpuUUID) (win11), 1 instance(s) left; hostdevd creates it"),
        ("exists", vgpu, gvtHost(left: 0, devices: [MdevInstance(uuid: vgpuUUID, parent: igpu, type: gvt4)]),
            "pass mdev: \(vgpuUUID) (win11) exists: i915-GVTg_V5_4 on 0000:00:02.0"),
        ("exists as another type", vgpu, gvtHost(devices: [MdevInstance(uuid: vgpuUUID, parent: igpu, type: gvt8)]),
            "fail mdev: \(vgpuUUID) (win11) already exists as i915-GVTg_V5_8 on 0000:00:02.0, not i915-GVTg_V5_4 on 0000:00:02.0"),
        ("none left", vgpu, gvtHost(left: 0), "fail mdev: 0000:00:02.0 has no instance of i915-GVTg_V5_4 left (available_instances 0) for \(vgpuUUID) (win11)"),
        ("no such type", MdevSpec(uuid: vgpuUUID, parent: igpu, type: "i915-GVTg_V5_2"), gvtHost(),
            "fail mdev: 0000:00:02.0 offers no type 'i915-GVTg_V5_2' for \(vgpuUUID) (win11); did you mean 'i915-GVTg_V5_4'?; it offers i915-GVTg_V5_4, i915-GVTg_V5_8"),
        ("not a parent", MdevSpec(uuid: vgpuUUID, parent: gpu, type: gvt4), gvtHost(),
            "fail mdev: 0000:01:00.0 (nouveau) offers no mediated devices (no mdev_supported_types) for \(vgpuUUID) (win11)"),
        ("no parent", MdevSpec(uuid: vgpuUUID, parent: PCIAddress("0000:09:00.0")!, type: gvt4), gvtHost(),
            "fail mdev: parent 0000:09:00.0 of \(vgpuUUID) (win11) is not present on this host"),
        ("not observed", vgpu, workstation(), "warn mdev: mediated devices were not observed; \(vgpuUUID) (win11) not checked"),
    ].map(MdevCheckCase.init))
    func mediatedDevices(_ row: MdevCheckCase) {
        let (name, spec, observed, expected) = (row.name, row.spec, row.observed, row.expected)
        let findings = checkClaim(DeviceClaim(.mdev(spec)), observed)
        #expect(lines(findings) == [expected], "\(name)")
        #expect(findings.allSatisfy { $0.device == "mdev \(vgpuUUID)" && ($0.verdict == .pass || $0.remedy != nil) })
    }

    /// Each row: a SCSI claim → its one finding and the device it names.
    @Test(arguments: [
        (DeviceSelector.scsi(spareDisk), "pass scsi: scsi 1:0:0:0 (win11) (sdb) is present and not used by the host", "scsi 1:0:0:0"),
        (.scsiPath("/dev/disk/by-id/wwn-0x5000c500a1b2c3d4"),
            "pass scsi: scsi /dev/disk/by-id/wwn-0x5000c500a1b2c3d4 (win11) is 1:0:0:0 (sdb) is present and not used by the host", "scsi 1:0:0:0"),
        (.scsi(rootDisk), "fail scsi: scsi 0:0:0:0 (win11) (sda) is needed by the host: 0000:00:17.0 → sda → sda1, mounted at /srv", "scsi 0:0:0:0"),
        (.scsiPath("/dev/sda"), "fail scsi: scsi /dev/sda (win11) is 0:0:0:0 (sda) is needed by the host: 0000:00:17.0 → sda → sda1, mounted at /srv", "scsi 0:0:0:0"),
        (.scsi(SCSIAddress(host: 5, bus: 0, target: 0, unit: 0)), "fail scsi: scsi 5:0:0:0 (win11): no SCSI device 5:0:0:0 on this host", "scsi 5:0:0:0"),
        (.scsiPath("/dev/disk/by-id/gone"), "fail scsi: scsi /dev/disk/by-id/gone (win11): /dev/disk/by-id/gone does not exist on this host", nil),
        (.scsiPath("/dev/nvme0n1"),
            "fail scsi: scsi /dev/nvme0n1 (win11): /dev/nvme0n1 is nvme0n1, which is not a SCSI device (its parent is pci_0000_02_00_0); pass it as a PCI device or a <disk> instead", nil),
    ] as [(DeviceSelector, String, String?)])
    func scsiDevices(selector: DeviceSelector, expected: String, device: String?) {
        let findings = checkClaim(DeviceClaim(selector), scsiHost(diskLinks: ["/dev/disk/by-id/wwn-0x5000c500a1b2c3d4": "sdb"]))
        #expect(lines(findings) == [expected])
        #expect(findings.first?.device == device)
    }

    /// Each row: a USB claim on the workstation (046d:c52b at 1:4; the root hub 1d6b:0002 does not count) → its finding.
    @Test(arguments: [
        (DeviceSelector.usbID(vendor: 0x046d, product: 0xc52b, index: nil), "pass usb: usb 046d:c52b (win11) is attached at 1:4"),
        (.usbID(vendor: 0x046d, product: 0xc52b, index: 1), "fail usb: usb 046d:c52b index 1 (win11): index 1 asked, but 1 device(s) match"),
        (.usbID(vendor: 0x1d6b, product: 0x0002, index: nil), "fail usb: usb 1d6b:0002 (win11): no USB device with this ID is attached"),
        (.usbAddress(bus: 1, device: 4), "pass usb: usb bus 1 device 4 (win11) is attached"),
        (.usbAddress(bus: 2, device: 3), "fail usb: usb bus 2 device 3 (win11): no USB device at bus 2, device 3"),
    ] as [(DeviceSelector, String)])
    func usbDevices(selector: DeviceSelector, expected: String) {
        #expect(lines(checkClaim(DeviceClaim(selector), checkedHost())) == [expected])
    }

    @Test func twoMatchingUSBDevicesAskForAnIndex() {
        var observed = checkedHost()
        var devices = observed.inventory.devices
        devices.append(HostDevice(name: "usb_1_5", capability: .usbDevice, parent: "usb_usb1", vendorID: "0x046d", productID: "0xc52b", usb: USBInfo(bus: 1, device: 5)))
        observed.inventory = Inventory(devices: devices, iommuGroups: observed.inventory.iommuGroups)
        #expect(lines(checkClaim(DeviceClaim(.usbID(vendor: 0x046d, product: 0xc52b, index: nil)), observed))
            == ["fail usb: usb 046d:c52b (win11): 2 devices match (1:4, 1:5)"])
        #expect(lines(checkClaim(DeviceClaim(.usbID(vendor: 0x046d, product: 0xc52b, index: 1)), observed))
            == ["pass usb: usb 046d:c52b index 1 (win11) is attached at 1:5"])
    }

    /// Each row: a PCI claim that names no function to check → its `pci` finding.
    @Test(arguments: [
        (DeviceSelector.pci(PCIAddress("0000:0a:00.0")!), "fail pci: pci 0000:0a:00.0 (win11): no PCI function 0000:0a:00.0 on this host"),
        (.pci(rootPort), "fail pci: pci 0000:00:01.0 (win11): 0000:00:01.0 is a PCI bridge; bridges are never detached or assigned"),
        (.pciID(vendor: 0x10de, device: 0x2204, index: nil), "fail pci: pci 10de:2204 (win11): no PCI function with this ID on this host"),
        (.pciID(vendor: 0x8086, device: 0x1521, index: nil),
            "fail pci: pci 8086:1521 (win11): 3 functions match (0000:03:00.0, 0000:04:00.0, 0000:04:00.1)"),
        (.pciID(vendor: 0x8086, device: 0x1521, index: 3), "fail pci: pci 8086:1521 index 3 (win11): index 3 asked, but 3 function(s) match"),
        (.pciID(vendor: 0x8086, device: 0x1521, index: 2), "warn iommu-group: IOMMU group 9 of 0000:04:00.1 (win11): hostdevd will also take 0000:04:00.0 (igb) off their host drivers (group: attach)"),
        (.pci(gpu), "warn iommu-group: IOMMU group 1 of 0000:01:00.0 (win11): hostdevd will also take 0000:01:00.1 (snd_hda_intel) off their host drivers (group: attach)"),
    ] as [(DeviceSelector, String)])
    func pciFunctions(selector: DeviceSelector, expected: String) {
        let findings = checkClaim(DeviceClaim(selector), workstation())
        #expect(lines(findings) == [expected])
        #expect(findings.allSatisfy { $0.verdict == .pass || $0.remedy != nil })
    }

    /// One group is reported once, whichever claims share it.
    @Test func aGroupIsReportedOnce() {
        let manifest = Manifest(bindings: [binding("win11", DeviceClaim(.pci(gpu)), DeviceClaim(.pci(audio)))])
        #expect(CheckReport.claims(manifest, observed: workstation()).filter { $0.check == "iommu-group" }.count == 1)
    }
}
