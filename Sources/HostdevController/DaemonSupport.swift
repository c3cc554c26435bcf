#if canImport(Glibc)
    import Glibc
#endif
import FoundationEssentials
import HostdevManifest
import HostdevSysfs
import Synchronization

/// `sd_notify` without libsystemd: one datagram to `$NOTIFY_SOCKET`
/// (`READY=1`, `STATUS=…`, `STOPPING=1`). Does nothing outside systemd.
/// Never blocks: a unix datagram queue holds only `net.unix.max_dgram_qlen`
/// (10 by default) unread messages, and a reconcile loop must not stall
/// because its manager is slow to read a status line.
public struct SystemdNotifier: Sendable {
    public let socketPath: String?

    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        socketPath = environment["NOTIFY_SOCKET"].flatMap { $0.isEmpty ? nil : $0 }
    }

    public func notify(_ state: String) {
        guard let socketPath else { return }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        // A leading '@' names an abstract socket: a NUL byte in its place.
        var path = Array(socketPath.utf8)
        if path.first == UInt8(ascii: "@") { path[0] = 0 }
        let length = min(path.count, MemoryLayout.size(ofValue: address.sun_path) - 1)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for i in 0..<length { raw[i] = path[i] }
        }
        let size = socklen_t(MemoryLayout<sa_family_t>.size + length)
        let bytes = Array(state.utf8)
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, bytes, bytes.count, Int32(MSG_DONTWAIT | MSG_NOSIGNAL), $0, size) }
        }
    }
}

/// Watches the manifest's directory with inotify: editors and `git pull`
/// replace the file by rename, which a watch on the file itself would lose.
/// The drop-in directory beside it (`bindings.d/`) is watched too: adding,
/// removing or editing a `*.yaml` there is a change, and so is the
/// directory itself appearing or going (it is watched from when it
/// appears). Its thread sleeps in poll(2) until something happens there
/// or `stop` wakes it; the thread closes the descriptors itself when it
/// leaves, so no descriptor is closed under a read in progress.
public final class ManifestWatcher: @unchecked Sendable {
    // @unchecked: the inotify fd is used only by the watcher thread; stop()
    // only writes to the pipe.

    public let changes: AsyncStream<Void>
    /// The write end of the pipe whose read end the thread polls.
    private let wake: Int32

    public init(path: String) throws {
        let directory = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : "."
        let name = path.contains("/") ? String(path[path.index(after: path.lastIndex(of: "/")!)...]) : path
        let dropIns = ManifestPart.dropInDirectory(of: path)
        let dropInName = String(dropIns[dropIns.index(after: dropIns.lastIndex(of: "/")!)...])
        let fd = inotify_init1(Int32(IN_CLOEXEC))
        guard fd >= 0 else { throw StateError(description: "inotify_init1 failed: \(String(cString: strerror(errno)))") }
        let mask = UInt32(IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_MOVED_FROM)
        let directoryWatch = inotify_add_watch(fd, directory.isEmpty ? "/" : directory, mask)
        guard directoryWatch >= 0 else {
            close(fd)
            throw StateError(description: "cannot watch \(directory): \(String(cString: strerror(errno))); does the manifest's directory exist?")
        }
        var pipeFDs: [Int32] = [0, 0]
        guard pipe(&pipeFDs) == 0 else {
            close(fd)
            throw StateError(description: "pipe2 failed: \(String(cString: strerror(errno)))")
        }
        for end in pipeFDs { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
        let wake = pipeFDs[0]
        self.wake = pipeFDs[1]
        let (stream, continuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        changes = stream
        detachedThread {
            defer {
                close(fd)
                close(wake)
                continuation.finish()
            }
            // A missing drop-in directory is watched once it is created.
            var dropInWatch = inotify_add_watch(fd, dropIns, mask)
            // The write end stays open for the process's life: stop() may
            // come after the thread left.
            var buffer = [UInt8](repeating: 0, count: 8192)
            var fds = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0), pollfd(fd: wake, events: Int16(POLLIN), revents: 0)]
            while true {
                let ready = poll(&fds, 2, -1)
                if ready < 0 && errno == EINTR { continue }
                guard ready > 0, fds[1].revents == 0 else { return }
                let n = read(fd, &buffer, buffer.count)
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { return }
                var changed = false
                for event in Self.events(buffer[0..<n]) {
                    if event.watch == directoryWatch && event.name == dropInName {
                        dropInWatch = inotify_add_watch(fd, dropIns, mask)
                        changed = true
                    } else if event.watch == directoryWatch && event.name == name {
                        changed = true
                    } else if event.watch == dropInWatch && ManifestPart.isDropIn(event.name) {
                        changed = true
                    }
                }
                if changed { continuation.yield() }
            }
        }
    }

    /// The watch descriptors and file names in a buffer of inotify events.
    static func events(_ buffer: ArraySlice<UInt8>) -> [(watch: Int32, name: String)] {
        var events: [(watch: Int32, name: String)] = []
        var offset = buffer.startIndex
        func int32(_ at: Int) -> Int {
            Int(buffer[at]) | Int(buffer[at + 1]) << 8 | Int(buffer[at + 2]) << 16 | Int(buffer[at + 3]) << 24
        }
        while offset + 16 <= buffer.endIndex {
            let length = int32(offset + 12)
            let nameBytes = buffer[(offset + 16)..<min(offset + 16 + length, buffer.endIndex)].prefix { $0 != 0 }
            events.append((Int32(truncatingIfNeeded: int32(offset)), String(decoding: nameBytes, as: UTF8.self)))
            offset += 16 + length
        }
        return events
    }

    /// Ends `changes`; the thread wakes, closes its descriptors and exits.
    public func stop() {
        var one: UInt8 = 1
        _ = write(wake, &one, 1)
    }
}

/// One OS thread that runs submitted jobs in order. A reconcile pass blocks
/// (flock, libvirt calls, sysfs writes the kernel may hold, polling a
/// driver link) and must not occupy one of Swift's cooperative threads: on
/// two cores that would starve signal handling and the udev stream.
public final class SerialThread: @unchecked Sendable {
    // @unchecked: `jobs` is a Mutex; `ready` is a POSIX semaphore, which is
    // thread-safe by definition; both live as long as the process.
    private let jobs = Mutex<[@Sendable () -> Void]>([])
    private let ready: UnsafeMutablePointer<sem_t>

    public init() {
        ready = .allocate(capacity: 1)
        sem_init(ready, 0, 0)
        detachedThread { [self] in loop() }
    }

    private func loop() -> Never {
        while true {
            while sem_wait(ready) != 0 {}
            let job = jobs.withLock { $0.removeFirst() }
            job()
        }
    }

    /// Runs `body` on the thread; the caller's task waits without blocking a thread.
    public func run<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            jobs.withLock { $0.append { continuation.resume(returning: body()) } }
            sem_post(ready)
        }
    }
}

