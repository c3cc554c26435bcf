/// A PCI function address, `DDDD:BB:SS.F` as the kernel and libvirt write it.
public struct PCIAddress: Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    public var domain: UInt32
    public var bus: UInt8
    public var slot: UInt8
    public var function: UInt8

    public init(domain: UInt32 = 0, bus: UInt8, slot: UInt8, function: UInt8) {
        self.domain = domain
        self.bus = bus
        self.slot = slot & 0x1f
        self.function = function & 0x7
    }

    /// Parses `0000:01:00.0` or the short `01:00.0` (domain 0). Case-insensitive.
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        let domainText: Substring
        let busText: Substring
        let slotFunction: Substring
        switch parts.count {
        case 3: (domainText, busText, slotFunction) = (Substring(parts[0]), Substring(parts[1]), Substring(parts[2]))
        case 2: (domainText, busText, slotFunction) = ("0", Substring(parts[0]), Substring(parts[1]))
        default: return nil
        }
        let sf = slotFunction.split(separator: ".", omittingEmptySubsequences: false)
        guard sf.count == 2, domainText.count <= 8, busText.count == 2, sf[0].count == 2, sf[1].count == 1,
            let domain = UInt32(domainText, radix: 16), let bus = UInt8(busText, radix: 16),
            let slot = UInt8(sf[0], radix: 16), slot < 32,
            let function = UInt8(sf[1], radix: 16), function < 8
        else { return nil }
        self.init(domain: domain, bus: bus, slot: slot, function: function)
    }

    public var description: String {
        hex(domain, 4) + ":" + hex(bus, 2) + ":" + hex(slot, 2) + "." + String(function, radix: 16)
    }

    /// libvirt's node-device name, `pci_0000_01_00_0`.
    public var nodeDeviceName: String { DeviceNaming.libvirtName(subsystem: "pci", sysname: description) }

    public static func < (a: PCIAddress, b: PCIAddress) -> Bool {
        (a.domain, a.bus, a.slot, a.function) < (b.domain, b.bus, b.slot, b.function)
    }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let address = PCIAddress(text) else {
            throw DecodingError.dataCorrupted(
                .init(codingPath: decoder.codingPath, debugDescription: "'\(text)' is not a PCI address (DDDD:BB:SS.F)"))
        }
        self = address
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

/// Lower-case hex, zero-padded to `width` digits.
@inlinable
public func hex(_ value: some BinaryInteger, _ width: Int) -> String {
    let digits = String(value, radix: 16)
    return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
}
