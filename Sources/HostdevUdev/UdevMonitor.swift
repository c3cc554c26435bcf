#if canImport(Glibc)
    import Glibc
#endif
import CUdev
public import HostdevCore
import HostdevSysfs

/// Hotplug events from libudev's netlink monitor as an `AsyncStream`.
/// libudev's blocking receive runs on a thread of its own; stopping it is a
/// write to a pipe that its `poll` also watches, so it uses no CPU while idle.
public final class UdevMonitor: @unchecked Sendable {
    // @unchecked: the udev handles are touched only by the monitor thread
    // after init; `stop` only writes to the wake-up pipe.

    /// `udev`: events after udevd has processed them (rules applied, hwdb
    /// properties); `kernel`: raw kernel uevents, for hosts without udevd.
    public enum Source: String, Sendable, CaseIterable {
        case udev, kernel
    }

    public let events: AsyncStream<DeviceEvent>
    private let continuation: AsyncStream<DeviceEvent>.Continuation
    private let udev: OpaquePointer
    private let monitor: OpaquePointer
    private let wake: (read: Int32, write: Int32)
    private var thread: pthread_t?

    /// Subscribes to `subsystems` and starts receiving; events that arrive
    /// before the caller iterates `events` are buffered.
    public init(subsystems: [String], source: Source = .udev) throws {
        guard let udev = udev_new() else { throw UdevError(operation: "udev_new", errno: errno) }
        guard let monitor = udev_monitor_new_from_netlink(udev, source.rawValue) else {
            udev_unref(udev)
            throw UdevError(operation: "opening the \(source.rawValue) netlink monitor", errno: errno)
        }
        for subsystem in subsystems {
            udev_monitor_filter_add_match_subsystem_devtype(monitor, subsystem, nil)
        }
        // A VF storm sends thousands of events at once: a large buffer makes
        // an overflow (handled: a full resync) rare.
        _ = udev_monitor_set_receive_buffer_size(monitor, 64 << 20)
        let status = udev_monitor_enable_receiving(monitor)
        guard status >= 0 else {
            udev_monitor_unref(monitor)
            udev_unref(udev)
            throw UdevError(operation: "enabling the monitor", errno: -status)
        }
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else {
            udev_monitor_unref(monitor)
            udev_unref(udev)
            throw UdevError(operation: "pipe2", errno: errno)
        }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        self.udev = udev
        self.monitor = monitor
        self.wake = (fds[0], fds[1])
        (events, continuation) = AsyncStream.makeStream(bufferingPolicy: .unbounded)
        start()
    }

    deinit {
        stop()
        if let thread { pthread_join(thread, nil) }
        close(wake.read)
        close(wake.write)
        udev_monitor_unref(monitor)
        udev_unref(udev)
    }

    /// Ends the stream; the receive thread exits at its next wake-up.
    public func stop() {
        var byte: UInt8 = 1
        _ = Glibc.write(wake.write, &byte, 1)
    }

    private func start() {
        let context = Unmanaged.passRetained(self).toOpaque()
        var handle = pthread_t()
        let result = pthread_create(&handle, nil, { raw in
            let monitor = Unmanaged<UdevMonitor>.fromOpaque(raw!).takeRetainedValue()
            monitor.receiveLoop()
            return nil
        }, context)
        if result == 0 {
            thread = handle
        } else {
            Unmanaged<UdevMonitor>.fromOpaque(context).release()
            continuation.finish()
        }
    }

    private func receiveLoop() {
        let fd = udev_monitor_get_fd(monitor)
        var fds = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0), pollfd(fd: wake.read, events: Int16(POLLIN), revents: 0)]
        while true {
            let ready = poll(&fds, 2, -1)
            if ready < 0 {
                if errno == EINTR { continue }
                break
            }
            if fds[1].revents != 0 { break }
            guard fds[0].revents & Int16(POLLIN) != 0 else { continue }
            guard let device = udev_monitor_receive_device(monitor) else {
                if let lost = Self.loss(errno: errno) { continuation.yield(lost) }
                continue
            }
            defer { udev_device_unref(device) }
            if let event = Self.event(device) { continuation.yield(event) }
        }
        continuation.finish()
    }

    /// A failed receive that means events were dropped (the socket's
    /// buffer overflowed: ENOBUFS) becomes an overflow event; other
    /// failures (a message filtered out, EAGAIN) lose nothing.
    static func loss(errno: Int32) -> DeviceEvent? { errno == ENOBUFS ? .overflow : nil }

    static func event(_ device: OpaquePointer) -> DeviceEvent? {
        guard let record = UdevEnumerator.record(device) else { return nil }
        return DeviceEvent(
            action: udev_device_get_action(device).map { String(cString: $0) } ?? "change",
            devpath: record.devpath, subsystem: record.subsystem, sysname: record.sysname, devtype: record.devtype,
            driver: record.properties["DRIVER"], seqnum: udev_device_get_seqnum(device))
    }
}
