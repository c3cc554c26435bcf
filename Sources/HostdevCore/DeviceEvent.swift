/// A kernel/udev hotplug event, reduced to what a reconcile needs to know
/// *which* device changed; the reconciler re-reads the device itself.
public struct DeviceEvent: Sendable, Equatable, Codable {
    /// `add`, `remove`, `bind`, `unbind`, `change`, `move`, …
    public var action: String
    /// Kernel path without `/sys`: `/devices/pci0000:00/0000:00:01.0/0000:01:00.0`.
    public var devpath: String
    public var subsystem: String
    public var sysname: String
    public var devtype: String?
    /// From the event's `DRIVER` property: the link in sysfs may already have moved on.
    public var driver: String?
    public var seqnum: UInt64

    public init(
        action: String, devpath: String, subsystem: String, sysname: String, devtype: String? = nil,
        driver: String? = nil, seqnum: UInt64 = 0
    ) {
        self.action = action
        self.devpath = devpath
        self.subsystem = subsystem
        self.sysname = sysname
        self.devtype = devtype
        self.driver = driver
        self.seqnum = seqnum
    }

    /// Events were lost: the monitor's socket overflowed (ENOBUFS). Nothing
    /// is known about which devices changed; the host must be read afresh.
    public static let overflowAction = "overflow"

    public static let overflow = DeviceEvent(action: overflowAction, devpath: "", subsystem: "", sysname: "")

    public var isOverflow: Bool { action == Self.overflowAction }
}
