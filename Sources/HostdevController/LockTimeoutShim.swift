#if canImport(Glibc)
    import Glibc
#endif

// TEMPORARY until the state-directory work lands: bounded wait for the lock.
extension LedgerStore {
    public func withLock<T>(timeout: Duration?, _ body: () throws -> T) throws -> T {
        guard let timeout else { return try withLock(body) }
        let path = directory + "/lock"
        let fd = try openCreatingDirectory(path, O_RDWR | O_CREAT | O_CLOEXEC)
        guard fd >= 0 else { throw StateError(description: "cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let deadline = ContinuousClock.now + timeout
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            guard errno == EWOULDBLOCK || errno == EINTR else {
                throw StateError(description: "cannot lock \(path): \(String(cString: strerror(errno)))")
            }
            guard ContinuousClock.now < deadline else {
                throw StateError(description: "\(path) is held by another hostdevd, apply or hook for over \(timeout); try again, or find the holder with 'fuser \(path)'")
            }
            usleep(5_000)
        }
        defer { flock(fd, LOCK_UN) }
        return try body()
    }
}
