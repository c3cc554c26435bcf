import HostdevCore
import HostdevManifest
import Testing

// The workstation's I350 (0000:03:00.0, on igb) has two VFs: 0000:03:10.0
// (VF 0, group 20) and 0000:03:10.4 (VF 1, group 21), both on igbvf.
let guestMAC = MACAddress("52:54:00:12:34:56")!
let vfSpec1 = VFSpec(pf: pf, index: 1, settings: VFSettings(mac: guestMAC, vlan: 100))
let vf1Target = VFTarget(pf: pf, index: 1, vf: vf1)
/// What igb reports for a VF nobody set up.
let factorySettings = VFSettings(mac: .zero, vlan: 0, trust: false, spoofchk: true)

func vfClaim(_ spec: VFSpec = vfSpec1) -> DeviceClaim { DeviceClaim(.vf(spec)) }

func sriovHost(
    drivers: [PCIAddress: String?] = [:], domains: [DomainState]? = nil, hostUses: [HostUse]? = nil,
    settings: [PCIAddress: VFSettings]? = [vf0: factorySettings, vf1: factorySettings]
) -> ObservedHost {
    var observed = workstation(drivers: drivers, domains: domains, hostUses: hostUses)
    observed.vfSettings = settings
    return observed
}

/// hostdevd's `<interface type='hostdev'>` for VF 1 with the claim's MAC and VLAN.
let vf1Interface = HostdevEntry.oursInterface(vf1, .init(mac: guestMAC, vlan: 100))

@Suite struct VirtualFunctionPlannerTests {
    @Test func aClaimedVFIsBoundConfiguredAndAddedAsAnInterface() throws {
        let result = plan([binding("win11", vfClaim())], sriovHost())
        #expect(summaries(result) == [
            "bind 0000:03:10.4 to vfio-pci",
            "set VF 1 of 0000:03:00.0 (0000:03:10.4) mac 52:54:00:12:34:56 vlan 100",
            "add <interface type='hostdev'> pci 0000:03:10.4 to win11's config",
        ])
        // Only the settings it changes are journaled as the ones to put back.
        #expect(result.steps[1].action == .configureVF(vf1Target, vfSpec1.settings, previous: VFSettings(mac: .zero, vlan: 0), vm: "win11"))
        #expect(result.steps[2].action == .attachConfig(vm: "win11", vf1Interface))
        #expect(vf1Interface.alias == "ua-hostdevd-net-pci-0000-03-10-4")
        #expect(result.bindings["win11"] == .pending("3 step(s) to apply"))
        // The PF carries the host's traffic: nothing is planned for it.
        #expect(!result.steps.contains { $0.action.pciAddress == pf })
    }

    @Test func aVFAlreadySetUpIsReady() {
        let domains = [DomainState(name: "win11", state: .shutoff, configHostdevs: [vf1Interface])]
        let observed = sriovHost(drivers: [vf1: "vfio-pci"], domains: domains, settings: [vf1: VFSettings(mac: guestMAC, vlan: 100, trust: false, spoofchk: true)])
        let result = plan([binding("win11", vfClaim())], observed, ledger: Ledger(devices: [vf1: .init(originalDriver: "igbvf", vm: "win11")]))
        #expect(result.steps.isEmpty)
        #expect(result.bindings["win11"] == .ready)
        #expect(result.devices["vf 0000:03:00.0 index 1"] == .ready)
    }

    @Test func libvirtsOwnMACOnAnInterfaceWithoutOneIsNotAChange() {
        // A claim without a MAC: libvirt made one up when the element was added.
        let spec = VFSpec(pf: pf, index: 1, settings: VFSettings(vlan: 100))
        let domains = [DomainState(name: "win11", state: .shutoff, configHostdevs: [vf1Interface])]
        let observed = sriovHost(drivers: [vf1: "vfio-pci"], domains: domains, settings: [vf1: VFSettings(mac: guestMAC, vlan: 100)])
        #expect(plan([binding("win11", vfClaim(spec))], observed).steps.isEmpty)
    }

    @Test func aChangedVLANReplacesTheInterfaceAndResetsTheVF() {
        let domains = [DomainState(name: "win11", state: .shutoff, configHostdevs: [vf1Interface])]
        let observed = sriovHost(drivers: [vf1: "vfio-pci"], domains: domains, settings: [vf1: VFSettings(mac: guestMAC, vlan: 100)])
        let ledger = Ledger(devices: [vf1: .init(originalDriver: "igbvf", vm: "win11")],
            vfs: [vf1: .init(pf: pf, index: 1, previous: VFSettings(mac: .zero, vlan: 0), vm: "win11")])
        let spec = VFSpec(pf: pf, index: 1, settings: VFSettings(mac: guestMAC, vlan: 200, trust: true))
        let result = plan([binding("win11", vfClaim(spec))], observed, ledger: ledger)
        #expect(summaries(result) == [
            "remove <interface type='hostdev'> pci 0000:03:10.4 from win11's config",
            "set VF 1 of 0000:03:00.0 (0000:03:10.4) mac 52:54:00:12:34:56 vlan 200 trust on",
            "add <interface type='hostdev'> pci 0000:03:10.4 to win11's config",
        ])
        // The first value of each setting is kept; trust, new, is added.
        #expect(result.steps[1].action == .configureVF(vf1Target, spec.settings, previous: VFSettings(mac: .zero, vlan: 0, trust: nil), vm: "win11"))
    }

    /// A VF that cannot be found is Blocked with the reason, never a crash.
    @Test(arguments: [
        (VFSpec(pf: PCIAddress("0000:3b:00.0")!, index: 2),
            "its PF 0000:3b:00.0 is not present on this host (no /sys/bus/pci/devices/0000:3b:00.0)"),
        (VFSpec(pf: nic, index: 0), "0000:00:1f.6 is not an SR-IOV physical function (no sriov_totalvfs); it has no VF 0"),
        (VFSpec(pf: pf, index: 5),
            "0000:03:00.0 has no VF 5 (no virtfn5 link: 2 of 7 VFs enabled); enable at least 6 with host.sriov (numvfs) or sriov_numvfs"),
    ])
    func aMissingPFOrVFIsBlocked(spec: VFSpec, reason: String) {
        let result = plan([binding("win11", vfClaim(spec))], sriovHost())
        #expect(result.steps.isEmpty)
        #expect(result.devices[spec.description] == .blocked(reason))
        #expect(result.bindings["win11"] == .blocked(reason))
    }

    @Test func aVFThatHost_sriovIsAboutToCreateIsPending() {
        let result = plan([binding("win11", vfClaim(VFSpec(pf: pf, index: 3)))], sriovHost(), host: HostPolicy(sriov: [SRIOVSetting(pf: pf, numVFs: 4)]))
        #expect(result.devices["vf 0000:03:00.0 index 3"] == .pending("0000:03:00.0 has no virtfn3 yet; waits for host.sriov to enable 4 VFs"))
        #expect(summaries(result) == ["set 0000:03:00.0 sriov_numvfs to 4"])
    }

    @Test func aVFInItsPFsGroupIsRefusedAndThePFLeftAlone() {
        var observed = sriovHost()
        var devices = observed.inventory.devices
        for index in devices.indices where devices[index].pci?.address == vf1 { devices[index].pci?.iommuGroup = 8 }
        observed.inventory = Inventory(
            devices: devices,
            iommuGroups: observed.inventory.iommuGroups.filter { $0.number != 8 && $0.number != 21 } + [IOMMUGroup(number: 8, members: [pf, vf1])])
        let result = plan([binding("win11", vfClaim())], observed)
        #expect(result.steps.isEmpty)
        #expect(result.devices["vf 0000:03:00.0 index 1"]?.isBlocked == true)
        #expect(result.devices["vf 0000:03:00.0 index 1"]?.reason?.hasPrefix("VF 1 of 0000:03:00.0 (0000:03:10.4) shares IOMMU group 8 with its PF") == true)
    }

    @Test func thePFsHostUseDoesNotBlockItsVFButTheVFsOwnDoes() {
        let pfUse = HostUse(address: pf, reason: "enp3s0f0 is up with an address")
        let withPFUse = plan([binding("win11", vfClaim())], sriovHost(hostUses: [pfUse]))
        #expect(withPFUse.steps.map(\.action.kind) == ["bind", "configureVF", "attachConfig"])
        let vfUse = HostUse(address: vf1, reason: "enp3s16f4 is up with an address")
        let withVFUse = plan([binding("win11", vfClaim())], sriovHost(hostUses: [pfUse, vfUse]))
        #expect(withVFUse.steps.isEmpty)
        #expect(withVFUse.bindings["win11"] == .blocked("0000:03:10.4 is needed by the host: enp3s16f4 is up with an address"))
    }

    @Test func anotherRunningVMsInterfaceOnTheVFBlocksTheClaim() {
        var ci = DomainState(name: "ci", state: .running)
        ci.uses = [VMUse(element: "<interface type='hostdev'>", target: .pci(vf1), devices: [vf1])]
        let result = plan([binding("win11", vfClaim())], sriovHost(domains: [DomainState(name: "win11", state: .shutoff), ci]))
        #expect(result.steps.isEmpty)
        #expect(result.bindings["win11"] == .blocked("running ci holds 0000:03:10.4 through <interface type='hostdev'>"))
    }

    @Test func unknownSettingsAreNotChangedAndSaySo() {
        let result = plan([binding("win11", vfClaim())], sriovHost(settings: nil))
        #expect(!result.steps.contains { $0.action.kind == "configureVF" })
        #expect(result.devices["vf 0000:03:00.0 index 1"]
            == .pending("the settings of VF 1 of 0000:03:00.0 were not read (rtnetlink); mac 52:54:00:12:34:56 vlan 100 not set"))
    }

    @Test func aReleasedVFGetsItsSettingsBack() {
        let domains = [DomainState(name: "win11", state: .shutoff, configHostdevs: [vf1Interface])]
        let observed = sriovHost(drivers: [vf1: "vfio-pci"], domains: domains, settings: [vf1: VFSettings(mac: guestMAC, vlan: 100)])
        let previous = VFSettings(mac: .zero, vlan: 0)
        let ledger = Ledger(devices: [vf1: .init(originalDriver: "igbvf", vm: "win11")], vfs: [vf1: .init(pf: pf, index: 1, previous: previous, vm: "win11")])
        let result = plan([binding("win11", DeviceClaim(.pci(gpu)))], observed, ledger: ledger)
        let vfSteps = result.steps.filter { $0.action.pciAddress == vf1 }.map(\.action.summary)
        #expect(vfSteps == [
            "remove <interface type='hostdev'> pci 0000:03:10.4 from win11's config",
            "release 0000:03:10.4 to igbvf",
            "give VF 1 of 0000:03:00.0 (0000:03:10.4) back its mac 00:00:00:00:00:00 vlan 0",
        ])
        #expect(result.steps.contains { $0.action == .restoreVF(vf1Target, previous, apply: true) })
    }

    @Test func aVFHeldByItsRunningVMKeepsItsSettingsUntilItStops() {
        let running = DomainState(name: "win11", state: .running, configHostdevs: [vf1Interface], liveHostdevs: [vf1Interface])
        let observed = sriovHost(drivers: [vf1: "vfio-pci"], domains: [running], settings: [vf1: VFSettings(mac: guestMAC, vlan: 100)])
        let ledger = Ledger(devices: [vf1: .init(originalDriver: "igbvf", vm: "win11")],
            vfs: [vf1: .init(pf: pf, index: 1, previous: VFSettings(mac: .zero), vm: "win11")])
        let result = plan([], observed, ledger: ledger)
        #expect(!result.steps.contains { $0.action.kind == "restoreVF" || $0.action.kind == "restore" })
        #expect(result.devices["pci 0000:03:10.4"]
            == .pending("still assigned to running win11 (its binding is gone from the manifest, which never said live: true); released when win11 stops"))
    }

    @Test func onStopGivesTheSettingsBackWithTheDriverWhileTheVMIsOff() {
        let observed = sriovHost(drivers: [vf1: "vfio-pci"], domains: [DomainState(name: "win11", state: .shutoff, configHostdevs: [vf1Interface])],
            settings: [vf1: VFSettings(mac: guestMAC, vlan: 100)])
        let ledger = Ledger(devices: [vf1: .init(originalDriver: "igbvf", vm: "win11")],
            vfs: [vf1: .init(pf: pf, index: 1, previous: VFSettings(mac: .zero, vlan: 0), vm: "win11")])
        let result = plan([binding("win11", vfClaim(), release: .onStop)], observed, ledger: ledger)
        #expect(summaries(result) == [
            "release 0000:03:10.4 to igbvf",
            "give VF 1 of 0000:03:00.0 (0000:03:10.4) back its mac 00:00:00:00:00:00 vlan 0",
        ])
    }

    @Test func aVFGoneFromTheHostIsForgotten() {
        var observed = sriovHost()
        observed.inventory = Inventory(devices: observed.inventory.devices.filter { $0.pci?.address != vf1 }, iommuGroups: observed.inventory.iommuGroups)
        let ledger = Ledger(vfs: [vf1: .init(pf: pf, index: 1, previous: VFSettings(vlan: 0), vm: "win11")])
        let result = plan([], observed, ledger: ledger)
        #expect(result.steps.map(\.action) == [.restoreVF(vf1Target, VFSettings(vlan: 0), apply: false)])
    }

    @Test func libvirtAwayLeavesTheSettingsAlone() {
        var observed = sriovHost(drivers: [vf1: "vfio-pci"])
        observed.coverage = .unreachable("no socket")
        let ledger = Ledger(devices: [vf1: .init(originalDriver: "igbvf", vm: "win11")],
            vfs: [vf1: .init(pf: pf, index: 1, previous: VFSettings(vlan: 0), vm: "win11")])
        let result = plan([], observed, ledger: ledger)
        #expect(!result.steps.contains { $0.action.kind == "restoreVF" })
    }
}

@Suite struct VFSettingsTests {
    @Test(arguments: [
        ("52:54:00:12:34:56", "52:54:00:12:34:56"), ("52:54:00:AB:cd:EF", "52:54:00:ab:cd:ef"),
    ])
    func macAddressesParseAndPrintLowerCase(text: String, printed: String) throws {
        #expect(try #require(MACAddress(text)).description == printed)
    }

    @Test(arguments: ["", "52:54:00:12:34", "52:54:00:12:34:56:78", "52-54-00-12-34-56", "5:54:00:12:34:56", "zz:54:00:12:34:56", "52:54:00:12:34:+6"])
    func notMACAddresses(text: String) {
        #expect(MACAddress(text) == nil)
    }

    @Test func satisfiedAndPrevious() {
        let wanted = VFSettings(mac: guestMAC, trust: true)
        #expect(wanted.isSatisfied(by: VFSettings(mac: guestMAC, vlan: 7, trust: true, spoofchk: false)))
        #expect(!wanted.isSatisfied(by: VFSettings(mac: guestMAC, trust: false)))
        #expect(wanted.previous(in: factorySettings) == VFSettings(mac: .zero, trust: false))
        #expect(VFSettings().isSatisfied(by: VFSettings()))
    }

    @Test func decodesAVFEntry() throws {
        let row = try #require(manifestCases.first { $0.name == "virtual functions" })
        let manifest = try ManifestDecoder.decode(bytes: row.bytes, file: "m.yaml")
        let claims = manifest.bindings[0].devices
        #expect(claims.map(\.selector) == [
            .vf(VFSpec(pf: PCIAddress("0000:3b:00.0")!, index: 2, settings: VFSettings(mac: guestMAC, vlan: 100, trust: false, spoofchk: true))),
            .vf(VFSpec(pf: PCIAddress("0000:3b:00.0")!, index: 3, settings: VFSettings(vlan: 0))),
        ])
        #expect(claims.map(\.group) == [.attach, .device])
    }
}

/// The rtnetlink messages, against what iproute2 sends (captured with
/// `strace -e trace=sendmsg -e write=3 ip link set dev lo vf 2 mac
/// 52:54:00:12:34:56 vlan 100 trust off spoofchk on` in a network
/// namespace) and what the kernel answers.
@Suite struct RTNetlinkEncodingTests {
    static let ipVF2All: [UInt8] = [
        0x58, 0x00, 0x16, 0x00, 0x54, 0x00, 0x01, 0x00, 0x28, 0x00, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00,
        0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x10, 0x00, 0x02, 0x00, 0x02, 0x00, 0x00, 0x00, 0x64, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x0c, 0x00, 0x09, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x04, 0x00,
        0x02, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
    ]
    /// `ip link set dev lo vf 0 vlan 0`.
    static let ipVF0NoVLAN: [UInt8] = [
        0x18, 0x00, 0x16, 0x00, 0x14, 0x00, 0x01, 0x00, 0x10, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    ]

    @Test(arguments: [
        (2, VFSettings(mac: guestMAC, vlan: 100, trust: false, spoofchk: true), ipVF2All),
        (0, VFSettings(vlan: 0), ipVF0NoVLAN),
    ])
    func theVFInfoListIsIproute2s(vf: Int, settings: VFSettings, bytes: [UInt8]) {
        #expect(RTNetlink.vfInfoList(vf: vf, settings: settings) == bytes)
    }

    @Test func theSetLinkRequest() {
        let request = RTNetlink.setVFRequest(ifindex: 1, vf: 2, settings: VFSettings(mac: guestMAC, vlan: 100, trust: false, spoofchk: true), sequence: 0x6b0d_ce9b)
        // iproute2's header but for the type: RTM_SETLINK (19), not RTM_NEWLINK (16).
        let header: [UInt8] = [
            0x78, 0x00, 0x00, 0x00, 0x13, 0x00, 0x05, 0x00, 0x9b, 0xce, 0x0d, 0x6b, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        ]
        #expect(request == header + Self.ipVF2All)
    }

    @Test func theGetLinkRequest() {
        #expect(RTNetlink.getLinkRequest(ifindex: 7, sequence: 1) == [
            0x28, 0x00, 0x00, 0x00, 0x12, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x08, 0x00, 0x1d, 0x00, 0x09, 0x00, 0x00, 0x00,
        ])
    }

    /// A reply message: header (type, sequence) and body.
    static func reply(type: UInt16, sequence: UInt32, body: [UInt8]) -> [UInt8] {
        let length = UInt32(16 + body.count)
        return withUnsafeBytes(of: length) { Array($0) } + withUnsafeBytes(of: type) { Array($0) } + [0, 0]
            + withUnsafeBytes(of: sequence) { Array($0) } + [0, 0, 0, 0] + body
    }

    @Test func acknowledgementsAndErrors() throws {
        let ack = Self.reply(type: 2, sequence: 5, body: [0, 0, 0, 0] + [UInt8](repeating: 0, count: 16))
        #expect(try RTNetlink.parseReply(ack, sequence: 5) == .acknowledged)
        let eopnotsupp = Self.reply(type: 2, sequence: 5, body: withUnsafeBytes(of: Int32(-95)) { Array($0) } + [UInt8](repeating: 0, count: 16))
        #expect(try RTNetlink.parseReply(eopnotsupp, sequence: 5) == .failed(errno: 95))
        // An answer to another request is skipped.
        #expect(try RTNetlink.parseReply(Self.reply(type: 2, sequence: 4, body: [0, 0, 0, 0]) + ack, sequence: 5) == .acknowledged)
        #expect(throws: RTNetlink.MalformedReply.self) { try RTNetlink.parseReply([0x40, 0, 0, 0] + [UInt8](repeating: 0, count: 12), sequence: 5) }
        #expect(throws: RTNetlink.MalformedReply.self) { try RTNetlink.parseReply(Self.reply(type: 2, sequence: 4, body: [0, 0, 0, 0]), sequence: 5) }
    }

    @Test func aLinkReplyListsItsVFs() throws {
        // Two VFs as the kernel writes them (IFLA_VF_INFO nests; trust -1: not reported by the driver).
        func vfInfo(_ vf: UInt32, mac: [UInt8], vlan: UInt32, spoofchk: UInt32, trust: UInt32) -> [UInt8] {
            let number = RTNetlink.u32(vf)
            let attributes = RTNetlink.attribute(1, number + mac + [UInt8](repeating: 0, count: 26))
                + RTNetlink.attribute(2, number + RTNetlink.u32(vlan) + RTNetlink.u32(0))
                + RTNetlink.attribute(3, number + RTNetlink.u32(0))  // IFLA_VF_TX_RATE: ignored
                + RTNetlink.attribute(4, number + RTNetlink.u32(spoofchk))
                + RTNetlink.attribute(9, number + RTNetlink.u32(trust))
            return RTNetlink.attribute(1 | 0x8000, attributes)
        }
        let list = RTNetlink.attribute(22, vfInfo(0, mac: [0x52, 0x54, 0, 0x12, 0x34, 0x56], vlan: 100, spoofchk: 1, trust: 0)
            + vfInfo(1, mac: [0, 0, 0, 0, 0, 0], vlan: 0, spoofchk: 0, trust: UInt32.max))
        let body = [UInt8](repeating: 0, count: 16) + RTNetlink.attribute(3, Array("enp3s0f0\0".utf8)) + list
        let parsed = try RTNetlink.parseReply(Self.reply(type: 16, sequence: 9, body: body), sequence: 9)
        #expect(parsed == .link(vfs: [
            0: VFSettings(mac: guestMAC, vlan: 100, trust: false, spoofchk: true),
            1: VFSettings(mac: .zero, vlan: 0, trust: nil, spoofchk: false),
        ]))
        // No VFINFO list: no VFs.
        #expect(try RTNetlink.parseReply(Self.reply(type: 16, sequence: 9, body: [UInt8](repeating: 0, count: 16)), sequence: 9) == .link(vfs: [:]))
    }

    /// What Linux 6.1's rtnl_fill_vfinfo writes for each VF, in its order:
    /// besides the settings, IFLA_VF_BROADCAST (an address, no VF number),
    /// IFLA_VF_RATE, IFLA_VF_LINK_STATE, IFLA_VF_RSS_QUERY_EN and the nested
    /// IFLA_VF_VLAN_LIST. Reading the VF number from every attribute keyed
    /// the settings by the last one's first bytes: found on igb under QEMU.
    @Test func theKernelsWholeVFInfo() throws {
        func vfInfo(_ vf: UInt32, mac: [UInt8], vlan: UInt32) -> [UInt8] {
            let number = RTNetlink.u32(vf)
            var attributes = RTNetlink.attribute(1, number + mac + [UInt8](repeating: 0, count: 26))
            attributes += RTNetlink.attribute(13, [UInt8](repeating: 0xff, count: 32))  // IFLA_VF_BROADCAST
            attributes += RTNetlink.attribute(2, number + RTNetlink.u32(vlan) + RTNetlink.u32(0))
            attributes += RTNetlink.attribute(6, number + RTNetlink.u32(0) + RTNetlink.u32(0))  // IFLA_VF_RATE
            attributes += RTNetlink.attribute(3, number + RTNetlink.u32(0))  // IFLA_VF_TX_RATE
            attributes += RTNetlink.attribute(4, number + RTNetlink.u32(1))
            attributes += RTNetlink.attribute(5, number + RTNetlink.u32(0))  // IFLA_VF_LINK_STATE
            attributes += RTNetlink.attribute(7, number + RTNetlink.u32(0))  // IFLA_VF_RSS_QUERY_EN
            attributes += RTNetlink.attribute(9, number + RTNetlink.u32(0))
            // IFLA_VF_VLAN_LIST { IFLA_VF_VLAN_INFO { vf, vlan, qos, proto } }
            attributes += RTNetlink.attribute(12, RTNetlink.attribute(1, number + RTNetlink.u32(vlan) + RTNetlink.u32(0) + [0x81, 0x00, 0, 0]))
            return RTNetlink.attribute(1, attributes)
        }
        let list = RTNetlink.attribute(22, vfInfo(0, mac: [0, 0, 0, 0, 0, 0], vlan: 0) + vfInfo(1, mac: [0x52, 0x54, 0, 0x12, 0x34, 0x56], vlan: 100))
        let body = [UInt8](repeating: 0, count: 16) + RTNetlink.attribute(3, Array("enp1s0\0".utf8)) + list
        #expect(try RTNetlink.parseReply(Self.reply(type: 16, sequence: 9, body: body), sequence: 9) == .link(vfs: [
            0: VFSettings(mac: .zero, vlan: 0, trust: false, spoofchk: true),
            1: VFSettings(mac: guestMAC, vlan: 100, trust: false, spoofchk: true),
        ]))
    }
}

@Suite struct VFInventoryReportTests {
    /// The workstation's inventory with VF 1's settings as igb reports them.
    static func report() -> InventoryReport {
        var inventory = workstation().inventory
        inventory.setVFSettings([vf1: VFSettings(mac: guestMAC, vlan: 100, trust: false, spoofchk: true), vf0: VFSettings(vlan: 0)])
        return InventoryReport(inventory: inventory)
    }

    @Test func theTreeShowsEachVFsSettings() {
        let lines = Self.report().render(.tree).split(separator: "\n")
        let vf1Line = lines.first { $0.contains(vf1.nodeDeviceName) } ?? ""
        #expect(vf1Line.contains("physfn=0000:03:00.0 vf_mac=52:54:00:12:34:56 vf_vlan=100 vf_trust=off vf_spoofchk=on"), "\(vf1Line)")
        let vf0Line = lines.first { $0.contains(vf0.nodeDeviceName) } ?? ""
        #expect(vf0Line.contains("vf_vlan=0") && !vf0Line.contains("vf_mac"))
        // A PF has none.
        #expect(!(lines.first { $0.contains(pf.nodeDeviceName) } ?? "").contains("vf_"))
    }

    @Test func theJSONCarriesThemTyped() {
        let text = Self.report().json().compact()
        #expect(text.contains(#""physfn":"pci_0000_03_00_0","vf":{"mac":"52:54:00:12:34:56","vlan":100,"trust":false,"spoofchk":true}"#), "\(text)")
        #expect(text.contains(#""vf":{"vlan":0}"#))
    }

    @Test func ourInterfaceIsNamedInUsedBy() {
        let domain = DomainState(name: "win11", state: .running, configHostdevs: [vf1Interface], liveHostdevs: [vf1Interface])
        #expect(InventoryReport.usedBy(hostUses: [], domains: [domain])[vf1.nodeDeviceName] == "win11 through hostdevd's <interface type='hostdev'>")
    }
}

/// After a crash between journaling a VF's settings and setting them, the
/// ledger's record is the truth about what to put back, whichever side of
/// the change the crash fell.
@Suite struct VFCrashTests {
    static let journaled = Ledger(
        devices: [vf1: .init(originalDriver: "igbvf", vm: "win11")],
        intent: .configureVF(vf1Target, vfSpec1.settings, previous: VFSettings(mac: .zero, vlan: 0), vm: "win11"),
        vfs: [vf1: .init(pf: pf, index: 1, previous: VFSettings(mac: .zero, vlan: 0), vm: "win11")])

    @Test(arguments: [false, true])
    func theNextPassFinishesItAndAReleaseRestoresTheJournaledValues(changed: Bool) {
        let now = changed ? VFSettings(mac: guestMAC, vlan: 100) : VFSettings(mac: .zero, vlan: 0)
        let observed = sriovHost(drivers: [vf1: "vfio-pci"], settings: [vf1: now])
        let claimed = plan([binding("win11", vfClaim())], observed, ledger: Self.journaled)
        #expect(claimed.notes.contains { $0.hasPrefix("a step was interrupted (set VF 1 of") })
        let configure = claimed.steps.filter { $0.action.kind == "configureVF" }.map(\.action)
        #expect(configure == (changed ? [] : [.configureVF(vf1Target, vfSpec1.settings, previous: VFSettings(mac: .zero, vlan: 0), vm: "win11")]))
        let released = plan([], observed, ledger: Self.journaled)
        #expect(released.steps.contains { $0.action == .restoreVF(vf1Target, VFSettings(mac: .zero, vlan: 0), apply: true) })
    }
}
