import HostdevCore
import Testing

// A workstation as plain values: GPU + audio in group 1 behind a root port,
// iGPU on the console, NIC and NVMe the host needs, two identical I350 ports
// in group 9, an SR-IOV PF with two VFs, a USB receiver; VMs win11 (off) and
// ci (running).
let gpu = PCIAddress("0000:01:00.0")!
let audio = PCIAddress("0000:01:00.1")!
let rootPort = PCIAddress("0000:00:01.0")!
let igpu = PCIAddress("0000:00:02.0")!
let nic = PCIAddress("0000:00:1f.6")!
let nvme = PCIAddress("0000:02:00.0")!
let port0 = PCIAddress("0000:04:00.0")!
let port1 = PCIAddress("0000:04:00.1")!
let pf = PCIAddress("0000:03:00.0")!
let vf0 = PCIAddress("0000:03:10.0")!
let vf1 = PCIAddress("0000:03:10.4")!

func pciDevice(_ a: PCIAddress, _ vendor: String, _ product: String, _ cls: UInt32, driver: String?, group: Int, parent: String = "computer", sriov: SRIOV? = nil, pf: PCIAddress? = nil) -> HostDevice {
    HostDevice(
        name: a.nodeDeviceName, capability: .pci, parent: parent, driver: driver, vendorID: "0x" + vendor, productID: "0x" + product,
        pci: PCIFunction(address: a, classCode: cls, iommuGroup: group, sriov: sriov, physicalFunction: pf))
}

func workstation(drivers: [PCIAddress: String?] = [:], domains: [DomainState]? = nil, hostUses: [HostUse]? = nil) -> ObservedHost {
    var devices = [
        pciDevice(rootPort, "8086", "1901", 0x060400, driver: "pcieport", group: 1),
        pciDevice(gpu, "10de", "1b80", 0x030000, driver: "nouveau", group: 1, parent: rootPort.nodeDeviceName),
        pciDevice(audio, "10de", "10f0", 0x040300, driver: "snd_hda_intel", group: 1, parent: rootPort.nodeDeviceName),
        pciDevice(igpu, "8086", "3e92", 0x030000, driver: "i915", group: 2),
        pciDevice(nvme, "144d", "a808", 0x010802, driver: "nvme", group: 6),
        pciDevice(nic, "8086", "15bc", 0x020000, driver: "e1000e", group: 7),
        pciDevice(port0, "8086", "1521", 0x020000, driver: "igb", group: 9),
        pciDevice(port1, "8086", "1521", 0x020000, driver: "igb", group: 9),
        pciDevice(pf, "8086", "1521", 0x020000, driver: "igb", group: 8, sriov: SRIOV(totalVFs: 7, numVFs: 2, virtualFunctions: [vf0, vf1])),
        pciDevice(vf0, "8086", "1520", 0x020000, driver: "igbvf", group: 20, pf: pf),
        pciDevice(vf1, "8086", "1520", 0x020000, driver: "igbvf", group: 21, pf: pf),
        HostDevice(name: "usb_usb1", capability: .usbDevice, vendorID: "0x1d6b", productID: "0x0002", usb: USBInfo(bus: 1, device: 1, isRootHub: true)),
        HostDevice(name: "usb_1_4", capability: .usbDevice, parent: "usb_usb1", vendorID: "0x046d", productID: "0xc52b", usb: USBInfo(bus: 1, device: 4)),
    ]
    for i in devices.indices {
        if let address = devices[i].pci?.address, let driver = drivers[address] { devices[i].driver = driver }
    }
    let groups = [IOMMUGroup(number: 1, members: [rootPort, gpu, audio]), IOMMUGroup(number: 2, members: [igpu]),
        IOMMUGroup(number: 6, members: [nvme]), IOMMUGroup(number: 7, members: [nic]), IOMMUGroup(number: 8, members: [pf]),
        IOMMUGroup(number: 9, members: [port0, port1]), IOMMUGroup(number: 20, members: [vf0]), IOMMUGroup(number: 21, members: [vf1])]
    return ObservedHost(
        inventory: Inventory(devices: devices, iommuGroups: groups),
        domains: domains ?? [DomainState(name: "win11", state: .shutoff), DomainState(name: "ci", state: .running)],
        hostUses: hostUses ?? [HostUse(address: nvme, reason: "holds / (nvme0n1p1)"), HostUse(address: nic, reason: "eno1 is up with an address"),
            HostUse(address: igpu, reason: "drives the boot console (boot_vga)")])
}

func binding(_ vm: String, _ claims: DeviceClaim..., release: ReleasePolicy = .never, live: Bool = false) -> Binding {
    Binding(vm: vm, release: release, live: live, devices: claims)
}

func plan(
    _ bindings: [Binding], _ observed: ObservedHost = workstation(), ledger: Ledger = Ledger(), host: HostPolicy = HostPolicy(),
    backoff: Backoff = Backoff(), now: Double = 0
) -> Plan {
    Planner.plan(manifest: Manifest(host: host, bindings: bindings), observed: observed, ledger: ledger, backoff: backoff, now: now)
}

func summaries(_ plan: Plan) -> [String] { plan.steps.map(\.action.summary) }

@Suite struct OwnershipAndGroupTests {
    /// One row: group mode → steps.
    @Test(arguments: [
        (GroupMode.attach, [
            "bind 0000:01:00.0 to vfio-pci", "bind 0000:01:00.1 to vfio-pci",
            "add <hostdev> pci 0000:01:00.0 to win11's config", "add <hostdev> pci 0000:01:00.1 to win11's config",
        ]),
        (GroupMode.hold, [
            "bind 0000:01:00.0 to vfio-pci", "bind 0000:01:00.1 to vfio-pci", "add <hostdev> pci 0000:01:00.0 to win11's config",
        ]),
        (GroupMode.device, []),
    ])
    func groupModes(mode: GroupMode, expected: [String]) {
        let result = plan([binding("win11", DeviceClaim(.pci(gpu), group: mode))])
        #expect(summaries(result) == expected)
        if mode == .device {
            guard case .blocked(let why) = result.devices["pci 0000:01:00.0"] else { Issue.record("not blocked"); return }
            #expect(why.contains("group 1 is not viable"))
            #expect(why.contains("0000:01:00.1 (snd_hda_intel)"))
            #expect(result.bindings["win11"]?.isBlocked == true)
        }
    }

    @Test func siblingReasonNamesTheClaim() {
        let result = plan([binding("win11", DeviceClaim(.pci(gpu)))])
        #expect(result.steps[0].reason == "claimed by win11")
        #expect(result.steps[1].reason == "IOMMU group 1 sibling of 0000:01:00.0, owned by win11")
    }

    @Test func deviceModeIsViableWhenSiblingsAreOnVFIO() {
        let result = plan([binding("win11", DeviceClaim(.pci(gpu), group: .device))], workstation(drivers: [audio: "vfio-pci"]))
        #expect(summaries(result) == ["bind 0000:01:00.0 to vfio-pci", "add <hostdev> pci 0000:01:00.0 to win11's config"])
    }

    @Test func bridgesAreNeverClaimed() {
        let result = plan([binding("win11", DeviceClaim(.pci(rootPort)))])
        #expect(result.steps.isEmpty)
        #expect(result.devices["pci 0000:00:01.0"]?.isBlocked == true)
    }

    @Test(arguments: [
        // Two VMs name the two functions of one group: split group.
        ([binding("win11", DeviceClaim(.pci(gpu), group: .device)), binding("ci", DeviceClaim(.pci(audio), group: .device))], "split between VMs ci and win11"),
        // One VM names the GPU (group attach takes the audio), another the audio.
        ([binding("win11", DeviceClaim(.pci(gpu))), binding("ci", DeviceClaim(.pci(audio)))], "claimed by more than one VM (ci, win11)"),
    ])
    func conflictsBlockBothAndTheRestProceeds(bindings: [Binding], reason: String) {
        let result = plan(bindings + [binding("other", DeviceClaim(.pci(port0)))], workstation(domains: [DomainState(name: "win11", state: .shutoff), DomainState(name: "ci", state: .running), DomainState(name: "other", state: .shutoff)]))
        #expect(result.bindings["win11"]?.isBlocked == true)
        #expect(result.bindings["ci"]?.isBlocked == true)
        #expect(result.bindings["win11"]?.description.contains(reason) == true)
        #expect(!summaries(result).contains { $0.contains("0000:01:00") })
        #expect(summaries(result).contains("bind 0000:04:00.0 to vfio-pci"))
        #expect(summaries(result).contains("bind 0000:04:00.1 to vfio-pci"))
    }
}

@Suite struct DriverStateTests {
    /// release × VM state × current driver → bind / restore / nothing.
    @Test(arguments: [
        (ReleasePolicy.never, DomainState.RunState.shutoff, "nouveau", "bind"),
        (.never, .running, "nouveau", "bind"),
        (.onStop, .shutoff, "nouveau", "none"),
        (.onStop, .running, "nouveau", "bind"),
        (.onStop, .paused, "nouveau", "bind"),
        (.onStop, .shutoff, "vfio-pci", "restore"),
        (.never, .shutoff, "vfio-pci", "none"),
    ])
    func desiredDriver(release: ReleasePolicy, state: DomainState.RunState, current: String, expected: String) {
        let observed = workstation(drivers: [gpu: current, audio: current == "vfio-pci" ? "vfio-pci" : "snd_hda_intel"],
            domains: [DomainState(name: "win11", state: state, configHostdevs: [.ours(.pci(gpu)), .ours(.pci(audio))])])
        let ledger = current == "vfio-pci"
            ? Ledger(devices: [gpu: .init(originalDriver: "nouveau", vm: "win11"), audio: .init(originalDriver: "snd_hda_intel", vm: "win11")]) : Ledger()
        let result = plan([binding("win11", DeviceClaim(.pci(gpu)), release: release)], observed, ledger: ledger)
        let gpuSteps = result.steps.filter { step in
            switch step.action {
            case .bind(gpu, _, _), .restore(gpu, _): return true
            default: return false
            }
        }
        switch expected {
        case "bind": #expect(gpuSteps.map(\.action) == [.bind(gpu, driver: "vfio-pci", vm: "win11")])
        case "restore": #expect(gpuSteps.map(\.action) == [.restore(gpu, driver: "nouveau")])
        default: #expect(gpuSteps.isEmpty)
        }
    }

    @Test func readyWhenNothingToDo() {
        let observed = workstation(drivers: [gpu: "vfio-pci", audio: "vfio-pci"],
            domains: [DomainState(name: "win11", state: .shutoff, configHostdevs: [.ours(.pci(gpu)), .ours(.pci(audio))])])
        let result = plan([binding("win11", DeviceClaim(.pci(gpu)))], observed)
        #expect(result.steps.isEmpty)
        #expect(result.bindings["win11"] == .ready)
        #expect(PlanReport(plan: result).text().hasPrefix("No changes. The host matches the manifest."))
    }
}

@Suite struct DomainConfigTests {
    @Test func handWrittenHostdevsAreNeverTouched() {
        let handPCI = HostdevEntry(source: .pci(gpu), alias: "hostdev0", managed: true)
        let handUSB = HostdevEntry(source: .usbID(vendor: 0x046d, product: 0xc52b))
        let stale = HostdevEntry.ours(.pci(port0))
        let observed = workstation(domains: [DomainState(name: "win11", state: .shutoff, configHostdevs: [handPCI, handUSB, stale])])
        let result = plan([binding("win11", DeviceClaim(.pci(gpu)), DeviceClaim(.usbID(vendor: 0x046d, product: 0xc52b, index: nil)))], observed)
        let config = result.steps.filter { if case .attachConfig = $0.action { return true }; if case .detachConfig = $0.action { return true }; return false }
        #expect(config.map(\.action.summary) == [
            "remove <hostdev> pci 0000:04:00.0 from win11's config",
            "add <hostdev> pci 0000:01:00.1 to win11's config",
        ])
        #expect(result.notes.contains { $0.contains("hand-written <hostdev> for pci 0000:01:00.0") })
        #expect(result.notes.contains { $0.contains("hand-written <hostdev> for usb 046d:c52b") })
    }

    @Test func undefinedVMIsPendingAndReserved() {
        let result = plan([binding("ghost", DeviceClaim(.pci(gpu)))])
        #expect(result.bindings["ghost"] == .pending("VM 'ghost' is not defined in libvirt; its devices are reserved per 'release'"))
        #expect(summaries(result) == ["bind 0000:01:00.0 to vfio-pci", "bind 0000:01:00.1 to vfio-pci"])
    }

    @Test func removedBindingLeavesConfigAndReleasesDevices() {
        let observed = workstation(drivers: [gpu: "vfio-pci", audio: "vfio-pci"],
            domains: [DomainState(name: "win11", state: .shutoff, configHostdevs: [.ours(.pci(gpu)), .ours(.pci(audio))])])
        let ledger = Ledger(devices: [gpu: .init(originalDriver: "nouveau", vm: "win11"), audio: .init(originalDriver: "snd_hda_intel", vm: "win11")])
        let result = plan([], observed, ledger: ledger)
        #expect(summaries(result) == [
            "remove <hostdev> pci 0000:01:00.0 from win11's config", "remove <hostdev> pci 0000:01:00.1 from win11's config",
            "release 0000:01:00.0 to nouveau", "release 0000:01:00.1 to snd_hda_intel",
        ])
    }
}

@Suite struct LiveTests {
    @Test(arguments: [(true, true), (false, false)])
    func hotplugOnlyWithLive(live: Bool, plugged: Bool) {
        let result = plan([binding("ci", DeviceClaim(.pci(port0)), live: live)])
        #expect(summaries(result).contains("hotplug pci 0000:04:00.0 into running ci") == plugged)
        #expect(summaries(result).contains("add <hostdev> pci 0000:04:00.0 to ci's config"))
    }

    @Test func unplugBeforeUnbindAndBindBeforePlug() {
        let observed = workstation(drivers: [gpu: "vfio-pci", audio: "vfio-pci"],
            domains: [DomainState(name: "ci", state: .running, configHostdevs: [.ours(.pci(gpu)), .ours(.pci(audio))], liveHostdevs: [.ours(.pci(gpu)), .ours(.pci(audio))])])
        let ledger = Ledger(devices: [gpu: .init(originalDriver: "nouveau", vm: "ci"), audio: .init(originalDriver: "snd_hda_intel", vm: "ci")])
        let result = plan([binding("ci", DeviceClaim(.pci(port0)), live: true)], observed, ledger: ledger)
        #expect(summaries(result) == [
            "unplug pci 0000:01:00.0 from running ci", "unplug pci 0000:01:00.1 from running ci",
            "remove <hostdev> pci 0000:01:00.0 from ci's config", "remove <hostdev> pci 0000:01:00.1 from ci's config",
            "release 0000:01:00.0 to nouveau", "release 0000:01:00.1 to snd_hda_intel",
            "bind 0000:04:00.0 to vfio-pci", "bind 0000:04:00.1 to vfio-pci",
            "add <hostdev> pci 0000:04:00.0 to ci's config", "add <hostdev> pci 0000:04:00.1 to ci's config",
            "hotplug pci 0000:04:00.0 into running ci", "hotplug pci 0000:04:00.1 into running ci",
        ])
    }

    @Test func deviceInUseByRunningVMIsNotReleased() {
        let observed = workstation(drivers: [gpu: "vfio-pci", audio: "vfio-pci"],
            domains: [DomainState(name: "ci", state: .running, liveHostdevs: [HostdevEntry(source: .pci(gpu)), HostdevEntry(source: .pci(audio))])])
        let ledger = Ledger(devices: [gpu: .init(originalDriver: "nouveau", vm: "ci"), audio: .init(originalDriver: "snd_hda_intel", vm: "ci")])
        let result = plan([], observed, ledger: ledger)
        #expect(result.steps.isEmpty)
        #expect(result.devices["pci 0000:01:00.0"] == .pending("orphan in use by running ci; released when it stops"))
    }
}

@Suite struct OrphanTests {
    @Test(arguments: [(OrphanPolicy.release, true), (.keep, false)])
    func orphansFollowThePolicy(policy: OrphanPolicy, released: Bool) {
        let observed = workstation(drivers: [port0: "vfio-pci"])
        let ledger = Ledger(devices: [port0: .init(originalDriver: "igb", vm: "old")])
        let result = plan([], observed, ledger: ledger, host: HostPolicy(orphans: policy))
        #expect(summaries(result) == (released ? ["release 0000:04:00.0 to igb"] : []))
        #expect(result.notes.contains { $0.contains("orphan kept") } == !released)
    }

    @Test func foreignVFIODevicesAreReportedAndLeftAlone() {
        let result = plan([], workstation(drivers: [port1: "vfio-pci"]))
        #expect(result.steps.isEmpty)
        #expect(result.notes == ["0000:04:00.1 is on vfio-pci but was not bound by hostdevd (foreign): left alone"])
    }

    @Test func vanishedLedgerDeviceIsForgotten() {
        let ledger = Ledger(devices: [PCIAddress("0000:09:00.0")!: .init(originalDriver: "igb", vm: "old")])
        #expect(plan([], ledger: ledger).steps.map(\.reason) == ["0000:09:00.0 is gone from the host; forget it"])
    }
}

@Suite struct SafetyTests {
    @Test(arguments: [
        (nic, "0000:00:1f.6 is needed by the host: eno1 is up with an address"),
        (nvme, "0000:02:00.0 is needed by the host: holds / (nvme0n1p1)"),
        (igpu, "0000:00:02.0 is needed by the host: drives the boot console (boot_vga)"),
        (port0, "0000:04:00.0 is needed by the host: listed in host.protect"),
        (port1, "IOMMU group 9 holds 0000:04:00.0, which cannot move (0000:04:00.0 is needed by the host: listed in host.protect); the group moves as one"),
    ])
    func hostNeedsAreNeverDetached(address: PCIAddress, reason: String) {
        let result = plan([binding("win11", DeviceClaim(.pci(address)))], host: HostPolicy(protect: [port0]))
        #expect(result.steps.isEmpty)
        #expect(result.devices["pci \(address)"] == .blocked(reason))
        #expect(result.bindings["win11"]?.description.contains(reason) == true)
    }
}

@Suite struct SelectorTests {
    @Test(arguments: [
        (DeviceSelector.pciID(vendor: 0x10de, device: 0x1b80, index: nil), "bind 0000:01:00.0 to vfio-pci"),
        (.pciID(vendor: 0x8086, device: 0x1521, index: 2), "bind 0000:04:00.1 to vfio-pci"),
        (.pciID(vendor: 0x8086, device: 0x1520, index: 1), "bind 0000:03:10.4 to vfio-pci"),
    ])
    func pciByID(selector: DeviceSelector, step: String) {
        #expect(summaries(plan([binding("win11", DeviceClaim(selector))], workstation(drivers: [audio: "vfio-pci"]))).contains(step))
    }

    @Test func ambiguousIDIsBlockedWithAHint() {
        let result = plan([binding("win11", DeviceClaim(.pciID(vendor: 0x8086, device: 0x1521, index: nil)))])
        #expect(result.steps.isEmpty)
        #expect(result.bindings["win11"]?.description.contains("3 devices match (0000:03:00.0, 0000:04:00.0, 0000:04:00.1); add 'index: N'") == true)
    }

    @Test(arguments: [
        (DeviceSelector.usbID(vendor: 0x046d, product: 0xc52b, index: nil), "add <hostdev> usb 046d:c52b to win11's config"),
        (.usbAddress(bus: 1, device: 4), "add <hostdev> usb 1:4 to win11's config"),
        (.usbID(vendor: 0x046d, product: 0xc52b, index: 0), "add <hostdev> usb 1:4 to win11's config"),
    ])
    func usb(selector: DeviceSelector, step: String) {
        #expect(summaries(plan([binding("win11", DeviceClaim(selector))])) == [step])
    }

    @Test func absentDevicesArePending() {
        let result = plan([binding("win11", DeviceClaim(.usbAddress(bus: 3, device: 9)), DeviceClaim(.pci(PCIAddress("0000:0a:00.0")!)))])
        #expect(result.steps.isEmpty)
        #expect(result.devices["usb bus 3 device 9"] == .pending("no USB device 3:9 on this host"))
        #expect(result.devices["pci 0000:0a:00.0"] == .pending("0000:0a:00.0 is not present on this host"))
        #expect(result.bindings["win11"].map { if case .pending = $0 { return true } else { return false } } == true)
    }
}

@Suite struct SRIOVPlanTests {
    @Test(arguments: [
        (4, "set 0000:03:00.0 sriov_numvfs to 4", nil as String?),
        (2, nil, nil),
        (8, nil, "numvfs 8 is more than 0000:03:00.0 supports (7)"),
    ])
    func numVFs(count: Int, step: String?, blocked: String?) {
        let result = plan([], host: HostPolicy(sriov: [SRIOVSetting(pf: pf, numVFs: count)]))
        #expect(summaries(result) == (step.map { [$0] } ?? []))
        if let blocked { #expect(result.devices["sriov 0000:03:00.0"] == .blocked(blocked)) }
    }

    @Test func vfsInUseBlockAChange() {
        let result = plan([binding("win11", DeviceClaim(.pci(vf1)))], host: HostPolicy(sriov: [SRIOVSetting(pf: pf, numVFs: 0)]))
        #expect(result.devices["sriov 0000:03:00.0"]?.isBlocked == true)
        #expect(!summaries(result).contains { $0.contains("sriov_numvfs") })
    }
}

@Suite struct DeterminismTests {
    /// Dictionaries and sets iterate in a different order each run; a plan must not.
    @Test func samePlanEveryTime() {
        let observed = workstation(drivers: [gpu: "vfio-pci", audio: "vfio-pci", port1: "vfio-pci"],
            domains: [DomainState(name: "ci", state: .running, configHostdevs: [.ours(.pci(gpu)), .ours(.pci(audio))], liveHostdevs: [.ours(.pci(gpu)), .ours(.pci(audio))])])
        let ledger = Ledger(devices: [gpu: .init(originalDriver: "nouveau", vm: "ci"), audio: .init(originalDriver: "snd_hda_intel", vm: "ci")])
        let bindings = [binding("ci", DeviceClaim(.pci(port0)), live: true), binding("win11", DeviceClaim(.pci(nic))), binding("x", DeviceClaim(.usbAddress(bus: 1, device: 4)))]
        let first = plan(bindings, observed, ledger: ledger)
        for _ in 0..<30 { #expect(plan(bindings, observed, ledger: ledger) == first) }
    }
}
