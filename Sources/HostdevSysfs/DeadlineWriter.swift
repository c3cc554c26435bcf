#if canImport(Glibc)
    import Glibc
#endif
import Dispatch
import HostdevCore
import Synchronization

/// Sysfs writes the kernel may hold (unbinding vfio-pci blocks until the
/// device's user lets go, and a user without a request channel can hold it
/// forever; meanwhile every other write about that device waits for the
/// same device lock) run on a thread of their own, and the caller waits at
/// most a deadline. A write still blocked then stays in flight on its
/// thread; the caller gets an error at once, and so does every later write
/// about the same device until the kernel lets the first one finish. The
/// reconcile loop never waits on the kernel for longer than the deadline.
public struct DeadlineWriter: SysfsWriter {
    public let base: any SysfsWriter
    public let deadline: Duration

    /// Devices (or files, for writes that name none) with a write still
    /// blocked in the kernel, process-wide.
    static let inFlight = Mutex<Set<String>>([])

    public init(base: any SysfsWriter, deadline: Duration = .seconds(10)) {
        self.base = base
        self.deadline = deadline
    }

    /// The device a write is about: the address written (`unbind`, `bind`,
    /// `drivers_probe`) or the one in the path (`driver_override`).
    static func device(of kernelPath: String, value: String) -> String {
        let written = value.hasSuffix("\n") ? String(value.dropLast()) : value
        if PCIAddress(written) != nil { return written }
        return kernelPath.split(separator: "/").last { PCIAddress($0) != nil }.map(String.init) ?? kernelPath
    }

    public func write(_ value: String, to kernelPath: String) throws(SysfsError) {
        let device = Self.device(of: kernelPath, value: value)
        let started = Self.inFlight.withLock { $0.insert(device).inserted }
        guard started else {
            throw SysfsError(.write, path: kernelPath, errno: EINPROGRESS, detail: "an earlier write about \(device) is still blocked in the kernel")
        }
        let write = BlockedWrite()
        let base = self.base
        detachedThread {
            let result = Result { () throws(SysfsError) in try base.write(value, to: kernelPath) }
            _ = Self.inFlight.withLock { $0.remove(device) }
            write.finish(result)
        }
        guard let result = write.wait(for: deadline) else {
            throw SysfsError(
                .write, path: kernelPath, errno: ETIMEDOUT,
                detail: "the kernel still holds this write after \(deadline): the device's user has not let go (a process with its VFIO group open)")
        }
        try result.get()
    }
}

/// One write's outcome, handed from its thread to the waiting caller, who
/// wakes the moment it arrives: a poll's sleep would add up to its own
/// length to every write on the hotplug path.
final class BlockedWrite: Sendable {
    private let outcome = Mutex<Result<Void, SysfsError>?>(nil)
    private let arrived = DispatchSemaphore(value: 0)

    func finish(_ result: Result<Void, SysfsError>) {
        outcome.withLock { $0 = result }
        arrived.signal()
    }

    /// The outcome, or nil when the deadline passed first.
    func wait(for deadline: Duration) -> Result<Void, SysfsError>? {
        let (seconds, attoseconds) = deadline.components
        let nanoseconds = Int(clamping: seconds) &* 1_000_000_000 &+ Int(attoseconds / 1_000_000_000)
        _ = arrived.wait(timeout: .now() + .nanoseconds(nanoseconds))
        return outcome.withLock { $0 }
    }
}

/// Runs `body` on a detached thread of its own: for loops and calls that
/// block in the kernel and must not hold a Swift concurrency thread.
public func detachedThread(_ body: @escaping @Sendable () -> Void) {
    final class Work {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
    let context = Unmanaged.passRetained(Work(body)).toOpaque()
    var thread = pthread_t()
    if pthread_create(&thread, nil, { raw in
        Unmanaged<Work>.fromOpaque(raw!).takeRetainedValue().body()
        return nil
    }, context) == 0 {
        pthread_detach(thread)
    } else {
        Unmanaged<Work>.fromOpaque(context).takeRetainedValue().body()
    }
}
