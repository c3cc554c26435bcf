#if canImport(Glibc)
    import Glibc
#endif
import HostdevSysfs

/// POSIX helpers for building directory trees in tests: fast enough to lay
/// out a 4,096-function host in well under a second.
public enum FileTree {
    public static func makeTemporaryDirectory(prefix: String = "hostdev", base: String = "/tmp") -> String {
        var template = Array("\(base)/\(prefix).XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { fatalError("mkdtemp failed: errno \(errno)") }
        return String(cString: made)
    }

    /// `mkdir -p`.
    public static func makeDirectory(_ path: String) {
        if mkdir(path, 0o755) == 0 || errno == EEXIST { return }
        makeDirectory(SysfsPath.parent(path))
        mkdir(path, 0o755)
    }

    /// Writes a whole file in place (never by rename: sysfs files are written in place).
    public static func write(_ path: String, _ content: String, mode: mode_t = 0o644) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard fd >= 0 else { fatalError("cannot create \(path): errno \(errno)") }
        defer { close(fd) }
        var bytes = Array(content.utf8)
        _ = bytes.withUnsafeMutableBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
    }

    public static func write(_ path: String, bytes: [UInt8]) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { fatalError("cannot create \(path): errno \(errno)") }
        defer { close(fd) }
        _ = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
    }

    public static func read(_ path: String) -> String? { SysfsRoot("/").read(path) }

    /// Replaces whatever is at `path` with a link to `target`.
    public static func link(_ path: String, to target: String) {
        unlink(path)
        guard symlink(target, path) == 0 else { fatalError("cannot link \(path) → \(target): errno \(errno)") }
    }

    public static func remove(_ path: String) {
        var st = stat()
        guard lstat(path, &st) == 0 else { return }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            for name in SysfsRoot("/").list(path) ?? [] { remove(path + "/" + name) }
            rmdir(path)
        } else {
            unlink(path)
        }
    }

    /// The relative link text from directory `from` to `to` (both absolute).
    public static func relative(from: String, to: String) -> String {
        let a = from.split(separator: "/")
        let b = to.split(separator: "/")
        var common = 0
        while common < a.count && common < b.count && a[common] == b[common] { common += 1 }
        let ups = Array(repeating: "..", count: a.count - common)
        return (ups + b[common...].map(String.init)).joined(separator: "/")
    }
}
