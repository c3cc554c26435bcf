import Foundation
import HostdevCore
import Testing

/// `hostdevctl release` of each kind of device hostdevd gives VMs, in every
/// situation the safety model names: the refusal, or the steps of the plan
/// made once the ledger marks it released (what the controller then runs).
@Suite struct ReleaseByHandKindTests {
    enum Kind: String, CaseIterable, Sendable { case pci, mdev, scsi }

    enum Scene: String, CaseIterable, Sendable {
        case vmOff, vmRunning, runningForced, libvirtUnreachable, unreachableForced, handWrittenForced
    }

    static let fingerprint = "f1"
    static let edited = "f2"

    static func source(_ kind: Kind) -> HostdevEntry.Source {
        switch kind {
        case .pci: return .pci(gpu)
        case .mdev: return .mdev(vgpuUUID)
        case .scsi: return .scsi(spareDisk)
        }
    }

    static func claim(_ kind: Kind) -> Binding {
        switch kind {
        case .pci: return binding("win11", DeviceClaim(.pci(gpu)))
        case .mdev: return binding("win11", mdevClaim())
        case .scsi: return binding("win11", DeviceClaim(.scsi(spareDisk)))
        }
    }

    /// What hostdevd set up for win11's claim (converged: the plan without
    /// a release is empty), and win11 as `scene` has it.
    static func host(_ kind: Kind, _ scene: Scene) -> (ObservedHost, Ledger) {
        let running = scene != .vmOff
        let device = HostdevEntry.ours(source(kind))
        // A hand-written element for the device instead of hostdevd's own.
        let entry = scene == .handWrittenForced ? HostdevEntry(source: source(kind)) : device
        var entries = [entry]
        if kind == .pci { entries.append(.ours(.pci(audio))) }
        let domain = DomainState(name: "win11", state: running ? .running : .shutoff, configHostdevs: entries, liveHostdevs: running ? entries : [])
        var observed: ObservedHost
        var ledger = Ledger()
        switch kind {
        case .pci:
            observed = workstation(drivers: [gpu: "vfio-pci", audio: "vfio-pci"], domains: [domain])
            ledger.devices = [gpu: .init(originalDriver: "nouveau", vm: "win11"), audio: .init(originalDriver: "snd_hda_intel", vm: "win11")]
        case .mdev:
            observed = gvtHost(left: 0, devices: [MdevInstance(uuid: vgpuUUID, parent: igpu, type: gvt4)], domains: [domain])
            ledger.mdevs = [vgpuUUID: .init(parent: igpu, type: gvt4, vm: "win11")]
        case .scsi:
            observed = scsiHost(domains: [domain])
        }
        if scene == .libvirtUnreachable || scene == .unreachableForced {
            observed.coverage = .unreachable("libvirtd is not running")
            observed.domains = []
        }
        return (observed, ledger)
    }

    static var force: [Scene: Bool] { [.runningForced: true, .unreachableForced: true, .handWrittenForced: true] }

    /// The controller's path, without I/O: refuse, or mark released and plan.
    static func release(_ kind: Kind, _ scene: Scene) -> (refusal: String?, plan: Plan) {
        var (observed, ledger) = host(kind, scene)
        let manifest = Manifest(bindings: [claim(kind)], fingerprint: fingerprint)
        let forced = force[scene] ?? false
        if case .unreachable = observed.coverage, forced { observed.coverage = .all }
        let before = Planner.plan(manifest: manifest, observed: observed, ledger: ledger)
        if let refusal = ReleaseByHand.refusal(source(kind), observed: observed, ledger: ledger, claims: before.sourceClaimants, force: forced) {
            return (refusal, before)
        }
        ledger.released[source(kind)] = fingerprint
        return (nil, Planner.plan(manifest: manifest, observed: observed, ledger: ledger))
    }

    static let running = "running win11 uses it; shut win11 down first, or --force to unplug it from the running VM"
    static let unreachable = "libvirt unreachable (libvirtd is not running): cannot tell whether a running VM uses it; start libvirtd, or --force if you know none does"
    static let handWritten = "win11 has a hand-written <hostdev> for it, which hostdevd never touches, not even with --force; remove it there (virsh edit win11), or shut win11 down and leave it"

    /// Each row: kind, scene → the refusal, or the steps and the device's condition.
    @Test(arguments: [
        (Kind.pci, Scene.vmOff, nil, ["remove <hostdev> pci 0000:01:00.0 from win11's config", "release 0000:01:00.0 to nouveau"],
            Condition.pending("released by hand to nouveau; bound again after the next manifest edit")),
        (.pci, .vmRunning, running, [], nil),
        (.pci, .runningForced, nil,
            ["unplug pci 0000:01:00.0 from running win11", "remove <hostdev> pci 0000:01:00.0 from win11's config", "release 0000:01:00.0 to nouveau"],
            .pending("released by hand to nouveau; bound again after the next manifest edit")),
        (.pci, .libvirtUnreachable, unreachable, [], nil),
        (.pci, .unreachableForced, nil, ["release 0000:01:00.0 to nouveau"], .pending("released by hand to nouveau; bound again after the next manifest edit")),
        // A PCI function under a hand-written <hostdev>: marked, but the plan refuses to move it.
        (.pci, .handWrittenForced, nil, [],
            .blocked("released by hand, but running win11 holds it through a hand-written <hostdev>; remove it there first")),

        (.mdev, .vmOff, nil, ["remove <hostdev> mdev \(vgpuUUID) from win11's config", "remove mdev \(vgpuUUID) (\(gvt4) on 0000:00:02.0)"],
            .pending("released by hand: removed from 0000:00:02.0; created and given back after the next manifest edit")),
        (.mdev, .vmRunning, running, [], nil),
        (.mdev, .runningForced, nil,
            ["unplug mdev \(vgpuUUID) from running win11", "remove <hostdev> mdev \(vgpuUUID) from win11's config",
                "remove mdev \(vgpuUUID) (\(gvt4) on 0000:00:02.0)"],
            .pending("released by hand: removed from 0000:00:02.0; created and given back after the next manifest edit")),
        (.mdev, .libvirtUnreachable, unreachable, [], nil),
        (.mdev, .unreachableForced, nil, ["remove mdev \(vgpuUUID) (\(gvt4) on 0000:00:02.0)"],
            .pending("released by hand: removed from 0000:00:02.0; created and given back after the next manifest edit")),
        (.mdev, .handWrittenForced, handWritten, [], nil),

        (.scsi, .vmOff, nil, ["remove <hostdev> scsi 1:0:0:0 from win11's config"],
            .pending("released by hand (hostdevctl release): out of win11; given back after the next manifest edit")),
        (.scsi, .vmRunning, running, [], nil),
        (.scsi, .runningForced, nil, ["unplug scsi 1:0:0:0 from running win11", "remove <hostdev> scsi 1:0:0:0 from win11's config"],
            .pending("released by hand (hostdevctl release): out of win11; given back after the next manifest edit")),
        (.scsi, .libvirtUnreachable, unreachable, [], nil),
        // No domain is known: marked released; the entry leaves on the first pass that reaches libvirt.
        (.scsi, .unreachableForced, nil, [], .pending("released by hand (hostdevctl release): out of win11; given back after the next manifest edit")),
        (.scsi, .handWrittenForced, handWritten, [], nil),
    ] as [(Kind, Scene, String?, [String], Condition?)])
    func releaseOfEachKind(kind: Kind, scene: Scene, refusal: String?, steps: [String], condition: Condition?) {
        let (refused, plan) = Self.release(kind, scene)
        #expect(refused == refusal)
        guard refusal == nil else { return }
        #expect(summaries(plan) == steps)
        #expect(plan.devices[DeviceIdentifier.source(Self.source(kind))] == condition)
    }

    /// Before the release every scene is converged: the steps above are the release's alone.
    @Test(arguments: Kind.allCases)
    func theHostIsConvergedBeforeTheRelease(kind: Kind) {
        for scene in [Scene.vmOff, .vmRunning] {
            let (observed, ledger) = Self.host(kind, scene)
            let plan = Planner.plan(manifest: Manifest(bindings: [Self.claim(kind)], fingerprint: Self.fingerprint), observed: observed, ledger: ledger)
            #expect(plan.steps.isEmpty, "\(kind) \(scene): \(summaries(plan))")
        }
    }

    /// The next manifest edit ends the release: the device is bound,
    /// created or given to the VM again (from the state the release left).
    @Test(arguments: [
        (Kind.pci, ["bind 0000:01:00.0 to vfio-pci", "add <hostdev> pci 0000:01:00.0 to win11's config"]),
        (.mdev, ["create mdev \(vgpuUUID) (\(gvt4) on 0000:00:02.0) for win11", "add <hostdev> mdev \(vgpuUUID) to win11's config"]),
        (.scsi, ["add <hostdev> scsi 1:0:0:0 to win11's config"]),
    ])
    func theNextManifestEditGivesItBack(kind: Kind, steps: [String]) {
        var (observed, ledger) = Self.host(kind, .vmOff)
        // What the release left: the device out of win11, back on the host.
        observed.domains[0].configHostdevs.removeAll { $0.source == Self.source(kind) }
        switch kind {
        case .pci:
            observed = workstation(drivers: [gpu: "nouveau", audio: "vfio-pci"], domains: observed.domains)
            ledger.devices[gpu] = nil
        case .mdev:
            observed = gvtHost(left: 1, domains: observed.domains)
            ledger.mdevs = [:]
        case .scsi: break
        }
        ledger.released[Self.source(kind)] = Self.fingerprint
        let unchanged = Planner.plan(manifest: Manifest(bindings: [Self.claim(kind)], fingerprint: Self.fingerprint), observed: observed, ledger: ledger)
        #expect(summaries(unchanged) == [], "still released while the manifest is unchanged")
        #expect(unchanged.bindings["win11"]?.isBlocked == false)
        let edited = Planner.plan(manifest: Manifest(bindings: [Self.claim(kind)], fingerprint: Self.edited), observed: observed, ledger: ledger)
        #expect(summaries(edited) == steps)
    }
}

/// What release says about a mediated or SCSI device it does not manage,
/// and an mdev it gives back without removing.
@Suite struct ReleaseByHandRefusalTests {
    static let otherUUID = "11111111-2222-3333-4444-555555555555"

    /// Each row: the device, the host → why there is nothing to release.
    @Test(arguments: [
        (HostdevEntry.Source.mdev(otherUUID), false, "no such mediated device on this host, and no binding claims it: nothing to release"),
        (.mdev(otherUUID), true, "hostdevd did not create it and no binding claims it: nothing to release"),
        (.scsi(tape), true, "no binding claims it and hostdevd gave it to no VM: nothing to release"),
        (.scsi(SCSIAddress(host: 7, bus: 0, target: 0, unit: 0)), true, "no such SCSI device on this host, and no binding claims it: nothing to release"),
        (.pci(nvme), true, "it is on nvme, not on vfio-pci, and hostdevd did not bind it: nothing to release"),
        (.usbAddress(bus: 1, device: 4), true, "release takes \(ReleaseByHand.forms)"),
    ])
    func aDeviceHostdevdDoesNotManageHasNothingToRelease(source: HostdevEntry.Source, present: Bool, reason: String) {
        var observed = scsiHost()
        observed.mediated = gvtHost(devices: present ? [MdevInstance(uuid: Self.otherUUID, parent: igpu, type: gvt8)] : []).mediated
        #expect(ReleaseByHand.refusal(source, observed: observed, ledger: Ledger(), claims: [:], force: true) == reason)
    }

    /// An mdev claimed by UUID that mdevctl defines (or hostdevd did not
    /// create) leaves the VM and stays on the host, and the plan says why.
    @Test(arguments: [
        (Ledger(), "hostdevd did not create it"),
        (Ledger(mdevs: [ReleaseByHandRefusalTests.otherUUID: .init(parent: igpu, type: gvt8, vm: "win11")]), "mdevctl defines it (/etc/mdevctl.d): the host's own"),
    ])
    func anMdevHostdevdDidNotCreateStays(ledger: Ledger, why: String) {
        let spec = MdevSpec(uuid: Self.otherUUID, parent: igpu, type: gvt8)
        let observed = gvtHost(
            devices: [MdevInstance(uuid: spec.uuid, parent: igpu, type: gvt8, definedByMdevctl: !ledger.mdevs.isEmpty)],
            domains: [DomainState(name: "win11", state: .shutoff, configHostdevs: [.ours(.mdev(spec.uuid))])])
        var released = ledger
        released.released[.mdev(spec.uuid)] = "f1"
        let result = Planner.plan(manifest: Manifest(bindings: [binding("win11", mdevClaim(spec))], fingerprint: "f1"), observed: observed, ledger: released)
        #expect(summaries(result) == ["remove <hostdev> mdev \(spec.uuid) from win11's config"])
        #expect(result.devices[spec.description]
            == .pending("released by hand (hostdevctl release): out of the VM; left on 0000:00:02.0, as \(why); created and given back after the next manifest edit"))
    }

    /// A SCSI device claimed by its stable name: its condition is under that name.
    @Test func theConditionOfADeviceClaimedByName() {
        let name = "/dev/disk/by-id/wwn-0x5000c500a1b2c3d4"
        let observed = scsiHost(
            domains: [DomainState(name: "win11", state: .shutoff, configHostdevs: [.ours(.scsi(spareDisk))])], diskLinks: [name: "sdb"])
        let result = Planner.plan(
            manifest: Manifest(bindings: [binding("win11", DeviceClaim(.scsiPath(name)))], fingerprint: "f1"), observed: observed,
            ledger: Ledger(released: [.scsi(spareDisk): "f1"]))
        #expect(summaries(result) == ["remove <hostdev> scsi 1:0:0:0 from win11's config"])
        #expect(ReleaseByHand.condition(of: .scsi(spareDisk), in: result)
            == .pending("released by hand (hostdevctl release): out of win11; given back after the next manifest edit"))
        #expect(ReleaseByHand.condition(of: .scsi(tape), in: result) == nil)
    }

    /// A SCSI device claimed by its stable name is released by that name.
    @Test func aStableNameResolvesToTheSCSIAddress() {
        let observed = scsiHost(diskLinks: ["/dev/disk/by-id/wwn-0x5000c500a1b2c3d4": "sdb"])
        #expect(ReleaseByHand.resolve(.scsiPath("/dev/disk/by-id/wwn-0x5000c500a1b2c3d4"), observed: observed) == .success(.scsi(spareDisk)))
        #expect(ReleaseByHand.resolve(.scsiPath("/dev/disk/by-id/nope"), observed: observed)
            == .failure(ReleaseRefusal(device: "scsi /dev/disk/by-id/nope", reason: "/dev/disk/by-id/nope does not exist on this host")))
        #expect(ReleaseByHand.resolve(.usbAddress(bus: 1, device: 4), observed: observed)
            == .failure(ReleaseRefusal(device: "usb 1:4", reason: "release takes \(ReleaseByHand.forms)")))
    }

    /// Each form a person types → the device release acts on (nil: not one it takes).
    @Test(arguments: [
        ("0000:01:00.0", HostdevEntry.Source.pci(gpu)),
        ("pci_0000_01_00_0", .pci(gpu)),
        (vgpuUUID, .mdev(vgpuUUID)),
        ("mdev " + vgpuUUID.uppercased(), .mdev(vgpuUUID)),
        ("mdev_" + vgpuUUID.replacingOccurrences(of: "-", with: "_"), .mdev(vgpuUUID)),
        ("1:0:0:0", .scsi(spareDisk)),
        ("scsi 1:0:0:0", .scsi(spareDisk)),
        ("scsi_1_0_0_0", .scsi(spareDisk)),
        ("usb 1:4", nil),
        ("mdev_4b20d080_1b54", nil),
    ] as [(String, HostdevEntry.Source?)])
    func formsReleaseTakes(text: String, source: HostdevEntry.Source?) {
        let query = DeviceQuery.parse(text)
        #expect((query.map(ReleaseByHand.takes) == true ? query?.source : nil) == source)
    }
}

/// The ledger's `released` keys: device identifiers now, bare PCI
/// addresses in a ledger written before other kinds could be released.
@Suite struct ReleasedLedgerCodingTests {
    @Test func anOldLedgerWithPCIAddressKeysStillReads() throws {
        let old = #"{"devices":{"0000:01:00.0":{"originalDriver":"nouveau","vm":"win11"}},"released":{"0000:01:00.0":"f1"},"liveVMs":[]}"#
        let ledger = try JSONDecoder().decode(Ledger.self, from: Data(old.utf8))
        #expect(ledger.released == [.pci(gpu): "f1"])
        #expect(ledger.devices[gpu]?.originalDriver == "nouveau")
    }

    @Test func everyKindRoundTripsUnderItsIdentifier() throws {
        let ledger = Ledger(released: [.pci(gpu): "f1", .mdev(vgpuUUID): "f1", .scsi(spareDisk): "f2"])
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let text = String(decoding: try encoder.encode(ledger), as: UTF8.self)
        #expect(text.contains(#""released":{"mdev \#(vgpuUUID)":"f1","pci 0000:01:00.0":"f1","scsi 1:0:0:0":"f2"}"#), "\(text)")
        #expect(try JSONDecoder().decode(Ledger.self, from: Data(text.utf8)) == ledger)
    }

    @Test func aKeyThatNamesNoDeviceIsAnError() {
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(Ledger.self, from: Data(#"{"released":{"win11":"f1"}}"#.utf8)) }
    }
}
