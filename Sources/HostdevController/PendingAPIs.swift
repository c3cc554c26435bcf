// TEMPORARY: stand-in for the bounded reader that lands with the hostile-input work.

#if canImport(Glibc)
    import Glibc
#endif
public func readBounded(fd: Int32, limit: Int) -> Result<[UInt8], FileReadError> {
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = read(fd, &buffer, buffer.count)
        if n < 0 && errno == EINTR { continue }
        if n < 0 { return .failure(FileReadError(path: "fd \(fd)", errno: errno)) }
        if n == 0 { return .success(bytes) }
        bytes += buffer[0..<n]
        if bytes.count > limit { return .failure(FileReadError(path: "fd \(fd)", errno: EFBIG)) }
    }
}
