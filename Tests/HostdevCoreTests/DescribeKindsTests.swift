import HostdevCore
import Testing

/// `describe` of the kinds beside PCI functions: USB, mediated and SCSI
/// devices, on the planner tests' workstation.

let xhci = PCIAddress("0000:00:14.0")!

/// The workstation with its USB receiver (bus 1 device 4, port 1-4) on an
/// xHCI controller in IOMMU group 3, beside a second function of the
/// chipset (an SMBus controller on i801_smbus).
func usbHost(domains: [DomainState]? = nil) -> ObservedHost {
    var observed = workstation(domains: domains)
    let smbus = PCIAddress("0000:00:14.3")!
    var devices = observed.inventory.devices.filter { $0.capability != .usbDevice }
    devices.append(pciDevice(xhci, "8086", "a36d", 0x0c0330, driver: "xhci_hcd", group: 3))
    devices.append(pciDevice(smbus, "8086", "a323", 0x0c0500, driver: "i801_smbus", group: 3))
    devices.append(HostDevice(name: "usb_usb1", capability: .usbDevice, parent: xhci.nodeDeviceName, sysfsPath: "/sys/devices/pci0000:00/0000:00:14.0/usb1",
        driver: "usb", vendorID: "0x1d6b", productID: "0x0002", usb: USBInfo(bus: 1, device: 1, isRootHub: true)))
    devices.append(HostDevice(name: "usb_1_4", capability: .usbDevice, parent: "usb_usb1", sysfsPath: "/sys/devices/pci0000:00/0000:00:14.0/usb1/1-4",
        driver: "usb", vendorID: "0x046d", productID: "0xc52b", vendor: "Logitech", product: "USB Receiver", usb: USBInfo(bus: 1, device: 4)))
    devices.append(HostDevice(name: "usb_1_4_1_0", capability: .usbInterface, parent: "usb_1_4", driver: "usbhid", usb: USBInfo(interfaceNumber: 0)))
    observed.inventory = Inventory(devices: devices, iommuGroups: observed.inventory.iommuGroups + [IOMMUGroup(number: 3, members: [xhci, smbus])])
    return observed
}

func describe(_ query: DeviceQuery, _ observed: ObservedHost, _ bindings: [Binding] = [], ledger: Ledger = Ledger(), history: DeviceHistory? = nil) -> DescribeDocument {
    let manifest = Manifest(bindings: bindings)
    return DescribeDocument(
        query: query, observed: observed, plan: Planner.plan(manifest: manifest, observed: observed, ledger: ledger), ledger: ledger,
        manifest: "m", history: history)
}

@Suite struct DeviceQueryTests {
    /// Each row: what a person types → the device it names (nil: no device form).
    @Test(arguments: [
        ("0c:00.0", DeviceQuery.pci(PCIAddress("0000:0c:00.0")!)),
        ("pci_0000_01_00_0", .pci(gpu)),
        ("usb 1:4", .usbAddress(bus: 1, device: 4)),
        ("usb 046d:c52b", .usbID(vendor: 0x046d, product: 0xc52b)),
        ("usb_1_4", .usbNodeDevice("usb_1_4")),
        ("4B20D080-1b54-4048-85b3-a6a62d165c01", .mdev(vgpuUUID)),
        ("mdev \(vgpuUUID)", .mdev(vgpuUUID)),
        ("scsi 1:0:0:0", .scsi(spareDisk)),
        ("1:0:0:0", .scsi(spareDisk)),
        ("scsi_1_0_0_0", .scsi(spareDisk)),
        ("/dev/disk/by-id/wwn-0x5000c500a1b2c3d4", .scsiPath("/dev/disk/by-id/wwn-0x5000c500a1b2c3d4")),
        ("usb 1:x", nil), ("usb 12345:1", nil), ("scsi 1:0:0", nil), ("win11", nil), ("mdev 4b20d080", nil), ("/dev/", nil),
    ] as [(String, DeviceQuery?)])
    func parsesEveryForm(text: String, query: DeviceQuery?) {
        #expect(DeviceQuery.parse(text) == query)
    }
}

@Suite struct DescribeKindsTests {
    /// Each form names the same receiver: bus:device, its ID (one device has it), libvirt's name.
    @Test(arguments: [DeviceQuery.usbAddress(bus: 1, device: 4), .usbID(vendor: 0x046d, product: 0xc52b), .usbNodeDevice("usb_1_4")])
    func usbDeviceWithItsController(query: DeviceQuery) {
        let domains = [DomainState(name: "win11", state: .running, configHostdevs: [.ours(.usbID(vendor: 0x046d, product: 0xc52b))],
            liveHostdevs: [.ours(.usbID(vendor: 0x046d, product: 0xc52b))]), DomainState(name: "ci", state: .running)]
        let observed = usbHost(domains: domains)
        let document = describe(query, observed, [binding("win11", DeviceClaim(.usbID(vendor: 0x046d, product: 0xc52b, index: nil)))])
        let text = document.text()
        #expect(text.hasPrefix("usb 1:4  usb_1_4\n  what:        Logitech USB Receiver [046d:c52b], bus 1 device 4, port 1-4\n"), "\(text)")
        #expect(text.contains("  controller:  pci 0000:00:14.0 on xhci_hcd\n  IOMMU group: 3, with:\n                 pci 0000:00:14.3 on i801_smbus\n"), "\(text)")
        #expect(text.contains("  driver:      usb; interfaces on usbhid"))
        #expect(text.contains("used by:     running win11 through hostdevd's <hostdev>"))
        #expect(text.contains("claimed by:  win11 in m (named as usb 046d:c52b)"))
        #expect(text.contains("condition:   Ready"))
        let json = document.json.compact()
        #expect(json.hasPrefix(#"{"kind":"describe","device":"usb 1:4","present":true,"deviceKind":"usb","name":"usb_1_4""#), "\(json)")
        #expect(json.contains(#""bus":1,"deviceNumber":4,"port":"1-4","driver":{"now":"usb","interfaces":["usbhid"]}"#))
        #expect(json.contains(#""controller":{"device":"pci 0000:00:14.0","product":null,"driver":"xhci_hcd","iommuGroup":{"number":3,"siblings":[{"device":"pci 0000:00:14.3""#))
        #expect(json.contains(#""claims":[{"vm":"win11","manifest":"m","via":"usb 046d:c52b","attach":true}]"#))
    }

    /// Claimed by bus:device and not yet in the config: the step and the
    /// most pressing of its two conditions (the claim's Ready, the entry's Pending).
    @Test func usbDeviceToBeAdded() {
        let document = describe(.usbAddress(bus: 1, device: 4), usbHost(), [binding("win11", DeviceClaim(.usbAddress(bus: 1, device: 4)))])
        let text = document.text()
        #expect(text.contains("claimed by:  win11 in m (named as usb bus 1 device 4)"), "\(text)")
        #expect(text.contains("condition:   Pending: to be added to win11's config"))
        #expect(text.contains("next step:   add <hostdev> usb 1:4 to win11's config"))
        #expect(text.contains("used by:     nothing hostdevd can see"))
    }

    /// Claimed, not created yet: what it will be, from the claim and the parent's types.
    @Test func mediatedDeviceBeforeItExists() {
        var history = DeviceHistory()
        history.record(Step(.createMdev(vgpu, vm: "win11"), reason: "r"), outcome: .failed("EUSERS"), time: 120)
        let document = describe(.mdev(vgpuUUID), gvtHost(), [binding("win11", mdevClaim())], history: history)
        let text = document.text()
        #expect(text.hasPrefix("mdev \(vgpuUUID)\n  what:        mediated device of type \(gvt4) (GVTg_V5_4: 1920x1200), 1 more can be created\n"), "\(text)")
        #expect(text.contains("  parent:      pci 0000:00:02.0 on i915\n  IOMMU group: 2, alone\n"))
        #expect(text.contains("  exists:      no (not created yet)\n"))
        #expect(text.contains("claimed by:  win11 in m (named as mdev \(vgpuUUID))"))
        #expect(text.contains("condition:   Pending: to be created for win11"))
        #expect(text.contains("next step:   create mdev \(vgpuUUID) (\(gvt4) on 0000:00:02.0) for win11: claimed by win11"))
        #expect(text.contains("history:     00:02:00 UTC failed create mdev"))
        let json = document.json.compact()
        #expect(json.contains(#""deviceKind":"mdev","uuid":"\#(vgpuUUID)","exists":false,"parent":{"device":"pci 0000:00:02.0""#), "\(json)")
        #expect(json.contains(#""type":{"id":"\#(gvt4)","name":"GVTg_V5_4","description":"1920x1200","availableInstances":1,"deviceAPI":"vfio-pci"},"definedByMdevctl":false,"createdByHostdevd":false"#))
    }

    /// The host's own (mdevctl), used by a running VM through a hand-written element, claimed by nobody.
    @Test func mediatedDeviceOfTheHost() {
        var ci = DomainState(name: "ci", state: .running, liveHostdevs: [HostdevEntry(source: .mdev(vgpuUUID))])
        ci.uses = [VMUse(element: "<hostdev type='mdev'>", target: .mdev(vgpuUUID), devices: [igpu])]
        let observed = gvtHost(devices: [MdevInstance(uuid: vgpuUUID, parent: igpu, type: gvt4, definedByMdevctl: true)], domains: [ci])
        let text = describe(.mdev(vgpuUUID), observed).text()
        #expect(text.contains("  exists:      yes, defined by mdevctl (persistent; hostdevd never removes it)\n"), "\(text)")
        #expect(text.contains("used by:     running ci through a hand-written <hostdev>\n"))
        #expect(!text.contains("through <hostdev type='mdev'>"), "the hand-written entry is counted once")
        #expect(text.contains("claimed by:  no binding in m"))
    }

    /// A SCSI disk named by a stable name: its block device, names and the controller.
    @Test func scsiDiskByStableName() {
        let link = "/dev/disk/by-id/wwn-0x5000c500a1b2c3d4"
        var win11 = DomainState(name: "win11", state: .shutoff)
        win11.uses = [VMUse(element: "<disk type='block'>", target: .block(link))]
        let observed = scsiHost(domains: [win11], diskLinks: [link: "sdb"])
        for query in [DeviceQuery.scsiPath(link), .scsi(spareDisk)] {
            let document = describe(query, observed, [binding("win11", DeviceClaim(.scsiPath(link)))])
            let text = document.text()
            #expect(text.hasPrefix("scsi 1:0:0:0  scsi_1_0_0_0\n  what:        (unknown), disk\n  block:       /dev/sdb (\(link)), generic /dev/sg1\n"), "\(text)")
            #expect(text.contains("  controller:  pci 0000:00:17.0 on ahci\n  IOMMU group: 4, alone\n"))
            #expect(text.contains("used by:     shut-off win11 through <disk type='block'> (\(link))"))
            #expect(text.contains("claimed by:  win11 in m (named as scsi \(link))"))
            #expect(text.contains("condition:   Pending: to be added to win11's config"))
            let json = document.json.compact()
            #expect(json.contains(#""deviceKind":"scsi","name":"scsi_1_0_0_0","address":"1:0:0:0","vendor":null,"product":null,"type":"disk","blockDevices":["/dev/sdb"],"generic":"/dev/sg1","stableNames":["\#(link)"]"#), "\(json)")
        }
    }

    /// The disk that holds /srv: the host's use, and the claim blocked by it.
    @Test func scsiDiskTheHostUses() {
        let text = describe(.scsi(rootDisk), scsiHost(), [binding("win11", DeviceClaim(.scsi(rootDisk)))]).text()
        #expect(text.contains("used by:     the host (storage): 0000:00:17.0 → sda → sda1, mounted at /srv"), "\(text)")
        #expect(text.contains("condition:   Blocked: 0:0:0:0 is needed by the host"))
        #expect(!describe(.scsi(spareDisk), scsiHost()).text().contains("used by:     the host"), "the controller's other disk is not used")
    }

    /// Each row: a device that is not there → what describe says, with the nearest one of its kind.
    @Test(arguments: [
        (DeviceQuery.usbAddress(bus: 1, device: 5), "usb 1:5: no such USB device on this host; did you mean 'usb 1:4'?\n"),
        (.usbID(vendor: 0x046d, product: 0xc52c), "usb 046d:c52c: no USB device with this ID on this host; did you mean 'usb 046d:c52b'?\n"),
        (.usbNodeDevice("usb_1_5"), "usb_1_5: no such USB device on this host; did you mean 'usb_1_4'?\n"),
        (.mdev("4b20d080-1b54-4048-85b3-a6a62d165c02"),
            "mdev 4b20d080-1b54-4048-85b3-a6a62d165c02: no such mediated device on this host, and no binding claims it; did you mean 'mdev \(vgpuUUID)'?\n"),
        (.scsi(SCSIAddress(host: 1, bus: 0, target: 2, unit: 0)), "scsi 1:0:2:0: no such SCSI device on this host; did you mean 'scsi 1:0:0:0'?\n"),
        (.scsiPath("/dev/disk/by-id/missing"), "scsi /dev/disk/by-id/missing: /dev/disk/by-id/missing does not exist on this host\n"),
        (.pci(PCIAddress("0000:01:00.2")!), "pci 0000:01:00.2: no such PCI device on this host; did you mean 'pci 0000:01:00.0'?\n"),
    ])
    func absentDevicesSuggestTheNearest(query: DeviceQuery, text: String) {
        var observed = scsiHost()
        observed.inventory = Inventory(
            devices: observed.inventory.devices.filter { $0.capability != .usbDevice } + usbHost().inventory.devices.filter { $0.capability == .usbDevice },
            iommuGroups: observed.inventory.iommuGroups)
        observed.mediated = gvtHost(devices: [MdevInstance(uuid: vgpuUUID, parent: igpu, type: gvt4)]).mediated
        let document = describe(query, observed)
        #expect(document.text() == text)
        #expect(!document.isPresent)
        #expect(document.json.compact().hasPrefix(#"{"kind":"describe","device":"\#(query)","present":false,"reason":"#))
    }

    @Test func aMistypedStableNameSuggestsTheNearest() {
        let observed = scsiHost(diskLinks: ["/dev/disk/by-id/wwn-0x5000c500a1b2c3d4": "sdb"])
        #expect(describe(.scsiPath("/dev/disk/by-id/wwn-0x5000c500a1b2c3d5"), observed).text()
            == "scsi /dev/disk/by-id/wwn-0x5000c500a1b2c3d5: /dev/disk/by-id/wwn-0x5000c500a1b2c3d5 does not exist on this host; did you mean 'scsi /dev/disk/by-id/wwn-0x5000c500a1b2c3d4'?\n")
    }

    @Test func twoReceiversOfOneModelNeedBusAndDevice() {
        var observed = usbHost()
        var second = observed.inventory.device(named: "usb_1_4")!
        second.name = "usb_1_5"
        second.usb = USBInfo(bus: 1, device: 5)
        observed.inventory = Inventory(devices: observed.inventory.devices + [second], iommuGroups: observed.inventory.iommuGroups)
        #expect(describe(.usbID(vendor: 0x046d, product: 0xc52b), observed).text()
            == "usb 046d:c52b: 2 USB devices have this ID (usb 1:4, usb 1:5); name one by bus:device\n")
        // By bus:device, an ID entry no longer names it: only its own.
        let text = describe(.usbAddress(bus: 1, device: 5), observed, [binding("win11", DeviceClaim(.usbAddress(bus: 1, device: 4)))]).text()
        #expect(text.contains("claimed by:  no binding in m"), "\(text)")
    }
}
