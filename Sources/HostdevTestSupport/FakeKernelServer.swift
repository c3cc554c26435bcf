#if canImport(Glibc)
    import Glibc
#endif
import Foundation
import HostdevCore
import HostdevSysfs
import Synchronization

/// The fake kernel for another process (`hostdevctl apply`, `hostdevd`):
/// the write-only control files of a `SysfsTree` (`drivers_probe`, each
/// driver's `bind` and `unbind`) become named pipes, and a thread of the test
/// process reads every write from them and answers as `FakeKernel` does.
/// A plain file would merge two quick writes; a pipe delivers each.
///
/// What a pipe cannot do: block the writer. On Linux, unbinding vfio-pci from
/// a device a process holds open (`kernel.hold`) blocks the writing process
/// until the holder lets go; here the writer's `write` returns at once, the
/// `driver` link empties as on Linux, and this write and every later one
/// naming that device wait on a worker thread (the server keeps answering
/// other devices) until `kernel.letGo`. The blocked writer itself is covered
/// by Tests/vm on a real kernel. `driver_override` stays a plain file the
/// writer writes directly, so its kernel semantics (`FakeKernel`) do not apply
/// to writes from another process.
public final class FakeKernelServer: @unchecked Sendable {
    // @unchecked: the pipes and the wake-up fd are owned by the server
    // thread after start; `stop` only writes one byte to the wake-up pipe.

    public let kernel: FakeKernel
    private let observer = Mutex<(@Sendable (_ path: String, _ value: String) -> Void)?>(nil)
    private var pipes: [(fd: Int32, path: String)] = []
    private let wake: (read: Int32, write: Int32)
    private var thread: pthread_t?
    /// Writes waiting behind a blocked unbind, per device, in arrival order.
    private let queued = Mutex<[PCIAddress: [(path: String, value: String)]]>([:])

    public init(tree: SysfsTree) {
        kernel = FakeKernel(tree: tree)
        var fds: [Int32] = [0, 0]
        pipe(&fds)
        wake = (fds[0], fds[1])
        var controls = ["/sys/bus/pci/drivers_probe"]
        for driver in tree.sysfs.list("/sys/bus/pci/drivers") ?? [] {
            controls += ["/sys/bus/pci/drivers/\(driver)/bind", "/sys/bus/pci/drivers/\(driver)/unbind"]
        }
        for control in controls {
            let host = tree.host(control)
            unlink(host)
            mkfifo(host, 0o600)
            // Read-write so the pipe never reports EOF between writers.
            let fd = open(host, O_RDWR | O_NONBLOCK | O_CLOEXEC)
            pipes.append((fd, control))
        }
        let context = Unmanaged.passRetained(self).toOpaque()
        var handle = pthread_t()
        pthread_create(&handle, nil, { raw in
            Unmanaged<FakeKernelServer>.fromOpaque(raw!).takeRetainedValue().serve()
            return nil
        }, context)
        thread = handle
    }

    /// Called on the server thread after each write has taken effect: a
    /// benchmark's clock stops there without polling the tree.
    public func onWrite(_ handler: @escaping @Sendable (_ path: String, _ value: String) -> Void) {
        observer.withLock { $0 = handler }
    }

    public func stop() {
        guard let thread else { return }
        var byte: UInt8 = 1
        _ = write(wake.write, &byte, 1)
        pthread_join(thread, nil)
        self.thread = nil
        for pipe in pipes { close(pipe.fd) }
        close(wake.read)
        close(wake.write)
    }

    private func serve() {
        var fds = pipes.map { pollfd(fd: $0.fd, events: Int16(POLLIN), revents: 0) }
        fds.append(pollfd(fd: wake.read, events: Int16(POLLIN), revents: 0))
        while true {
            guard poll(&fds, nfds_t(fds.count), -1) >= 0 || errno == EINTR else { return }
            if fds.last!.revents != 0 { return }
            for (i, pfd) in fds.dropLast().enumerated() where pfd.revents & Int16(POLLIN) != 0 {
                var buffer = [UInt8](repeating: 0, count: 4096)
                let n = read(pfd.fd, &buffer, buffer.count)
                guard n > 0 else { continue }
                for value in Self.values(String(decoding: buffer[0..<n], as: UTF8.self)) {
                    if let device = FakeKernel.subject(value, pipes[i].path), queue(device, pipes[i].path, value) {
                        continue
                    }
                    answer(value, pipes[i].path)
                }
            }
        }
    }

    private func answer(_ value: String, _ path: String) {
        // Errors are the writer's to see on Linux; through a pipe they
        // cannot be returned, so the link simply does not move.
        try? kernel.write(value, to: path)
        observer.withLock { $0 }?(path, value)
    }

    /// Queues a write that would block (or must wait behind one) for a
    /// worker thread of its device; false when it can be answered now.
    private func queue(_ device: PCIAddress, _ path: String, _ value: String) -> Bool {
        let startWorker: Bool? = queued.withLock { queues in
            if queues[device] != nil {
                queues[device]!.append((path, value))
                return false
            }
            guard kernel.wouldBlock(value, to: path) else { return nil }
            queues[device] = [(path, value)]
            return true
        }
        guard let startWorker else { return false }
        if startWorker {
            Thread.detachNewThread { [self] in drain(device) }
        }
        return true
    }

    private func drain(_ device: PCIAddress) {
        while let next = queued.withLock({ $0[device]?.first }) {
            answer(next.value, next.path)
            queued.withLock { queues in
                queues[device]!.removeFirst()
                if queues[device]!.isEmpty { queues[device] = nil }
            }
        }
    }

    /// Writes of PCI addresses that arrived together, split back apart.
    static func values(_ text: String) -> [String] {
        let trimmed = text.split(whereSeparator: { $0 == "\n" || $0 == " " }).joined()
        let length = 12
        if trimmed.count > length, trimmed.count % length == 0 {
            let chunks = stride(from: 0, to: trimmed.count, by: length).map {
                String(trimmed.dropFirst($0).prefix(length))
            }
            if chunks.allSatisfy({ PCIAddress($0) != nil }) { return chunks }
        }
        return [trimmed]
    }

    deinit { stop() }
}
