#if canImport(Glibc)
    import Glibc
#endif
import Foundation
import Synchronization
import HostdevCore
public import HostdevSysfs

/// The kernel's side of PCI driver binding, over a `SysfsTree`: it reacts to
/// each write to `driver_override`, `unbind`, `bind` and `drivers_probe` as
/// Linux 6.1 does (measured in a real guest, Tests/vm), and writes other
/// attributes through to the file:
/// - `drivers_probe` succeeds whenever the device exists, even when nothing
///   binds (an override naming a missing driver, vfio-pci refusing a bridge or
///   a device without an IOMMU group): only the `driver` link tells.
/// - `driver_override` reads `(null)` when unset, `"\n"` clears it, a zero-byte
///   write changes nothing, one trailing newline is dropped, 4096 bytes or
///   more is `EINVAL`.
/// - Unbinding vfio-pci from a device a process holds open (`hold`) never
///   fails: the write blocks until the holder lets go (`letGo`), and the
///   `driver` link reads empty meanwhile. Every other write naming that device
///   waits too (the kernel holds the device lock).
/// - `removeAndRescan` drops the override and rebinds the host driver.
/// - `events` lists the uevents the kernel would send, in its order.
public final class FakeKernel: SysfsWriter {
    public let tree: SysfsTree
    private let state = Mutex<[(path: String, value: String)]>([])
    private let users = VFIOUsers()
    private let sent = Mutex<[KernelEvent]>([])

    public init(tree: SysfsTree) { self.tree = tree }

    /// Every write seen, in order.
    public var writes: [(path: String, value: String)] { state.withLock { $0 } }

    /// The uevents the kernel sent for the writes and test actions so far, in
    /// its (SEQNUM) order.
    public var events: [KernelEvent] { sent.withLock { $0 } }

    public func write(_ value: String, to kernelPath: String) throws(SysfsError) {
        state.withLock { $0.append((kernelPath, value)) }
        let device = Self.subject(value, kernelPath)
        users.condition.lock()
        defer { users.condition.unlock() }
        // The kernel takes the device lock for every one of these writes; a
        // blocked unbind holds it.
        if let device { while users.unbinding.contains(device) { users.condition.wait() } }
        tree.lock.lock()
        let waitsForHolder: Bool
        do {
            waitsForHolder = try apply(value, to: kernelPath)
        } catch {
            tree.lock.unlock()
            throw error
        }
        tree.lock.unlock()
        guard waitsForHolder, let device else { return }
        users.unbinding.insert(device)
        while users.held.contains(device) { users.condition.wait() }
        users.unbinding.remove(device)
        emitUnbind(device, from: "vfio-pci")
        users.condition.broadcast()
    }

    /// A process opens the device through VFIO (as QEMU does) and registers
    /// no request channel, so the kernel cannot ask it to let go: unbinding it
    /// from vfio-pci blocks until `letGo`.
    public func hold(_ address: PCIAddress) {
        users.condition.lock()
        users.held.insert(address)
        users.condition.unlock()
    }

    /// The holder closes the device: a blocked unbind completes.
    public func letGo(_ address: PCIAddress) {
        users.condition.lock()
        users.held.remove(address)
        users.condition.broadcast()
        users.condition.unlock()
    }

    /// Whether a write now would block (an unbind of a held device, or any
    /// write naming a device whose unbind is blocked).
    public func wouldBlock(_ value: String, to kernelPath: String) -> Bool {
        guard let device = Self.subject(value, kernelPath) else { return false }
        users.condition.lock()
        defer { users.condition.unlock() }
        if users.unbinding.contains(device) { return true }
        return SysfsPath.lastComponent(kernelPath) == "unbind" && users.held.contains(device)
            && tree.driver(of: device) == "vfio-pci"
    }

    /// `echo 1 > remove; echo 1 > /sys/bus/pci/rescan`: the device comes back
    /// with no override and is bound to its host driver again.
    public func removeAndRescan(_ address: PCIAddress) {
        tree.lock.lock()
        defer { tree.lock.unlock() }
        if let current = tree.driver(of: address) {
            emitUnbind(address, from: current)
            tree.unbindLink(address)
        }
        let path = tree.pciPath(address)
        emit("remove", path, "pci")
        FileTree.write(tree.host(path + "/driver_override"), "(null)\n")
        emit("add", path, "pci")
        if let native = tree.nativeDrivers[address], driverLoaded(native) { bind(address, native) }
    }

    /// A PCIe hotplug: the device appears and its host driver binds at once,
    /// before any listener hears of it (the kernel's `add` then `bind`).
    @discardableResult
    public func hotplug(_ spec: SysfsTree.PCISpec) -> String {
        tree.lock.lock()
        defer { tree.lock.unlock() }
        var unbound = spec
        unbound.driver = nil
        let path = tree.addPCI(unbound)
        if let driver = spec.driver { tree.nativeDrivers[spec.address] = driver }
        emit("add", path, "pci")
        if let driver = spec.driver, driverLoaded(driver) { bind(spec.address, driver) }
        return path
    }

    /// A surprise or QMP `device_del` removal: the driver lets go, the device goes.
    public func unplug(_ address: PCIAddress) {
        tree.lock.lock()
        defer { tree.lock.unlock() }
        let path = tree.pciPath(address)
        if let current = tree.driver(of: address) { emitUnbind(address, from: current) }
        tree.removePCI(address)
        emit("remove", path, "pci")
    }

    private func fail(_ path: String, _ code: Int32) -> SysfsError {
        SysfsError(.write, path: tree.host(path), errno: code)
    }

    /// The device a write concerns: the directory of `driver_override`, or
    /// the address written to `bind`, `unbind` or `drivers_probe`.
    static func subject(_ value: String, _ path: String) -> PCIAddress? {
        let name = SysfsPath.lastComponent(path)
        if name == "driver_override" { return PCIAddress(SysfsPath.lastComponent(SysfsPath.parent(path))) }
        guard ["bind", "unbind", "drivers_probe"].contains(name) else { return nil }
        return PCIAddress(value.hasSuffix("\n") ? String(value.dropLast()) : value)
    }

    /// Applies one write; true when it is an unbind that must wait for the
    /// device's holder (the link is already gone then).
    func apply(_ value: String, to path: String) throws(SysfsError) -> Bool {
        let trimmed = value.hasSuffix("\n") ? String(value.dropLast()) : value
        let name = SysfsPath.lastComponent(path)
        let parent = SysfsPath.parent(path)
        if try applyConsole(trimmed, to: path) { return false }
        if try applyMediated(trimmed, to: path) { return false }
        switch name {
        case "driver_override":
            guard let address = PCIAddress(SysfsPath.lastComponent(parent)) else { throw fail(path, ENOENT) }
            // A zero-byte write never reaches the kernel's store function.
            guard !value.isEmpty else { return false }
            guard value.utf8.count < 4096 else { throw fail(path, EINVAL) }
            FileTree.write(tree.host(tree.pciPath(address) + "/driver_override"), (trimmed.isEmpty ? "(null)" : trimmed) + "\n")
        case "unbind":
            let driverName: String?
            if SysfsPath.lastComponent(parent) == "driver" {
                // devices/X/driver/unbind exists only while X is bound.
                guard let owner = PCIAddress(SysfsPath.lastComponent(SysfsPath.parent(parent))),
                    let current = tree.driver(of: owner)
                else { throw fail(path, ENOENT) }
                driverName = current
            } else {
                driverName = SysfsPath.lastComponent(parent)
            }
            guard let address = PCIAddress(trimmed), let driverName, tree.driver(of: address) == driverName else {
                throw fail(path, ENODEV)
            }
            tree.unbindLink(address)
            let held = driverName == "vfio-pci" && users.held.contains(address)
            if !held { emitUnbind(address, from: driverName) }
            return held
        case "bind":
            let driverName = SysfsPath.lastComponent(parent)
            guard access(tree.host(parent), F_OK) == 0 else { throw fail(path, ENOENT) }
            guard let address = PCIAddress(trimmed), exists(address) else { throw fail(path, ENODEV) }
            if tree.driver(of: address) != nil { throw fail(path, EBUSY) }
            guard matches(address, driverName) else { throw fail(path, ENODEV) }
            // The driver's probe refuses it: the writer sees EINVAL.
            guard probes(address, driverName) else { throw fail(path, EINVAL) }
            bind(address, driverName)
        case "drivers_probe":
            guard let address = PCIAddress(trimmed), exists(address) else { throw fail(path, ENODEV) }
            guard tree.driver(of: address) == nil else { return false }
            let candidate = override(address) ?? tree.nativeDrivers[address]
            // No matching driver, or its probe failing, is not an error to
            // the writer: the device just stays unbound, as on Linux.
            if let candidate, driverLoaded(candidate), probes(address, candidate) {
                bind(address, candidate)
            }
        default:
            let host = tree.host(path)
            guard access(host, F_OK) == 0 else { throw fail(path, ENOENT) }
            FileTree.write(host, value)
        }
        return false
    }

    private func driverLoaded(_ driver: String) -> Bool {
        access(tree.host("/sys/bus/pci/drivers/\(driver)"), F_OK) == 0
    }

    /// vfio-pci's probe fails for a bridge (a type-1 or type-2 header, as
    /// SysfsTree writes them by class) and for a device without an IOMMU
    /// group (no IOMMU); other drivers' succeed.
    private func probes(_ address: PCIAddress, _ driver: String) -> Bool {
        guard driver == "vfio-pci" else { return true }
        let path = tree.pciPath(address)
        let classCode = tree.sysfs.read(path + "/class").flatMap { UInt32($0.dropFirst(2), radix: 16) } ?? 0
        return !PCIFunction.bridgeSubclasses.contains(classCode >> 8) && tree.sysfs.linkName(path + "/iommu_group") != nil
    }

    /// Binds and sends the kernel's events: for vfio-pci the group's char
    /// device (with its first device) and the `vfio-dev` child, then `bind`.
    private func bind(_ address: PCIAddress, _ driver: String) {
        let path = tree.pciPath(address)
        if driver == "vfio-pci" {
            if let group = tree.sysfs.linkName(path + "/iommu_group"), vfioMembers(group).isEmpty {
                emit("add", "/sys/devices/virtual/vfio/\(group)", "vfio")
            }
            emit("add", path + "/vfio-dev/vfio0", "vfio-dev")
        }
        tree.bindLink(address, driver)
        emit("bind", path, "pci", driver: driver)
    }

    /// The events of an unbind that completed (the link is gone, or about to go).
    private func emitUnbind(_ address: PCIAddress, from driver: String) {
        let path = tree.pciPath(address)
        if driver == "vfio-pci" {
            emit("remove", path + "/vfio-dev/vfio0", "vfio-dev")
            if let group = tree.sysfs.linkName(path + "/iommu_group"), vfioMembers(group).subtracting([address]).isEmpty {
                emit("remove", "/sys/devices/virtual/vfio/\(group)", "vfio")
            }
        }
        emit("unbind", path, "pci")
    }

    /// The group's devices on vfio-pci now.
    private func vfioMembers(_ group: String) -> Set<PCIAddress> {
        let members = tree.sysfs.list("/sys/kernel/iommu_groups/\(group)/devices") ?? []
        return Set(members.compactMap(PCIAddress.init).filter { tree.driver(of: $0) == "vfio-pci" })
    }

    private func emit(_ action: String, _ devpath: String, _ subsystem: String, driver: String? = nil) {
        sent.withLock { $0.append(KernelEvent(action: action, devpath: devpath, subsystem: subsystem, driver: driver)) }
    }

    private func exists(_ address: PCIAddress) -> Bool {
        access(tree.host("/sys/bus/pci/devices/\(address)"), F_OK) == 0
    }

    private func override(_ address: PCIAddress) -> String? {
        // Writing "\n" clears an override: the kernel then shows "(null)";
        // a plain file written by another process just holds the newline.
        guard let text = tree.sysfs.read(tree.pciPath(address) + "/driver_override"), text != "(null)", !text.isEmpty
        else { return nil }
        return text
    }

    /// `pci_bus_match`: an override names the only driver that may bind;
    /// otherwise the driver's ID table must match (vfio-pci has none).
    private func matches(_ address: PCIAddress, _ driver: String) -> Bool {
        if let override = override(address) { return override == driver }
        return tree.nativeDrivers[address] == driver
    }
}

// MARK: console hand-over (single-GPU passthrough)

extension FakeKernel {
    /// The virtual consoles' `bind` (reads back 0/1; only 0 or 1 accepted)
    /// and platform drivers' `bind`/`unbind` (the device's `driver` link
    /// goes and comes back; a firmware framebuffer's `fbN` with it).
    /// Returns false for any other path.
    func applyConsole(_ value: String, to path: String) throws(SysfsError) -> Bool {
        let name = SysfsPath.lastComponent(path)
        let parent = SysfsPath.parent(path)
        if name == "bind", SysfsPath.lastComponent(parent).hasPrefix("vtcon"),
            parent.hasPrefix("/sys/class/vtconsole/") || parent.hasPrefix("/sys/devices/virtual/vtconsole/")
        {
            guard access(tree.host(path), F_OK) == 0 else { throw fail(path, ENOENT) }
            guard value == "0" || value == "1" else { throw fail(path, EINVAL) }
            FileTree.write(tree.host(path), value + "\n")
            return true
        }
        guard parent.hasPrefix("/sys/bus/platform/drivers/"), name == "bind" || name == "unbind" else { return false }
        let driver = SysfsPath.lastComponent(parent)
        guard access(tree.host(parent), F_OK) == 0 else { throw fail(path, ENOENT) }
        guard access(tree.host("/sys/bus/platform/devices/\(value)"), F_OK) == 0 else { throw fail(path, ENODEV) }
        let current = tree.platformDriver(of: value)
        if name == "unbind" {
            guard current == driver else { throw fail(path, ENODEV) }
            tree.unbindPlatform(value)
        } else {
            guard current == nil else { throw fail(path, EBUSY) }
            tree.bindPlatform(value, driver)
        }
        return true
    }
}

/// One uevent as the kernel sends it (`devpath` is the `/sys/...` path;
/// `driver` is the `DRIVER` property of a `bind`).
public struct KernelEvent: Equatable, Sendable, CustomStringConvertible {
    public var action: String
    public var devpath: String
    public var subsystem: String
    public var driver: String?

    public init(action: String, devpath: String, subsystem: String, driver: String? = nil) {
        self.action = action
        self.devpath = devpath
        self.subsystem = subsystem
        self.driver = driver
    }

    /// `bind 0000:01:00.0 (pci) vfio-pci`: the last path component, as the
    /// kernel sequences in Tests/vm's evidence name them.
    public var description: String {
        "\(action) \(SysfsPath.lastComponent(devpath)) (\(subsystem))" + (driver.map { " \($0)" } ?? "")
    }
}

/// Processes holding vfio-pci devices open (`FakeKernel.hold`) and the
/// unbinds waiting for them.
private final class VFIOUsers: @unchecked Sendable {
    // @unchecked: both sets are read and written only under `condition`.
    let condition = NSCondition()
    var held: Set<PCIAddress> = []
    var unbinding: Set<PCIAddress> = []
}
