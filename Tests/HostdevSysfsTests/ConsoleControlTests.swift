#if canImport(Glibc)
    import Glibc
#endif
import Foundation
import HostdevCore
@testable import HostdevSysfs
import HostdevTestSupport
import Testing

/// A writer that fails one path, to see a half-done hand-over undone.
struct FailingWriter: SysfsWriter {
    let inner: FakeKernel
    let failing: String

    func write(_ value: String, to kernelPath: String) throws(SysfsError) {
        if kernelPath == failing { throw SysfsError(.write, path: kernelPath, errno: EBUSY) }
        try inner.write(value, to: kernelPath)
    }
}

@Suite struct ConsoleControlTests {
    let gpu = PCIAddress("0000:01:00.0")!

    func consoleUses(_ tree: SysfsTree) -> [HostUse] {
        HostUseScanner(root: tree.sysfs).uses(of: gpu).filter { $0.kind == .console }
    }

    /// Single-GPU passthrough against the fake kernel: consoles, then the
    /// firmware framebuffer, then the GPU; and back in reverse.
    @Test func singleGPUHandOverAndBack() throws {
        let tree = SysfsTree.hostLayout(.efiFramebufferConsole)
        let kernel = FakeKernel(tree: tree)
        let console = ConsoleControl(root: tree.sysfs, writer: kernel)
        let drivers = PCIDriverControl(root: tree.sysfs, writer: kernel)
        #expect(consoleUses(tree).count == 1)

        let planned = console.handover(of: gpu)
        #expect(planned == ConsoleHandover(gpu: gpu, virtualConsoles: [1], framebuffers: [.init(device: "efi-framebuffer.0", driver: "efi-framebuffer")]))
        let done = try console.releaseConsole(of: gpu)
        #expect(done == planned)
        try drivers.bind(gpu, to: "vfio-pci")
        #expect(kernel.writes.prefix(2).map { "\($0.path) ← \($0.value)" } == [
            "/sys/class/vtconsole/vtcon1/bind ← 0",
            "/sys/bus/platform/drivers/efi-framebuffer/unbind ← efi-framebuffer.0",
        ])
        #expect(tree.virtualConsoleBound(1) == false)
        #expect(tree.platformDriver(of: "efi-framebuffer.0") == nil)
        #expect(tree.sysfs.readLink("/sys/class/graphics/fb0") == nil)
        #expect(tree.driver(of: gpu) == "vfio-pci")
        #expect(consoleUses(tree).isEmpty)

        // The ledger journals the hand-over; the release reads it back.
        let journaled = try JSONDecoder().decode(ConsoleHandover.self, from: JSONEncoder().encode(done))
        let before = kernel.writes.count
        try drivers.restore(gpu, to: "nouveau")
        try console.restoreConsole(journaled)
        #expect(kernel.writes.dropFirst(before).filter { !$0.path.hasPrefix("/sys/bus/pci") }.map { "\($0.path) ← \($0.value)" } == [
            "/sys/bus/platform/drivers/efi-framebuffer/bind ← efi-framebuffer.0",
            "/sys/class/vtconsole/vtcon1/bind ← 1",
        ])
        #expect(tree.driver(of: gpu) == "nouveau")
        #expect(tree.virtualConsoleBound(1) == true)
        #expect(tree.platformDriver(of: "efi-framebuffer.0") == "efi-framebuffer")
        #expect(consoleUses(tree).map(\.reason) == [
            "0000:01:00.0 → efi-framebuffer.0 → fb0 → vtcon1 (frame buffer device), the virtual console"
        ])
    }

    /// A console on another GPU is never touched.
    @Test func consoleElsewhereIsLeftAlone() throws {
        let tree = SysfsTree.hostLayout(.consoleOnSecondGPU)
        let kernel = FakeKernel(tree: tree)
        let console = ConsoleControl(root: tree.sysfs, writer: kernel)
        #expect(try console.releaseConsole(of: gpu).isEmpty)
        #expect(kernel.writes.isEmpty)
        #expect(tree.virtualConsoleBound(1) == true)
        // The GPU that holds it: consoles only (amdgpu's own fb is no firmware framebuffer).
        let second = PCIAddress("0000:0c:00.0")!
        #expect(console.handover(of: second) == ConsoleHandover(gpu: second, virtualConsoles: [1]))
    }

    /// A step that fails undoes the steps before it and names the file.
    @Test func aFailedStepIsUndone() throws {
        let tree = SysfsTree.hostLayout(.efiFramebufferConsole)
        let kernel = FakeKernel(tree: tree)
        let console = ConsoleControl(
            root: tree.sysfs, writer: FailingWriter(inner: kernel, failing: "/sys/bus/platform/drivers/efi-framebuffer/unbind"))
        #expect {
            try console.releaseConsole(of: gpu)
        } throws: { error in
            "\(error)".contains("/sys/bus/platform/drivers/efi-framebuffer/unbind")
        }
        #expect(tree.virtualConsoleBound(1) == true)
        #expect(tree.platformDriver(of: "efi-framebuffer.0") == "efi-framebuffer")
    }

    /// The fake kernel answers as Linux does: only 0/1 to a console's bind,
    /// ENODEV to unbinding a device that is not on that driver, EBUSY to
    /// binding a bound one.
    @Test func fakeKernelRefusesAsLinuxDoes() throws {
        let tree = SysfsTree.hostLayout(.efiFramebufferConsole)
        let kernel = FakeKernel(tree: tree)
        #expect(throws: SysfsError.self) { try kernel.write("2", to: "/sys/class/vtconsole/vtcon1/bind") }
        #expect(throws: SysfsError.self) { try kernel.write("efi-framebuffer.0", to: "/sys/bus/platform/drivers/efi-framebuffer/bind") }
        try kernel.write("efi-framebuffer.0", to: "/sys/bus/platform/drivers/efi-framebuffer/unbind")
        #expect(throws: SysfsError.self) { try kernel.write("efi-framebuffer.0", to: "/sys/bus/platform/drivers/efi-framebuffer/unbind") }
    }
}

@Suite struct VFIOHoldersTests {
    /// QEMU holding the group node, another process a member's iommufd
    /// cdev, a third an unrelated group: one walk names the first two.
    @Test func holdersOfAGroup() {
        let tree = SysfsTree.workstation()
        tree.addVFIOCdev(PCIAddress("0000:01:00.1")!, 0)
        tree.addProcess(4000, comm: "qemu-system-x86", openFiles: ["/dev/vfio/vfio", "/dev/vfio/1", "/dev/vfio/1"])
        tree.addProcess(4100, comm: "cloud-hypervisor", openFiles: ["/dev/iommu", "/dev/vfio/devices/vfio0"])
        tree.addProcess(4200, comm: "qemu-system-x86", openFiles: ["/dev/vfio/7"])
        tree.addProcess(4300, comm: "bash", openFiles: ["/dev/pts/1"])
        let holders = VFIOHolders(root: tree.sysfs)
        #expect(holders.holders(ofGroup: 1) == [ProcessRef(pid: 4000, comm: "qemu-system-x86"), ProcessRef(pid: 4100, comm: "cloud-hypervisor")])
        #expect(holders.holders(ofGroup: 7) == [ProcessRef(pid: 4200, comm: "qemu-system-x86")])
        #expect(holders.holders(ofGroup: 3).isEmpty)
        #expect(holders.holders(ofGroups: [1, 7]).mapValues { $0.map(\.pid) } == [1: [4000, 4100], 7: [4200]])
        tree.removeProcess(4000)
        #expect(holders.holders(ofGroup: 1).map(\.description) == ["cloud-hypervisor (pid 4100)"])
    }
}

/// What a scan costs (printed, never asserted: timing depends on the machine).
@Suite struct HostUseCostTests {
    func measure(_ label: String, runs: Int = 200, _ body: () -> Void) {
        body()
        // CPU time too: on a loaded machine the wall clock mostly measures the wait for a core.
        func cpu() -> Double {
            var t = timespec()
            clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t)
            return Double(t.tv_sec) * 1e6 + Double(t.tv_nsec) / 1e3
        }
        let clock = ContinuousClock()
        let start = cpu()
        let elapsed = clock.measure { for _ in 0..<runs { body() } }
        let micros = Double(elapsed.components.attoseconds) / 1e12 + Double(elapsed.components.seconds) * 1e6
        print("host-use cost: \(label): \(Int(micros / Double(runs))) µs wall, \(Int((cpu() - start) / Double(runs))) µs CPU per call (process-wide)")
    }

    @Test func workstationScanCost() throws {
        let tree = SysfsTree.workstation()
        let inventory = try InventoryReader(root: tree.sysfs, names: noNames).read()
        let scanner = HostUseScanner(root: tree.sysfs)
        #expect(!scanner.scan(inventory).isEmpty)
        measure("workstation full scan") { _ = scanner.scan(inventory) }
        measure("workstation network part") { _ = scanner.networkUses() }
        measure("workstation storage part") { _ = scanner.storageUses() }
        measure("workstation console part") { _ = scanner.consoleUses(FirmwareGPU { [] }) }
        measure("workstation uses(of: NIC)") { _ = scanner.uses(of: PCIAddress("0000:00:1f.6")!, inventory: inventory) }
        measure("workstation uses(of: GPU)") { _ = scanner.uses(of: PCIAddress("0000:01:00.0")!, inventory: inventory) }
    }

    /// This machine's own /sys and /proc, read only.
    @Test func realHostScanCost() throws {
        let root = SysfsRoot("/")
        guard root.exists, let inventory = try? InventoryReader(root: root, names: noNames).read() else { return }
        let scanner = HostUseScanner(root: root)
        let scan = scanner.scanAll(inventory)
        for use in scan.uses { print("host-use on this machine: \(use.kind): \(use.reason)") }
        measure("this machine full scan", runs: 20) { _ = scanner.scan(inventory) }
        let holders = OpenFiles(root: root)
        measure("this machine /proc fd walk", runs: 20) { _ = holders.holders { $0.hasPrefix("/dev/vfio/") ? $0 : nil } }
    }
}
