import ArgumentParser
import HostdevCore
import HostdevLibvirt
import HostdevSysfs

#if canImport(Glibc)
    import Glibc
#endif

/// Is this host ready for passthrough? Each check says pass, warn or fail,
/// and a failing one says what to do, in the words of the seed's
/// troubleshooting where it has them.
struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check that the host is ready for passthrough, and say how to fix what is not.",
        discussion: "Exit status: 0 when nothing failed (warnings allowed), 1 otherwise.")

    @OptionGroup var host: HostOptions

    @Option(help: ArgumentHelp("A manifest whose IOMMU groups to check for viability.", valueName: "file"))
    var manifest: String?

    @Option(help: "The group /dev/vfio/N should belong to (the udev rule's GROUP).")
    var vfioGroup: String = "kvm"

    enum Verdict: String { case pass = "ok  ", warn = "warn", fail = "FAIL" }

    func run() throws {
        let root = SysfsRoot(host.sysfsRoot)
        var results: [(Verdict, String, String?)] = []
        let cmdline = root.read("/proc/cmdline") ?? ""
        let groups = (root.list("/sys/kernel/iommu_groups") ?? []).count
        let iommuOption = cmdline.split(separator: " ").first { $0 == "intel_iommu=on" || $0 == "amd_iommu=on" || $0.hasPrefix("iommu=") }
        if groups > 0 {
            results.append((.pass, "IOMMU enabled: \(groups) IOMMU groups" + (iommuOption.map { " (\($0))" } ?? ""), nil))
        } else {
            results.append((.fail, "IOMMU not enabled: /sys/kernel/iommu_groups is empty" + (iommuOption.map { " although the command line has \($0)" } ?? ""),
                "enable VT-d (Intel) or AMD-Vi in the firmware, and boot with intel_iommu=on (Intel) or amd_iommu=on (AMD) on the kernel command line"))
        }
        if root.directory("/sys/bus/pci/drivers/vfio-pci") != nil {
            results.append((.pass, "vfio-pci driver loaded", nil))
        } else {
            results.append((.fail, "vfio-pci driver not loaded", "modprobe vfio-pci, and list vfio-pci in /etc/modules-load.d/vfio.conf so it loads at boot"))
        }
        let unsafe = root.read("/sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts")
        let remapped = (root.read("/proc/interrupts") ?? "").contains("IR-")
        switch (remapped, unsafe == "Y") {
        case (true, false):
            results.append((.pass, "interrupt remapping active", nil))
        case (true, true):
            results.append((.warn, "vfio_iommu_type1.allow_unsafe_interrupts=1 is set although interrupt remapping is active",
                "it is not needed here and lets a VM's device forge interrupts (MSI attacks): remove it from the kernel command line"))
        case (false, true):
            results.append((.warn, "no interrupt remapping; vfio_iommu_type1.allow_unsafe_interrupts=1 lets VFIO work without it",
                "a VM's device can forge interrupts (MSI attacks); enable interrupt remapping in the firmware (VT-d / AMD-Vi with IR) and drop the option"))
        case (false, false):
            results.append((.fail, "no interrupt remapping (no IR- entries in /proc/interrupts): VFIO refuses to set up a VM's devices (VFIO_SET_IOMMU fails with EPERM)",
                "enable interrupt remapping in the firmware (VT-d / AMD-Vi with IR); only if that is impossible, boot with vfio_iommu_type1.allow_unsafe_interrupts=1, knowing a VM could then forge interrupts"))
        }
        do {
            let domains = try LibvirtConnection(uri: host.connect, readOnly: true).domains()
            results.append((.pass, "libvirt reachable at \(host.connect) (\(domains.count) domains)", nil))
        } catch {
            results.append((.fail, "libvirt not reachable: \(error)", "start libvirtd (systemctl start libvirtd) or pass --connect URI"))
        }
        results += vfioNodes(root)
        if let manifest { results += try viability(root, manifest) }

        var failed = false
        for (verdict, what, remedy) in results {
            emit("\(verdict.rawValue)  \(what)\n")
            if let remedy, verdict != .pass { emit("      → \(remedy)\n") }
            failed = failed || verdict == .fail
        }
        emit("\nIf a device still fails to assign, booting with pci=realloc lets the kernel reassign the resources the firmware gave it.\n")
        if failed { throw ExitCode.failure }
    }

    /// `/dev/vfio/N` must be group `vfioGroup`, mode 0660, or QEMU fails with
    /// "error opening /dev/vfio/N: Permission denied".
    func vfioNodes(_ root: SysfsRoot) -> [(Verdict, String, String?)] {
        let nodes = (root.list("/dev/vfio") ?? []).filter { $0.first?.isNumber == true }.sorted()
        guard !nodes.isEmpty else { return [(.pass, "no /dev/vfio/N nodes yet (none is bound to vfio-pci)", nil)] }
        var results: [(Verdict, String, String?)] = []
        for node in nodes {
            var st = stat()
            guard stat(root.hostPath("/dev/vfio/\(node)"), &st) == 0 else { continue }
            let group = getgrgid(st.st_gid).map { String(cString: $0.pointee.gr_name) } ?? String(st.st_gid)
            let mode = st.st_mode & 0o777
            if group == vfioGroup && mode & 0o060 == 0o060 {
                results.append((.pass, "/dev/vfio/\(node) is \(group), mode \(String(mode, radix: 8))", nil))
            } else {
                results.append((.fail, "/dev/vfio/\(node) is \(group), mode \(String(mode, radix: 8)): QEMU will fail with \"error opening /dev/vfio/\(node): Permission denied\"",
                    "install udev/70-hostdevd-vfio.rules (manifests/install.sh VFIO_GROUP=\(vfioGroup)), then: udevadm control --reload && udevadm trigger -s vfio"))
            }
        }
        return results
    }

    /// The PCI function a claim names: by address, or by vendor/device ID
    /// (with `index` among several, by address, as the planner picks).
    static func resolve(_ selector: DeviceSelector, in inventory: Inventory) -> PCIAddress? {
        switch selector {
        case .pci(let address): return address
        case .pciID(let vendor, let product, let index):
            let matches = inventory.devices.compactMap { device -> PCIAddress? in
                guard device.vendorID.flatMap({ UInt16(hexText: $0) }) == vendor, device.productID.flatMap({ UInt16(hexText: $0) }) == product
                else { return nil }
                return device.pci?.address
            }.sorted()
            if let index { return index < matches.count ? matches[index] : nil }
            return matches.count == 1 ? matches[0] : nil
        case .usbID, .usbAddress, .mdev, .scsi, .scsiPath: return nil
        }
    }

    /// Each claimed device's group must be all on vfio-pci (or bridges) when
    /// its VM starts; say which siblings stand in the way.
    func viability(_ root: SysfsRoot, _ path: String) throws -> [(Verdict, String, String?)] {
        let manifest = try loadManifest(path)
        let inventory = try InventoryReader(root: root).read()
        var results: [(Verdict, String, String?)] = []
        var checked = Set<Int>()
        for binding in manifest.bindings {
            for claim in binding.devices {
                guard let address = Self.resolve(claim.selector, in: inventory), let device = inventory.device(at: address),
                    let group = device.pci?.iommuGroup, checked.insert(group).inserted
                else { continue }
                let members = inventory.group(group)?.members ?? [address]
                let strangers = members.compactMap { inventory.device(at: $0) }
                    .filter { !($0.pci?.isBridge ?? false) && $0.driver != "vfio-pci" && $0.driver != "pci-stub" && $0.driver != nil }
                let list = strangers.map { "\($0.pci!.address) (\($0.driver!))" }.joined(separator: ", ")
                if strangers.isEmpty {
                    results.append((.pass, "IOMMU group \(group) of \(address) (\(binding.vm)): \(members.count) device(s), all ready", nil))
                } else if claim.group != .device {
                    let others = strangers.filter { $0.pci?.address != address }.map { "\($0.pci!.address) (\($0.driver!))" }
                    guard !others.isEmpty else {
                        results.append((.pass, "IOMMU group \(group) of \(address) (\(binding.vm)): \(members.count) device(s), hostdevd moves them together", nil))
                        continue
                    }
                    results.append((.warn, "IOMMU group \(group) of \(address) (\(binding.vm)): hostdevd will also take \(others.joined(separator: ", ")) off their host drivers (group: \(claim.group.rawValue))",
                        "make sure the host can spare them (hostdevd refuses any the host visibly uses, but a chipset function such as an LPC bridge or SMBus has uses it cannot see)"))
                } else {
                    results.append((.fail, "group \(group) is not viable for \(address) (\(binding.vm)): \(list) still on host drivers",
                        "VFIO needs every non-bridge device of the group on vfio-pci or on no driver: claim the whole group (group: attach, or hold for devices the VM should not see), or unbind those devices (allowing unsafe interrupts does not help here: that option is about interrupt remapping, not viability)"))
                }
            }
        }
        return results
    }
}
