#if canImport(Glibc)
    import Glibc
#endif
import Foundation
import HostdevCore
@testable import HostdevSysfs
import HostdevTestSupport
import Testing

/// One expected use: its kind and its exact one-line reason.
struct ExpectedUse: Sendable, CustomStringConvertible {
    var kind: HostUse.Kind
    var reason: String
    init(_ kind: HostUse.Kind, _ reason: String) {
        self.kind = kind
        self.reason = reason
    }
    var description: String { "\(kind): \(reason)" }
}

func scan(_ tree: SysfsTree) throws -> HostUseScan {
    let inventory = try InventoryReader(root: tree.sysfs, names: noNames).read()
    return HostUseScanner(root: tree.sysfs).scanAll(inventory)
}

@Suite struct HostUseLayoutTests {
    static let table: [(SysfsTree.HostLayout, [ExpectedUse])] = [
        (.bridgeOverNIC, [.init(.network, "0000:05:00.0 → enp5s0 → vmbr0, which carries the default route")]),
        (
            .bondUnderBridge,
            [
                .init(.network, "0000:05:00.0 → enp5s0f0 → bond0 → vmbr0, which carries the default route"),
                .init(.network, "0000:05:00.1 → enp5s0f1 → bond0 → vmbr0, which carries the default route"),
            ]
        ),
        (
            .vlanOverBond,
            [
                .init(.network, "0000:05:00.0 → enp5s0f0 → bond0 → bond0.100, which has address 2001:db8:100::5/64"),
                .init(.network, "0000:05:00.1 → enp5s0f1 → bond0 → bond0.100, which has address 2001:db8:100::5/64"),
            ]
        ),
        (.macvlanOverNIC, [.init(.network, "0000:05:00.0 → enp5s0 → mv0, which has a route to 10.9.0.0/16")]),
        (.swapPartition, [.init(.storage, "0000:00:17.0 → sda → sda2, active swap")]),
        (.zfsRootMember, [.init(.storage, "0000:02:00.0 → sda → sda1, member of ZFS pool rpool (zfs_member)")]),
        (
            .lvmOnLUKSOnNVMe,
            [
                .init(.storage, "0000:01:00.0 → nvme0n1 → nvme0n1p1, mounted at /boot"),
                .init(.storage, "0000:01:00.0 → nvme0n1 → nvme0n1p2 → dm-0 (cryptroot) → dm-1 (vg-root), mounted at /"),
                .init(.storage, "0000:01:00.0 → nvme0n1 → nvme0n1p2 → dm-0 (cryptroot) → dm-2 (vg-swap), active swap"),
            ]
        ),
        (
            .btrfsOverTwoDisks,
            [
                .init(.storage, "0000:00:04.0 → vda → vda1, in btrfs filesystem data, mounted at /srv"),
                .init(.storage, "0000:00:05.0 → vdb → vdb1, in btrfs filesystem data, mounted at /srv"),
            ]
        ),
        (.consoleOnSecondGPU, [.init(.console, "0000:0c:00.0 → fb0 → vtcon1 (frame buffer device), the virtual console")]),
        (
            .efiFramebufferConsole,
            [.init(.console, "0000:01:00.0 → efi-framebuffer.0 → fb0 → vtcon1 (frame buffer device), the virtual console")]
        ),
        (.drmCardHeldOpen, [.init(.drmOpen, "0000:0c:00.0 → /dev/dri/card0, held open by Xorg (pid 1234)")]),
        (.nicDown, []),
        (.linkLocalOnly, []),
    ]

    @Test(arguments: table)
    func layoutGivesItsUses(_ layout: SysfsTree.HostLayout, _ expected: [ExpectedUse]) throws {
        let tree = SysfsTree.hostLayout(layout)
        let uses = try scan(tree).uses
        #expect(uses.map { "\($0.kind): \($0.reason)" } == expected.map(\.description))
        for use in uses {
            #expect(use.reason.hasPrefix(use.chain.joined(separator: " → ") + ", "))
            #expect(use.chain.first == use.address.description)
        }
    }

    @Test func everyLayoutIsInTheTable() {
        #expect(Set(Self.table.map(\.0.rawValue)) == Set(SysfsTree.HostLayout.allCases.map(\.rawValue)))
    }

    /// boot_vga=1 is a note, never a use: the console is on the other card.
    @Test func bootVGAAloneIsANote() throws {
        let result = try scan(SysfsTree.hostLayout(.consoleOnSecondGPU))
        let bootGPU = PCIAddress("0000:01:00.0")!
        #expect(result.uses(of: bootGPU).isEmpty)
        #expect(result.notes == [HostNote(address: bootGPU, text: HostUseScanner.bootVGANote)])
    }

    @Test func workstationUses() throws {
        let uses = try scan(SysfsTree.workstation()).uses
        #expect(
            uses.map(\.reason) == [
                "0000:00:02.0 → fb0 → vtcon1 (frame buffer device), the virtual console",
                "0000:00:17.0 → sda → sda1, mounted at /srv/data set",
                "0000:00:1f.6 → eno1, which carries the default route",
                "0000:02:00.0 → nvme0n1 → nvme0n1p1, mounted at /",
            ])
        #expect(uses.map(\.kind) == [.console, .storage, .network, .storage])
    }
}

/// Each rule on its own, by changing one fact of a layout.
@Suite struct HostUseRuleTests {
    /// The scan is fresh: a bridge that appears over a NIC makes it used at the next scan.
    @Test func aBridgeAppearingMakesTheNICUsed() throws {
        let tree = SysfsTree.hostLayout(.nicDown)
        tree.setNetUp("enp5s0", true)
        tree.addRoute("enp5s0", to: "10.1.0.0/16")
        let nic = PCIAddress("0000:05:00.0")!
        let scanner = HostUseScanner(root: tree.sysfs)
        #expect(scanner.uses(of: nic).map(\.reason) == [
            "0000:05:00.0 → enp5s0, which carries the default route"
        ])
        tree.addUpperNet("br0", kind: .bridge, lowers: ["enp5s0"])
        tree.addRoute("br0", to: "192.168.7.0/24")
        #expect(scanner.uses(of: nic).map(\.reason) == [
            "0000:05:00.0 → enp5s0 → br0, which has a route to 192.168.7.0/24",
            "0000:05:00.0 → enp5s0, which carries the default route",
        ])
    }

    /// A down upper lends nothing to the interfaces beneath it.
    @Test func aDownBridgeIsNotAUse() throws {
        let tree = SysfsTree.hostLayout(.bridgeOverNIC)
        tree.setNetUp("vmbr0", false)
        #expect(try scan(tree).uses.isEmpty)
    }

    /// IFF_UP in `flags` counts even when `operstate` says down (no carrier yet).
    @Test func adminUpWithoutCarrierIsUp() throws {
        let tree = SysfsTree.hostLayout(.bridgeOverNIC)
        tree.setNetUp("vmbr0", false)
        FileTree.write(tree.host("/sys/devices/virtual/net/vmbr0/flags"), "0x1003\n")
        #expect(try scan(tree).uses.count == 1)
    }

    /// Only the `lower_*` links (no brif/, no master): still followed.
    @Test func lowerLinksAloneAreFollowed() throws {
        let tree = SysfsTree.hostLayout(.bridgeOverNIC)
        FileTree.remove(tree.host("/sys/devices/virtual/net/vmbr0/brif"))
        let nicPath = tree.pciPath(PCIAddress("0000:05:00.0")!) + "/net/enp5s0"
        unlink(tree.host(nicPath + "/master"))
        unlink(tree.host(nicPath + "/upper_vmbr0"))
        #expect(try scan(tree).uses.map(\.reason) == ["0000:05:00.0 → enp5s0 → vmbr0, which carries the default route"])
    }

    /// Only the lower's `master` link: still followed.
    @Test func masterLinkAloneIsFollowed() throws {
        let tree = SysfsTree.hostLayout(.bridgeOverNIC)
        FileTree.remove(tree.host("/sys/devices/virtual/net/vmbr0/brif"))
        unlink(tree.host("/sys/devices/virtual/net/vmbr0/lower_enp5s0"))
        #expect(try scan(tree).uses.map(\.reason) == ["0000:05:00.0 → enp5s0 → vmbr0, which carries the default route"])
    }

    /// A global IPv6 address, and an IPv6 default route, each make a use.
    @Test func ipv6AddressAndDefaultRoute() throws {
        let tree = SysfsTree.hostLayout(.linkLocalOnly)
        tree.addIPv6Route("enp5s0", to: String(repeating: "0", count: 32), prefix: 0)
        #expect(try scan(tree).uses.map(\.reason) == ["0000:05:00.0 → enp5s0, which carries the default route"])
        let other = SysfsTree.hostLayout(.linkLocalOnly)
        other.addInet6("enp5s0", address: "fd000000000000000000000000000001", prefix: 48)
        #expect(try scan(other).uses.map(\.reason) == ["0000:05:00.0 → enp5s0, which has address fd00::1/48"])
    }

    /// Mounts match by major:minor: a mountinfo source path that names
    /// another device (a stale /dev link, a renamed node) does not mislead.
    @Test func mountsMatchByDeviceNumber() throws {
        let tree = SysfsTree.hostLayout(.swapPartition)
        FileTree.write(tree.host("/proc/swaps"), "Filename Type Size Used Priority\n")
        let devnum = try #require(tree.blockNumber("sda1"))
        FileTree.makeDirectory(tree.host("/proc/self"))
        FileTree.write(tree.host("/proc/self/mountinfo"), "30 1 \(devnum) / /data rw - xfs /dev/root rw\n")
        #expect(try scan(tree).uses.map(\.reason) == ["0000:00:17.0 → sda → sda1, mounted at /data"])
        FileTree.write(tree.host("/proc/self/mountinfo"), "30 1 0:99 / /data rw - xfs /dev/sda1 rw\n")
        #expect(try scan(tree).uses.isEmpty)
    }

    /// A pool member is used even with nothing mounted; each pool kind names itself.
    @Test(arguments: [
        ("LVM2_member", "LVM physical volume (LVM2_member)"),
        ("linux_raid_member", "member of md RAID array rpool (linux_raid_member)"),
        ("crypto_LUKS", "LUKS container (crypto_LUKS)"),
        ("ext4", nil),
    ])
    func poolMembers(_ type: String, _ why: String?) throws {
        let tree = SysfsTree.hostLayout(.zfsRootMember)
        tree.setUdevData(block: "sda1", ["ID_FS_TYPE": type, "ID_FS_LABEL": "rpool"])
        #expect(try scan(tree).uses.map(\.reason) == (why.map { ["0000:02:00.0 → sda → sda1, \($0)"] } ?? []))
    }

    /// Swap named through a /dev/disk/by-uuid link resolves to its partition.
    @Test func swapThroughADevLink() throws {
        let tree = SysfsTree.hostLayout(.swapPartition)
        FileTree.makeDirectory(tree.host("/dev/disk/by-uuid"))
        FileTree.link(tree.host("/dev/disk/by-uuid/1234-abcd"), to: "../../sda2")
        FileTree.write(tree.host("/proc/swaps"), "Filename Type Size Used Priority\n/dev/disk/by-uuid/1234-abcd partition 8388604 0 -2\n")
        #expect(try scan(tree).uses.map(\.reason) == ["0000:00:17.0 → sda → sda2, active swap"])
    }

    /// md RAID over two disks on two controllers: both controllers used.
    @Test func mdOverTwoControllers() throws {
        let tree = SysfsTree.hostLayout(.btrfsOverTwoDisks)
        FileTree.remove(tree.host("/sys/fs/btrfs"))
        tree.addMD("md0", over: ["vda1", "vdb1"])
        tree.mount("md0", at: "/var/lib/libvirt")
        #expect(try scan(tree).uses.map(\.reason) == [
            "0000:00:04.0 → vda → vda1 → md0, mounted at /var/lib/libvirt",
            "0000:00:05.0 → vdb → vdb1 → md0, mounted at /var/lib/libvirt",
        ])
    }

    /// An NVMe multipath head has no PCI function on its path: every
    /// controller its subsystem lists is used.
    @Test func nvmeMultipathHeadUsesEveryController() throws {
        let tree = SysfsTree()
        let a = tree.addPCI(.init("0000:41:00.0", vendor: "144d", device: "a824", classCode: 0x010802, driver: "nvme", iommuGroup: 40))
        let b = tree.addPCI(.init("0000:42:00.0", vendor: "144d", device: "a824", classCode: 0x010802, driver: "nvme", iommuGroup: 41))
        tree.addNVMeMultipathDisk("nvme0n1", subsystem: 0, controllers: [("nvme0", a), ("nvme1", b)])
        tree.addPartition(1, ofDisk: "nvme0n1")
        tree.mount("nvme0n1p1", at: "/var/lib/vms", fstype: "xfs")
        #expect(try scan(tree).uses.map(\.reason) == [
            "0000:41:00.0 → nvme0n1 → nvme0n1p1, mounted at /var/lib/vms",
            "0000:42:00.0 → nvme0n1 → nvme0n1p1, mounted at /var/lib/vms",
        ])
    }

    /// `operstate` unknown (tun, some virtual NICs) counts as up.
    @Test func unknownOperstateIsUp() throws {
        let tree = SysfsTree.hostLayout(.nicDown)
        let path = tree.pciPath(PCIAddress("0000:05:00.0")!) + "/net/enp5s0"
        FileTree.write(tree.host(path + "/operstate"), "unknown\n")
        #expect(try scan(tree).uses.map(\.reason) == ["0000:05:00.0 → enp5s0, which carries the default route"])
    }

    /// simpledrm: the firmware framebuffer is a DRM card of a platform
    /// device, which sits on the boot GPU; a process holding it holds that GPU.
    @Test func simpledrmCardBelongsToTheBootGPU() throws {
        let tree = SysfsTree()
        tree.addPCI(.init("0000:01:00.0", vendor: "10de", device: "2684", classCode: 0x030000, iommuGroup: 1, bootVGA: true))
        let platform = tree.addFirmwareFramebuffer("simple-framebuffer", fb: 0)
        tree.addDRMCard(0, on: platform)
        tree.addProcess(300, comm: "plymouthd", openFiles: ["/dev/dri/card0"])
        #expect(try scan(tree).uses.map(\.reason) == [
            "0000:01:00.0 → simple-framebuffer.0 → /dev/dri/card0, held open by plymouthd (pid 300)"
        ])
    }

    /// NVIDIA's driver has no DRM card without modeset: `/dev/nvidiaN`, by
    /// the minor its /proc record names, holds the GPU; `/dev/nvidiactl` no GPU in particular.
    @Test func nvidiaDeviceFileHoldsItsGPU() throws {
        let tree = SysfsTree()
        let gpu = PCIAddress("0000:01:00.0")!
        let other = PCIAddress("0000:02:00.0")!
        tree.addPCI(.init(gpu.description, vendor: "10de", device: "2684", classCode: 0x030000, driver: "nvidia", iommuGroup: 1))
        tree.addPCI(.init(other.description, vendor: "10de", device: "2684", classCode: 0x030000, driver: "nvidia", iommuGroup: 2))
        tree.addNvidiaGPU(gpu, minor: 0)
        tree.addNvidiaGPU(other, minor: 1)
        tree.addProcess(5000, comm: "python3", openFiles: ["/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia1"])
        let scanner = HostUseScanner(root: tree.sysfs)
        #expect(scanner.uses(of: gpu).isEmpty)
        #expect(scanner.uses(of: other).map(\.reason) == ["0000:02:00.0 → /dev/nvidia1, held open by python3 (pid 5000)"])
        #expect(scanner.uses(of: other).map(\.kind) == [.drmOpen])
    }

    /// A bound console with no framebuffer vtcon (fbcon unbound) is no use.
    @Test func unboundConsoleIsNoUse() throws {
        let tree = SysfsTree.hostLayout(.consoleOnSecondGPU)
        FileTree.write(tree.host("/sys/devices/virtual/vtconsole/vtcon1/bind"), "0\n")
        #expect(try scan(tree).uses.isEmpty)
    }

    /// Render nodes count too, several holders are all named, and a process
    /// that closes the card stops the use.
    @Test func drmHoldersComeAndGo() throws {
        let tree = SysfsTree.hostLayout(.drmCardHeldOpen)
        tree.addProcess(2000, comm: "ollama", openFiles: ["/dev/dri/renderD128"])
        tree.addProcess(2001, comm: "gnome-shell", openFiles: ["/dev/dri/card0", "/dev/dri/card0"])
        let gpu = PCIAddress("0000:0c:00.0")!
        let scanner = HostUseScanner(root: tree.sysfs)
        #expect(scanner.uses(of: gpu).map(\.reason) == [
            "0000:0c:00.0 → /dev/dri/card0, held open by Xorg (pid 1234), gnome-shell (pid 2001)",
            "0000:0c:00.0 → /dev/dri/renderD128, held open by ollama (pid 2000)",
        ])
        for pid in [1234, 2000, 2001] { tree.removeProcess(pid) }
        #expect(scanner.uses(of: gpu).isEmpty)
    }

    /// `uses(of:)` answers for one device only, the same as the full scan does.
    @Test func usesOfOneDeviceMatchesTheFullScan() throws {
        let tree = SysfsTree.workstation()
        let full = try scan(tree).uses
        let scanner = HostUseScanner(root: tree.sysfs)
        for address in Set(full.map(\.address)) {
            #expect(scanner.uses(of: address) == full.filter { $0.address == address })
        }
        #expect(scanner.uses(of: PCIAddress("0000:01:00.0")!).isEmpty)
    }

    /// Octal escapes in mountinfo paths are undone.
    @Test(arguments: [("/srv/data\\040set", "/srv/data set"), ("a\\134b", "a\\b"), ("plain", "plain"), ("x\\04", "x\\04")])
    func octalEscapes(_ text: String, _ expected: String) {
        #expect(text.unescapingOctal == expected)
    }

    @Test(arguments: [
        ("20010db8000000000000000000000001", "2001:db8::1"), ("fe80000000000000020c29fffe123456", "fe80::20c:29ff:fe12:3456"),
        ("00000000000000000000000000000000", "::"), ("20010db8000100000001000000000001", "2001:db8:1:0:1::1"),
    ])
    func ipv6Text(_ hex: String, _ expected: String) {
        #expect(NetworkFacts.ipv6(hex) == expected)
    }
}

@Suite struct HostUseCodingTests {
    /// A snapshot from before uses had kinds decodes as `unknown`, which is never forcible.
    @Test func oldSnapshotsDecode() throws {
        let use = try JSONDecoder().decode(HostUse.self, from: Data(#"{"address":"0000:00:17.0","reason":"holds /srv"}"#.utf8))
        #expect(use.kind == .unknown && !use.kind.isForcible)
        #expect(use.chain == ["0000:00:17.0"] && use.reason == "holds /srv")
    }

    @Test func roundTrip() throws {
        let use = HostUse(address: PCIAddress("0000:05:00.0")!, kind: .network, chain: ["0000:05:00.0", "enp5s0", "vmbr0"], why: "which carries the default route")
        #expect(try JSONDecoder().decode(HostUse.self, from: JSONEncoder().encode(use)) == use)
        #expect(use.reason == "0000:05:00.0 → enp5s0 → vmbr0, which carries the default route")
    }

    @Test(arguments: HostUse.Kind.allCases)
    func onlyNetworkAndConsoleAreForcible(_ kind: HostUse.Kind) {
        #expect(kind.isForcible == (kind == .network || kind == .console))
    }
}
