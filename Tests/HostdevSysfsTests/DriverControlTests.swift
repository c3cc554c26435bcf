import HostdevCore
import HostdevSysfs
import HostdevTestSupport
import Testing

@Suite struct DriverControlTests {
    let tree = SysfsTree.workstation()
    let gpu = PCIAddress("0000:01:00.0")!
    let audio = PCIAddress("0000:01:00.1")!

    func control(_ kernel: FakeKernel) -> PCIDriverControl { PCIDriverControl(root: tree.sysfs, writer: kernel) }

    @Test func bindsToVFIOAndBackWithTheLinuxSequence() throws {
        let kernel = FakeKernel(tree: tree)
        let previous = try control(kernel).bind(gpu, to: "vfio-pci")
        #expect(previous == "nouveau")
        #expect(tree.driver(of: gpu) == "vfio-pci")
        #expect(tree.sysfs.read(tree.pciPath(gpu) + "/driver_override") == "vfio-pci")
        #expect(kernel.writes.map(\.path) == [
            "/sys/bus/pci/devices/0000:01:00.0/driver_override",
            "/sys/bus/pci/devices/0000:01:00.0/driver/unbind",
            "/sys/bus/pci/drivers_probe",
        ])
        try control(kernel).restore(gpu, to: "nouveau")
        #expect(tree.driver(of: gpu) == "nouveau")
        #expect(tree.sysfs.read(tree.pciPath(gpu) + "/driver_override") == "(null)")
    }

    /// Two functions of one group moved back to back: each write is seen by
    /// the kernel on its own, and neither device is left without a driver.
    @Test func twoBindsInARow() throws {
        let kernel = FakeKernel(tree: tree)
        try control(kernel).bind(gpu, to: "vfio-pci")
        try control(kernel).bind(audio, to: "vfio-pci")
        #expect(tree.driver(of: gpu) == "vfio-pci" && tree.driver(of: audio) == "vfio-pci")
        #expect(kernel.writes.filter { $0.path.hasSuffix("unbind") }.map(\.value) == ["0000:01:00.0", "0000:01:00.1"])
        try control(kernel).restore(audio, to: nil)
        #expect(tree.driver(of: audio) == "snd_hda_intel")
    }

    /// Surprise removal mid-bind (the device is pulled while its driver
    /// moves): the bind fails at once naming it, with no restore attempted.
    @Test func deviceRemovedDuringBindFailsAtOnce() throws {
        struct Unplugging: SysfsWriter {
            let kernel: FakeKernel
            func write(_ value: String, to path: String) throws(SysfsError) {
                if path == "/sys/bus/pci/drivers_probe" {
                    kernel.tree.removePCI(PCIAddress(value)!)
                    return
                }
                try kernel.write(value, to: path)
            }
        }
        let kernel = FakeKernel(tree: tree)
        let control = PCIDriverControl(root: tree.sysfs, writer: Unplugging(kernel: kernel))
        let error = #expect(throws: SysfsError.self) { try control.bind(gpu, to: "vfio-pci") }
        #expect(error?.description.contains("0000:01:00.0 disappeared from the host") == true)
        #expect(!kernel.writes.contains { $0.path.hasSuffix("/bind") })
    }

    @Test func missingVFIODriverLeavesDeviceOnItsOwnDriver() throws {
        let kernel = FakeKernel(tree: tree)
        FileTree.remove(tree.host("/sys/bus/pci/drivers/vfio-pci"))
        let error = #expect(throws: SysfsError.self) { try control(kernel).bind(gpu, to: "vfio-pci") }
        #expect(error?.description.contains("modprobe vfio-pci") == true)
        #expect(tree.driver(of: gpu) == "nouveau")
    }

    @Test func kernelRefusalsCarryErrnoAndPath() throws {
        let kernel = FakeKernel(tree: tree)
        // Unbinding from a driver the device is not on: ENODEV.
        #expect(throws: SysfsError(.write, path: tree.host("/sys/bus/pci/drivers/i915/unbind"), errno: ENODEV)) {
            try kernel.write("0000:01:00.0", to: "/sys/bus/pci/drivers/i915/unbind")
        }
        // Binding a bound device: EBUSY.
        #expect(throws: SysfsError(.write, path: tree.host("/sys/bus/pci/drivers/nouveau/bind"), errno: EBUSY)) {
            try kernel.write("0000:01:00.0", to: "/sys/bus/pci/drivers/nouveau/bind")
        }
        // vfio-pci has no ID table: without an override it matches nothing.
        try kernel.write("0000:01:00.0", to: "/sys/bus/pci/drivers/nouveau/unbind")
        #expect(throws: SysfsError(.write, path: tree.host("/sys/bus/pci/drivers/vfio-pci/bind"), errno: ENODEV)) {
            try kernel.write("0000:01:00.0", to: "/sys/bus/pci/drivers/vfio-pci/bind")
        }
        // An unknown device: ENODEV.
        #expect(throws: SysfsError.self) { try kernel.write("0000:09:00.0", to: "/sys/bus/pci/drivers_probe") }
        try kernel.write("0000:01:00.0", to: "/sys/bus/pci/drivers_probe")
        #expect(tree.driver(of: gpu) == "nouveau")
    }

    @Test func realWriterWritesInPlace() throws {
        let writer = KernelSysfsWriter(root: tree.sysfs)
        try writer.write("vfio-pci", to: "/sys/bus/pci/devices/0000:01:00.0/driver_override")
        #expect(tree.sysfs.read("/sys/bus/pci/devices/0000:01:00.0/driver_override") == "vfio-pci")
        let error = #expect(throws: SysfsError.self) {
            try writer.write("1", to: "/sys/bus/pci/devices/0000:09:00.0/remove")
        }
        #expect(error?.errno == ENOENT)
        #expect(error?.description.contains("/sys/bus/pci/devices/0000:09:00.0/remove") == true)
        #expect(error?.hint != nil)
    }
}

#if canImport(Glibc)
    import Glibc
#endif
