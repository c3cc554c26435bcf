import Foundation
import HostdevCore
import Testing

/// The planner's first rule: a device moves, and a domain is edited, only
/// when every fact the change depends on is known. Each row is one kind of
/// action; each is planned when libvirt answered, and held back, with the
/// unknown fact named, when it did not (or when only another VM's hook
/// speaks).
struct UnknownsCase: Sendable, CustomStringConvertible {
    var name: String
    var bindings: [Binding]
    var observed: ObservedHost
    var ledger: Ledger = Ledger()
    var host: HostPolicy = HostPolicy()
    /// The step planned when every domain is known.
    var step: String
    /// The condition key that must name the unknown fact.
    var key: String
    var description: String { name }
}

let onStopLedger = Ledger(devices: [gpu: .init(originalDriver: "nouveau", vm: "win11"), audio: .init(originalDriver: "snd_hda_intel", vm: "win11")])

let unknownsCases: [UnknownsCase] = [
    UnknownsCase(
        name: "bind for release: never", bindings: [binding("win11", DeviceClaim(.pci(port0), group: .device))],
        observed: workstation(drivers: [port1: "vfio-pci"]), step: "bind 0000:04:00.0 to vfio-pci", key: "pci 0000:04:00.0"),
    UnknownsCase(
        name: "bind for onStop when the VM runs", bindings: [binding("ci", DeviceClaim(.pci(port0), group: .device), release: .onStop)],
        observed: workstation(drivers: [port1: "vfio-pci"]), step: "bind 0000:04:00.0 to vfio-pci", key: "pci 0000:04:00.0"),
    UnknownsCase(
        name: "release for onStop when the VM is off", bindings: [binding("win11", DeviceClaim(.pci(gpu)), release: .onStop)],
        observed: workstation(drivers: [gpu: "vfio-pci", audio: "vfio-pci"]), ledger: onStopLedger,
        step: "release 0000:01:00.0 to nouveau", key: "pci 0000:01:00.0"),
    UnknownsCase(
        name: "orphan release", bindings: [], observed: workstation(drivers: [port0: "vfio-pci"]),
        ledger: Ledger(devices: [port0: .init(originalDriver: "igb", vm: "old")]), step: "release 0000:04:00.0 to igb", key: "pci 0000:04:00.0"),
    UnknownsCase(
        name: "numvfs change", bindings: [], observed: workstation(), host: HostPolicy(sriov: [SRIOVSetting(pf: pf, numVFs: 4)]),
        step: "set 0000:03:00.0 sriov_numvfs to 4", key: "sriov 0000:03:00.0"),
]

@Suite struct PlannerUnknownsTests {
    @Test(arguments: unknownsCases)
    func plannedWhenKnown(_ row: UnknownsCase) {
        let result = plan(row.bindings, row.observed, ledger: row.ledger, host: row.host)
        #expect(summaries(result).contains(row.step), "\(summaries(result))")
    }

    @Test(arguments: unknownsCases)
    func heldBackWhenLibvirtIsUnreachable(_ row: UnknownsCase) {
        var observed = row.observed
        observed.coverage = .unreachable("connecting to qemu:///system failed")
        observed.domains = []
        let result = plan(row.bindings, observed, ledger: row.ledger, host: row.host)
        #expect(result.steps.filter { $0.action.movesDriver }.isEmpty, "\(summaries(result))")
        #expect(result.steps.isEmpty, "no domain edit either: \(summaries(result))")
        let condition = result.devices[row.key]?.description ?? ""
        #expect(condition.contains("libvirt unreachable (connecting to qemu:///system failed)"), "\(condition)")
    }

    @Test(arguments: unknownsCases)
    func heldBackInAnotherVMsHook(_ row: UnknownsCase) {
        var observed = row.observed
        observed.coverage = .hook("other")
        observed.domains = [DomainState(name: "other", state: .running)]
        let result = plan(row.bindings, observed, ledger: row.ledger, host: row.host)
        #expect(result.steps.isEmpty, "\(summaries(result))")
        #expect(result.devices[row.key]?.description.contains("only other's state is known here") == true)
    }

    @Test func theUnknownVMIsNamed() {
        var observed = workstation(drivers: [gpu: "vfio-pci", audio: "vfio-pci"])
        observed.coverage = .unreachable("libvirtd is not running")
        observed.domains = []
        let result = plan([binding("win11", DeviceClaim(.pci(gpu)), release: .onStop)], observed, ledger: onStopLedger)
        #expect(result.devices["pci 0000:01:00.0"] == .pending(
            "libvirt unreachable (libvirtd is not running): cannot tell whether win11 runs; nothing bound or released"))
        #expect(result.verdict == .waiting)
    }

    @Test func theHookedVMsOwnMovesAreKnown() {
        var observed = workstation(domains: [DomainState(name: "win11", state: .running)])
        observed.coverage = .hook("win11")
        let result = plan([binding("win11", DeviceClaim(.pci(gpu)), release: .onStop)], observed)
        #expect(summaries(result) == ["bind 0000:01:00.0 to vfio-pci", "bind 0000:01:00.1 to vfio-pci"])
        var stopped = workstation(drivers: [gpu: "vfio-pci", audio: "vfio-pci"], domains: [DomainState(name: "win11", state: .shutoff)])
        stopped.coverage = .hook("win11")
        let release = plan([binding("win11", DeviceClaim(.pci(gpu)), release: .onStop)], stopped, ledger: onStopLedger)
        #expect(summaries(release) == ["release 0000:01:00.0 to nouveau", "release 0000:01:00.1 to snd_hda_intel"])
    }

    /// libvirt's own notion of active, not a reading of the state: QEMU
    /// still holds the devices of a domain shutting down, crashed with
    /// on_crash=preserve, suspended to memory, or without a state.
    @Test(arguments: [DomainState.RunState.shuttingDown, .crashed, .suspended, .other])
    func activeDomainsKeepTheirDevices(_ state: DomainState.RunState) {
        let observed = workstation(drivers: [gpu: "vfio-pci", audio: "vfio-pci"], domains: [DomainState(name: "win11", state: state, active: true)])
        let result = plan([binding("win11", DeviceClaim(.pci(gpu)), release: .onStop)], observed, ledger: onStopLedger)
        #expect(result.steps.filter(\.action.movesDriver).isEmpty, "\(summaries(result))")
    }

    @Test func snapshotsFromBeforeCoverageStillDecode() throws {
        var old = try #require(try JSONSerialization.jsonObject(with: try JSONEncoder().encode(workstation())) as? [String: Any])
        old["coverage"] = nil
        old["libvirtReachable"] = false
        let decoded = try JSONDecoder().decode(ObservedHost.self, from: try JSONSerialization.data(withJSONObject: old))
        #expect(decoded.coverage == .unreachable("libvirt was unreachable when the snapshot was taken"))
    }
}

@Suite struct GentleRemovalTests {
    let running = workstation(
        drivers: [gpu: "vfio-pci", audio: "vfio-pci"],
        domains: [DomainState(name: "ci", state: .running, configHostdevs: [.ours(.pci(gpu)), .ours(.pci(audio))], liveHostdevs: [.ours(.pci(gpu)), .ours(.pci(audio))])])
    let ledger = Ledger(devices: [gpu: .init(originalDriver: "nouveau", vm: "ci"), audio: .init(originalDriver: "snd_hda_intel", vm: "ci")])

    /// A VM-name typo in a GitOps change removes the binding: its devices
    /// stay in the running guest, leave its config, and go back to the host
    /// when it stops.
    @Test func removedBindingNeverUnplugsFromARunningVM() {
        let result = plan([], running, ledger: ledger)
        #expect(!summaries(result).contains { $0.hasPrefix("unplug") }, "\(summaries(result))")
        #expect(!summaries(result).contains { $0.hasPrefix("release") }, "\(summaries(result))")
        #expect(summaries(result) == ["remove <hostdev> pci 0000:01:00.0 from ci's config", "remove <hostdev> pci 0000:01:00.1 from ci's config"])
        #expect(result.devices["pci 0000:01:00.0"]?.description.contains("released when ci stops") == true)
    }

    @Test func removedLiveBindingUnplugs() {
        var remembered = ledger
        remembered.liveVMs = ["ci"]
        let result = plan([], running, ledger: remembered)
        #expect(summaries(result).prefix(2) == ["unplug pci 0000:01:00.0 from running ci", "unplug pci 0000:01:00.1 from running ci"])
        #expect(summaries(result).contains("release 0000:01:00.0 to nouveau"))
    }

    @Test func liveBindingsAreRemembered() {
        #expect(plan([binding("ci", DeviceClaim(.pci(gpu)), live: true)], running, ledger: ledger).liveVMs == ["ci"])
        var remembered = ledger
        remembered.liveVMs = ["ci", "gone"]
        // Kept while the VM still holds our entries; forgotten after.
        #expect(plan([], running, ledger: remembered).liveVMs == ["ci"])
    }
}

@Suite struct BackoffTests {
    let failing = Backoff.failing("pci 0000:04:00.0", at: 1_000)

    @Test func aFailedDeviceWaitsForItsRetryTime() {
        let bindings = [binding("win11", DeviceClaim(.pci(port0)))]
        let now = plan(bindings, backoff: failing, now: 1_000.5)
        #expect(!summaries(now).contains { $0.contains("0000:04:00.0") }, "\(summaries(now))")
        #expect(now.devices["pci 0000:04:00.0"] == .pending("retrying at 00:16:41 UTC (attempt 2); last error: driver will not let go"))
        let later = plan(bindings, backoff: failing, now: 1_001)
        #expect(summaries(later).contains("bind 0000:04:00.0 to vfio-pci"))
    }

    @Test(arguments: [(1, 1.0), (2, 2.0), (3, 4.0), (9, 256.0), (10, 300.0), (40, 300.0)])
    func delaysDouble(failures: Int, seconds: Double) {
        #expect(Backoff.delay(afterFailures: failures) == seconds)
    }

    @Test(arguments: [(1, 1.0), (4, 8.0), (5, 10.0), (40, 10.0)])
    func aReleaseWaitingOnAHolderIsTriedAtLeastEveryTenSeconds(failures: Int, seconds: Double) {
        var backoff = Backoff()
        for _ in 0..<failures { backoff.failed("pci 0000:04:00.0", error: "held", now: 0, maximumDelay: Backoff.holderDelay) }
        #expect(backoff.waiting("pci 0000:04:00.0", now: 0)?.notBefore == seconds)
    }

    @Test func successForgives() {
        var backoff = failing
        backoff.succeeded("pci 0000:04:00.0")
        #expect(backoff.waiting("pci 0000:04:00.0", now: 1_000) == nil)
        #expect(failing.nextRetry(after: 1_000) == 1_001)
    }
}

@Suite struct ReleaseByHandTests {
    @Test func releasedDeviceGoesBackAndLeavesTheConfig() {
        let observed = workstation(
            drivers: [gpu: "vfio-pci", audio: "vfio-pci"],
            domains: [DomainState(name: "win11", state: .shutoff, configHostdevs: [.ours(.pci(gpu)), .ours(.pci(audio))])])
        let manifest = Manifest(host: HostPolicy(), bindings: [binding("win11", DeviceClaim(.pci(gpu)))], fingerprint: "f1")
        var ledger = Ledger(devices: [gpu: .init(originalDriver: "nouveau", vm: "win11"), audio: .init(originalDriver: "snd_hda_intel", vm: "win11")])
        ledger.released = [.pci(gpu): "f1"]
        let result = Planner.plan(manifest: manifest, observed: observed, ledger: ledger)
        #expect(summaries(result) == ["remove <hostdev> pci 0000:01:00.0 from win11's config", "release 0000:01:00.0 to nouveau"])
        #expect(result.devices["pci 0000:01:00.0"]?.description.contains("bound again after the next manifest edit") == true)
        // After the next edit the release no longer holds.
        let edited = Manifest(host: HostPolicy(), bindings: manifest.bindings, fingerprint: "f2")
        #expect(!summaries(Planner.plan(manifest: edited, observed: observed, ledger: ledger)).contains { $0.hasPrefix("release") })
    }

    @Test func aDeviceOnAHostDriverIsNeverReleased() {
        var ledger = Ledger()
        ledger.released = [.pci(nvme): ""]
        let result = Planner.plan(manifest: Manifest(host: HostPolicy(), bindings: [], fingerprint: ""), observed: workstation(), ledger: ledger)
        #expect(result.steps.isEmpty)
    }
}

@Suite struct VerdictTests {
    @Test func verdicts() {
        #expect(Plan(steps: [], bindings: ["a": .ready]).verdict == .converged)
        #expect(Plan(steps: [Step(.restore(gpu, driver: nil), reason: "")], bindings: ["a": .ready]).verdict == .changes)
        #expect(Plan(steps: [], bindings: ["a": .ready, "b": .blocked("x")]).verdict == .waiting)
        #expect(Plan(steps: [], bindings: ["a": .pending("x")]).verdict.exitCode == 3)
    }

    @Test func anInterruptedStepIsNoted() {
        let ledger = Ledger(intent: .bind(port0, driver: "vfio-pci", vm: "win11"))
        #expect(plan([], ledger: ledger).notes.contains("a step was interrupted (bind 0000:04:00.0 to vfio-pci); this plan finishes or undoes it"))
    }
}

extension Backoff {
    static func failing(_ key: String, at now: Double) -> Backoff {
        var backoff = Backoff()
        backoff.failed(key, error: "driver will not let go", now: now)
        return backoff
    }
}

/// Every element through which a VM uses a device keeps that device from
/// being moved or given to another VM while the VM runs.
@Suite struct VMUseTests {
    @Test(arguments: [
        (VMUse(element: "<interface type='hostdev'>", target: .pci(port0), devices: [port0]), "<interface type='hostdev'>"),
        (VMUse(element: "<interface type='direct'>", target: .netdev("enp4s0f0"), devices: [port0]), "<interface type='direct'> (enp4s0f0)"),
        (VMUse(element: "<disk type='block'>", target: .block("/dev/sdb"), devices: [port0]), "<disk type='block'> (/dev/sdb)"),
        (VMUse(element: "<hostdev type='scsi'>", target: .scsiHost("scsi_host3"), devices: [port0]), "<hostdev type='scsi'> (scsi_host3)"),
        (VMUse(element: "<hostdev type='mdev'>", target: .mdev("4b20d080-1b54-4048-85b3-a6a62d165c01"), devices: [port0]),
            "<hostdev type='mdev'> (4b20d080-1b54-4048-85b3-a6a62d165c01)"),
    ])
    func aRunningVMsDeviceIsNeverGivenToAnother(use: VMUse, shown: String) {
        var ci = DomainState(name: "ci", state: .running)
        ci.uses = [use]
        let observed = workstation(domains: [DomainState(name: "win11", state: .shutoff), ci])
        let result = plan([binding("win11", DeviceClaim(.pci(port0)))], observed)
        #expect(!summaries(result).contains { $0.contains("0000:04:00.0") }, "\(summaries(result))")
        #expect(result.devices["pci 0000:04:00.0"] == .blocked("running ci holds 0000:04:00.0 through \(shown)"))
        // Its group sibling moves with it, or not at all.
        #expect(result.devices["pci 0000:04:00.1"]?.description.contains("the group moves as one") == true)
    }

    @Test func aDeviceARunningVMUsesIsNotReleased() {
        var ci = DomainState(name: "ci", state: .running)
        ci.uses = [VMUse(element: "<interface type='hostdev'>", target: .pci(vf0), devices: [vf0])]
        let result = plan([], workstation(drivers: [vf0: "vfio-pci"], domains: [ci]), ledger: Ledger(devices: [vf0: .init(originalDriver: "igbvf", vm: "old")]))
        #expect(result.steps.isEmpty)
        #expect(result.devices["pci 0000:03:10.0"] == .pending("orphan in use by running ci; released when it stops"))
    }

    @Test func theSameVMsInterfaceStandsForOurHostdev() {
        var win11 = DomainState(name: "win11", state: .shutoff)
        win11.uses = [VMUse(element: "<interface type='hostdev'>", target: .pci(vf0), devices: [vf0])]
        let result = plan([binding("win11", DeviceClaim(.pci(vf0)))], workstation(domains: [win11]))
        #expect(!summaries(result).contains { $0.hasPrefix("add <hostdev>") }, "\(summaries(result))")
    }

    /// One physical USB device, written by ID in the manifest and by
    /// bus/device by hand: never a second entry.
    @Test func usbIsOneDeviceWhicheverFormNamesIt() {
        let win11 = DomainState(name: "win11", state: .shutoff, configHostdevs: [HostdevEntry(source: .usbAddress(bus: 1, device: 4))])
        let result = plan([binding("win11", DeviceClaim(.usbID(vendor: 0x046d, product: 0xc52b, index: nil)))], workstation(domains: [win11]))
        #expect(result.steps.isEmpty, "\(summaries(result))")
        #expect(result.notes.contains { $0.contains("hand-written <hostdev> for usb 046d:c52b") })
    }

    @Test func handWrittenManagedYesGetsANote() {
        let win11 = DomainState(name: "win11", state: .shutoff, configHostdevs: [HostdevEntry(source: .pci(port0), managed: true)])
        let result = plan([binding("win11", DeviceClaim(.pci(port0)))], workstation(domains: [win11]))
        #expect(result.notes.contains("win11 has a hand-written managed='yes' <hostdev> for 0000:04:00.0: libvirt gives it back to the host driver when win11 stops"))
    }
}

@Suite struct VFIOLoadedTests {
    @Test func noBindIsPlannedWithoutTheDriver() {
        var observed = workstation()
        observed.vfioLoaded = false
        let result = plan([binding("win11", DeviceClaim(.pci(port0)))], observed)
        #expect(!summaries(result).contains { $0.contains("0000:04:00.0") }, "\(summaries(result))")
        #expect(result.devices["pci 0000:04:00.0"]?.description.contains("the vfio-pci driver is not loaded: modprobe vfio-pci") == true)
        observed.vfioLoaded = true
        #expect(summaries(plan([binding("win11", DeviceClaim(.pci(port0)))], observed)).contains("bind 0000:04:00.0 to vfio-pci"))
    }
}
