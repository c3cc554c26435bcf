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
    /// Byte-wise: an inventory parses thousands of these.
    public init?(_ text: some StringProtocol) {
        var utf8 = Array(text.utf8)
        if utf8.count == 7 { utf8 = Array("0000:".utf8) + utf8 }
        // DDDD…:BB:SS.F with a 4- to 8-digit domain.
        let n = utf8.count
        guard n >= 12, n <= 16, utf8[n - 8] == 0x3a, utf8[n - 5] == 0x3a, utf8[n - 2] == 0x2e else { return nil }
        func number(_ from: Int, _ to: Int) -> UInt32? { UInt32(hexDigits: utf8[from..<to]) }
        guard let domain = number(0, n - 8), let bus = number(n - 7, n - 5), let slot = number(n - 4, n - 2),
            let function = number(n - 1, n), slot < 32, function < 8
        else { return nil }
        self.init(domain: domain, bus: UInt8(bus), slot: UInt8(slot), function: UInt8(function))
    }

    /// Written digit by digit into one small string (12 bytes fit inline, no
    /// allocation): plans and status key thousands of devices by address.
    public var description: String {
        let domainDigits = max(4, (32 - domain.leadingZeroBitCount + 3) / 4)
        return String(unsafeUninitializedCapacity: domainDigits + 8) { buffer in
            var at = 0
            func put(_ value: UInt32, digits: Int) {
                for shift in stride(from: (digits - 1) * 4, through: 0, by: -4) {
                    let digit = UInt8((value >> UInt32(shift)) & 0xf)
                    buffer[at] = digit < 10 ? 0x30 + digit : 0x57 + digit
                    at += 1
                }
            }
            func put(_ separator: UInt8) {
                buffer[at] = separator
                at += 1
            }
            put(domain, digits: domainDigits)
            put(0x3a)
            put(UInt32(bus), digits: 2)
            put(0x3a)
            put(UInt32(slot), digits: 2)
            put(0x2e)
            put(UInt32(function), digits: 1)
            return at
        }
    }

    /// libvirt's node-device name, `pci_0000_01_00_0`.
    public var nodeDeviceName: String {
        "pci_" + hex(domain, 4) + "_" + hex(bus, 2) + "_" + hex(slot, 2) + "_" + String(function, radix: 16)
    }

    /// The address in a node-device name (`pci_0000_01_00_0`); nil for any other name.
    public init?(nodeDeviceName name: String) {
        let parts = name.split(separator: "_", omittingEmptySubsequences: false)
        guard parts.count == 5, parts[0] == "pci" else { return nil }
        self.init("\(parts[1]):\(parts[2]):\(parts[3]).\(parts[4])")
    }

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

extension FixedWidthInteger {
    /// `0x10de`, `0X10DE` or `10de`: how sysfs, libvirt and manifests write IDs.
    /// Byte-wise: a plan by ID reads two of these per device of the host.
    public init?(hexText: some StringProtocol) {
        var utf8 = hexText.utf8[...]
        if utf8.count > 2, utf8.first == 0x30, utf8.dropFirst().first.map({ $0 | 0x20 }) == 0x78 { utf8 = utf8.dropFirst(2) }
        self.init(hexDigits: utf8)
    }

    /// Hex digits as ASCII bytes, no prefix: the one hex parser of addresses,
    /// IDs and the ids files. Nil when empty, on any other byte, or on overflow.
    public init?(hexDigits bytes: some Collection<UInt8>) {
        guard !bytes.isEmpty else { return nil }
        var value: Self = 0
        for byte in bytes {
            let digit: UInt8
            switch byte {
            case 0x30...0x39: digit = byte - 0x30
            case 0x41...0x46: digit = byte - 0x41 + 10
            case 0x61...0x66: digit = byte - 0x61 + 10
            default: return nil
            }
            let (shifted, overflow) = value.multipliedReportingOverflow(by: 16)
            let (sum, carry) = shifted.addingReportingOverflow(Self(digit))
            guard !overflow, !carry else { return nil }
            value = sum
        }
        self = value
    }
}

/// Lower-case hex, zero-padded to `width` digits.
@inlinable
public func hex(_ value: some BinaryInteger, _ width: Int) -> String {
    let digits = String(value, radix: 16)
    return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
}

/// Lets `[PCIAddress: T]` encode as a JSON object keyed by address (the ledger file).
extension PCIAddress: CodingKeyRepresentable {
    public var codingKey: any CodingKey { AddressKey(stringValue: description) }

    public init?<T: CodingKey>(codingKey: T) {
        guard let address = PCIAddress(codingKey.stringValue) else { return nil }
        self = address
    }

    struct AddressKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }
}
