/// The one way hostdevd's own output names a device, whatever the command
/// (plan, apply, status, check, describe, devices, the daemon's status.json):
///
/// - a PCI function: `pci 0000:0c:00.0` (the kernel's address, lower case,
///   four-digit domain);
/// - a USB device: `usb 046d:c52b` when named by vendor:product ID (four hex
///   digits each), `usb 3:2` when named by bus:device number (decimal), as
///   the manifest and the domain's `<hostdev>` name it. A USB device has no
///   single stable name: its bus:device numbers change on every replug, and
///   two receivers of one model share an ID;
/// - a mediated device: `mdev UUID`; a SCSI device: `scsi H:B:T:L`.
///
/// The kind comes first because the bare forms collide (`10de:1b80` is a
/// USB ID, `01:00.0` a short PCI address). Input is forgiving: `describe`
/// and `release` also take `0000:0c:00.0`, `0c:00.0` and libvirt's node
/// device name `pci_0000_0c_00_0` (`mdev_…` and `scsi_1_0_0_0` likewise).
public enum DeviceIdentifier {
    public static func pci(_ address: PCIAddress) -> String { "pci \(address)" }

    public static func source(_ source: HostdevEntry.Source) -> String {
        switch source {
        case .pci(let address): return pci(address)
        case .usbID(let vendor, let product): return "usb \(hex(vendor, 4)):\(hex(product, 4))"
        case .usbAddress(let bus, let device): return "usb \(bus):\(device)"
        case .mdev(let uuid): return "mdev \(uuid)"
        case .scsi(let address): return "scsi \(address)"
        }
    }

    /// A host device's identifier: PCI functions by address, USB devices by
    /// bus:device; nil for the kinds passthrough does not assign (interfaces,
    /// SCSI, block devices), which keep their libvirt node-device name.
    public static func of(_ device: HostDevice) -> String? {
        if let address = device.pci?.address { return pci(address) }
        if device.capability == .usbDevice, let bus = device.usb?.bus, let number = device.usb?.device {
            return source(.usbAddress(bus: bus, device: number))
        }
        return nil
    }

    /// The PCI address in any form a person might type: `pci 0000:0c:00.0`,
    /// `0000:0c:00.0`, `0c:00.0`, `pci_0000_0c_00_0`.
    public static func pciAddress(_ text: String) -> PCIAddress? {
        let trimmed = text.hasPrefix("pci ") ? String(text.dropFirst(4)) : text
        return PCIAddress(trimmed) ?? PCIAddress(nodeDeviceName: trimmed)
    }
}

/// A device as a person names it to `hostdevctl describe`, read without
/// looking at the host: the kind is known, whether it exists is not.
public enum DeviceQuery: Sendable, Equatable, CustomStringConvertible {
    case pci(PCIAddress)
    /// `usb 046d:c52b`: by vendor:product (four hex digits each).
    case usbID(vendor: UInt16, product: UInt16)
    /// `usb 1:4`: by bus:device number (decimal).
    case usbAddress(bus: Int, device: Int)
    /// libvirt's node-device name of a USB device (`usb_1_4`), its port path.
    case usbNodeDevice(String)
    /// `mdev UUID` or the bare UUID.
    case mdev(String)
    /// `scsi H:B:T:L`, the bare `H:B:T:L` or libvirt's `scsi_1_0_0_0`.
    case scsi(SCSIAddress)
    /// `/dev/disk/by-id/…`, `/dev/disk/by-path/…` or `/dev/sdb`.
    case scsiPath(String)

    /// Every form `describe` takes, or nil for text that is none of them.
    public static func parse(_ text: String) -> DeviceQuery? {
        if let address = DeviceIdentifier.pciAddress(text) { return .pci(address) }
        if text.hasPrefix("usb ") {
            let numbers = text.dropFirst(4).split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            guard numbers.count == 2 else { return nil }
            if numbers.allSatisfy({ $0.count == 4 }), let vendor = UInt16(numbers[0], radix: 16), let product = UInt16(numbers[1], radix: 16) {
                return .usbID(vendor: vendor, product: product)
            }
            if numbers.allSatisfy({ (1...3).contains($0.count) }), let bus = Int(numbers[0]), let device = Int(numbers[1]) {
                return .usbAddress(bus: bus, device: device)
            }
            return nil
        }
        if text.hasPrefix("usb_"), text.dropFirst(4).first?.isNumber == true, text.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }) {
            return .usbNodeDevice(text)
        }
        // libvirt's node-device name of a mediated device: `mdev_` and the UUID with `_` for `-`.
        let uuid = text.hasPrefix("mdev ") ? String(text.dropFirst(5))
            : text.hasPrefix("mdev_") ? String(text.dropFirst(5).map { $0 == "_" ? "-" : $0 }) : text
        if let normalized = MdevSpec.normalizedUUID(uuid) { return .mdev(normalized) }
        if text.hasPrefix("/dev/"), text.count > 5 { return .scsiPath(text) }
        let scsi = text.hasPrefix("scsi ") ? String(text.dropFirst(5)) : text.hasPrefix("scsi_") ? String(text.dropFirst(5)) : text
        let numbers = scsi.split(separator: text.hasPrefix("scsi_") ? "_" : ":", omittingEmptySubsequences: false).map { Int($0) }
        if numbers.count == 4, numbers.allSatisfy({ ($0 ?? -1) >= 0 }) {
            return .scsi(SCSIAddress(host: numbers[0]!, bus: numbers[1]!, target: numbers[2]!, unit: numbers[3]!))
        }
        return nil
    }

    /// The `<hostdev>` source the query names when the text alone tells
    /// (nil for libvirt's USB node-device names and `/dev` paths, which
    /// only the host can resolve).
    public var source: HostdevEntry.Source? {
        switch self {
        case .pci(let address): return .pci(address)
        case .usbID(let vendor, let product): return .usbID(vendor: vendor, product: product)
        case .usbAddress(let bus, let device): return .usbAddress(bus: bus, device: device)
        case .mdev(let uuid): return .mdev(uuid)
        case .scsi(let address): return .scsi(address)
        case .usbNodeDevice, .scsiPath: return nil
        }
    }

    /// The identifier hostdevd's output uses for it (`scsi /dev/sdb` for a path, as a manifest claim is named).
    public var description: String {
        switch self {
        case .pci(let address): return DeviceIdentifier.pci(address)
        case .usbID(let vendor, let product): return DeviceIdentifier.source(.usbID(vendor: vendor, product: product))
        case .usbAddress(let bus, let device): return DeviceIdentifier.source(.usbAddress(bus: bus, device: device))
        case .usbNodeDevice(let name): return name
        case .mdev(let uuid): return DeviceIdentifier.source(.mdev(uuid))
        case .scsi(let address): return DeviceIdentifier.source(.scsi(address))
        case .scsiPath(let path): return "scsi \(path)"
        }
    }

    /// What `describe` says when the text is no device form at all.
    public static let forms = "a PCI address (0000:0c:00.0, 0c:00.0, pci_0000_0c_00_0), a USB device (usb 046d:c52b, usb 1:4, usb_1_4), a mediated device (its UUID, mdev UUID or mdev_UUID with _ for -) or a SCSI device (scsi 1:0:0:0, scsi_1_0_0_0, /dev/disk/by-id/…)"
}
