public import HostdevCore

/// Finds the PCI functions the host itself needs, as chains from the
/// function up to what uses it (DESIGN.md, safety model rule 3):
///
/// - network: an interface that is up with a global address or a route, and
///   every interface beneath it (bridge ports, bond slaves, VLAN parents,
///   macvlan/ipvlan lowers, team ports) down to the PCI function;
/// - storage: a block device that is mounted (matched by major:minor in
///   `/proc/self/mountinfo`), active swap, in a mounted btrfs filesystem, a
///   pool member per udev's database (ZFS, LVM PV, md, LUKS), or beneath any
///   of those (dm, md, LVM, LUKS, bcache), down to its controller;
/// - console: the GPU whose framebuffer holds a bound virtual console, and
///   a GPU whose DRM card or render node a process holds open.
///
/// `boot_vga=1` alone is a firmware hint: a note, never a use.
///
/// Everything is read on every call, all under the root (`sys/`, `proc/`,
/// `run/udev/data/`), so a recorded or built tree answers as a host does.
public struct HostUseScanner: Sendable {
    public let root: SysfsRoot

    public init(root: SysfsRoot) { self.root = root }

    /// Every use of every device, sorted by address (the planner's entry point).
    public func scan(_ inventory: Inventory) -> [HostUse] { scanAll(inventory).uses }

    /// Uses and notes.
    public func scanAll(_ inventory: Inventory) -> HostUseScan {
        var scan = HostUseScan(uses: collect(only: nil) { bootVGA(inventory) })
        for device in inventory.devices where device.pci?.bootVGA == true {
            if let address = device.pci?.address {
                scan.notes.append(HostNote(address: address, text: Self.bootVGANote))
            }
        }
        return scan
    }

    /// The uses of one function: the re-check right before a bind. Skips
    /// the `/proc` walk unless the function has a DRM node.
    public func uses(of address: PCIAddress, inventory: Inventory? = nil) -> [HostUse] {
        collect(only: address) {
            inventory.map(bootVGA) ?? bootVGAFromSysfs()
        }.filter { $0.address == address }
    }

    public static let bootVGANote = "boot_vga=1 (the firmware's boot display): a hint, not a use"

    func collect(only: PCIAddress?, bootVGA: @escaping () -> [PCIAddress]) -> [HostUse] {
        // A one-device re-check reads only what can sit on that class of
        // device: a GPU has no disks or interfaces beneath it, a NIC no
        // console, a disk controller neither. Other classes (USB and
        // Thunderbolt controllers, bridges) get every check.
        let baseClass = only.flatMap { root.read("/sys/bus/pci/devices/\($0)/class") }.flatMap { UInt32(hexText: $0) }
            .map { $0 >> 16 }
        var uses: [HostUse] = []
        if baseClass != 0x01 && baseClass != 0x03 { uses += networkUses() }
        if baseClass != 0x02 && baseClass != 0x03 { uses += storageUses() }
        if baseClass != 0x01 && baseClass != 0x02 {
            let firmwareGPU = FirmwareGPU(find: bootVGA)
            uses += consoleUses(firmwareGPU)
            uses += drmUses(only: only, firmwareGPU)
        }
        var seen = Set<HostUse>()
        return uses.filter { seen.insert($0).inserted }.sorted {
            ($0.address, $0.kind.rawValue, $0.reason) < ($1.address, $1.kind.rawValue, $1.reason)
        }
    }

    func bootVGA(_ inventory: Inventory) -> [PCIAddress] {
        inventory.devices.compactMap { $0.pci?.bootVGA == true ? $0.pci?.address : nil }
    }

    /// Without an inventory: display-class functions with `boot_vga` = 1.
    func bootVGAFromSysfs() -> [PCIAddress] {
        (root.list("/sys/bus/pci/devices") ?? []).compactMap { name in
            guard root.read("/sys/bus/pci/devices/\(name)/boot_vga") == "1" else { return nil }
            return PCIAddress(name)
        }.sorted()
    }

    // MARK: shared helpers

    /// The kernel path a class or bus entry links to (`/sys/class/net/eno1` →
    /// `/sys/devices/pci0000:00/0000:00:1f.6/net/eno1`); a hand-made tree
    /// may hold the directory itself.
    func resolved(_ kernelPath: String) -> String {
        root.readLink(kernelPath).map { SysfsPath.resolve(SysfsPath.parent(kernelPath), $0) } ?? kernelPath
    }

    /// The deepest PCI function on a kernel path.
    static func pciAncestor(_ path: String) -> PCIAddress? {
        path.split(separator: "/").reversed().lazy.compactMap { PCIAddress($0) }.first
    }
}

/// The GPU a firmware framebuffer (`efi-framebuffer.0`, `simple-framebuffer.0`,
/// `vesa-framebuffer.0`) sits on: a platform device, not under the GPU; the
/// GPU the firmware booted on is the one with `boot_vga=1`. Looked up only
/// when a firmware framebuffer is met.
struct FirmwareGPU {
    let find: () -> [PCIAddress]

    static let platformDrivers = ["efi-framebuffer", "simple-framebuffer", "vesa-framebuffer"]

    static func isFirmwareFramebuffer(_ device: String) -> Bool {
        platformDrivers.contains { device.hasPrefix($0 + ".") } || device.hasPrefix("vesafb.")
    }

    /// The GPU under a device path, or the boot GPU for a firmware framebuffer,
    /// with the platform device's name to put in the chain.
    func gpu(ofDevice path: String) -> (PCIAddress, via: String?)? {
        if let address = HostUseScanner.pciAncestor(path) { return (address, nil) }
        let device = SysfsPath.lastComponent(path)
        guard Self.isFirmwareFramebuffer(device), let boot = find().first else { return nil }
        return (boot, device)
    }
}

extension String {
    /// mountinfo and /proc/swaps escape space, tab, newline and backslash as `\ooo`.
    var unescapingOctal: String {
        guard contains("\\") else { return self }
        var out: [UInt8] = []
        let bytes = Array(utf8)
        var i = 0
        while i < bytes.count {
            if bytes[i] == 0x5c, i + 3 < bytes.count {
                let digits = bytes[(i + 1)...(i + 3)]
                if digits.allSatisfy({ $0 >= 0x30 && $0 <= 0x37 }),
                    let value = UInt8(String(decoding: digits, as: UTF8.self), radix: 8)
                {
                    out.append(value)
                    i += 4
                    continue
                }
            }
            out.append(bytes[i])
            i += 1
        }
        return String(decoding: out, as: UTF8.self)
    }
}
