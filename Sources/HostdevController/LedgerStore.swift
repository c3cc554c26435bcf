#if canImport(Glibc)
    import Glibc
#endif
import FoundationEssentials
public import HostdevCore

/// A state-directory failure: what, where, errno, and what to do.
public struct StateError: Error, Sendable, CustomStringConvertible {
    public var description: String
}

/// The ledger on disk (`<state-dir>/ledger.json`), replaced atomically:
/// temp file, fsync, rename, fsync of the directory. A crash leaves either
/// the old or the new ledger, never half of one.
public struct LedgerStore: Sendable {
    public let directory: String
    public var path: String { directory + "/ledger.json" }

    public init(directory: String) { self.directory = directory }

    public func load() throws -> Ledger {
        let data: Data
        switch fileContents(path) {
        case .success(let bytes): data = Data(bytes)
        case .failure(let error) where error.isMissing: return Ledger()
        case .failure(let error): throw StateError(description: error.description)
        }
        do {
            return try JSONDecoder().decode(Ledger.self, from: data)
        } catch {
            // Never overwrite a ledger that cannot be read: it is the only
            // record of which drivers to give back.
            throw StateError(description: "\(path) is not a readable ledger (\(error)); move it aside only after checking which devices it lists")
        }
    }

    public func save(_ ledger: Ledger) throws {
        try makeDirectory()
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try encoder.encode(ledger)
        try replaceFile(path, with: Array(data), mode: 0o600, durable: true)
    }

    func makeDirectory() throws {
        var path = ""
        for part in directory.split(separator: "/") {
            path += "/" + part
            if mkdir(path, 0o755) != 0 && errno != EEXIST {
                throw StateError(description: "cannot create \(path): \(String(cString: strerror(errno)))")
            }
        }
    }

    /// Holds `<state-dir>/lock` exclusively while `body` runs: one apply,
    /// hook or daemon reconcile at a time.
    public func withLock<T>(_ body: () throws -> T) throws -> T {
        try makeDirectory()
        let fd = open(directory + "/lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw StateError(description: "cannot open \(directory)/lock: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        while flock(fd, LOCK_EX) != 0 {
            guard errno == EINTR else { throw StateError(description: "cannot lock \(directory)/lock: \(String(cString: strerror(errno)))") }
        }
        defer { flock(fd, LOCK_UN) }
        return try body()
    }
}
