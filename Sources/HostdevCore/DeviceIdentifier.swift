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
/// device name `pci_0000_0c_00_0`.
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
