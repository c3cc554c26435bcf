import HostdevCore
import Testing

let sata = PCIAddress("0000:00:17.0")!
let rootDisk = SCSIAddress(host: 0, bus: 0, target: 0, unit: 0)
let spareDisk = SCSIAddress(host: 1, bus: 0, target: 0, unit: 0)
let tape = SCSIAddress(host: 1, bus: 0, target: 1, unit: 0)

/// The workstation with a SATA controller: sda (0:0:0:0) holds a mounted
/// filesystem, sdb (1:0:0:0) is spare, a tape (1:0:1:0) has no disk.
func scsiHost(domains: [DomainState]? = nil, diskLinks: [String: String] = [:], sgLoaded: Bool = true) -> ObservedHost {
    var observed = workstation(domains: domains)
    var devices = observed.inventory.devices
    devices.append(pciDevice(sata, "8086", "a352", 0x010601, driver: "ahci", group: 4))
    for (index, (address, disk)) in [(rootDisk, "sda"), (spareDisk, "sdb"), (tape, nil)].enumerated() {
        let name = "scsi_\(address.host)_\(address.bus)_\(address.target)_\(address.unit)"
        devices.append(HostDevice(name: name, capability: .scsi, parent: sata.nodeDeviceName,
            scsi: SCSIInfo(host: address.host, bus: address.bus, target: address.target, lun: address.unit, type: disk == nil ? "tape" : "disk")))
        if let disk { devices.append(HostDevice(name: "block_\(disk)", capability: .storage, parent: name, deviceNode: "/dev/\(disk)")) }
        if sgLoaded {
            let generic = "sg\(index)"
            devices.append(HostDevice(name: "scsi_generic_\(generic)", capability: .scsiGeneric, parent: name, deviceNode: "/dev/\(generic)"))
        }
    }
    devices.append(HostDevice(name: "block_nvme0n1", capability: .storage, parent: nvme.nodeDeviceName, deviceNode: "/dev/nvme0n1"))
    observed.inventory = Inventory(devices: devices, iommuGroups: observed.inventory.iommuGroups + [IOMMUGroup(number: 4, members: [sata])])
    observed.hostUses.append(HostUse(address: sata, kind: .storage, chain: ["0000:00:17.0", "sda", "sda1"], why: "mounted at /srv"))
    observed.diskLinks = diskLinks
    return observed
}

@Suite struct SCSIPlannerTests {
    @Test func aSpareDiskIsAddedToTheConfig() {
        let result = plan([binding("win11", DeviceClaim(.scsi(spareDisk)))], scsiHost())
        #expect(summaries(result) == ["add <hostdev> scsi 1:0:0:0 to win11's config"])
        #expect(result.steps[0].action == .attachConfig(vm: "win11", .ours(.scsi(spareDisk))))
        // Nothing moves between drivers: the controller stays on ahci.
        #expect(!result.steps.contains { $0.action.movesDriver })
    }

    /// Each row: how the claim names the device → the address it resolves to.
    @Test(arguments: [
        (DeviceSelector.scsiPath("/dev/disk/by-id/wwn-0x5000c500a1b2c3d4"), spareDisk),
        (.scsiPath("/dev/sdb"), spareDisk),
        (.scsi(tape), tape),
    ])
    func resolvesByAddressOrStableName(selector: DeviceSelector, address: SCSIAddress) {
        let result = plan([binding("win11", DeviceClaim(selector))], scsiHost(diskLinks: ["/dev/disk/by-id/wwn-0x5000c500a1b2c3d4": "sdb"]))
        #expect(result.steps.map(\.action) == [.attachConfig(vm: "win11", .ours(.scsi(address)))])
        #expect(result.devices[selector.description]?.isBlocked == false)
    }

    @Test func aDiskTheHostUsesIsRefusedWithTheChain() {
        for selector in [DeviceSelector.scsi(rootDisk), .scsiPath("/dev/sda")] {
            let result = plan([binding("win11", DeviceClaim(selector))], scsiHost())
            #expect(result.steps.isEmpty)
            #expect(result.devices[selector.description] == .blocked(
                "0:0:0:0 is needed by the host: 0000:00:17.0 → sda → sda1, mounted at /srv; a SCSI device the host uses is never passed to a VM"))
        }
    }

    /// The controller's use (sda mounted) does not block its other disk.
    @Test func theControllersOtherUsesDoNotBlock() {
        #expect(plan([binding("win11", DeviceClaim(.scsi(spareDisk)))], scsiHost()).bindings["win11"] == .pending("1 step(s) to apply"))
    }

    @Test(arguments: [
        (DeviceSelector.scsi(SCSIAddress(host: 7, bus: 0, target: 0, unit: 0)), Condition.pending("no SCSI device 7:0:0:0 on this host")),
        (.scsiPath("/dev/disk/by-id/missing"), .pending("/dev/disk/by-id/missing does not exist on this host")),
        (.scsiPath("/dev/nvme0n1"), .blocked("/dev/nvme0n1 is nvme0n1, which is not a SCSI device (its parent is pci_0000_02_00_0); pass it as a PCI device or a <disk> instead")),
    ])
    func unresolvedClaimsSayWhy(selector: DeviceSelector, condition: Condition) {
        let result = plan([binding("win11", DeviceClaim(selector))], scsiHost())
        #expect(result.steps.isEmpty)
        #expect(result.devices[selector.description] == condition)
    }

    /// Named by address for one VM and by path for another: both blocked.
    @Test func oneDiskClaimedTwiceBlocksBoth() {
        let result = plan([binding("win11", DeviceClaim(.scsi(spareDisk))), binding("ci", DeviceClaim(.scsiPath("/dev/sdb")))], scsiHost())
        #expect(!result.steps.contains { if case .attachConfig(_, let e) = $0.action { e.source == .scsi(spareDisk) } else { false } })
        let why = "1:0:0:0 is claimed by more than one VM (ci, win11); a device belongs to one VM"
        #expect(result.devices["scsi 1:0:0:0"] == .blocked(why) && result.devices["scsi /dev/sdb"] == .blocked(why))
    }

    @Test func anotherRunningVMsDeviceIsRefused() {
        let ci = DomainState(name: "ci", state: .running, liveHostdevs: [HostdevEntry(source: .scsi(spareDisk))])
        let result = plan([binding("win11", DeviceClaim(.scsi(spareDisk)))], scsiHost(domains: [DomainState(name: "win11", state: .shutoff), ci]))
        #expect(result.devices["scsi 1:0:0:0"] == .blocked("running ci holds 1:0:0:0; a SCSI device belongs to one VM"))
        #expect(result.steps.isEmpty)
    }

    /// Without the sg module there is no /dev/sgN for libvirt to give QEMU:
    /// the VM would not start, so the entry is not added (nor one already
    /// there removed) and the condition says what to load.
    @Test func withoutAGenericNodeTheClaimWaitsForSg() {
        let result = plan([binding("win11", DeviceClaim(.scsi(spareDisk)))], scsiHost(sgLoaded: false))
        #expect(result.steps.isEmpty)
        #expect(result.devices["scsi 1:0:0:0"] == .pending(
            "1:0:0:0 has no SCSI generic node (/dev/sgN), through which QEMU opens it: modprobe sg (list sg in /etc/modules-load.d/ to load it at boot)"))
        let domains = [DomainState(name: "win11", state: .shutoff, configHostdevs: [.ours(.scsi(spareDisk))])]
        #expect(plan([binding("win11", DeviceClaim(.scsi(spareDisk)))], scsiHost(domains: domains, sgLoaded: false)).steps.isEmpty)
    }

    @Test func releasedByRemovingTheEntry() {
        let domains = [DomainState(name: "win11", state: .shutoff, configHostdevs: [.ours(.scsi(spareDisk))])]
        #expect(summaries(plan([], scsiHost(domains: domains))) == ["remove <hostdev> scsi 1:0:0:0 from win11's config"])
        #expect(plan([binding("win11", DeviceClaim(.scsi(spareDisk)))], scsiHost(domains: domains)).steps.isEmpty)
    }

    /// A claim that became blocked (the host mounted the disk) leaves the
    /// entry already in the config as it is.
    @Test func aBlockedClaimLeavesItsEntry() {
        let domains = [DomainState(name: "win11", state: .shutoff, configHostdevs: [.ours(.scsi(rootDisk))])]
        #expect(plan([binding("win11", DeviceClaim(.scsi(rootDisk)))], scsiHost(domains: domains)).steps.isEmpty)
    }
}
