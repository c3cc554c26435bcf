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

    @Option(help: ArgumentHelp("A manifest whose claims to check: IOMMU group viability, SR-IOV VFs, mediated devices, SCSI and USB devices.", valueName: "file"))
    var manifest: String?

    @Option(help: "The group /dev/vfio/N should belong to (the udev rule's GROUP).")
    var vfioGroup: String = "kvm"

    @OptionGroup var output: FormatOption

    typealias Finding = CheckReport.Finding

    func run() throws {
        let root = SysfsRoot(host.sysfsRoot)
        var results: [Finding] = []
        let cmdline = root.read("/proc/cmdline") ?? ""
        let groups = (root.list("/sys/kernel/iommu_groups") ?? []).count
        let iommuOption = cmdline.split(separator: " ").first { $0 == "intel_iommu=on" || $0 == "amd_iommu=on" || $0.hasPrefix("iommu=") }
        if groups > 0 {
            results.append(Finding(.pass, check: "iommu", "IOMMU enabled: \(groups) IOMMU groups" + (iommuOption.map { " (\($0))" } ?? "")))
        } else {
            results.append(Finding(.fail, check: "iommu", "IOMMU not enabled: /sys/kernel/iommu_groups is empty" + (iommuOption.map { " although the command line has \($0)" } ?? ""),
                remedy: "enable VT-d (Intel) or AMD-Vi in the firmware, and boot with intel_iommu=on (Intel) or amd_iommu=on (AMD) on the kernel command line"))
        }
        if root.directory("/sys/bus/pci/drivers/vfio-pci") != nil {
            results.append(Finding(.pass, check: "vfio-pci", "vfio-pci driver loaded"))
        } else {
            results.append(Finding(.fail, check: "vfio-pci", "vfio-pci driver not loaded", remedy: "modprobe vfio-pci, and list vfio-pci in /etc/modules-load.d/vfio.conf so it loads at boot"))
        }
        let unsafe = root.read("/sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts")
        let remapped = (root.read("/proc/interrupts") ?? "").contains("IR-")
        switch (remapped, unsafe == "Y") {
        case (true, false):
            results.append(Finding(.pass, check: "interrupt-remapping", "interrupt remapping active"))
        case (true, true):
            results.append(Finding(.warn, check: "interrupt-remapping", "vfio_iommu_type1.allow_unsafe_interrupts=1 is set although interrupt remapping is active",
                remedy: "it is not needed here and lets a VM's device forge interrupts (MSI attacks): remove it from the kernel command line"))
        case (false, true):
            results.append(Finding(.warn, check: "interrupt-remapping", "no interrupt remapping; vfio_iommu_type1.allow_unsafe_interrupts=1 lets VFIO work without it",
                remedy: "a VM's device can forge interrupts (MSI attacks); enable interrupt remapping in the firmware (VT-d / AMD-Vi with IR) and drop the option"))
        case (false, false):
            results.append(Finding(.fail, check: "interrupt-remapping", "no interrupt remapping (no IR- entries in /proc/interrupts): VFIO refuses to set up a VM's devices (VFIO_SET_IOMMU fails with EPERM)",
                remedy: "enable interrupt remapping in the firmware (VT-d / AMD-Vi with IR); only if that is impossible, boot with vfio_iommu_type1.allow_unsafe_interrupts=1, knowing a VM could then forge interrupts"))
        }
        var domainNames: [String]?
        do {
            let domains = try LibvirtConnection(uri: host.connect, readOnly: true).domains()
            results.append(Finding(.pass, check: "libvirt", "libvirt reachable at \(host.connect) (\(domains.count) domains)"))
            domainNames = domains.map(\.name)
        } catch {
            results.append(Finding(.fail, check: "libvirt", "libvirt not reachable: \(error)", remedy: "start libvirtd (systemctl start libvirtd) or pass --connect URI"))
        }
        results += vfioNodes(root)
        if let manifest {
            let parsed: Manifest
            do { parsed = try loadManifest(manifest) } catch { throw fail(error) }
            // The planner's own observation: devices, host uses, mediated devices, disk names.
            results += CheckReport.claims(parsed, observed: try observe(host: host, observedFile: nil))
            if let domainNames { results += CheckReport.undefinedVMs(parsed, defined: domainNames) }
        }
        let report = CheckReport(findings: results)
        emit(output.format == .json ? report.json.rendered() + "\n" : report.text())
        if report.failed { throw ExitCode.failure }
    }

    /// `/dev/vfio/N` must be group `vfioGroup`, mode 0660, or QEMU fails with
    /// "error opening /dev/vfio/N: Permission denied".
    func vfioNodes(_ root: SysfsRoot) -> [Finding] {
        let nodes = (root.list("/dev/vfio") ?? []).filter { $0.first?.isNumber == true }.sorted()
        guard !nodes.isEmpty else { return [Finding(.pass, check: "vfio-node", "no /dev/vfio/N nodes yet (none is bound to vfio-pci)")] }
        var results: [Finding] = []
        for node in nodes {
            var st = stat()
            guard stat(root.hostPath("/dev/vfio/\(node)"), &st) == 0 else { continue }
            let group = getgrgid(st.st_gid).map { String(cString: $0.pointee.gr_name) } ?? String(st.st_gid)
            let mode = st.st_mode & 0o777
            if group == vfioGroup && mode & 0o060 == 0o060 {
                results.append(Finding(.pass, check: "vfio-node", "/dev/vfio/\(node) is \(group), mode \(String(mode, radix: 8))"))
            } else {
                results.append(Finding(.fail, check: "vfio-node", "/dev/vfio/\(node) is \(group), mode \(String(mode, radix: 8)): QEMU will fail with \"error opening /dev/vfio/\(node): Permission denied\"",
                    remedy: "install udev/70-hostdevd-vfio.rules (manifests/install.sh VFIO_GROUP=\(vfioGroup)), then: udevadm control --reload && udevadm trigger -s vfio"))
            }
        }
        return results
    }
}
