#if canImport(Glibc)
    import Glibc
#endif
import HostdevCore
@testable import HostdevSysfs
import HostdevTestSupport
import Testing

/// A names database that finds no ids files: names must then be empty, not an error.
let noNames = DeviceNameDatabase(searchPaths: ["/nonexistent"])

@Suite struct WorkstationInventoryTests {
    let tree = SysfsTree.workstation()
    var inventory: Inventory { try! InventoryReader(root: tree.sysfs, names: noNames).read() }

    @Test func gpuFunctionHasEveryField() throws {
        let gpu = try #require(inventory.device(named: "pci_0000_01_00_0"))
        #expect(gpu.capability == .pci)
        #expect(gpu.parent == "pci_0000_00_01_0")
        #expect(gpu.driver == "nouveau")
        #expect(gpu.vendorID == "0x10de")
        #expect(gpu.productID == "0x1b80")
        #expect(gpu.sysfsPath == "/sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0")
        let pci = try #require(gpu.pci)
        #expect(pci.address == PCIAddress("0000:01:00.0"))
        #expect(pci.classCode == 0x030000)
        #expect(pci.subsystemVendorID == "0x1043")
        #expect(pci.subsystemID == "0x8591")
        #expect(pci.iommuGroup == 1)
        #expect(pci.bootVGA == false)
        #expect(pci.numaNode == 0)
        #expect(!pci.isBridge)
        #expect(pci.sriov == nil && pci.physicalFunction == nil)
        #expect(gpu.isAssignable)
    }

    @Test func iommuGroupsListTheirMembers() {
        #expect(inventory.iommuEnabled)
        #expect(inventory.group(1)?.members.map(\.description) == ["0000:00:01.0", "0000:01:00.0", "0000:01:00.1"])
        #expect(inventory.iommuGroups.map(\.number) == [0, 1, 2, 3, 4, 5, 6, 7])
    }

    @Test func bridgesBootVGAAndNUMA() throws {
        let port = try #require(inventory.device(named: "pci_0000_00_01_0")?.pci)
        #expect(port.isBridge)
        #expect(port.headerType == 1)
        // The host bridge (class 0x0600) has a type-0 header: not a bridge to VFIO.
        let hostBridge = try #require(inventory.device(named: "pci_0000_00_00_0")?.pci)
        #expect(hostBridge.headerType == 0 && !hostBridge.isBridge)
        #expect(port.numaNode == nil)  // -1 in sysfs means "no node"
        #expect(inventory.device(named: "pci_0000_00_02_0")?.pci?.bootVGA == true)
        #expect(inventory.device(named: "pci_0000_00_14_0")?.pci?.bootVGA == nil)
    }

    @Test func usbDevicesAndInterfaces() throws {
        let hub = try #require(inventory.device(named: "usb_usb1"))
        #expect(hub.parent == "pci_0000_00_14_0")
        #expect(hub.usb?.isRootHub == true)
        #expect(!hub.isAssignable)
        let receiver = try #require(inventory.device(named: "usb_1_4"))
        #expect(receiver.parent == "usb_usb1")
        #expect(receiver.vendorID == "0x046d" && receiver.productID == "0xc52b")
        #expect(receiver.vendor == "Logitech" && receiver.product == "USB Receiver")
        #expect(receiver.usb?.bus == 1 && receiver.usb?.device == 4)
        #expect(receiver.driver == "usb")
        #expect(receiver.isAssignable)
        let interface = try #require(inventory.device(named: "usb_1_4_1_1"))
        #expect(interface.capability == .usbInterface)
        #expect(interface.parent == "usb_1_4")
        #expect(interface.driver == "usbhid")
        #expect(interface.usb?.interfaceNumber == 1 && interface.usb?.interfaceClass == 3)
    }

    @Test func scsiChainAndDisks() throws {
        #expect(inventory.device(named: "scsi_host0")?.parent == "pci_0000_00_17_0")
        #expect(inventory.device(named: "scsi_host0")?.scsi?.host == 0)
        #expect(inventory.device(named: "scsi_target0_0_0")?.parent == "scsi_host0")
        let lun = try #require(inventory.device(named: "scsi_0_0_0_0"))
        #expect(lun.parent == "scsi_target0_0_0")
        #expect(lun.scsi == SCSIInfo(host: 0, bus: 0, target: 0, lun: 0, type: "disk"))
        #expect(lun.vendor == "ATA" && lun.product == "WDC WD40EFRX-68N")
        let sda = try #require(inventory.device(named: "block_sda"))
        #expect(sda.capability == .storage && sda.parent == "scsi_0_0_0_0" && sda.deviceNode == "/dev/sda")
        let sg = try #require(inventory.device(named: "scsi_generic_sg0"))
        #expect(sg.parent == "scsi_0_0_0_0" && sg.deviceNode == "/dev/sg0")
        let nvme = try #require(inventory.device(named: "block_nvme0n1_S4EWNX0R123456"))
        #expect(nvme.parent == "pci_0000_02_00_0")
        #expect(nvme.serial == "S4EWNX0R123456")
        #expect(nvme.product == "Samsung SSD 970 EVO Plus 1TB")
        // Partitions are not devices of their own.
        #expect(!inventory.devices.contains { $0.name.contains("sda1") || $0.name.contains("p1") })
    }

    @Test func netInterfacesSkipVirtualOnes() throws {
        let eno1 = try #require(inventory.device(named: "net_eno1_3c_7c_3f_1e_22_10"))
        #expect(eno1.parent == "pci_0000_00_1f_6")
        #expect(eno1.net == NetInfo(interface: "eno1", macAddress: "3c:7c:3f:1e:22:10", isUp: true))
        #expect(!inventory.devices.contains { $0.name.hasPrefix("net_lo") })
    }

    @Test func namesComeFromIdsFiles() throws {
        let dir = FileTree.makeTemporaryDirectory()
        defer { FileTree.remove(dir) }
        FileTree.write(
            dir + "/pci.ids",
            """
            # comment
            10de  NVIDIA Corporation
            \t1b80  GP104 [GeForce GTX 1080]
            \t\t1043 8591  ROG STRIX GTX 1080
            \t10f0  GP104 High Definition Audio Controller
            8086  Intel Corporation
            C 03  Display controller
            \t00  VGA compatible controller

            """)
        FileTree.write(dir + "/usb.ids", "046d  Logitech, Inc.\n\tc52b  Unifying Receiver\n")
        let named = try InventoryReader(root: tree.sysfs, names: DeviceNameDatabase(searchPaths: [dir])).read()
        #expect(named.device(named: "pci_0000_01_00_0")?.vendor == "NVIDIA Corporation")
        #expect(named.device(named: "pci_0000_01_00_0")?.product == "GP104 [GeForce GTX 1080]")
        #expect(named.device(named: "pci_0000_01_00_1")?.product == "GP104 High Definition Audio Controller")
        #expect(named.device(named: "pci_0000_00_02_0")?.vendor == "Intel Corporation")
        #expect(named.device(named: "pci_0000_00_02_0")?.product == nil)
        // The device's own strings win over the database for USB.
        #expect(named.device(named: "usb_1_4")?.vendor == "Logitech")
        // Without any ids file the fields are empty, and nothing fails.
        #expect(inventory.device(named: "pci_0000_01_00_0")?.vendor == nil)
    }
}

@Suite struct OddSysfsTests {
    @Test func missingIOMMUGroupsMeanIOMMUOff() throws {
        let tree = SysfsTree()
        tree.addPCI(.init("0000:00:03.0", vendor: "1af4", device: "1041", classCode: 0x020000, driver: "virtio-pci"))
        let inventory = try InventoryReader(root: tree.sysfs, names: noNames).read()
        #expect(!inventory.iommuEnabled)
        #expect(inventory.device(named: "pci_0000_00_03_0")?.pci?.iommuGroup == nil)
        #expect(inventory.device(named: "pci_0000_00_03_0")?.isAssignable == false)
    }

    @Test func unreadableAttributesDegradeOnlyThatField() throws {
        let tree = SysfsTree()
        let path = tree.addPCI(.init("0000:01:00.0", vendor: "10de", device: "1b80", classCode: 0x030000, driver: "nouveau", iommuGroup: 1))
        // A directory where a file should be: open succeeds, read fails
        // (EISDIR), as root too. Without config space the reader falls back
        // to the attribute files, one of which is unreadable too.
        unlink(tree.host(path + "/config"))
        FileTree.makeDirectory(tree.host(path + "/config"))
        unlink(tree.host(path + "/vendor"))
        FileTree.makeDirectory(tree.host(path + "/vendor"))
        FileTree.write(tree.host(path + "/class"), "garbage\n")
        let device = try #require(try InventoryReader(root: tree.sysfs, names: noNames).read().device(named: "pci_0000_01_00_0"))
        #expect(device.vendorID == nil)
        #expect(device.productID == "0x1b80")
        #expect(device.pci?.classCode == nil)
        #expect(device.driver == "nouveau")
        #expect(device.pci?.iommuGroup == 1)
    }

    @Test func configSpaceAndAttributeFilesAgree() throws {
        let tree = SysfsTree.workstation()
        let fromConfig = try InventoryReader(root: tree.sysfs, names: noNames).read()
        for address in ["0000:01:00.0", "0000:00:01.0", "0000:02:00.0"] {
            unlink(tree.host(tree.pciPath(PCIAddress(address)!) + "/config"))
        }
        let fromFiles = try InventoryReader(root: tree.sysfs, names: noNames).read()
        for name in ["pci_0000_01_00_0", "pci_0000_00_01_0", "pci_0000_02_00_0"] {
            // Only config space has the header type; without it the class
            // tells a bridge, and tells it the same.
            var read = try #require(fromConfig.device(named: name))
            #expect(read.pci?.headerType != nil)
            #expect(read.pci?.isBridge == fromFiles.device(named: name)?.pci?.isBridge)
            read.pci?.headerType = nil
            #expect(read == fromFiles.device(named: name))
        }
        #expect(fromConfig.device(named: "pci_0000_02_00_0")?.vendorID == "0x144d")
    }

    /// A runtime-suspended function (possibly in D3cold) is read from the
    /// kernel's cached attribute files: reading its `config` would wake it.
    @Test func suspendedDevicesAreNotWokenForTheirConfigSpace() throws {
        let tree = SysfsTree.workstation()
        let gpu = tree.pciPath(PCIAddress("0000:01:00.0")!)
        FileTree.makeDirectory(tree.host(gpu + "/power"))
        FileTree.write(tree.host(gpu + "/power/runtime_status"), "suspended\n")
        // What a read of a powered-down function's config space returns.
        FileTree.write(tree.host(gpu + "/config"), String(repeating: "\u{7f}", count: 64))
        let inventory = try InventoryReader(root: tree.sysfs, names: noNames).read()
        #expect(inventory.device(named: "pci_0000_01_00_0")?.vendorID == "0x10de")
        #expect(inventory.device(named: "pci_0000_01_00_0")?.pci?.classCode == 0x030000)
    }

    @Test func danglingLinksStillList() throws {
        let tree = SysfsTree()
        let path = tree.addPCI(.init("0000:01:00.0", vendor: "10de", device: "1b80", classCode: 0x030000, iommuGroup: 1))
        // A driver link to a driver directory that is gone, and a device that is gone.
        FileTree.link(tree.host(path + "/driver"), to: "../../../../bus/pci/drivers/vanished")
        FileTree.link(tree.host("/sys/bus/pci/devices/0000:05:00.0"), to: "../../../devices/pci0000:00/0000:05:00.0")
        let inventory = try InventoryReader(root: tree.sysfs, names: noNames).read()
        #expect(inventory.device(named: "pci_0000_01_00_0")?.driver == "vanished")
        let ghost = try #require(inventory.device(named: "pci_0000_05_00_0"))
        #expect(ghost.vendorID == nil && ghost.pci?.address == PCIAddress("0000:05:00.0"))
    }

    @Test func missingRootIsAnError() {
        let error = #expect(throws: SysfsError.self) {
            try InventoryReader(root: SysfsRoot("/nonexistent/root"), names: noNames).read()
        }
        #expect(error?.description.contains("/nonexistent/root/sys") == true)
        #expect(error?.description.contains("--sysfs-root") == true)
    }

    @Test func sriovPhysicalAndVirtualFunctions() throws {
        let tree = SysfsTree.sriovHost(pfs: 2, vfsPerPF: 4)
        let inventory = try InventoryReader(root: tree.sysfs, names: noNames).read()
        let pf = try #require(inventory.device(named: "pci_0000_81_00_0")?.pci?.sriov)
        #expect(pf.totalVFs == 64 && pf.numVFs == 4)
        #expect(pf.virtualFunctions.map(\.description) == ["0000:82:00.0", "0000:82:00.1", "0000:82:00.2", "0000:82:00.3"])
        let vf = try #require(inventory.device(named: "pci_0000_82_00_1"))
        #expect(vf.pci?.physicalFunction == PCIAddress("0000:81:00.0"))
        #expect(vf.driver == "iavf")
        #expect(vf.pci?.iommuGroup == 101)
        let secondPFVF = try #require(inventory.device(named: "pci_0000_82_10_0"))
        #expect(secondPFVF.pci?.physicalFunction == PCIAddress("0000:81:00.1"))
        #expect(inventory.devices.filter { $0.pci?.physicalFunction != nil }.count == 8)
    }

    @Test func largeHostListsEveryFunction() throws {
        let tree = SysfsTree.large(functions: 512)
        let inventory = try InventoryReader(root: tree.sysfs, names: noNames).read()
        #expect(inventory.devices.count == 512 + 16)
        #expect(inventory.iommuGroups.count == 16 + 512 / 8)
    }

    /// This machine's own /sys: a real host without an IOMMU. Read-only.
    @Test func readsTheRealHost() throws {
        let inventory = try InventoryReader(root: SysfsRoot("/")).read()
        #expect(inventory.devices.contains { $0.capability == .pci })
        let listed = (SysfsRoot("/").list("/sys/bus/pci/devices") ?? []).count
        #expect(inventory.devices.filter { $0.capability == .pci }.count == listed)
        let groups = (SysfsRoot("/").list("/sys/kernel/iommu_groups") ?? []).count
        #expect(inventory.iommuEnabled == (groups > 0))
    }
}

@Suite struct DeviceRecordTests {
    @Test func ueventParsing() {
        #expect(SysfsEnumerator.parseUevent("DEVTYPE=disk\nDEVNAME=sda\nBAD\nX=a=b\n") == ["DEVTYPE": "disk", "DEVNAME": "sda", "X": "a=b"])
    }

    @Test(arguments: [
        ("/sys/bus/pci/devices", "../../../devices/pci0000:00/0000:00:01.0", "/sys/devices/pci0000:00/0000:00:01.0"),
        ("/a/b", "./c/../d", "/a/b/d"),
        ("/a", "/abs/x", "/abs/x"),
    ])
    func lexicalResolve(base: String, relative: String, expected: String) {
        #expect(SysfsPath.resolve(base, relative) == expected)
    }

    @Test func relativeLinkText() {
        #expect(FileTree.relative(from: "/sys/bus/pci/devices", to: "/sys/devices/pci0000:00/x") == "../../../devices/pci0000:00/x")
    }
}

/// The daemon's cache: a hotplug event re-reads one device into the last
/// inventory. After any sequence of changes it must equal a fresh read.
@Suite struct InventoryRefreshTests {
    let tree = SysfsTree.workstation()
    var reader: InventoryReader { InventoryReader(root: tree.sysfs, names: noNames) }

    func refreshed(_ inventory: inout Inventory, paths: [String]) {
        reader.refresh(&inventory, changes: paths.map { ("pci", String($0.dropFirst(4))) })
    }

    @Test func addRemoveAndDriverChangesEqualAFreshRead() throws {
        var inventory = try reader.read()
        // A NIC hot-added behind the GPU's root port, and one at the root.
        let behind = SysfsTree.PCISpec("0000:01:00.2", vendor: "8086", device: "10fb", classCode: 0x020000, driver: "ixgbe", iommuGroup: 1, parent: "0000:00:01.0")
        let atRoot = SysfsTree.PCISpec("0000:f0:00.0", vendor: "8086", device: "10fb", classCode: 0x020000, driver: "ixgbe", iommuGroup: 40)
        tree.addPCIDriver("ixgbe")
        let paths = [tree.addPCI(behind), tree.addPCI(atRoot)]
        refreshed(&inventory, paths: paths)
        #expect(inventory == (try reader.read()))
        // A driver moves.
        tree.unbindLink(behind.address)
        tree.bindLink(behind.address, "vfio-pci")
        refreshed(&inventory, paths: [paths[0]])
        #expect(inventory == (try reader.read()))
        #expect(inventory.device(at: behind.address)?.driver == "vfio-pci")
        // Both unplugged.
        tree.removePCI(behind.address)
        tree.removePCI(atRoot.address)
        refreshed(&inventory, paths: paths)
        #expect(inventory == (try reader.read()))
        #expect(inventory.group(40) == nil)
    }
}

/// The ids file is read in 64 KiB chunks; lines cut at a chunk's end must
/// parse as if the file were read whole. The real hwdata file has dozens of
/// such cuts.
@Suite(.enabled(if: access("/usr/share/hwdata/pci.ids", R_OK) == 0 || RealComponent.required, "hwdata missing: apt-get install hwdata"))
struct DeviceNameFileTests {
    @Test func chunkedReadEqualsAWholeRead() throws {
        let path = "/usr/share/hwdata/pci.ids"
        let whole = try #require(FileTree.read(path))
        let vendors: Set<UInt16> = [0x8086, 0x10de, 0x1af4, 0x15b3, 0x14e4, 0x1002, 0xffff]
        let chunked = try #require(DeviceNameDatabase.parseFile(path, vendors: vendors))
        let reference = DeviceNameDatabase.parse(Array(whole.utf8), vendors: vendors)
        #expect(chunked.vendors == reference.vendors)
        #expect(chunked.products == reference.products)
        #expect(chunked.products.count > 1000)
        #expect(chunked.vendor(0x1af4) == "Red Hat, Inc.")
    }
}
