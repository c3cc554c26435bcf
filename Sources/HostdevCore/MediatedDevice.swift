/// A mediated device as a manifest asks for it: one instance of `type`
/// carved out of the parent device `parent` (a GPU with GVT-g or vGPU, a
/// NIC with scalable functions), named by `uuid`.
public struct MdevSpec: Sendable, Hashable, Codable, CustomStringConvertible {
    /// Lower-case `8-4-4-4-12` hex, as the kernel shows it.
    public var uuid: String
    public var parent: PCIAddress
    /// The directory name under the parent's `mdev_supported_types` (`i915-GVTg_V5_4`).
    public var type: String

    public init(uuid: String, parent: PCIAddress, type: String) {
        self.uuid = uuid
        self.parent = parent
        self.type = type
    }

    /// `mdev 6f1b…` (the key of its condition and its steps).
    public var description: String { "mdev \(uuid)" }

    /// A UUID the kernel accepts (`8-4-4-4-12` hex digits), lower-cased; nil otherwise.
    public static func normalizedUUID(_ text: String) -> String? {
        let lower = text.lowercased()
        let groups = lower.split(separator: "-", omittingEmptySubsequences: false)
        guard groups.map(\.count) == [8, 4, 4, 4, 12], groups.allSatisfy({ $0.allSatisfy(\.isHexDigit) }) else { return nil }
        return lower
    }

    /// A type name that can be a directory under `mdev_supported_types`:
    /// not empty, no `/`, not `.` or `..`, printable ASCII.
    public static func isValidTypeName(_ text: String) -> Bool {
        !text.isEmpty && text != "." && text != ".." && text.utf8.count <= 255
            && text.unicodeScalars.allSatisfy { $0.value > 0x20 && $0.value < 0x7f && $0 != "/" }
    }

    /// The UUID of a claim that names none: the same VM, parent, type and
    /// position (`ordinal`: how many earlier claims of that VM name the same
    /// parent and type) always give the same UUID, so the device, and the
    /// domain's `<hostdev>` that names it, survive restarts and re-plans.
    /// RFC 9562 version 8 (custom), from two FNV-1a hashes of those fields.
    public static func derivedUUID(vm: String, parent: PCIAddress, type: String, ordinal: Int) -> String {
        let name = Array("hostdevd-mdev\u{0}\(vm)\u{0}\(parent)\u{0}\(type)\u{0}\(ordinal)".utf8)
        func fnv(_ seed: UInt64) -> UInt64 {
            var hash = seed
            for byte in name {
                hash ^= UInt64(byte)
                hash = hash &* 0x100_0000_01b3
            }
            return hash
        }
        var high = fnv(0xcbf2_9ce4_8422_2325)
        var low = fnv(0x6c62_272e_07bb_0142)
        high = (high & ~0xf000) | 0x8000  // version 8
        low = (low & ~(0xc << 60)) | (0x8 << 60)  // variant 10
        let h = hex(high, 16)
        let l = hex(low, 16)
        return "\(h.prefix(8))-\(h.dropFirst(8).prefix(4))-\(h.suffix(4))-\(l.prefix(4))-\(l.suffix(12))"
    }
}

/// One type a parent offers (`mdev_supported_types/TYPE`).
public struct MdevType: Sendable, Equatable, Codable {
    /// Its directory name, the `type` a manifest names.
    public var id: String
    /// `name`, where the driver gives one (`GVTg_V5_4`).
    public var name: String?
    /// `description`, as the driver writes it (resolution, memory, …).
    public var description: String?
    /// How many more can be created now (`available_instances`).
    public var availableInstances: Int?
    /// `vfio-pci`, `vfio-ccw`, `vfio-ap`: what the device looks like to QEMU.
    public var deviceAPI: String?

    public init(id: String, name: String? = nil, description: String? = nil, availableInstances: Int? = nil, deviceAPI: String? = nil) {
        self.id = id
        self.name = name
        self.description = description
        self.availableInstances = availableInstances
        self.deviceAPI = deviceAPI
    }
}

/// A mediated device that exists on the host (`/sys/bus/mdev/devices/UUID`).
public struct MdevInstance: Sendable, Equatable, Codable {
    public var uuid: String
    public var parent: PCIAddress
    public var type: String
    /// mdevctl defines it (`/etc/mdevctl.d/PARENT/UUID`): the host's own,
    /// never removed by hostdevd.
    public var definedByMdevctl: Bool

    public init(uuid: String, parent: PCIAddress, type: String, definedByMdevctl: Bool = false) {
        self.uuid = uuid
        self.parent = parent
        self.type = type
        self.definedByMdevctl = definedByMdevctl
    }
}

/// The host's mediated devices as read on this pass: parents and their
/// types (with the instances left), the devices that exist, and the UUIDs
/// mdevctl defines. Read afresh every pass (instances change as devices
/// are created), like host uses.
public struct MediatedDevices: Sendable, Equatable, Codable {
    /// Types per parent device.
    public var parents: [PCIAddress: [MdevType]]
    public var devices: [MdevInstance]
    /// UUIDs mdevctl defines, whether or not they exist now.
    public var mdevctlDefined: Set<String>

    public init(parents: [PCIAddress: [MdevType]] = [:], devices: [MdevInstance] = [], mdevctlDefined: Set<String> = []) {
        self.parents = parents
        self.devices = devices
        self.mdevctlDefined = mdevctlDefined
    }

    public func device(_ uuid: String) -> MdevInstance? { devices.first { $0.uuid == uuid } }

    public func type(_ id: String, of parent: PCIAddress) -> MdevType? { parents[parent]?.first { $0.id == id } }
}
