public import HostdevCore

/// Moves one PCI function between drivers the way driverctl and libvirt do:
/// per-device `driver_override` (never `new_id`, which grabs every device with
/// the same IDs), `unbind`, `drivers_probe`, then reads the `driver` link back.
public struct PCIDriverControl: Sendable {
    public let root: SysfsRoot
    public let writer: any SysfsWriter

    public init(root: SysfsRoot, writer: (any SysfsWriter)? = nil) {
        self.root = root
        self.writer = writer ?? KernelSysfsWriter(root: root)
    }

    func devicePath(_ address: PCIAddress) -> String { "/sys/bus/pci/devices/\(address)" }

    /// The driver the function is bound to now; nil when unbound.
    public func driver(of address: PCIAddress) -> String? { root.linkName(devicePath(address) + "/driver") }

    /// Binds `address` to `driver` (`vfio-pci`) and confirms it; returns the
    /// driver it had before. On failure it tries to put the device back on
    /// that driver, so no device is left without one.
    @discardableResult
    public func bind(_ address: PCIAddress, to driver: String) throws(SysfsError) -> String? {
        let path = devicePath(address)
        guard root.directory(path) != nil else { throw SysfsError(.open, path: root.hostPath(path), errno: ENOENT) }
        let previous = self.driver(of: address)
        if previous == driver { return previous }
        do {
            try writer.write(driver, to: path + "/driver_override")
            if previous != nil {
                try writer.write(address.description, to: path + "/driver/unbind")
                try confirm(address, isOn: nil)
            }
            try writer.write(address.description, to: "/sys/bus/pci/drivers_probe")
            try confirm(address, isOn: driver)
        } catch {
            if exists(address) { try? restore(address, to: previous) }
            throw error
        }
        return previous
    }

    /// Returns `address` to `original` (or, when nil, to whatever driver the
    /// kernel matches), clearing the override first so the host driver may
    /// bind. If the host driver will not take it, the device goes back to
    /// the driver it was on: it is never left with none.
    public func restore(_ address: PCIAddress, to original: String?) throws(SysfsError) {
        let path = devicePath(address)
        let current = self.driver(of: address)
        if current == original && current != nil {
            try writer.write("\n", to: path + "/driver_override")
            return
        }
        try writer.write("\n", to: path + "/driver_override")
        if current != nil {
            try writer.write(address.description, to: path + "/driver/unbind")
            try confirm(address, isOn: nil)
        }
        do {
            if let original {
                do {
                    try writer.write(address.description, to: "/sys/bus/pci/drivers/\(original)/bind")
                    try confirm(address, isOn: original)
                } catch {
                    // The named driver refused (or is gone): let the kernel match one.
                    try writer.write(address.description, to: "/sys/bus/pci/drivers_probe")
                    try confirm(address, isOn: original)
                }
            } else {
                try writer.write(address.description, to: "/sys/bus/pci/drivers_probe")
            }
        } catch {
            if driver(of: address) == nil, let current {
                // Put it back where it was rather than leave it driverless.
                try? writer.write(current, to: path + "/driver_override")
                try? writer.write(address.description, to: "/sys/bus/pci/drivers_probe")
            }
            throw error
        }
    }

    /// Whether `address` exists under the root.
    public func exists(_ address: PCIAddress) -> Bool { root.directory(devicePath(address)) != nil }

    /// Sets a PF's VF count. The kernel refuses to change a non-zero count
    /// to another non-zero one (EBUSY), so that goes through 0.
    public func setNumVFs(_ pf: PCIAddress, _ count: Int) throws(SysfsError) {
        let path = devicePath(pf) + "/sriov_numvfs"
        let current = root.read(path).flatMap { Int($0) } ?? 0
        if current == count { return }
        if current != 0 && count != 0 { try writer.write("0", to: path) }
        try writer.write(String(count), to: path)
    }

    /// Waits, boundedly, for the `driver` link to show `expected`: a write to
    /// a control file is synchronous on Linux for vfio-pci, but drivers that
    /// probe asynchronously answer a moment later.
    func confirm(_ address: PCIAddress, isOn expected: String?, within seconds: Double = 2) throws(SysfsError) {
        var waited: UInt32 = 0
        // Short first: most drivers answer within microseconds of the write.
        var pause: UInt32 = 50
        var actual = driver(of: address)
        while actual != expected && Double(waited) / 1e6 < seconds {
            // Surprise removal mid-bind: nothing left to wait for.
            guard exists(address) else {
                throw SysfsError(.verify, path: root.hostPath(devicePath(address)), errno: ENOENT, detail: "\(address) disappeared from the host")
            }
            usleep(pause)
            waited += pause
            pause = min(pause * 2, 10_000)
            actual = driver(of: address)
        }
        guard actual == expected else {
            throw SysfsError(
                .verify, path: root.hostPath(devicePath(address) + "/driver"), errno: 0,
                detail: "\(address) is on \(actual ?? "no driver"), expected \(expected ?? "no driver")"
                    + (expected == "vfio-pci" ? "; is the vfio-pci module loaded (modprobe vfio-pci)?" : ""))
        }
    }
}

#if canImport(Glibc)
    import Glibc
#endif
