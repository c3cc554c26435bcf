/// Device kinds as libvirt's node-device capabilities name them (and VDSM's
/// `hostdevListByCaps` filters them).
public enum DeviceCapability: String, CaseIterable, Sendable, Codable, Comparable {
    case pci
    case usbDevice = "usb_device"
    case usbInterface = "usb"
    case scsiHost = "scsi_host"
    case scsiTarget = "scsi_target"
    case scsi
    case scsiGeneric = "scsi_generic"
    case net
    case storage

    public static func < (a: Self, b: Self) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }
}

/// One device of the host, whichever source (sysfs/udev or libvirt) saw it.
/// Fields that could not be read are `nil`: a missing attribute degrades
/// that field, never the listing.
public struct HostDevice: Sendable, Equatable, Codable {
    /// libvirt-style node-device name (`pci_0000_01_00_0`); unique in an inventory.
    public var name: String
    public var capability: DeviceCapability
    /// Name of the parent device, or `computer` at the root.
    public var parent: String
    /// The kernel's path (`/sys/devices/...`), never prefixed by a sysfs root.
    public var sysfsPath: String?
    public var driver: String?
    /// `0x10de` style, as VDSM and libvirt print them.
    public var vendorID: String?
    public var productID: String?
    public var vendor: String?
    public var product: String?

    public var pci: PCIFunction?
    public var usb: USBInfo?
    public var net: NetInfo?
    public var scsi: SCSIInfo?
    /// Block device node (`/dev/sda`) for storage, char node (`/dev/sg0`) for scsi_generic.
    public var deviceNode: String?
    public var serial: String?

    public init(
        name: String, capability: DeviceCapability, parent: String = DeviceNaming.computer,
        sysfsPath: String? = nil, driver: String? = nil, vendorID: String? = nil, productID: String? = nil,
        vendor: String? = nil, product: String? = nil, pci: PCIFunction? = nil, usb: USBInfo? = nil,
        net: NetInfo? = nil, scsi: SCSIInfo? = nil, deviceNode: String? = nil, serial: String? = nil
    ) {
        self.name = name
        self.capability = capability
        self.parent = parent
        self.sysfsPath = sysfsPath
        self.driver = driver
        self.vendorID = vendorID
        self.productID = productID
        self.vendor = vendor
        self.product = product
        self.pci = pci
        self.usb = usb
        self.net = net
        self.scsi = scsi
        self.deviceNode = deviceNode
        self.serial = serial
    }

    /// Whether a VM could be given this device: a PCI endpoint in an IOMMU
    /// group, or a USB device that is not a root hub.
    public var isAssignable: Bool {
        switch capability {
        case .pci: return pci.map { !$0.isBridge && $0.iommuGroup != nil } ?? false
        case .usbDevice: return !(usb?.isRootHub ?? false)
        default: return false
        }
    }
}

extension HostDevice {
    /// Whether its vendor and product IDs are these (a claim or query by ID).
    public func hasID(vendor: UInt16, product: UInt16) -> Bool {
        vendorID.flatMap { UInt16(hexText: $0) } == vendor && productID.flatMap { UInt16(hexText: $0) } == product
    }
}

/// What only a PCI function has.
public struct PCIFunction: Sendable, Equatable, Codable {
    public var address: PCIAddress
    /// 24-bit class code (`0x030000` VGA controller).
    public var classCode: UInt32?
    public var subsystemVendorID: String?
    public var subsystemID: String?
    public var iommuGroup: Int?
    /// SR-IOV physical function data, when the device is a PF.
    public var sriov: SRIOV?
    /// Set on a virtual function: its PF.
    public var physicalFunction: PCIAddress?
    /// Set on a virtual function whose PF's driver reported its settings
    /// (rtnetlink, read for `hostdevctl devices`).
    public var vfSettings: VFSettings?
    public var bootVGA: Bool?
    public var numaNode: Int?
    /// Configuration-space header type (offset 0x0e, without the
    /// multi-function bit): 0 an endpoint, 1 a PCI-to-PCI bridge (root and
    /// downstream ports too), 2 a CardBus bridge. nil when not read (libvirt
    /// without a bridge capability, a runtime-suspended function).
    public var headerType: UInt8?
    /// Mediated device types this function offers (libvirt's `mdev_types`
    /// capability); nil when none are known.
    public var mdevTypes: [MdevType]?

    public init(
        address: PCIAddress, classCode: UInt32? = nil, subsystemVendorID: String? = nil, subsystemID: String? = nil,
        iommuGroup: Int? = nil, sriov: SRIOV? = nil, physicalFunction: PCIAddress? = nil, bootVGA: Bool? = nil,
        numaNode: Int? = nil, headerType: UInt8? = nil, mdevTypes: [MdevType]? = nil
    ) {
        self.address = address
        self.classCode = classCode
        self.subsystemVendorID = subsystemVendorID
        self.subsystemID = subsystemID
        self.iommuGroup = iommuGroup
        self.sriov = sriov
        self.physicalFunction = physicalFunction
        self.bootVGA = bootVGA
        self.numaNode = numaNode
        self.headerType = headerType
        self.mdevTypes = mdevTypes
    }

    /// A bridge as VFIO counts one: never detached, and never in the way of
    /// its group's viability. VFIO exempts a function whose header is not
    /// type 0 (a PCI-to-PCI or CardBus bridge); vfio-pci refuses to bind
    /// one. The header type decides when known, else the class: PCI-to-PCI
    /// (0x0604), CardBus (0x0607) and semi-transparent PCI-to-PCI (0x0609)
    /// bridges. A host bridge (0x0600) or an ISA/LPC bridge (0x0601) has a
    /// type-0 header: to VFIO it is an endpoint like any other, and an LPC
    /// controller on `lpc_ich` makes its group not viable.
    public var isBridge: Bool {
        if let headerType { return headerType != 0 }
        return classCode.map { Self.bridgeSubclasses.contains($0 >> 8) } ?? false
    }

    /// Class and subclass (the class code without its programming
    /// interface) of the bridges that have a type-1 or type-2 header.
    public static let bridgeSubclasses: Set<UInt32> = [0x0604, 0x0607, 0x0609]
}

public struct SRIOV: Sendable, Equatable, Codable {
    public var totalVFs: Int
    public var numVFs: Int
    /// The VFs by number: `virtualFunctions[N]` is the `virtfnN` link.
    public var virtualFunctions: [PCIAddress]

    public init(totalVFs: Int, numVFs: Int, virtualFunctions: [PCIAddress] = []) {
        self.totalVFs = totalVFs
        self.numVFs = numVFs
        self.virtualFunctions = virtualFunctions
    }
}

public struct USBInfo: Sendable, Equatable, Codable {
    /// Bus and device number (`busnum`, `devnum`) of a usb_device.
    public var bus: Int?
    public var device: Int?
    /// Interface number and class triple of a usb interface.
    public var interfaceNumber: Int?
    public var interfaceClass: Int?
    public var interfaceSubclass: Int?
    public var interfaceProtocol: Int?
    public var isRootHub: Bool

    public init(
        bus: Int? = nil, device: Int? = nil, interfaceNumber: Int? = nil, interfaceClass: Int? = nil,
        interfaceSubclass: Int? = nil, interfaceProtocol: Int? = nil, isRootHub: Bool = false
    ) {
        self.bus = bus
        self.device = device
        self.interfaceNumber = interfaceNumber
        self.interfaceClass = interfaceClass
        self.interfaceSubclass = interfaceSubclass
        self.interfaceProtocol = interfaceProtocol
        self.isRootHub = isRootHub
    }
}

public struct NetInfo: Sendable, Equatable, Codable {
    public var interface: String
    public var macAddress: String?
    /// The link's state as the kernel words it (RFC 2863: `up`, `down`,
    /// `lowerlayerdown`, `dormant`, `unknown`, …), kept as read; nil when
    /// not reported.
    public var operstate: String?

    public init(interface: String, macAddress: String? = nil, operstate: String? = nil) {
        self.interface = interface
        self.macAddress = macAddress
        self.operstate = operstate
    }

    public init(interface: String, macAddress: String? = nil, isUp: Bool?) {
        self.init(interface: interface, macAddress: macAddress, operstate: isUp.map { $0 ? "up" : "down" })
    }

    enum CodingKeys: String, CodingKey { case interface, macAddress, operstate, isUp }

    /// Snapshots recorded before the state was kept carry `isUp` instead.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let operstate = try container.decodeIfPresent(String.self, forKey: .operstate)
        let isUp = try container.decodeIfPresent(Bool.self, forKey: .isUp)
        self.init(
            interface: try container.decode(String.self, forKey: .interface),
            macAddress: try container.decodeIfPresent(String.self, forKey: .macAddress),
            operstate: operstate ?? isUp.map { $0 ? "up" : "down" })
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(interface, forKey: .interface)
        try container.encodeIfPresent(macAddress, forKey: .macAddress)
        try container.encodeIfPresent(operstate, forKey: .operstate)
    }

    /// Whether the link is up; nil when the state is `unknown` (drivers that
    /// do not track carrier report that even when traffic flows) or not
    /// reported: unknown is not down.
    public var isUp: Bool? {
        switch operstate {
        case nil, "unknown"?: return nil
        case "up"?: return true
        default: return false
        }
    }
}

/// SCSI host/target/device numbers (`host`, `bus` = channel, `target`, `lun`).
public struct SCSIInfo: Sendable, Equatable, Codable {
    public var host: Int?
    public var bus: Int?
    public var target: Int?
    public var lun: Int?
    /// SCSI peripheral type name for scsi devices (`disk`, `cdrom`, …).
    public var type: String?

    public init(host: Int? = nil, bus: Int? = nil, target: Int? = nil, lun: Int? = nil, type: String? = nil) {
        self.host = host
        self.bus = bus
        self.target = target
        self.lun = lun
        self.type = type
    }
}
