import ArgumentParser
import HostdevController
import HostdevCore
import HostdevLibvirt
import HostdevSysfs
import HostdevUdev

extension InventoryFormat: ExpressibleByArgument {}

enum InventorySource: String, CaseIterable, ExpressibleByArgument {
    case udev, libvirt
}

struct Devices: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the host's devices as a tree, a table, hostdevd's JSON or VDSM's hostdevListByCaps JSON.",
        discussion: """
            Sources: udev (default) enumerates with libudev on the live host, or walks the \
            tree under --sysfs-root when one is given (libudev cannot be pointed elsewhere); \
            libvirt lists libvirt's node devices through --connect (any URI, including \
            test:///ABSOLUTE/PATH.xml with a custom node file).
            Formats: json is hostdevd's own (VDSM's layout, typed values, more facts); \
            vdsm is exactly what VDSM's hostdevListByCaps reports (string values, address \
            objects, the computer root).
            Capabilities: \(DeviceCapability.allCases.map(\.rawValue).joined(separator: ", ")).
            """)

    @OptionGroup var host: HostOptions

    @Option(
        help: ArgumentHelp("Only these capabilities, comma-separated; others are skipped and matches hang under their nearest shown ancestor.", valueName: "caps"))
    var caps: String?

    @Option(help: "Output format: \(InventoryFormat.allCases.map(\.rawValue).joined(separator: ", ")).")
    var format: InventoryFormat = .tree

    @Option(help: "Where to read devices from: \(InventorySource.allCases.map(\.rawValue).joined(separator: ", ")).")
    var source: InventorySource = .udev

    @Option(help: ArgumentHelp("List the devices of a recorded snapshot (hostdevctl snapshot) instead.", valueName: "file"))
    var observed: String?

    @Option(help: ArgumentHelp("Ledger directory, for the VM that owns each device.", valueName: "dir"))
    var stateDir: String = "/var/lib/hostdevd"

    func validate() throws {
        _ = try capabilities()
    }

    func capabilities() throws -> Set<DeviceCapability> {
        guard let caps else { return [] }
        var result = Set<DeviceCapability>()
        for name in caps.split(separator: ",").map({ $0.trimming { $0 == " " } }) where !name.isEmpty {
            guard let capability = DeviceCapability(rawValue: name) else {
                throw ValidationError(
                    "unknown capability '\(name)'; use one or more of: \(DeviceCapability.allCases.map(\.rawValue).joined(separator: ","))")
            }
            result.insert(capability)
        }
        return result
    }

    @Flag(help: "Leave out what uses each device (the host's uses and the VMs' elements, which needs libvirt).")
    var noUsedBy = false

    func run() throws {
        var inventory: Inventory
        var owners: [String: String] = [:]
        var usedBy: [String: String] = [:]
        do {
            if let observed {
                let snapshot = try observe(host: host, observedFile: observed)
                inventory = snapshot.inventory
                inventory.setVFSettings(snapshot.vfSettings ?? [:])
                usedBy = InventoryReport.usedBy(hostUses: snapshot.hostUses, domains: snapshot.domains)
            } else {
                inventory = try readInventory(source: source, host: host)
                // Each VF's MAC, VLAN, trust and spoofchk, through its PF (rtnetlink; the live host only).
                if source == .udev, let vfs = HostSources(sysfsRoot: SysfsRoot(host.sysfsRoot), useUdev: false, libvirtURI: host.connect).vfConfigurator {
                    inventory.setVFSettings(vfs.settings(in: inventory))
                }
                if !noUsedBy, source == .udev {
                    let root = SysfsRoot(host.sysfsRoot)
                    let (domains, _) = Observer(sources: HostSources(sysfsRoot: root, useUdev: false, libvirtURI: host.connect)).domains()
                    usedBy = InventoryReport.usedBy(hostUses: HostUseScanner(root: root).scan(inventory), domains: domains)
                }
            }
            // Owners from the ledger: what hostdevd bound, for which VM.
            for (address, entry) in try LedgerStore(directory: stateDir).load().devices {
                if let vm = entry.vm { owners[address.nodeDeviceName] = vm }
            }
        } catch {
            throw fail(error)
        }
        if !inventory.iommuEnabled {
            printError(
                source == .libvirt
                    ? "note: IOMMU is not enabled: no node device on \(host.connect) reports an IOMMU group, so no PCI device is assignable."
                    : "note: IOMMU is not enabled on this host: /sys/kernel/iommu_groups is empty, so no PCI device is assignable. Enable VT-d/AMD-Vi in firmware and boot with intel_iommu=on (Intel) or amd_iommu=on (AMD)."
            )
        }
        let output = BufferedOutput()
        InventoryReport(inventory: inventory, capabilities: try capabilities(), owners: owners, usedBy: usedBy).write(format, to: output.write)
        output.flush()
    }
}

/// The inventory from the chosen source; the one place the CLI picks an adapter.
func readInventory(source: InventorySource, host: HostOptions) throws -> Inventory {
    switch source {
    case .libvirt:
        return try NodeDeviceInventory().read(LibvirtConnection(uri: host.connect, readOnly: true))
    case .udev:
        let root = SysfsRoot(host.sysfsRoot)
        let reader = InventoryReader(root: root)
        if root.path == "/" {
            guard root.exists else { throw Failure(SysfsError(.open, path: "/sys", errno: ENOENT, detail: "sysfs is not mounted")) }
            return reader.read(try UdevEnumerator().records())
        }
        return try reader.read()
    }
}


#if canImport(Glibc)
    import Glibc
#endif
