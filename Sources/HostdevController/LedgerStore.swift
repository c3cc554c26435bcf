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
/// before every driver move and fdatasync'ed after it. The intent is only
/// written, not synced, before the move: hostdevd's own crash cannot lose a
/// line that `write` has returned (the page cache keeps it), and a power
/// loss or kernel crash undoes the move itself (driver bindings do not
/// survive a reboot), so waiting for the disk there would only put its
/// flush latency on the hotplug path. The journal is folded into the
/// snapshot when it grows, after a move, never before one. A crash leaves
/// the last complete line (or the snapshot), never half of a ledger: a torn
/// last line is ignored, and it was never acted on, since acting waits for
/// the write.
public struct LedgerStore: Sendable {
    /// The state directory, absolute (a relative one is resolved against
    /// the working directory when the store is made).
    public let directory: String
    public var path: String { directory + "/ledger.json" }
    public var journalPath: String { directory + "/ledger.journal" }
    /// Journal size that triggers folding it into the snapshot.
    public var compactionBytes = 64 * 1024
    /// Who must own the state directory (root always may): the effective
    /// uid; tests set another to see the refusal.
    public var requiredOwner: uid_t = geteuid()
    /// The group that may read the ledger (`hostdevctl status --live`
    /// without root): `hostdevd` where it exists, else none (root's).
    public var readerGroup: gid_t? = ReaderGroup.id

    /// The state directory's mode: the reader group may list and read it.
    public static let directoryMode: mode_t = 0o750
    /// The ledger's snapshot and journal: the reader group may read them.
    public static let fileMode: mode_t = 0o640

    /// The state directory as every writer of it opens it (ledger, last
    /// good manifest): mode `directoryMode`, shared with `group`.
    public static func openStateDirectory(
        _ path: String, create: Bool, requiredOwner: uid_t = geteuid(), group: gid_t? = ReaderGroup.id
    ) throws(StateError) -> StateDirectory? {
        try StateDirectory.open(path, mode: directoryMode, create: create, requiredOwner: requiredOwner, group: group)
    }

    public init(directory: String) { self.directory = absolutePath(directory) }

    /// The state directory, opened once per operation and checked (owner,
    /// mode, not a link); nil when it is missing and `create` is false.
    func openDirectory(create: Bool) throws(StateError) -> StateDirectory? {
        try Self.openStateDirectory(directory, create: create, requiredOwner: requiredOwner, group: readerGroup)
    }

    public func load() throws -> Ledger {
        var ledger = Ledger()
        guard let state = try openDirectory(create: false) else { return ledger }
        switch state.read("ledger.json", limit: FileLimits.state) {
        case .success(let bytes): ledger = try decode(bytes, from: path)
        case .failure(let error) where error.isMissing: break
        case .failure(let error): throw StateError(description: error.description)
        }
        switch state.read("ledger.journal", limit: FileLimits.state) {
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

    /// Appends `ledger` to the journal. `durable`: wait for `fdatasync`,
    /// and fold the journal into the snapshot when it has grown; an intent
    /// saved right before a driver move passes false (see the type's note).
    public func save(_ ledger: Ledger, durable: Bool = true) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var line = Array(try encoder.encode(ledger))
        line.append(UInt8(ascii: "\n"))
        guard let state = try openDirectory(create: true) else { return }
        var info = stat()
        let created = fstatat(state.fd, "ledger.journal", &info, AT_SYMLINK_NOFOLLOW) != 0 && errno == ENOENT
        let fd = try state.openFile("ledger.journal", flags: O_RDWR | O_CREAT | O_APPEND, mode: Self.fileMode)
        defer { close(fd) }
        ReaderGroup.share(fd, mode: Self.fileMode, group: readerGroup)
        // After a crash mid-append the journal ends in a torn line: start a
        // line of our own rather than extend it.
        var last: UInt8 = 0
        if fstat(fd, &info) == 0, info.st_size > 0, pread(fd, &last, 1, info.st_size - 1) == 1, last != UInt8(ascii: "\n") {
            line.insert(UInt8(ascii: "\n"), at: 0)
        }
        guard writeAll(fd, line), !durable || fdatasync(fd) == 0 else {
            throw StateError(description: "cannot append to \(journalPath): \(String(cString: strerror(errno)))")
        }
        // A new journal's name must be durable too.
        if created { state.sync() }
        if durable, fstat(fd, &info) == 0, Int(info.st_size) > compactionBytes { try compact(ledger, in: state, journal: fd) }
    }

    /// Folds the journal into the snapshot: the snapshot first (durably),
    /// then the journal emptied; a crash between leaves a journal whose last
    /// line equals the snapshot.
    public func compact(_ ledger: Ledger) throws {
        guard let state = try openDirectory(create: true) else { return }
        var info = stat()
        let missing = fstatat(state.fd, "ledger.journal", &info, AT_SYMLINK_NOFOLLOW) != 0 && errno == ENOENT
        let journal = missing ? -1 : try state.openFile("ledger.journal", flags: O_WRONLY)
        defer { if journal >= 0 { close(journal) } }
        try compact(ledger, in: state, journal: journal)
    }

    /// The journal is emptied through its open descriptor (never by path:
    /// a link planted in its place is never truncated).
    func compact(_ ledger: Ledger, in state: StateDirectory, journal: Int32) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try state.replace("ledger.json", with: Array(try encoder.encode(ledger)), mode: Self.fileMode, durable: true, group: readerGroup)
        guard journal < 0 || ftruncate(journal, 0) == 0 else {
            throw StateError(description: "cannot truncate \(journalPath): \(String(cString: strerror(errno)))")
        }
    }

    /// Holds `<state-dir>/lock` exclusively while `body` runs: one apply,
    /// hook or daemon reconcile at a time. Waits as long as it takes.
    public func withLock<T>(_ body: () throws -> T) throws -> T {
        try withLock(timeout: nil, body)
    }

    /// Holds `<state-dir>/lock` exclusively while `body` runs, waiting at
    /// most `timeout` for it (nil: forever). The lock file is created in
    /// the checked state directory, never through a link.
    public func withLock<T>(timeout: Duration?, _ body: () throws -> T) throws -> T {
        guard let state = try openDirectory(create: true) else { throw StateError(description: "cannot create \(directory)") }
        let fd = try state.openFile("lock", flags: O_RDWR | O_CREAT)
        defer { close(fd) }
        let clock = ContinuousClock()
        let deadline = timeout.map { clock.now + $0 }
        while flock(fd, LOCK_EX | (deadline == nil ? 0 : LOCK_NB)) != 0 {
            switch errno {
            case EINTR: continue
            case EWOULDBLOCK:
                if let deadline, clock.now >= deadline {
                    throw StateError(description: "waited \(timeout!) for \(directory)/lock: another hostdevd reconcile, apply, release or hook holds it (which one is unknown; 'fuser -v \(directory)/lock' names the process); try again when it is done")
                }
                usleep(10_000)
            default:
                throw StateError(description: "cannot lock \(directory)/lock: \(String(cString: strerror(errno)))")
            }
        }
        defer { flock(fd, LOCK_UN) }
        return try body()
    }
}
