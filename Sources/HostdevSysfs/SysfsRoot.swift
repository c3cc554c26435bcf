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

        init?(_ hostPath: String) {
            fd = open(hostPath, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            guard fd >= 0 else { return nil }
        }

        deinit { close(fd) }

        public func read(_ name: String) -> String? {
            let file = openat(fd, name, O_RDONLY | O_CLOEXEC)
            guard file >= 0 else { return nil }
            defer { close(file) }
            return SysfsRoot.readAll(file)
        }

        /// Up to `count` raw bytes from the start of a binary attribute (`config`).
        public func readBytes(_ name: String, count: Int) -> [UInt8]? {
            let file = openat(fd, name, O_RDONLY | O_CLOEXEC)
            guard file >= 0 else { return nil }
            defer { close(file) }
            var bytes = [UInt8](repeating: 0, count: count)
            let n = bytes.withUnsafeMutableBytes { Glibc.read(file, $0.baseAddress, count) }
            guard n > 0 else { return nil }
            return Array(bytes[0..<n])
        }

        public func readLink(_ name: String) -> String? { SysfsRoot.readLink(fd, name) }

        public func linkName(_ name: String) -> String? { readLink(name).map(SysfsPath.lastComponent) }

        /// Entries of the directory; read only when asked (one more open and getdents).
        public func entries() -> [String] {
            let copy = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            guard copy >= 0, let dir = fdopendir(copy) else {
                if copy >= 0 { close(copy) }
                return []
            }
            defer { closedir(dir) }
            return SysfsRoot.entries(dir)
        }
    }

    public func directory(_ kernelPath: String) -> Directory? { Directory(hostPath(kernelPath)) }

    // MARK: syscalls

    /// The whole content, without trailing newlines. A sysfs attribute is
    /// served whole by its first read, so a short read ends the loop without
    /// a second read to see EOF (that would double the syscalls of a scan).
    static func readAll(_ fd: Int32) -> String? {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 4096) { small -> String? in
            var n: Int
            repeat { n = Glibc.read(fd, small.baseAddress, small.count) } while n < 0 && errno == EINTR
            guard n >= 0 else { return nil }
            if n < small.count { return trimmed(UnsafeBufferPointer(rebasing: small[0..<n])) }
            // Larger than a page: an ordinary file (uevent of a big device, ids files).
            var buffer = Array(small)
            while true {
                var chunk = [UInt8](repeating: 0, count: 65536)
                let m = Glibc.read(fd, &chunk, chunk.count)
                if m < 0 && errno == EINTR { continue }
                if m <= 0 { break }
                buffer += chunk[0..<m]
            }
            return buffer.withUnsafeBufferPointer { trimmed($0) }
        }
    }

    static func trimmed(_ bytes: UnsafeBufferPointer<UInt8>) -> String {
        var end = bytes.count
        while end > 0 && (bytes[end - 1] == 0x0a || bytes[end - 1] == 0) { end -= 1 }
        return String(decoding: UnsafeBufferPointer(rebasing: bytes[0..<end]), as: UTF8.self)
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
        // Byte-wise: an inventory resolves one link per device.
        var out: [UInt8] = relative.utf8.first == 0x2f ? [] : Array(base.utf8)
        while out.last == 0x2f { out.removeLast() }
        for part in relative.utf8.split(separator: 0x2f) {
            if part.count == 1 && part.first == 0x2e { continue }
            if part.count == 2 && part.first == 0x2e && part.last == 0x2e {
                if let slash = out.lastIndex(of: 0x2f) { out.removeSubrange(slash...) }
                continue
            }
            out.append(0x2f)
            out.append(contentsOf: part)
        }
        return out.isEmpty ? "/" : String(decoding: out, as: UTF8.self)
    }
}
