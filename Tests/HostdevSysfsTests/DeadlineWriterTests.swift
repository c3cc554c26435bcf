#if canImport(Glibc)
    import Glibc
#endif
import HostdevCore
@testable import HostdevSysfs
import Synchronization
import Testing

/// A kernel whose `unbind` of one device blocks until the test lets go, as
/// Linux does while a process holds the device's VFIO group open.
final class HoldingKernel: SysfsWriter {
    let held = Mutex(true)
    let writes = Mutex<[String]>([])

    func write(_ value: String, to kernelPath: String) throws(SysfsError) {
        if kernelPath.hasSuffix("/unbind") {
            while held.withLock({ $0 }) { usleep(1_000) }
        }
        writes.withLock { $0.append("\(kernelPath)=\(value)") }
    }
}

@Suite(.serialized) struct DeadlineWriterTests {
    @Test func aBlockedWriteFailsAtTheDeadlineAndHoldsBackItsDevice() throws {
        let kernel = HoldingKernel()
        let writer = DeadlineWriter(base: kernel, deadline: .milliseconds(100))
        let start = ContinuousClock.now
        #expect(throws: SysfsError.self) { try writer.write("0000:0d:00.0", to: "/sys/bus/pci/drivers/vfio-pci/unbind") }
        #expect(ContinuousClock.now - start < .seconds(2))
        do {
            try writer.write("0000:0d:00.0", to: "/sys/bus/pci/drivers_probe")
            Issue.record("a write about a device with a blocked write went through")
        } catch {
            #expect(error.errno == EINPROGRESS)
        }
        // Another device is not held back.
        try writer.write("0000:0e:00.0", to: "/sys/bus/pci/drivers_probe")
        kernel.held.withLock { $0 = false }
        #expect(eventuallyTrue { kernel.writes.withLock { $0.contains("/sys/bus/pci/drivers/vfio-pci/unbind=0000:0d:00.0") } })
        #expect(eventuallyTrue { (try? writer.write("0000:0d:00.0", to: "/sys/bus/pci/drivers_probe")) != nil })
    }

    @Test func errorsOfTheKernelComeThrough() {
        struct Refusing: SysfsWriter {
            func write(_ value: String, to kernelPath: String) throws(SysfsError) { throw SysfsError(.write, path: kernelPath, errno: ENODEV) }
        }
        do {
            try DeadlineWriter(base: Refusing()).write("0000:0f:00.0", to: "/sys/bus/pci/drivers/igb/bind")
            Issue.record("no error")
        } catch {
            #expect(error.errno == ENODEV)
        }
    }

    @Test(arguments: [
        ("/sys/bus/pci/drivers/vfio-pci/unbind", "0000:01:00.0\n", "0000:01:00.0"),
        ("/sys/bus/pci/devices/0000:02:00.0/driver_override", "vfio-pci", "0000:02:00.0"),
        ("/sys/bus/pci/devices/0000:03:00.0/sriov_numvfs", "4", "0000:03:00.0"),
        ("/sys/class/vtconsole/vtcon1/bind", "0", "/sys/class/vtconsole/vtcon1/bind"),
    ])
    func writesAreKeyedByDevice(path: String, value: String, device: String) {
        #expect(DeadlineWriter.device(of: path, value: value) == device)
    }
}

func eventuallyTrue(timeout: Double = 5, _ condition: () -> Bool) -> Bool {
    let end = ContinuousClock.now + .milliseconds(Int(timeout * 1000))
    while ContinuousClock.now < end {
        if condition() { return true }
        usleep(5_000)
    }
    return condition()
}
