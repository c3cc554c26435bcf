#if canImport(Glibc)
    import Glibc
#endif
import FoundationEssentials
public import HostdevCore

/// A state-directory failure: what, where, errno, and what to do.
public struct StateError: Error, Sendable, CustomStringConvertible {
    public var description: String
}

/// The ledger on disk: a snapshot (`<state-dir>/ledger.json`, replaced
/// atomically: temp file, fsync, rename, fsync of the directory) and a
/// journal (`ledger.journal`) of whole ledgers, one JSON line each, appended
/// and fdatasync'ed before every driver move. An append costs a quarter of
/// a snapshot replace, and it is on the hotplug path. The journal is folded
/// into the snapshot when it grows. A crash leaves the last complete line
/// (or the snapshot), never half of a ledger: a torn last line is ignored,
/// and it was never acted on, since acting waits for the sync.
public struct LedgerStore: Sendable {
    public let directory: String
    public var path: String { directory + "/ledger.json" }
    public var journalPath: String { directory + "/ledger.journal" }
    /// Journal size that triggers folding it into the snapshot.
    public var compactionBytes = 64 * 1024

    public init(directory: String) { self.directory = directory }

    public func load() throws -> Ledger {
        var ledger = Ledger()
        switch fileContents(path) {
        case .success(let bytes): ledger = try decode(bytes, from: path)
        case .failure(let error) where error.isMissing: break
        case .failure(let error): throw StateError(description: error.description)
        }
        switch fileContents(journalPath) {
        case .success(let bytes):
            if let last = Self.lastCompleteLine(bytes) { ledger = try decode(Array(last), from: journalPath) }
        case .failure(let error) where error.isMissing: break
        case .failure(let error): throw StateError(description: error.description)
        }
        return ledger
    }

    /// The journal's last newline-terminated, non-empty line, found from the
    /// end; a torn line after it (no newline) is dropped.
    static func lastCompleteLine(_ bytes: [UInt8]) -> ArraySlice<UInt8>? {
        let newline = UInt8(ascii: "\n")
        guard var end = bytes.lastIndex(of: newline) else { return nil }
        while true {
            let start = bytes[..<end].lastIndex(of: newline).map { $0 + 1 } ?? 0
            if start < end { return bytes[start..<end] }
            guard start > 0 else { return nil }
            end = start - 1
        }
    }

    func decode(_ bytes: [UInt8], from file: String) throws -> Ledger {
        do {
            return try JSONDecoder().decode(Ledger.self, from: Data(bytes))
        } catch {
            // Never overwrite a ledger that cannot be read: it is the only
            // record of which drivers to give back.
            throw StateError(description: "\(file) is not a readable ledger (\(error)); move it aside only after checking which devices it lists")
        }
    }

    public func save(_ ledger: Ledger) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var line = Array(try encoder.encode(ledger))
        line.append(UInt8(ascii: "\n"))
        let created = access(journalPath, F_OK) != 0
        let fd = try openCreatingDirectory(journalPath, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC)
        guard fd >= 0 else { throw StateError(description: "cannot open \(journalPath): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        // After a crash mid-append the journal ends in a torn line: start a
        // line of our own rather than extend it.
        var info = stat()
        var last: UInt8 = 0
        if fstat(fd, &info) == 0, info.st_size > 0, pread(fd, &last, 1, info.st_size - 1) == 1, last != UInt8(ascii: "\n") {
            line.insert(UInt8(ascii: "\n"), at: 0)
        }
        let written = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == line.count, fdatasync(fd) == 0 else {
            throw StateError(description: "cannot append to \(journalPath): \(String(cString: strerror(errno)))")
        }
        // A new journal's name must be durable too.
        if created { syncDirectory(directory) }
        if fstat(fd, &info) == 0, Int(info.st_size) > compactionBytes { try compact(ledger) }
    }

    /// Folds the journal into the snapshot: the snapshot first (durably),
    /// then the journal emptied; a crash between leaves a journal whose last
    /// line equals the snapshot.
    public func compact(_ ledger: Ledger) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try replaceFile(path, with: Array(try encoder.encode(ledger)), mode: 0o600, durable: true)
        guard truncate(journalPath, 0) == 0 || errno == ENOENT else {
            throw StateError(description: "cannot truncate \(journalPath): \(String(cString: strerror(errno)))")
        }
    }

    /// Opens `path` in the state directory, creating the directory only
    /// when it is missing (not on every call: this is on the hotplug path).
    func openCreatingDirectory(_ path: String, _ flags: Int32) throws -> Int32 {
        let fd = open(path, flags, 0o600)
        guard fd < 0, errno == ENOENT else { return fd }
        try makeDirectory()
        return open(path, flags, 0o600)
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
        let fd = try openCreatingDirectory(directory + "/lock", O_RDWR | O_CREAT | O_CLOEXEC)
        guard fd >= 0 else { throw StateError(description: "cannot open \(directory)/lock: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        while flock(fd, LOCK_EX) != 0 {
            guard errno == EINTR else { throw StateError(description: "cannot lock \(directory)/lock: \(String(cString: strerror(errno)))") }
        }
        defer { flock(fd, LOCK_UN) }
        return try body()
    }
}
