#if canImport(Glibc)
    import Glibc
#endif
import Foundation
import Synchronization
import HostdevCore
public import HostdevSysfs

/// The kernel's side of PCI driver binding, over a `SysfsTree`: it reacts to
/// each write to `driver_override`, `unbind`, `bind` and `drivers_probe` as
/// Linux does (moving the `driver` link, refusing with the same errno), and
/// writes other attributes through to the file.
public final class FakeKernel: SysfsWriter {
    public let tree: SysfsTree
    private let state = Mutex<[(path: String, value: String)]>([])

    public init(tree: SysfsTree) { self.tree = tree }

    /// Every write seen, in order.
    public var writes: [(path: String, value: String)] { state.withLock { $0 } }

    public func write(_ value: String, to kernelPath: String) throws(SysfsError) {
        try state.withLock { (log: inout [(path: String, value: String)]) throws(SysfsError) in
            log.append((kernelPath, value))
            tree.lock.lock()
            defer { tree.lock.unlock() }
            try apply(value, to: kernelPath)
        }
    }

    private func fail(_ path: String, _ code: Int32) -> SysfsError {
        SysfsError(.write, path: tree.host(path), errno: code)
    }

    func apply(_ value: String, to path: String) throws(SysfsError) {
        let trimmed = value.hasSuffix("\n") ? String(value.dropLast()) : value
        let name = SysfsPath.lastComponent(path)
        let parent = SysfsPath.parent(path)
        if try applyConsole(trimmed, to: path) { return }
        switch name {
        case "driver_override":
            guard let address = PCIAddress(SysfsPath.lastComponent(parent)) else { throw fail(path, ENOENT) }
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
            guard let address = PCIAddress(trimmed), tree.driver(of: address) == driverName else {
                throw fail(path, ENODEV)
            }
            tree.unbindLink(address)
        case "bind":
            let driverName = SysfsPath.lastComponent(parent)
            guard access(tree.host(parent), F_OK) == 0 else { throw fail(path, ENOENT) }
            guard let address = PCIAddress(trimmed), exists(address) else { throw fail(path, ENODEV) }
            if tree.driver(of: address) != nil { throw fail(path, EBUSY) }
            guard matches(address, driverName) else { throw fail(path, ENODEV) }
            tree.bindLink(address, driverName)
        case "drivers_probe":
            guard let address = PCIAddress(trimmed), exists(address) else { throw fail(path, ENODEV) }
            guard tree.driver(of: address) == nil else { return }
            let candidate = override(address) ?? tree.nativeDrivers[address]
            // No matching driver is not an error to the writer: the device
            // just stays unbound, as on Linux.
            if let candidate, access(tree.host("/sys/bus/pci/drivers/\(candidate)"), F_OK) == 0 {
                tree.bindLink(address, candidate)
            }
        default:
            let host = tree.host(path)
            guard access(host, F_OK) == 0 else { throw fail(path, ENOENT) }
            FileTree.write(host, value)
        }
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
