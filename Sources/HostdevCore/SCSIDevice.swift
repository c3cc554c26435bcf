/// A SCSI device's address as the kernel writes it (`H:B:T:L`): host
/// adapter, bus (channel), target, unit (LUN).
public struct SCSIAddress: Sendable, Hashable, Codable, Comparable, CustomStringConvertible {
    public var host: Int
    public var bus: Int
    public var target: Int
    public var unit: Int

    public init(host: Int, bus: Int, target: Int, unit: Int) {
        self.host = host
        self.bus = bus
        self.target = target
        self.unit = unit
    }

    /// The address of an inventory's `scsi` device, when it has all four numbers.
    public init?(_ info: SCSIInfo?) {
        guard let info, let host = info.host, let bus = info.bus, let target = info.target, let unit = info.lun else { return nil }
        self.init(host: host, bus: bus, target: target, unit: unit)
    }

    /// `1:0:0:0`.
    public var description: String { "\(host):\(bus):\(target):\(unit)" }

    /// libvirt's name of the adapter: `scsi_host1`.
    public var adapter: String { "scsi_host\(host)" }

    public static func < (a: Self, b: Self) -> Bool {
        (a.host, a.bus, a.target, a.unit) < (b.host, b.bus, b.target, b.unit)
    }
}
