import HostdevCore
import Testing

/// What counts as a bridge is what VFIO counts as one: a function whose
/// header is not type 0. Class 0x06 alone does not make a bridge: host
/// bridges and ISA/LPC bridges are type-0 functions that VFIO treats as
/// any other endpoint.
@Suite struct BridgeTests {
    static let address = PCIAddress("0000:00:1f.0")!

    @Test(arguments: [
        // (class code, header type, bridge?)
        (UInt32(0x060400), UInt8?.none, true),  // PCI-to-PCI bridge, root or downstream port
        (0x060401, nil, true),  // subtractive-decode PCI-to-PCI bridge
        (0x060700, nil, true),  // CardBus bridge
        (0x060940, nil, true),  // semi-transparent PCI-to-PCI bridge
        (0x060000, nil, false),  // host bridge
        (0x060100, nil, false),  // ISA/LPC bridge (lpc_ich)
        (0x060200, nil, false),  // EISA bridge
        (0x068000, nil, false),  // "other" bridge
        (0x030000, nil, false),  // VGA
        // The header type, when read, decides over the class.
        (0x060400, 0, false),
        (0x060000, 1, true),
        (0x020000, 2, true),
        (0x060100, 0, false),
    ])
    func classAndHeaderType(classCode: UInt32, headerType: UInt8?, isBridge: Bool) {
        let function = PCIFunction(address: Self.address, classCode: classCode, iommuGroup: 3, headerType: headerType)
        #expect(function.isBridge == isBridge)
        #expect(HostDevice(name: "x", capability: .pci, pci: function).isAssignable == !isBridge)
    }

    @Test(arguments: [UInt8(1), 2])
    func noClassButABridgeHeaderIsABridge(headerType: UInt8) {
        #expect(PCIFunction(address: Self.address, headerType: headerType).isBridge)
    }

    @Test func noClassNoHeaderIsNotKnownToBeABridge() {
        #expect(!PCIFunction(address: Self.address).isBridge)
    }
}

/// An Intel chipset group: the LPC controller, HD audio and SMBus share
/// IOMMU group 10. VFIO refuses the group while the LPC controller is on
/// lpc_ich, so claiming the audio alone is not viable.
@Suite struct ChipsetGroupViabilityTests {
    static let lpc = PCIAddress("0000:00:1f.0")!
    static let hda = PCIAddress("0000:00:1f.3")!

    func host(sibling classCode: UInt32, driver: String?) -> ObservedHost {
        let devices = [
            pciDevice(Self.lpc, "8086", "a305", classCode, driver: driver, group: 10),
            pciDevice(Self.hda, "8086", "a348", 0x040300, driver: "snd_hda_intel", group: 10),
        ]
        return ObservedHost(
            inventory: Inventory(devices: devices, iommuGroups: [IOMMUGroup(number: 10, members: [Self.lpc, Self.hda])]),
            domains: [DomainState(name: "win11", state: .shutoff)], hostUses: [])
    }

    @Test(arguments: [
        // (sibling's class, its driver, viable for group: device?)
        (UInt32(0x060100), String?.some("lpc_ich"), false),  // ISA/LPC bridge on its driver
        (0x060000, "ie31200_edac", false),  // host bridge with an EDAC driver
        (0x068000, "some_bridge", false),  // "other" bridge on a driver
        (0x060000, nil, true),  // host bridge with no driver: nothing to unbind
        (0x060400, "pcieport", true),  // PCI-to-PCI bridge: VFIO ignores it
        (0x060700, "yenta_cardbus", true),  // CardBus bridge: VFIO ignores it
        (0x060100, "vfio-pci", true),
    ])
    func deviceModeViability(classCode: UInt32, driver: String?, viable: Bool) {
        let result = plan([binding("win11", DeviceClaim(.pci(Self.hda), group: .device))], host(sibling: classCode, driver: driver))
        let condition = result.devices["pci \(Self.hda)"]
        #expect(condition?.isBlocked == !viable)
        if !viable {
            #expect(condition?.description.contains("group 10 is not viable: its other devices 0000:00:1f.0 (\(driver!))") == true)
        }
    }

    /// `group: attach` takes the LPC controller along: it is an endpoint of
    /// the group, not a bridge to be left alone.
    @Test func attachingTheGroupTakesTheLPCController() {
        let result = plan([binding("win11", DeviceClaim(.pci(Self.hda), group: .attach))], host(sibling: 0x060100, driver: "lpc_ich"))
        #expect(summaries(result).contains("bind 0000:00:1f.0 to vfio-pci"))
    }
}
