/// One device as an enumerator found it, before its attributes are read:
/// what libudev's enumeration and a walk of `/sys` both provide.
public struct DeviceRecord: Sendable, Equatable {
    /// Kernel path without the `/sys` prefix: `/devices/pci0000:00/0000:00:01.0`.
    public var devpath: String
    public var subsystem: String
    public var sysname: String
    public var devtype: String?
    /// uevent / udev database properties (`DRIVER`, `ID_VENDOR_FROM_DATABASE`, …).
    public var properties: [String: String]

    public init(
        devpath: String, subsystem: String, sysname: String? = nil, devtype: String? = nil,
        properties: [String: String] = [:]
    ) {
        self.devpath = devpath
        self.subsystem = subsystem
        self.sysname = sysname ?? SysfsPath.lastComponent(devpath)
        self.devtype = devtype ?? properties["DEVTYPE"]
        self.properties = properties
    }

    public var syspath: String { "/sys" + devpath }

    /// Devices under `/devices/virtual` (loopback, bridges, loop disks) are
    /// not hardware that could be passed through; the inventory leaves them out.
    public var isVirtual: Bool { devpath.hasPrefix("/devices/virtual/") }
}

/// Something that lists the host's devices: a walk of a sysfs tree, or libudev.
public protocol DeviceEnumerator {
    func records() throws -> [DeviceRecord]
}

/// Lists devices by walking the bus and class directories of a sysfs tree:
/// the enumerator for `--sysfs-root`, where libudev cannot be pointed.
public struct SysfsEnumerator: DeviceEnumerator {
    public let root: SysfsRoot

    public init(root: SysfsRoot) { self.root = root }

    /// Where each subsystem's devices are linked, as libudev's enumeration scans them.
    public static let sources: [(subsystem: String, directory: String)] = [
        ("pci", "/sys/bus/pci/devices"),
        ("usb", "/sys/bus/usb/devices"),
        ("scsi", "/sys/bus/scsi/devices"),
        ("scsi_generic", "/sys/class/scsi_generic"),
        ("net", "/sys/class/net"),
        ("block", "/sys/class/block"),
    ]

    public func records() throws -> [DeviceRecord] {
        guard root.exists else {
            throw SysfsError(
                .open, path: root.hostPath("/sys"), errno: ENOENT,
                detail: "no sysfs tree there; --sysfs-root must name a directory that holds sys/")
        }
        var records: [DeviceRecord] = []
        for (subsystem, directory) in Self.sources {
            for entry in (root.list(directory) ?? []).sorted() {
                let link = directory + "/" + entry
                // A real sysfs entry is a link into /sys/devices; a hand-made
                // tree may hold the directory itself.
                let target = root.readLink(link).map { SysfsPath.resolve(directory, $0) } ?? link
                guard target.hasPrefix("/sys/") else { continue }
                let devpath = String(target.dropFirst(4))
                // uevent properties are read later, and only where needed.
                records.append(DeviceRecord(devpath: devpath, subsystem: subsystem, sysname: entry))
            }
        }
        return records
    }

    /// `KEY=VALUE` lines of a `uevent` file.
    public static func parseUevent(_ text: String) -> [String: String] {
        var properties: [String: String] = [:]
        for line in text.split(separator: "\n") {
            guard let eq = line.firstIndex(of: "=") else { continue }
            properties[String(line[..<eq])] = String(line[line.index(after: eq)...])
        }
        return properties
    }
}

#if canImport(Glibc)
    import Glibc
#endif
