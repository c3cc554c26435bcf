import Foundation
import HostdevCore
import HostdevSysfs
import HostdevTestSupport
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The fake kernel does what Linux 6.1 did in the real-kernel suite
/// (Tests/vm; docs/testing-real-kernel.md): each test here names the
/// behaviour measured there.
@Suite struct FakeKernelTruthTests {
    let tree = SysfsTree.workstation()
    let gpu = PCIAddress("0000:01:00.0")!
    let audio = PCIAddress("0000:01:00.1")!
    let rootPort = PCIAddress("0000:00:01.0")!

    func overridePath(_ address: PCIAddress) -> String { tree.pciPath(address) + "/driver_override" }
    func override(_ address: PCIAddress) -> String? { tree.sysfs.read(overridePath(address)) }

    enum NothingBinds: String, CaseIterable, Sendable {
        case overrideNamesAMissingDriver, vfioOnABridge, vfioWithoutAnIOMMUGroup
    }

    /// `drivers_probe` returns success whenever the device exists, even when
    /// nothing binds; only the `driver` link tells.
    @Test(arguments: NothingBinds.allCases)
    func driversProbeSucceedsWithoutBinding(_ situation: NothingBinds) throws {
        let kernel = FakeKernel(tree: tree)
        var device = gpu
        switch situation {
        case .overrideNamesAMissingDriver:
            try kernel.write("vfio-pci-typo\n", to: overridePath(gpu))
        case .vfioOnABridge:
            device = rootPort
            try kernel.write("vfio-pci\n", to: overridePath(rootPort))
        case .vfioWithoutAnIOMMUGroup:
            tree.addPCI(.init("0000:00:1f.3", vendor: "8086", device: "a348", classCode: 0x040300))
            device = PCIAddress("0000:00:1f.3")!
            try kernel.write("vfio-pci\n", to: overridePath(device))
        }
        if tree.driver(of: device) != nil {
            try kernel.write(device.description, to: "/sys/bus/pci/devices/\(device)/driver/unbind")
        }
        try kernel.write(device.description, to: "/sys/bus/pci/drivers_probe")
        #expect(tree.driver(of: device) == nil)
    }

    /// Binding vfio-pci to a bridge by `bind`: its probe fails, EINVAL.
    @Test func bindingVFIOToABridgeIsEINVAL() throws {
        let kernel = FakeKernel(tree: tree)
        try kernel.write("vfio-pci", to: overridePath(rootPort))
        try kernel.write(rootPort.description, to: "/sys/bus/pci/drivers/pcieport/unbind")
        #expect(throws: SysfsError(.write, path: tree.host("/sys/bus/pci/drivers/vfio-pci/bind"), errno: EINVAL)) {
            try kernel.write(rootPort.description, to: "/sys/bus/pci/drivers/vfio-pci/bind")
        }
        #expect(tree.driver(of: rootPort) == nil)
    }

    struct OverrideWrite: Sendable, CustomStringConvertible {
        var writes: [String]
        var reads: String?
        var error: Int32?
        var description: String { writes.map { "\($0.prefix(12).debugDescription)" }.joined(separator: " then ") }
    }

    /// `driver_override`: `(null)` when unset; `"\n"` clears; a zero-byte write
    /// is a no-op; one trailing newline is dropped, other spaces kept; 4096
    /// bytes or more is EINVAL.
    @Test(arguments: [
        OverrideWrite(writes: [], reads: "(null)"),
        OverrideWrite(writes: ["vfio-pci\n"], reads: "vfio-pci"),
        OverrideWrite(writes: ["vfio-pci"], reads: "vfio-pci"),
        OverrideWrite(writes: ["vfio-pci\n", ""], reads: "vfio-pci"),
        OverrideWrite(writes: ["vfio-pci\n", "\n"], reads: "(null)"),
        OverrideWrite(writes: ["vfio-pci  "], reads: "vfio-pci  "),
        OverrideWrite(writes: ["vfio-pci\n", String(repeating: "x", count: 4096)], reads: "vfio-pci", error: EINVAL),
    ])
    func driverOverrideSemantics(_ case_: OverrideWrite) throws {
        let kernel = FakeKernel(tree: tree)
        var failure: Int32?
        for value in case_.writes {
            do throws(SysfsError) { try kernel.write(value, to: overridePath(gpu)) } catch { failure = error.errno }
        }
        #expect(failure == case_.error)
        // sysfs shows the value and a newline; SysfsRoot.read trims it.
        #expect(override(gpu) == case_.reads)
    }

    /// An override with trailing spaces is kept verbatim and never matches.
    @Test func paddedOverrideNeverMatches() throws {
        let kernel = FakeKernel(tree: tree)
        try kernel.write("vfio-pci  ", to: overridePath(gpu))
        try kernel.write(gpu.description, to: "/sys/bus/pci/devices/\(gpu)/driver/unbind")
        try kernel.write(gpu.description, to: "/sys/bus/pci/drivers_probe")
        #expect(tree.driver(of: gpu) == nil)
    }

    /// remove + rescan: the device comes back with no override, on its host driver.
    @Test func removeAndRescanResetsTheOverride() throws {
        let kernel = FakeKernel(tree: tree)
        try PCIDriverControl(root: tree.sysfs, writer: kernel).bind(gpu, to: "vfio-pci")
        #expect(override(gpu) == "vfio-pci")
        kernel.removeAndRescan(gpu)
        #expect(override(gpu) == "(null)")
        #expect(tree.driver(of: gpu) == "nouveau")
    }

    final class Flag: Sendable {
        private let value = Mutex(false)
        func load() -> Bool { value.withLock { $0 } }
        func set() { value.withLock { $0 = true } }
    }

    /// Runs `body` on its own thread; the returned flag turns true when it returns.
    func background(_ body: @escaping @Sendable () -> Void) -> Flag {
        let done = Flag()
        Thread.detachNewThread {
            body()
            done.set()
        }
        return done
    }

    /// Unbinding vfio-pci from a held device blocks the writer until the
    /// holder lets go; the `driver` link reads empty meanwhile, other writes
    /// naming the device wait too, writes for other devices do not.
    @Test func heldVFIOUnbindBlocksUntilLetGo() throws {
        let kernel = FakeKernel(tree: tree)
        let control = PCIDriverControl(root: tree.sysfs, writer: kernel)
        try control.bind(gpu, to: "vfio-pci")
        kernel.hold(gpu)
        let unbound = background { try? kernel.write("0000:01:00.0", to: "/sys/bus/pci/drivers/vfio-pci/unbind") }
        #expect(soon { tree.driver(of: gpu) == nil })
        let probed = background { try? kernel.write("0000:01:00.0", to: "/sys/bus/pci/drivers_probe") }
        usleep(300_000)
        #expect(!unbound.load() && !probed.load())
        #expect(kernel.wouldBlock("0000:01:00.0", to: "/sys/bus/pci/drivers_probe"))
        // Another device of the same group moves freely.
        try control.bind(audio, to: "vfio-pci")
        #expect(tree.driver(of: audio) == "vfio-pci")
        kernel.letGo(gpu)
        #expect(soon { unbound.load() && probed.load() })
        // The queued drivers_probe ran after the unbind: the override still says vfio-pci.
        #expect(tree.driver(of: gpu) == "vfio-pci")
    }

    /// An unheld vfio-pci device unbinds at once.
    @Test func unheldVFIOUnbindReturns() throws {
        let kernel = FakeKernel(tree: tree)
        try PCIDriverControl(root: tree.sysfs, writer: kernel).bind(gpu, to: "vfio-pci")
        kernel.hold(gpu)
        kernel.letGo(gpu)
        try kernel.write("0000:01:00.0", to: "/sys/bus/pci/drivers/vfio-pci/unbind")
        #expect(tree.driver(of: gpu) == nil)
    }

    /// Through the pipes of `FakeKernelServer`, the writer cannot be blocked,
    /// but the unbind and the writes after it for that device wait for the
    /// holder, while other devices are answered.
    @Test func serverQueuesWritesBehindABlockedUnbind() throws {
        let server = FakeKernelServer(tree: tree)
        defer { server.stop() }
        let writer = KernelSysfsWriter(root: tree.sysfs)
        // The writes of one bind go down different pipes: PCIDriverControl
        // waits for each to take effect, as it must on Linux too.
        try PCIDriverControl(root: tree.sysfs, writer: writer).bind(gpu, to: "vfio-pci")
        #expect(tree.driver(of: gpu) == "vfio-pci")
        server.kernel.hold(gpu)
        try writer.write("0000:01:00.0", to: "/sys/bus/pci/drivers/vfio-pci/unbind")
        #expect(soon { tree.driver(of: gpu) == nil })
        try writer.write("\n", to: overridePath(gpu))
        try writer.write("0000:01:00.0", to: "/sys/bus/pci/drivers_probe")
        try writer.write("0000:01:00.1", to: "/sys/bus/pci/drivers/snd_hda_intel/unbind")
        #expect(soon { tree.driver(of: audio) == nil })
        usleep(300_000)
        #expect(tree.driver(of: gpu) == nil)
        server.kernel.letGo(gpu)
        #expect(soon { tree.driver(of: gpu) == "nouveau" })
    }

    struct Sequence: Sendable, CustomStringConvertible {
        var name: String
        var events: [String]
        var description: String { name }
    }

    /// The uevents in the kernel's order (SEQNUM), as the real-kernel suite
    /// recorded them (net/ptp children elided: the fake tree has none).
    @Test(arguments: [
        Sequence(name: "bind to vfio-pci", events: [
            "unbind 0000:01:00.0 (pci)", "add 1 (vfio)", "add vfio0 (vfio-dev)", "bind 0000:01:00.0 (pci) vfio-pci",
        ]),
        Sequence(name: "release to the host driver", events: [
            "remove vfio0 (vfio-dev)", "remove 1 (vfio)", "unbind 0000:01:00.0 (pci)", "bind 0000:01:00.0 (pci) nouveau",
        ]),
        Sequence(name: "hotplug", events: ["add 0000:05:00.0 (pci)", "bind 0000:05:00.0 (pci) e1000e"]),
        Sequence(name: "unplug of a vfio device", events: [
            "remove vfio0 (vfio-dev)", "remove 9 (vfio)", "unbind 0000:05:00.0 (pci)", "remove 0000:05:00.0 (pci)",
        ]),
    ])
    func ueventOrder(_ sequence: Sequence) throws {
        let kernel = FakeKernel(tree: tree)
        let control = PCIDriverControl(root: tree.sysfs, writer: kernel)
        let nic = SysfsTree.PCISpec("0000:05:00.0", vendor: "8086", device: "10d3", classCode: 0x020000, driver: "e1000e", iommuGroup: 9)
        var from = 0
        switch sequence.name {
        case "bind to vfio-pci":
            try control.bind(gpu, to: "vfio-pci")
        case "release to the host driver":
            try control.bind(gpu, to: "vfio-pci")
            from = kernel.events.count
            try control.restore(gpu, to: "nouveau")
        case "hotplug":
            kernel.hotplug(nic)
        default:
            kernel.hotplug(nic)
            try control.bind(nic.address, to: "vfio-pci")
            from = kernel.events.count
            kernel.unplug(nic.address)
        }
        #expect(kernel.events.dropFirst(from).map(\.description) == sequence.events)
    }

    /// A hotplugged device is on its host driver before anyone hears of it.
    @Test func hotplugBindsTheHostDriverAtOnce() {
        let kernel = FakeKernel(tree: tree)
        kernel.hotplug(.init("0000:05:00.0", vendor: "8086", device: "10d3", classCode: 0x020000, driver: "e1000e", iommuGroup: 9))
        #expect(tree.driver(of: PCIAddress("0000:05:00.0")!) == "e1000e")
    }
}

func soon(timeout: Double = 5, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if condition() { return true }
        usleep(20_000)
    }
    return condition()
}
