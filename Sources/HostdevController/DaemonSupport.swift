#if canImport(Glibc)
    import Glibc
#endif
import FoundationEssentials

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
/// Its thread sleeps in read(2) until something happens there.
public final class ManifestWatcher: @unchecked Sendable {
    // @unchecked: the fd is read only by the watcher thread; stop() closes
    // the watch, which ends the thread's read.

    public let changes: AsyncStream<Void>
    private let fd: Int32
    private let name: String

    public init(path: String) throws {
        let directory = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : "."
        name = path.contains("/") ? String(path[path.index(after: path.lastIndex(of: "/")!)...]) : path
        fd = inotify_init1(Int32(IN_CLOEXEC))
        guard fd >= 0 else { throw StateError(description: "inotify_init1 failed: \(String(cString: strerror(errno)))") }
        let mask = UInt32(IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_MOVED_FROM)
        guard inotify_add_watch(fd, directory.isEmpty ? "/" : directory, mask) >= 0 else {
            close(fd)
            throw StateError(description: "cannot watch \(directory): \(String(cString: strerror(errno))); does the manifest's directory exist?")
        }
        let (stream, continuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        changes = stream
        let fd = self.fd
        let name = self.name
        detachedThread {
            var buffer = [UInt8](repeating: 0, count: 8192)
            while true {
                let n = read(fd, &buffer, buffer.count)
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { break }
                var offset = 0
                var relevant = false
                while offset + 16 <= n {
                    let length = Int(buffer[offset + 12]) | Int(buffer[offset + 13]) << 8 | Int(buffer[offset + 14]) << 16 | Int(buffer[offset + 15]) << 24
                    let nameBytes = buffer[(offset + 16)..<min(offset + 16 + length, n)].prefix { $0 != 0 }
                    if String(decoding: nameBytes, as: UTF8.self) == name { relevant = true }
                    offset += 16 + length
                }
                if relevant { continuation.yield() }
            }
            continuation.finish()
        }
    }

    public func stop() { close(fd) }
}

/// Runs `body` on a detached thread of its own: for loops that block in a
/// system call (inotify reads) and must not hold a Swift concurrency thread.
func detachedThread(_ body: @escaping @Sendable () -> Void) {
    final class Work {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
    let context = Unmanaged.passRetained(Work(body)).toOpaque()
    var thread = pthread_t()
    pthread_create(&thread, nil, { raw in
        Unmanaged<Work>.fromOpaque(raw!).takeRetainedValue().body()
        return nil
    }, context)
    pthread_detach(thread)
}
