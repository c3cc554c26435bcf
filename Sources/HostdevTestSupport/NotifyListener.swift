#if canImport(Glibc)
    import Glibc
#endif
import Foundation

/// Plays systemd's part of `sd_notify`: a datagram socket a daemon under
/// test sends `READY=1` / `STATUS=…` to (pass `path` as `NOTIFY_SOCKET`).
public final class NotifyListener: @unchecked Sendable {
    // @unchecked: one test reads it; the fd is closed in deinit.
    public let path: String
    private let fd: Int32

    public init() {
        path = FileTree.makeTemporaryDirectory(prefix: "hostdev-notify") + "/notify.sock"
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        _ = withUnixAddress(path) { bind(fd, $0, $1) }
    }

    deinit {
        close(fd)
        FileTree.remove(SysfsPathParent(path))
    }

    /// The next message, or nil at the deadline.
    public func next(timeout: Double = 20) -> String? {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&pfd, 1, Int32(timeout * 1000)) > 0 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = recv(fd, &buffer, buffer.count, 0)
        return n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self) : nil
    }
}

private func SysfsPathParent(_ path: String) -> String { (path as NSString).deletingLastPathComponent }

/// Waits for `condition` with a deadline, checking every few milliseconds:
/// for state another process changes (never a fixed sleep).
public func eventually(timeout: Double = 10, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if try condition() { return true }
        usleep(5_000)
    }
    return try condition()
}
