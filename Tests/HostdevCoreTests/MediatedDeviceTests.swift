import HostdevCore
import HostdevManifest
import Testing

// The workstation's iGPU (0000:00:02.0, on i915, driving the host console)
// as a GVT-g parent with two types.
let gvt4 = "i915-GVTg_V5_4"
let gvt8 = "i915-GVTg_V5_8"
let vgpuUUID = "4b20d080-1b54-4048-85b3-a6a62d165c01"
let vgpu = MdevSpec(uuid: vgpuUUID, parent: igpu, type: gvt4)

func gvtHost(
    left: Int = 1, devices: [MdevInstance] = [], mdevctl: Set<String> = [], domains: [DomainState]? = nil
) -> ObservedHost {
    var observed = workstation(domains: domains)
    observed.mediated = MediatedDevices(
        parents: [igpu: [MdevType(id: gvt4, name: "GVTg_V5_4", description: "1920x1200", availableInstances: left, deviceAPI: "vfio-pci"),
            MdevType(id: gvt8, availableInstances: 4, deviceAPI: "vfio-pci")]],
        devices: devices, mdevctlDefined: mdevctl)
    return observed
}

func mdevClaim(_ spec: MdevSpec = vgpu) -> DeviceClaim { DeviceClaim(.mdev(spec)) }

/// A running domain that holds `uuid` through hostdevd's own `<hostdev>`.
func running(_ name: String, holding uuid: String) -> DomainState {
    var domain = DomainState(name: name, state: .running, configHostdevs: [.ours(.mdev(uuid))], liveHostdevs: [.ours(.mdev(uuid))])
    domain.uses = []
    return domain
}

@Suite struct MediatedDevicePlannerTests {
    @Test func createsTheDeviceThenAddsItToTheConfig() {
        let result = plan([binding("win11", mdevClaim())], gvtHost())
        #expect(summaries(result) == [
            "create mdev \(vgpuUUID) (\(gvt4) on 0000:00:02.0) for win11",
            "add <hostdev> mdev \(vgpuUUID) to win11's config",
        ])
        #expect(result.devices["mdev \(vgpuUUID)"] == .pending("to be created for win11"))
        #expect(result.bindings["win11"] == .pending("2 step(s) to apply"))
    }

    /// The parent's host use (the console) does not matter: it stays on i915.
    @Test func theParentsHostUseDoesNotBlock() {
        let result = plan([binding("win11", mdevClaim())], gvtHost())
        #expect(!result.bindings["win11"]!.isBlocked)
        #expect(!result.steps.contains { if case .bind = $0.action { true } else { false } })
    }

    @Test func convergedWhenItExistsAndIsInTheConfig() {
        let domains = [DomainState(name: "win11", state: .shutoff, configHostdevs: [.ours(.mdev(vgpuUUID))])]
        let observed = gvtHost(devices: [MdevInstance(uuid: vgpuUUID, parent: igpu, type: gvt4)], domains: domains)
        let ledger = Ledger(mdevs: [vgpuUUID: .init(parent: igpu, type: gvt4, vm: "win11")])
        let result = plan([binding("win11", mdevClaim())], observed, ledger: ledger)
        #expect(result.steps.isEmpty)
        #expect(result.bindings["win11"] == .ready)
    }

    /// Each row: what is wrong → the blocked reason.
    @Test(arguments: [
        (MdevSpec(uuid: vgpuUUID, parent: igpu, type: "i915-GVTg_V5_1"),
            "0000:00:02.0 offers no type 'i915-GVTg_V5_1'; it offers i915-GVTg_V5_4, i915-GVTg_V5_8"),
        (MdevSpec(uuid: vgpuUUID, parent: nic, type: gvt4),
            "0000:00:1f.6 offers no mediated devices (no mdev_supported_types; is its driver loaded with mediated-device support, e.g. i915 with enable_gvt=1 or the NVIDIA vGPU host driver?)"),
    ])
    func blockedWhenTheParentCannotMakeIt(spec: MdevSpec, reason: String) {
        let result = plan([binding("win11", mdevClaim(spec))], gvtHost())
        #expect(result.steps.isEmpty)
        #expect(result.devices[spec.description] == .blocked(reason))
        #expect(result.bindings["win11"] == .blocked(reason))
    }

    @Test func blockedWhenNoInstanceIsLeft() {
        let result = plan([binding("win11", mdevClaim())], gvtHost(left: 0))
        #expect(!result.steps.contains { if case .createMdev = $0.action { true } else { false } })
        #expect(result.devices[vgpu.description] == .blocked(
            "0000:00:02.0 has no instances of \(gvt4) left (available_instances 0); remove another \(gvt4) device or choose a smaller type"))
    }

    @Test func blockedWhenTheUUIDExistsAsAnotherType() {
        let observed = gvtHost(devices: [MdevInstance(uuid: vgpuUUID, parent: igpu, type: gvt8)])
        let result = plan([binding("win11", mdevClaim())], observed)
        #expect(result.steps.isEmpty)
        #expect(result.devices[vgpu.description]?.isBlocked == true)
    }

    @Test func blockedWhenItsParentIsClaimedForPassthrough() {
        let result = plan([binding("win11", mdevClaim()), binding("ci", DeviceClaim(.pci(igpu), force: [.console]))], gvtHost())
        #expect(result.devices[vgpu.description] == .blocked(
            "its parent 0000:00:02.0 is claimed for passthrough by ci; a parent of mediated devices stays on its host driver"))
    }

    @Test func blockedWhileAnotherRunningVMUsesIt() {
        let observed = gvtHost(devices: [MdevInstance(uuid: vgpuUUID, parent: igpu, type: gvt4)], domains: [
            DomainState(name: "win11", state: .shutoff), running("ci", holding: vgpuUUID),
        ])
        let result = plan([binding("win11", mdevClaim())], observed)
        #expect(result.devices[vgpu.description] == .blocked("running ci uses \(vgpuUUID); a mediated device belongs to one VM"))
        #expect(result.steps.isEmpty)
    }

    /// Not observed (an old snapshot): nothing created, nothing removed.
    @Test func notObservedPlansNothing() {
        let ledger = Ledger(mdevs: ["11111111-2222-3333-4444-555555555555": .init(parent: igpu, type: gvt4, vm: "old")])
        let result = plan([binding("win11", mdevClaim())], workstation(), ledger: ledger)
        #expect(result.steps.isEmpty)
        #expect(result.devices[vgpu.description] == .pending("mediated devices were not observed (an older snapshot); nothing created"))
    }

    @Test func releaseOnStopRemovesItWhileShutOffAndCreatesItWhenActive() {
        let exists = [MdevInstance(uuid: vgpuUUID, parent: igpu, type: gvt4)]
        let ledger = Ledger(mdevs: [vgpuUUID: .init(parent: igpu, type: gvt4, vm: "win11")])
        let stopped = plan([binding("win11", mdevClaim(), release: .onStop)], gvtHost(devices: exists), ledger: ledger)
        #expect(summaries(stopped).first == "remove mdev \(vgpuUUID) (\(gvt4) on 0000:00:02.0)")
        // The config entry stays: it names the device libvirt needs at start.
        #expect(summaries(stopped).contains("add <hostdev> mdev \(vgpuUUID) to win11's config"))
        let starting = gvtHost(domains: [DomainState(name: "win11", state: .running)])
        #expect(summaries(plan([binding("win11", mdevClaim(), release: .onStop)], starting)).first
            == "create mdev \(vgpuUUID) (\(gvt4) on 0000:00:02.0) for win11")
    }

    /// One created by someone else and claimed: used, never removed.
    @Test func anAdoptedDeviceIsNeverRemoved() {
        let exists = [MdevInstance(uuid: vgpuUUID, parent: igpu, type: gvt4)]
        let stopped = plan([binding("win11", mdevClaim(), release: .onStop)], gvtHost(devices: exists))
        #expect(!stopped.steps.contains { if case .removeMdev = $0.action { true } else { false } })
        #expect(plan([], gvtHost(devices: exists)).steps.isEmpty)
    }
}

@Suite struct MediatedDeviceOrphanTests {
    let ledger = Ledger(mdevs: [vgpuUUID: .init(parent: igpu, type: gvt4, vm: "win11")])
    let exists = [MdevInstance(uuid: vgpuUUID, parent: igpu, type: gvt4)]

    @Test func anOrphanIsRemoved() {
        let result = plan([], gvtHost(devices: exists), ledger: ledger)
        #expect(result.steps.map(\.action) == [.removeMdev(vgpu, destroy: true)])
        #expect(result.steps[0].reason == "no binding claims it any more (was win11); removed")
    }

    @Test func anOrphanGoneFromTheHostIsForgotten() {
        #expect(plan([], gvtHost(), ledger: ledger).steps.map(\.action) == [.removeMdev(vgpu, destroy: false)])
    }

    /// mdevctl defines it now: the host's own, so it is forgotten, not removed.
    @Test func anOrphanMdevctlDefinesIsAHostUse() {
        let result = plan([], gvtHost(devices: exists, mdevctl: [vgpuUUID]), ledger: ledger)
        #expect(result.steps.map(\.action) == [.removeMdev(vgpu, destroy: false)])
        #expect(result.steps[0].action.summary == "forget mdev \(vgpuUUID) (left on the host)")
    }

    @Test func keptWhenOrphansAreKept() {
        let result = plan([], gvtHost(devices: exists), ledger: ledger, host: HostPolicy(orphans: .keep))
        #expect(result.steps.isEmpty)
        #expect(result.notes.contains("mdev \(vgpuUUID) is an orphan kept on the host (host.orphans: keep)"))
    }

    /// A running VM holds it (its binding gone, never live: true): removed when it stops.
    @Test func notRemovedWhileARunningVMHoldsIt() {
        let result = plan([], gvtHost(devices: exists, domains: [running("win11", holding: vgpuUUID)]), ledger: ledger)
        #expect(!result.steps.contains { if case .removeMdev = $0.action { true } else { false } })
        #expect(result.devices[vgpu.description] == .pending("orphan in use by running win11; removed when it stops"))
    }

    /// A live binding's device is unplugged, then removed, in one plan.
    @Test func unpluggedThenRemovedWhenItsLiveBindingGoes() {
        var liveLedger = ledger
        liveLedger.liveVMs = ["win11"]
        let result = plan([], gvtHost(devices: exists, domains: [running("win11", holding: vgpuUUID)]), ledger: liveLedger)
        #expect(summaries(result) == [
            "unplug mdev \(vgpuUUID) from running win11", "remove <hostdev> mdev \(vgpuUUID) from win11's config",
            "remove mdev \(vgpuUUID) (\(gvt4) on 0000:00:02.0)",
        ])
    }

    @Test func libvirtUnreachableRemovesNothing() {
        var observed = gvtHost(devices: exists)
        observed.coverage = .unreachable("test")
        observed.domains = []
        let result = plan([], observed, ledger: ledger)
        #expect(result.steps.isEmpty)
        #expect(result.devices[vgpu.description]
            == .pending("orphan: libvirt unreachable (test): cannot tell whether a VM uses it; not removed"))
    }
}

@Suite struct MediatedDeviceManifestTests {
    func claims(_ devices: String, vm: String = "a") throws -> [MdevSpec] {
        let manifest = try decode("version: 1\nbindings:\n  - vm: \(vm)\n    devices:\n" + devices)
        return manifest.bindings[0].devices.compactMap { if case .mdev(let spec) = $0.selector { spec } else { nil } }
    }

    @Test func aGivenUUIDIsKeptLowerCased() throws {
        let specs = try claims("      - mdev: {parent: \"00:02.0\", type: \(gvt4), uuid: \"4B20D080-1B54-4048-85B3-A6A62D165C01\"}\n")
        #expect(specs == [vgpu])
    }

    /// Derived UUIDs: stable for the same VM, parent, type and position;
    /// different for another position, VM or type; an entry with its own
    /// UUID or of another type does not shift the others.
    @Test func derivedUUIDsAreStableAndDistinct() throws {
        let two = "      - mdev: {parent: \"00:02.0\", type: \(gvt4)}\n      - mdev: {parent: \"00:02.0\", type: \(gvt4)}\n"
        let first = try claims(two)
        #expect(first.count == 2 && first[0].uuid != first[1].uuid)
        #expect(try claims(two) == first)
        let shuffled = try claims("      - mdev: {parent: \"00:02.0\", type: \(gvt8)}\n      - mdev: {parent: \"00:02.0\", type: \(gvt4), uuid: \"\(vgpuUUID)\"}\n" + two)
        #expect(Array(shuffled.suffix(2)) == first)
        #expect(try claims(two, vm: "b")[0].uuid != first[0].uuid)
        for spec in first {
            #expect(MdevSpec.normalizedUUID(spec.uuid) == spec.uuid)
            // RFC 9562: version 8, variant 10.
            let chars = Array(spec.uuid)
            #expect(chars[14] == "8" && "89ab".contains(chars[19]))
        }
        #expect(MdevSpec.derivedUUID(vm: "a", parent: igpu, type: gvt4, ordinal: 0) == first[0].uuid)
    }

    @Test(arguments: [("4b20d080-1b54-4048-85b3-a6a62d165c01", true), ("4b20d0801b54404885b3a6a62d165c01", false),
        ("4b20d080-1b54-4048-85b3-a6a62d165c0g", false), ("", false)])
    func uuidForms(text: String, valid: Bool) {
        #expect((MdevSpec.normalizedUUID(text) != nil) == valid)
    }
}

@Suite struct MediatedDeviceReportTests {
    @Test func devicesListsAParentsTypesWithInstancesLeft() {
        var observed = workstation()
        var devices = observed.inventory.devices
        let i = devices.firstIndex { $0.pci?.address == igpu }!
        devices[i].pci?.mdevTypes = [MdevType(id: gvt4, name: "GVTg_V5_4", description: "1920x1200", availableInstances: 1, deviceAPI: "vfio-pci")]
        observed.inventory = Inventory(devices: devices, iommuGroups: observed.inventory.iommuGroups)
        let report = InventoryReport(inventory: observed.inventory)
        #expect(report.render(.tree).contains("mdev_types=\(gvt4):1"))
        let json = report.render(.json).filter { !$0.isWhitespace }
        #expect(json.contains(#""mdev_types":[{"type":"i915-GVTg_V5_4","name":"GVTg_V5_4","description":"1920x1200","available_instances":1,"device_api":"vfio-pci"}]"#))
    }
}
