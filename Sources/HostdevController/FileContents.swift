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
