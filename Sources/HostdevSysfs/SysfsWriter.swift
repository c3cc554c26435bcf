#if canImport(Glibc)
    import Glibc
#endif

/// Where sysfs writes go. In production the kernel; in tests a fake kernel
/// that sees every write (a plain file would merge two quick writes to a
/// write-only control file such as `unbind`).
public protocol SysfsWriter: Sendable {
    /// Writes `value` to the attribute at `kernelPath` (`/sys/...`), in place.
    func write(_ value: String, to kernelPath: String) throws(SysfsError)
}

/// Writes attributes under a root with one `open`/`write`/`close`, never by
/// rename: sysfs attributes must be written in place, in a single write.
public struct KernelSysfsWriter: SysfsWriter {
    public let root: SysfsRoot

    public init(root: SysfsRoot) { self.root = root }

    public func write(_ value: String, to kernelPath: String) throws(SysfsError) {
        let path = root.hostPath(kernelPath)
        // O_TRUNC as the shell's `>` does: sysfs ignores it, and a shorter
        // value in a plain file (a recorded tree) replaces the longer one.
        let fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC)
        guard fd >= 0 else { throw SysfsError(.write, path: path, errno: errno) }
        defer { close(fd) }
        var bytes = Array(value.utf8)
        var result: Int
        repeat {
            result = bytes.withUnsafeMutableBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        } while result < 0 && errno == EINTR
        guard result >= 0 else { throw SysfsError(.write, path: path, errno: errno, detail: "writing '\(value)'") }
    }
}
