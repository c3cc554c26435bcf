#if canImport(Glibc)
    import Glibc
#endif
public import HostdevCore

/// The sysfs side of single-GPU passthrough (`force: [console]`): before the
/// GPU that holds the console leaves its host driver, the virtual consoles
/// are unbound from the framebuffer (`0` to `vtconsole/vtconN/bind`), then
/// the firmware framebuffer that sits on that GPU (`efi-framebuffer.0`,
/// `simple-framebuffer.0`, `vesa-framebuffer.0`) is unbound from its
/// platform driver, so nothing on the host still maps the GPU's memory. On
/// release the reverse: framebuffer bound again, then the consoles.
///
/// It never touches a console that is on another GPU. It does not stop a
/// process holding the DRM card open: a display manager must be stopped
/// first (the planner refuses while one holds it).
public struct ConsoleControl: Sendable {
    public let root: SysfsRoot
    public let writer: any SysfsWriter

    public init(root: SysfsRoot, writer: (any SysfsWriter)? = nil) {
        self.root = root
        self.writer = writer ?? KernelSysfsWriter(root: root)
    }

    /// What `releaseConsole(of:)` would change now, without changing it:
    /// the steps a plan shows.
    public func handover(of gpu: PCIAddress) -> ConsoleHandover {
        let scanner = HostUseScanner(root: root)
        let firmware = FirmwareGPU(find: scanner.bootVGAFromSysfs)
        var handover = ConsoleHandover(gpu: gpu)
        if scanner.consoleUses(firmware).contains(where: { $0.address == gpu }) {
            handover.virtualConsoles = scanner.boundFramebufferConsoles().map(\.number)
        }
        // A firmware framebuffer maps the boot GPU's memory even with no
        // console on it: it goes whenever that GPU is handed over.
        if firmware.find().first == gpu {
            for driver in FirmwareGPU.platformDrivers {
                for device in (root.list("/sys/bus/platform/drivers/\(driver)") ?? []).sorted()
                where device.hasPrefix(driver + ".") {
                    handover.framebuffers.append(.init(device: device, driver: driver))
                }
            }
        }
        return handover
    }

    /// Unbinds the virtual consoles and then the firmware framebuffer of
    /// `gpu`, confirming each; returns what it changed, for
    /// `restoreConsole(_:)`. If a step fails, the steps already done are
    /// undone and the error names the file.
    @discardableResult
    public func releaseConsole(of gpu: PCIAddress) throws(SysfsError) -> ConsoleHandover {
        let planned = handover(of: gpu)
        var done = ConsoleHandover(gpu: gpu)
        do {
            for number in planned.virtualConsoles {
                try writer.write("0", to: "/sys/class/vtconsole/vtcon\(number)/bind")
                done.virtualConsoles.append(number)
                try confirmConsole(number, bound: false)
            }
            for framebuffer in planned.framebuffers {
                try writer.write(framebuffer.device, to: "/sys/bus/platform/drivers/\(framebuffer.driver)/unbind")
                done.framebuffers.append(framebuffer)
                try confirmPlatform(framebuffer.device, on: nil)
            }
        } catch {
            try? restoreConsole(done)
            throw error
        }
        return done
    }

    /// Undoes a handover: binds the firmware framebuffers again, then the
    /// virtual consoles. Every step is tried; the first failure is thrown.
    public func restoreConsole(_ handover: ConsoleHandover) throws(SysfsError) {
        var first: SysfsError?
        for framebuffer in handover.framebuffers.reversed() {
            do throws(SysfsError) {
                if platformDriver(framebuffer.device) == framebuffer.driver { continue }
                try writer.write(framebuffer.device, to: "/sys/bus/platform/drivers/\(framebuffer.driver)/bind")
                try confirmPlatform(framebuffer.device, on: framebuffer.driver)
            } catch {
                first = first ?? error
            }
        }
        for number in handover.virtualConsoles.reversed() {
            do throws(SysfsError) {
                try writer.write("1", to: "/sys/class/vtconsole/vtcon\(number)/bind")
                try confirmConsole(number, bound: true)
            } catch {
                first = first ?? error
            }
        }
        if let first { throw first }
    }

    func platformDriver(_ device: String) -> String? { root.linkName("/sys/bus/platform/devices/\(device)/driver") }

    func confirmConsole(_ number: Int, bound: Bool) throws(SysfsError) {
        let path = "/sys/class/vtconsole/vtcon\(number)/bind"
        let actual = root.read(path)
        guard actual == (bound ? "1" : "0") else {
            throw SysfsError(
                .verify, path: root.hostPath(path), errno: 0,
                detail: "vtcon\(number) reads \(actual ?? "nothing") after writing \(bound ? 1 : 0); "
                    + (bound ? "bind the framebuffer first" : "is a process holding the console (a display manager)?"))
        }
    }

    func confirmPlatform(_ device: String, on driver: String?) throws(SysfsError) {
        let actual = platformDriver(device)
        guard actual == driver else {
            throw SysfsError(
                .verify, path: root.hostPath("/sys/bus/platform/devices/\(device)/driver"), errno: 0,
                detail: "\(device) is on \(actual ?? "no driver"), expected \(driver ?? "no driver")")
        }
    }
}
