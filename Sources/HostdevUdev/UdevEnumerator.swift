#if canImport(Glibc)
    import Glibc
#endif
import CUdev
public import HostdevSysfs

/// A libudev failure (`udev_new`, enumeration, monitor set-up).
public struct UdevError: Error, Sendable, CustomStringConvertible {
    public var operation: String
    public var errno: Int32

    public var description: String {
        "libudev \(operation) failed (errno \(errno)); is /sys mounted and readable?"
    }
}

/// Lists devices with libudev, the way udevd and libvirt see them, with
/// each device's udev properties (hwdb names where udevd has run).
public struct UdevEnumerator: DeviceEnumerator {
    public init() {}

    public func records() throws -> [DeviceRecord] {
        guard let udev = udev_new() else { throw UdevError(operation: "udev_new", errno: errno) }
        defer { udev_unref(udev) }
        var records: [DeviceRecord] = []
        for (subsystem, _) in SysfsEnumerator.sources {
            guard let enumerate = udev_enumerate_new(udev) else {
                throw UdevError(operation: "udev_enumerate_new", errno: errno)
            }
            defer { udev_enumerate_unref(enumerate) }
            udev_enumerate_add_match_subsystem(enumerate, subsystem)
            let status = udev_enumerate_scan_devices(enumerate)
            guard status >= 0 else { throw UdevError(operation: "scanning \(subsystem) devices", errno: -status) }
            var entry = udev_enumerate_get_list_entry(enumerate)
            while let current = entry {
                defer { entry = udev_list_entry_get_next(current) }
                guard let syspath = udev_list_entry_get_name(current),
                    let device = udev_device_new_from_syspath(udev, syspath)
                else { continue }
                defer { udev_device_unref(device) }
                if let record = Self.record(device) { records.append(record) }
            }
        }
        return records
    }

    /// The Swift view of one `udev_device`; nil without a devpath or subsystem.
    static func record(_ device: OpaquePointer) -> DeviceRecord? {
        guard let devpath = udev_device_get_devpath(device).map({ String(cString: $0) }),
            let subsystem = udev_device_get_subsystem(device).map({ String(cString: $0) })
        else { return nil }
        return DeviceRecord(
            devpath: devpath, subsystem: subsystem,
            sysname: udev_device_get_sysname(device).map { String(cString: $0) },
            devtype: udev_device_get_devtype(device).map { String(cString: $0) },
            properties: properties(device))
    }

    static func properties(_ device: OpaquePointer) -> [String: String] {
        var properties: [String: String] = [:]
        var entry = udev_device_get_properties_list_entry(device)
        while let current = entry {
            if let name = udev_list_entry_get_name(current) {
                properties[String(cString: name)] = udev_list_entry_get_value(current).map { String(cString: $0) } ?? ""
            }
            entry = udev_list_entry_get_next(current)
        }
        return properties
    }
}
