#if canImport(Glibc)
    import Glibc
#endif

/// Reads sysfs by the kernel's paths (`/sys/bus/pci/...`) under a root
/// directory (`/` on a host, a temp tree in tests). Uses POSIX calls only:
/// they are fast, and umockdev redirects them (Foundation's enumerator is not).
public struct SysfsRoot: Sendable {
    /// The directory that stands for `/`; never ends in `/` unless it is `/`.
    public let path: String

    public init(_ path: String = "/") {
        var p = path
        while p.count > 1 && p.hasSuffix("/") { p.removeLast() }
        self.path = p.isEmpty ? "/" : p
    }

    /// The host path for a kernel path: `/sys/x` → `<root>/sys/x`.
    public func hostPath(_ kernelPath: String) -> String {
        path == "/" ? kernelPath : path + kernelPath
    }

    public var exists: Bool {
        var st = stat()
        return stat(hostPath("/sys"), &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    /// An attribute's content without the trailing newline; nil when absent or unreadable.
    public func read(_ kernelPath: String) -> String? {
        let fd = open(hostPath(kernelPath), O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        return SysfsRoot.readAll(fd)
    }

    /// The target of a symbolic link as stored; nil when it is not a link.
    public func readLink(_ kernelPath: String) -> String? {
        SysfsRoot.readLink(AT_FDCWD, hostPath(kernelPath))
    }

    /// The last path component a link points at (`driver` → `vfio-pci`).
    public func linkName(_ kernelPath: String) -> String? {
        readLink(kernelPath).map(SysfsPath.lastComponent)
    }

    /// Entries of a directory, without `.` and `..`; nil when it cannot be opened.
    public func list(_ kernelPath: String) -> [String]? {
        guard let dir = opendir(hostPath(kernelPath)) else { return nil }
        defer { closedir(dir) }
        return SysfsRoot.entries(dir)
    }

    /// One open directory: reads its attributes relative to the directory,
    /// which saves the path walk for each of a device's dozen attributes.
    public struct Directory: ~Copyable {
        let fd: Int32
        /// Names inside, read once at open.
        public let entries: Set<String>

        init?(_ hostPath: String) {
            let fd = open(hostPath, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            guard fd >= 0 else { return nil }
            let dupFD = dup(fd)
            guard dupFD >= 0, let dir = fdopendir(dupFD) else {
                if dupFD >= 0 { close(dupFD) }
                close(fd)
                return nil
            }
            self.entries = Set(SysfsRoot.entries(dir))
            closedir(dir)
            self.fd = fd
        }

        deinit { close(fd) }

        public func has(_ name: String) -> Bool { entries.contains(name) }

        public func read(_ name: String) -> String? {
            guard entries.contains(name) else { return nil }
            let file = openat(fd, name, O_RDONLY | O_CLOEXEC)
            guard file >= 0 else { return nil }
            defer { close(file) }
            return SysfsRoot.readAll(file)
        }

        public func readLink(_ name: String) -> String? {
            guard entries.contains(name) else { return nil }
            return SysfsRoot.readLink(fd, name)
        }

        public func linkName(_ name: String) -> String? { readLink(name).map(SysfsPath.lastComponent) }
    }

    public func directory(_ kernelPath: String) -> Directory? { Directory(hostPath(kernelPath)) }

    // MARK: syscalls

    static func readAll(_ fd: Int32) -> String? {
        var buffer = [UInt8](repeating: 0, count: 4096)
        var total = 0
        while true {
            let n = buffer.withUnsafeMutableBytes { raw in
                Glibc.read(fd, raw.baseAddress! + total, raw.count - total)
            }
            if n < 0 {
                if errno == EINTR { continue }
                return nil
            }
            if n == 0 { break }
            total += n
            if total == buffer.count { buffer.append(contentsOf: [UInt8](repeating: 0, count: buffer.count)) }
        }
        var end = total
        while end > 0 && (buffer[end - 1] == 0x0a || buffer[end - 1] == 0) { end -= 1 }
        return String(decoding: buffer[0..<end], as: UTF8.self)
    }

    static func readLink(_ dirfd: Int32, _ path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlinkat(dirfd, path, &buffer, buffer.count - 1)
        guard n > 0 else { return nil }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func entries(_ dir: OpaquePointer) -> [String] {
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }
}

/// Lexical path helpers: sysfs links are relative (`../../../devices/...`)
/// and must be resolved without following them on the host.
public enum SysfsPath {
    public static func lastComponent(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return path }
        return String(path[path.index(after: slash)...])
    }

    public static func parent(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "" }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    /// `join("/sys/bus/pci/devices", "../../../devices/pci0000:00/0000:00:01.0")`
    /// → `/sys/devices/pci0000:00/0000:00:01.0`.
    public static func resolve(_ base: String, _ relative: String) -> String {
        var parts: [Substring] = relative.hasPrefix("/") ? [] : base.split(separator: "/")
        for part in relative.split(separator: "/") {
            switch part {
            case ".": continue
            case "..": if !parts.isEmpty { parts.removeLast() }
            default: parts.append(part)
            }
        }
        return "/" + parts.joined(separator: "/")
    }
}
