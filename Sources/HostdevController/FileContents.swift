#if canImport(Glibc)
    import Glibc
#endif

/// A whole file's bytes, or the errno of the failed open/read: the one file
/// reader of the manifest, ledger and snapshot paths.
public func fileContents(_ path: String) -> Result<[UInt8], FileReadError> {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return .failure(FileReadError(path: path, errno: errno)) }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = read(fd, &buffer, buffer.count)
        if n < 0 && errno == EINTR { continue }
        if n < 0 { return .failure(FileReadError(path: path, errno: errno)) }
        if n == 0 { return .success(bytes) }
        bytes += buffer[0..<n]
    }
}

public struct FileReadError: Error, Sendable, CustomStringConvertible {
    public var path: String
    public var errno: Int32
    public var isMissing: Bool { errno == ENOENT }
    public var description: String { "cannot read \(path): \(String(cString: strerror(errno)))" }
}

/// Replaces `path` with `bytes` so that a reader (or a crash) sees the old
/// file or the new one, never half of either: write a temp file beside it,
/// then rename. `durable` also fsyncs the file before the rename and the
/// directory after it, for state that must survive power loss (the ledger).
public func replaceFile(_ path: String, with bytes: [UInt8], mode: mode_t, durable: Bool) throws(StateError) {
    let temporary = path + ".tmp"
    let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
    guard fd >= 0 else { throw StateError(description: "cannot write \(temporary): \(String(cString: strerror(errno)))") }
    let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    let synced = durable ? fsync(fd) : 0
    close(fd)
    guard written == bytes.count, synced == 0 else {
        throw StateError(description: "cannot write \(temporary): \(String(cString: strerror(errno)))")
    }
    guard rename(temporary, path) == 0 else {
        throw StateError(description: "cannot replace \(path): \(String(cString: strerror(errno)))")
    }
    guard durable else { return }
    let directory = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : "."
    syncDirectory(directory.isEmpty ? "/" : directory)
}

/// Makes a directory's entries (a rename, a new file) durable.
func syncDirectory(_ directory: String) {
    let dir = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    if dir >= 0 {
        fsync(dir)
        close(dir)
    }
}
