#if canImport(Glibc)
    import Glibc
#endif

/// The most bytes hostdevd reads from each kind of input: a file or stream
/// that is larger is refused (never read to its end: `/dev/zero` as the
/// manifest, or a hostile hook stdin, must not hang or eat memory).
public enum FileLimits {
    /// The manifest (`ManifestDecoder.maximumBytes`): 4 MiB.
    public static let manifest = 4 << 20
    /// The ledger, its journal and the status file: 16 MiB.
    public static let state = 16 << 20
    /// A host snapshot (`--observed FILE`): 64 MiB.
    public static let snapshot = 64 << 20
    /// The domain XML libvirt hands the hook on stdin: 16 MiB.
    public static let domainXML = 16 << 20
}

/// A whole regular file's bytes, at most `limit`: the one file reader of
/// the manifest, ledger, status and snapshot paths. Refuses what is not a
/// regular file (a FIFO would block, `/dev/zero` never ends, a directory
/// has no bytes) and stops reading at `limit` + 1 bytes. Follows symbolic
/// links (the manifest may be one, into a git checkout); state files are
/// read through `StateDirectory`, which does not.
public func fileContents(_ path: String, limit: Int = FileLimits.state) -> Result<[UInt8], FileReadError> {
    // O_NONBLOCK: opening a FIFO with no writer must not block before the type check.
    let fd = retryingEINTR { open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY) }
    guard fd >= 0 else { return .failure(FileReadError(path: path, problem: .system(errno))) }
    defer { close(fd) }
    return readRegular(fd: fd, path: path, limit: limit)
}

/// Reads `fd` (a pipe, a terminal, anything: the hook's stdin) to its end,
/// at most `limit` bytes: more is an error, found by reading one byte past
/// the limit, never by reading on.
public func readBounded(fd: Int32, limit: Int, name: String = "standard input") -> Result<[UInt8], FileReadError> {
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let want = min(chunk.count, limit + 1 - bytes.count)
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, want) }
        if n < 0 && errno == EINTR { continue }
        if n < 0 { return .failure(FileReadError(path: name, problem: .system(errno))) }
        if n == 0 { return .success(bytes) }
        bytes += chunk[0..<n]
        if bytes.count > limit { return .failure(FileReadError(path: name, problem: .tooLarge(limit))) }
    }
}

/// The bytes of an open file after checking that it is a regular file.
func readRegular(fd: Int32, path: String, limit: Int) -> Result<[UInt8], FileReadError> {
    var info = stat()
    guard fstat(fd, &info) == 0 else { return .failure(FileReadError(path: path, problem: .system(errno))) }
    guard info.st_mode & S_IFMT == S_IFREG else {
        return .failure(FileReadError(path: path, problem: .notRegular(fileType(info.st_mode))))
    }
    guard Int(info.st_size) <= limit else { return .failure(FileReadError(path: path, problem: .tooLarge(limit))) }
    return readBounded(fd: fd, limit: limit, name: path)
}

func fileType(_ mode: mode_t) -> String {
    switch mode & S_IFMT {
    case S_IFDIR: return "a directory"
    case S_IFCHR: return "a character device"
    case S_IFBLK: return "a block device"
    case S_IFIFO: return "a named pipe"
    case S_IFSOCK: return "a socket"
    case S_IFLNK: return "a symbolic link"
    default: return "not a regular file"
    }
}

public struct FileReadError: Error, Sendable, CustomStringConvertible {
    public enum Problem: Sendable, Equatable {
        /// open/read/fstat failed with this errno.
        case system(Int32)
        /// A FIFO, a device, a directory: what it is.
        case notRegular(String)
        /// More than this many bytes.
        case tooLarge(Int)
        /// A directory with more than this many entries of the kind read.
        case tooManyFiles(Int)
    }

    public var path: String
    public var problem: Problem

    public init(path: String, problem: Problem) {
        self.path = path
        self.problem = problem
    }

    /// The errno, or the closest one for the other problems (callers that
    /// print `strerror(errno)` should print `description` instead).
    public var errno: Int32 {
        switch problem {
        case .system(let code): return code
        case .notRegular: return EINVAL
        case .tooLarge: return EFBIG
        case .tooManyFiles: return EMFILE
        }
    }

    public var isMissing: Bool { problem == .system(ENOENT) }

    public var description: String {
        switch problem {
        case .system(ELOOP):
            return "cannot read \(path): it is a symbolic link, and hostdevd does not follow links here; remove it"
        case .system(let code): return "cannot read \(path): \(String(cString: strerror(code)))"
        case .notRegular(let what): return "cannot read \(path): it is \(what), not a regular file"
        case .tooLarge(let limit): return "cannot read \(path): it is larger than \(limit) bytes (hostdevd's limit for it)"
        case .tooManyFiles(let limit): return "cannot read \(path): it holds more than \(limit) drop-ins (hostdevd's limit); merge some"
        }
    }
}

/// Replaces `path` with `bytes` so that a reader (or a crash) sees the old
/// file or the new one, never half of either, and so that no planted link
/// can redirect the write: the directory is opened (and checked) once, the
/// temp file created beside it with O_EXCL|O_NOFOLLOW, then renamed over.
/// `durable` also fsyncs the file before the rename and the directory
/// after it, for state that must survive power loss (the ledger).
public func replaceFile(_ path: String, with bytes: [UInt8], mode: mode_t, durable: Bool) throws(StateError) {
    let (parent, name) = splitPath(absolutePath(path))
    guard let directory = try StateDirectory.open(parent, mode: 0o755, create: true, what: "directory") else { return }
    try directory.replace(name, with: bytes, mode: mode, durable: durable)
}

/// Writes the daemon's status file: its directory created 0755 when
/// missing and refused when another user could write to it, the file 0640,
/// replaced atomically, never through a link.
public func writeStatusFile(
    _ path: String, _ bytes: [UInt8], requiredOwner: uid_t = geteuid(), group: gid_t? = ReaderGroup.id
) throws(StateError) {
    let (parent, name) = splitPath(absolutePath(path))
    guard let directory = try StateDirectory.open(parent, mode: 0o755, create: true, requiredOwner: requiredOwner, what: "status directory")
    else { return }
    try directory.replace(name, with: bytes, mode: 0o640, durable: false, group: group)
}

/// The group whose members read hostdevd's status, ledger and metrics
/// without root (`hostdevctl status` as an operator): `hostdevd`, which
/// the package creates. Where it does not exist, files keep root's group.
public enum ReaderGroup {
    public static let name = "hostdevd"
    /// The group's id, looked up once per process; nil when there is no such group.
    public static let id: gid_t? = lookup(name)

    /// A group's id by name (getgrnam_r: /etc/group or NSS); nil when unknown.
    public static func lookup(_ name: String) -> gid_t? {
        var group = Glibc.group()
        var result: UnsafeMutablePointer<Glibc.group>?
        var buffer = [CChar](repeating: 0, count: 16384)
        let code = getgrnam_r(name, &group, &buffer, buffer.count, &result)
        guard code == 0, result != nil else { return nil }
        return group.gr_gid
    }

    /// Gives an open file or directory `mode` and, when there is one, the
    /// group; only what differs is changed. Failures are ignored: the
    /// file is then readable by root alone, which is safe.
    static func share(_ fd: Int32, mode: mode_t, group: gid_t?) {
        var info = stat()
        guard fstat(fd, &info) == 0 else { return }
        if let group, info.st_gid != group { _ = fchown(fd, uid_t.max, group) }
        if info.st_mode & 0o7777 != mode { _ = fchmod(fd, mode) }
    }
}

/// `path` made absolute against the working directory (a relative
/// `--state-dir` means what it says in a shell).
public func absolutePath(_ path: String) -> String {
    if path.hasPrefix("/") { return path }
    guard let buffer = getcwd(nil, 0) else { return "/" + path }
    defer { free(buffer) }
    let cwd = String(cString: buffer)
    let relative = path.hasPrefix("./") ? String(path.dropFirst(2)) : path
    return (cwd == "/" ? "" : cwd) + "/" + relative
}

func splitPath(_ path: String) -> (directory: String, name: String) {
    guard let slash = path.lastIndex(of: "/") else { return (".", path) }
    let directory = String(path[..<slash])
    return (directory.isEmpty ? "/" : directory, String(path[path.index(after: slash)...]))
}

@discardableResult
func retryingEINTR(_ call: () -> Int32) -> Int32 {
    while true {
        let result = call()
        if result < 0 && errno == EINTR { continue }
        return result
    }
}

/// A directory hostdevd keeps state in (the ledger's, the status file's),
/// opened once with O_NOFOLLOW and checked: a directory, owned by root or
/// by the user running hostdevd, writable by no one else. Every file in it
/// is then opened relative to this descriptor, never followed through a
/// link: root's writes cannot be redirected by someone who planted a link.
public final class StateDirectory: Sendable {
    public let path: String
    let fd: Int32

    private init(path: String, fd: Int32) {
        self.path = path
        self.fd = fd
    }

    deinit { close(fd) }

    /// Opens and checks `path` (absolute). When it is missing: created
    /// (parents 0755, itself `mode`) if `create`, else nil. `requiredOwner`
    /// (the effective uid unless a test says otherwise) or root must own it.
    ///
    /// `group`: the directory is shared with that group's members (made
    /// `mode`, and the group's, when this process owns it): the state
    /// directory's ledger is read by `hostdevctl status` without root.
    public static func open(
        _ path: String, mode: mode_t, create: Bool, requiredOwner: uid_t = geteuid(), what: String = "state directory",
        group: gid_t? = nil
    ) throws(StateError) -> StateDirectory? {
        var fd = retryingEINTR { Glibc.open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
        var created = false
        if fd < 0 && errno == ENOENT {
            guard create else { return nil }
            try makeDirectories(path, mode: mode)
            created = true
            fd = retryingEINTR { Glibc.open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
        }
        guard fd >= 0 else {
            let code = errno
            if code == ELOOP || code == ENOTDIR {
                throw StateError(description: "\(what) \(path) is a symbolic link or not a directory; hostdevd opens it only as a real directory: give its real path, or remove the link")
            }
            throw StateError(description: "cannot open \(what) \(path): \(String(cString: strerror(code)))")
        }
        let directory = StateDirectory(path: path, fd: fd)
        // umask may have narrowed the mode of a directory we made.
        if created { fchmod(fd, mode) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw StateError(description: "cannot inspect \(what) \(path): \(String(cString: strerror(errno)))")
        }
        guard info.st_uid == requiredOwner || info.st_uid == 0 else {
            throw StateError(description: "\(what) \(path) is owned by uid \(info.st_uid), not by root\(requiredOwner == 0 ? "" : " or uid \(requiredOwner)"); hostdevd keeps root's records there and trusts no one else's: chown \(requiredOwner == 0 ? "root" : String(requiredOwner)) \(path) (after checking its contents)")
        }
        guard info.st_mode & 0o022 == 0 else {
            throw StateError(description: "\(what) \(path) is writable by group or others (mode 0\(String(info.st_mode & 0o7777, radix: 8))); whoever can write there can redirect root's writes: chmod 0\(String(mode & 0o755, radix: 8)) \(path)")
        }
        if let group, info.st_uid == geteuid() { ReaderGroup.share(fd, mode: mode & 0o750, group: group) }
        return directory
    }

    /// mkdir -p: parents 0755, the last `mode`.
    static func makeDirectories(_ path: String, mode: mode_t) throws(StateError) {
        var prefix = ""
        let parts = path.split(separator: "/")
        for (i, part) in parts.enumerated() {
            prefix += "/" + part
            if mkdir(prefix, i == parts.count - 1 ? mode : 0o755) != 0 && errno != EEXIST {
                throw StateError(description: "cannot create \(prefix): \(String(cString: strerror(errno)))")
            }
        }
    }

    /// Opens `name` in this directory, never through a link, and only if it
    /// is a regular file.
    public func openFile(_ name: String, flags: Int32, mode: mode_t = 0o600) throws(StateError) -> Int32 {
        let fd = retryingEINTR { openat(self.fd, name, flags | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, mode) }
        guard fd >= 0 else { throw openError(name, errno) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else {
            close(fd)
            throw StateError(description: "\(path)/\(name) is \(fileType(info.st_mode)), not a regular file; move it away (hostdevd writes only its own files there)")
        }
        return fd
    }

    func openError(_ name: String, _ code: Int32) -> StateError {
        if code == ELOOP {
            return StateError(description: "\(path)/\(name) is a symbolic link; hostdevd never follows links in its state directories (one there may be an attempt to redirect root's writes): remove it and check who made it")
        }
        return StateError(description: "cannot open \(path)/\(name): \(String(cString: strerror(code)))")
    }

    /// The bytes of `name`, at most `limit`; `isMissing` when it does not exist.
    public func read(_ name: String, limit: Int) -> Result<[UInt8], FileReadError> {
        let fd = retryingEINTR { openat(self.fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY) }
        guard fd >= 0 else { return .failure(FileReadError(path: path + "/" + name, problem: .system(errno))) }
        defer { close(fd) }
        return readRegular(fd: fd, path: path + "/" + name, limit: limit)
    }

    /// Replaces `name` atomically: `name.tmp` (a stale one removed first:
    /// unlinkat does not follow links) created with O_EXCL, written, renamed.
    /// `group`: the file's group (for a `mode` that lets the group read).
    public func replace(_ name: String, with bytes: [UInt8], mode: mode_t, durable: Bool, group: gid_t? = nil) throws(StateError) {
        let temporary = name + ".tmp"
        if unlinkat(fd, temporary, 0) != 0 && errno != ENOENT {
            throw StateError(description: "cannot remove the stale \(path)/\(temporary): \(String(cString: strerror(errno)))")
        }
        let file = try openFile(temporary, flags: O_WRONLY | O_CREAT | O_EXCL, mode: mode)
        fchmod(file, mode)
        if let group { _ = fchown(file, uid_t.max, group) }
        let written = writeAll(file, bytes)
        let synced = durable ? fsync(file) : 0
        let code = errno
        close(file)
        guard written, synced == 0 else {
            unlinkat(fd, temporary, 0)
            throw StateError(description: "cannot write \(path)/\(temporary): \(String(cString: strerror(code)))")
        }
        guard renameat(fd, temporary, fd, name) == 0 else {
            throw StateError(description: "cannot replace \(path)/\(name): \(String(cString: strerror(errno)))")
        }
        if durable { sync() }
    }

    /// Makes the directory's entries (a rename, a new file) durable.
    public func sync() { fsync(fd) }
}

/// Writes all of `bytes` to `fd`, through short writes and EINTR.
func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
    bytes.withUnsafeBytes { buffer in
        var offset = 0
        while offset < buffer.count {
            let n = write(fd, buffer.baseAddress! + offset, buffer.count - offset)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return false }
            offset += n
        }
        return true
    }
}
