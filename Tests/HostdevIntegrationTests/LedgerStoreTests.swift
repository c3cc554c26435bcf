#if canImport(Glibc)
    import Glibc
#endif
@testable import HostdevController
import Foundation
import HostdevCore
import HostdevManifest
import HostdevTestSupport
import Testing

/// The ledger's snapshot + journal: whatever a crash leaves, `load` returns
/// the last ledger whose save completed, and never half of one.
@Suite final class LedgerStoreTests {
    let directory = FileTree.makeTemporaryDirectory(prefix: "hostdev-ledger")
    let nic = PCIAddress("0000:02:00.0")!
    let gpu = PCIAddress("0000:01:00.0")!

    deinit { FileTree.remove(directory) }

    func ledger(_ count: Int) -> Ledger {
        var ledger = Ledger()
        ledger.devices[nic] = Ledger.Entry(originalDriver: "ixgbe", vm: "vm\(count)")
        if count % 2 == 0 { ledger.intent = .bind(gpu, driver: "vfio-pci", vm: "vm\(count)") }
        return ledger
    }

    @Test func loadsTheLastSaveAndFoldsTheJournalWhenItGrows() throws {
        var store = LedgerStore(directory: directory)
        store.compactionBytes = 1024
        #expect(try store.load() == Ledger())
        for count in 1...40 {
            try store.save(ledger(count))
            #expect(try store.load() == ledger(count))
        }
        // Folded at least once: the snapshot exists and the journal stayed small.
        #expect(FileTree.read(store.path)?.contains("vm") == true)
        #expect((FileTree.read(store.journalPath)?.utf8.count ?? 0) <= 1024 + 200)
    }

    @Test func anIntentSavedBeforeAMoveIsReadBackButNeverFoldsTheJournal() throws {
        var store = LedgerStore(directory: directory)
        store.compactionBytes = 0  // a durable save would fold at once
        try store.save(ledger(1), durable: false)
        // Another process (the hook, the next run after a crash) reads it back.
        #expect(try store.load() == ledger(1))
        #expect(FileTree.read(store.path) == nil, "folded on the hotplug path")
        try store.save(ledger(2))
        #expect(FileTree.read(store.path)?.contains("vm2") == true)
        #expect(try store.load() == ledger(2))
    }

    @Test func aTornLastLineIsIgnored() throws {
        let store = LedgerStore(directory: directory)
        try store.save(ledger(1))
        try store.save(ledger(2))
        // A crash mid-append: part of a line, no newline.
        let fd = open(store.journalPath, O_WRONLY | O_APPEND)
        _ = "{\"devices\":{\"0000:09".withCString { write(fd, $0, strlen($0)) }
        close(fd)
        #expect(try store.load() == ledger(2))
        // The next save starts a line of its own after the torn one.
        try store.save(ledger(3))
        #expect(try store.load() == ledger(3))
    }

    @Test func createsAMissingStateDirectory() throws {
        let store = LedgerStore(directory: directory + "/var/lib/hostdevd")
        try store.withLock { try store.save(ledger(1)) }
        #expect(try store.load() == ledger(1))
    }

    @Test func anUnreadableSnapshotIsNeverOverwritten() throws {
        let store = LedgerStore(directory: directory)
        FileTree.write(store.path, "not json")
        let error = #expect(throws: StateError.self) { try store.load() }
        #expect(error?.description.contains("ledger.json is not a readable ledger") == true)
        #expect(error?.description.contains("move it aside only after checking") == true)
    }
}

/// Issue 10, point 4: a planted link in the state directory is never
/// followed (the target is untouched and the error says what to do), the
/// directory itself must be root's (or the user's) and closed to others,
/// and a lock held elsewhere is waited for a bounded time.
@Suite final class StateDirectoryTests {
    let base = FileTree.makeTemporaryDirectory(prefix: "hostdev-state")
    var state: String { base + "/state" }
    var victim: String { base + "/victim" }

    init() {
        mkdir(state, 0o700)
        chmod(state, 0o700)
        FileTree.write(victim, "precious\n")
    }

    deinit { FileTree.remove(base) }

    func ledger() -> Ledger {
        var ledger = Ledger()
        ledger.devices[PCIAddress("0000:02:00.0")!] = Ledger.Entry(originalDriver: "ixgbe", vm: "a")
        return ledger
    }

    @Test(arguments: ["ledger.journal", "ledger.json.tmp", "lock", "ledger.json"])
    func aPlantedLinkIsNeverFollowed(name: String) throws {
        FileTree.link(state + "/" + name, to: victim)
        var store = LedgerStore(directory: state)
        store.compactionBytes = 0  // every save folds: the .tmp and the journal's truncation are exercised
        var messages: [String] = []
        // Read first (a linked ledger.json is refused), then written.
        do { _ = try store.load() } catch { messages.append("\(error)") }
        do { try store.withLock { try store.save(ledger()) } } catch { messages.append("\(error)") }
        #expect(FileTree.read(victim) == "precious", "\(name) was followed")
        var info = stat()
        #expect(lstat(victim, &info) == 0 && info.st_size == 9)
        switch name {
        case "ledger.json.tmp":
            // A stale temp file (a link or not) is removed, never written through.
            #expect(messages.isEmpty)
            #expect(try store.load() == ledger())
        default:
            #expect(messages.contains { $0.contains("\(state)/\(name)") && $0.contains("symbolic link") }, "\(messages)")
        }
    }

    @Test func aDanglingLockLinkCreatesNothing() throws {
        FileTree.link(state + "/lock", to: base + "/created-through-the-link")
        let store = LedgerStore(directory: state)
        let error = #expect(throws: StateError.self) { try store.withLock {} }
        #expect(error?.description.contains("\(state)/lock is a symbolic link") == true)
        #expect(access(base + "/created-through-the-link", F_OK) != 0)
    }

    @Test func aLinkedStatusTempFileIsReplacedNotWritten() throws {
        FileTree.link(state + "/status.json.tmp", to: victim)
        try writeStatusFile(state + "/status.json", Array("{}\n".utf8))
        #expect(FileTree.read(victim) == "precious")
        #expect(FileTree.read(state + "/status.json") == "{}")
        var info = stat()
        #expect(stat(state + "/status.json", &info) == 0 && info.st_mode & 0o777 == 0o640)
        // The same through the older entry point.
        FileTree.link(state + "/other.json.tmp", to: victim)
        try replaceFile(state + "/other.json", with: Array("x".utf8), mode: 0o644, durable: true)
        #expect(FileTree.read(victim) == "precious")
    }

    @Test func aStateDirectoryThatIsALinkIsRefused() throws {
        FileTree.link(base + "/link", to: state)
        let error = #expect(throws: StateError.self) { try LedgerStore(directory: base + "/link").save(ledger()) }
        #expect(error?.description.contains("is a symbolic link or not a directory") == true)
    }

    @Test func aDirectoryOthersCanWriteIsRefusedWithTheFix() throws {
        chmod(state, 0o777)
        let error = #expect(throws: StateError.self) { try LedgerStore(directory: state).save(ledger()) }
        #expect(error?.description == "state directory \(state) is writable by group or others (mode 0777); whoever can write there can redirect root's writes: chmod 0750 \(state)")
        let status = #expect(throws: StateError.self) { try writeStatusFile(state + "/status.json", []) }
        #expect(status?.description.hasSuffix("chmod 0755 \(state)") == true)
    }

    @Test func aDirectoryOwnedBySomeoneElseIsRefused() throws {
        var store = LedgerStore(directory: state)
        if geteuid() == 0 {
            // As root: the directory is given away.
            #expect(chown(state, 4242, 4242) == 0)
        } else {
            // Not root: the store is told to require another owner.
            store.requiredOwner = geteuid() + 1
        }
        let error = #expect(throws: StateError.self) { try store.load() }
        #expect(error?.description.contains("state directory \(state) is owned by uid") == true)
        #expect(error?.description.contains("chown") == true)
    }

    @Test func aMissingDirectoryIsCreatedClosedAndLoadAloneCreatesNothing() throws {
        let store = LedgerStore(directory: base + "/new/var/lib/hostdevd")
        #expect(try store.load() == Ledger())
        #expect(access(base + "/new", F_OK) != 0)
        try store.save(ledger())
        var info = stat()
        // Closed to others; the reader group (hostdevd) may list it.
        #expect(stat(store.directory, &info) == 0 && info.st_mode & 0o777 == 0o750)
    }

    @Test func aRelativeStateDirectoryResolvesAgainstTheWorkingDirectory() throws {
        let old = FileManager.default.currentDirectoryPath
        defer { _ = FileManager.default.changeCurrentDirectoryPath(old) }
        #expect(FileManager.default.changeCurrentDirectoryPath(base))
        let store = LedgerStore(directory: "relative/state")
        #expect(store.directory == base + "/relative/state")
        try store.save(ledger())
        #expect(access(base + "/relative/state/ledger.journal", F_OK) == 0)
    }

    @Test func aHeldLockIsWaitedForABoundedTime() throws {
        let store = LedgerStore(directory: state)
        try store.withLock {}
        let fd = open(state + "/lock", O_RDWR)
        defer { close(fd) }
        #expect(flock(fd, LOCK_EX) == 0)
        let clock = ContinuousClock()
        let start = clock.now
        let error = #expect(throws: StateError.self) { try store.withLock(timeout: .milliseconds(200)) {} }
        #expect(clock.now - start >= .milliseconds(200))
        #expect(error?.description.contains("waited 0.2 seconds for \(state)/lock: another hostdevd") == true)
        flock(fd, LOCK_UN)
        #expect(try store.withLock(timeout: .milliseconds(200)) { 7 } == 7)
    }
}

/// Issue 10, point 7: reads are bounded and refuse what is not a regular file.
@Suite final class BoundedReadTests {
    let base = FileTree.makeTemporaryDirectory(prefix: "hostdev-read")
    deinit { FileTree.remove(base) }

    @Test func devZeroIsRefusedNotReadForever() {
        guard case .failure(let error) = fileContents("/dev/zero", limit: FileLimits.manifest) else {
            Issue.record("/dev/zero was read"); return
        }
        #expect(error.description == "cannot read /dev/zero: it is a character device, not a regular file")
    }

    @Test func aDirectoryAndAFIFOAreRefused() {
        #expect(mkfifo(base + "/fifo", 0o600) == 0)
        guard case .failure(let fifo) = fileContents(base + "/fifo") else { Issue.record("a FIFO was read"); return }
        #expect(fifo.description.hasSuffix("it is a named pipe, not a regular file"))
        guard case .failure(let directory) = fileContents(base) else { Issue.record("a directory was read"); return }
        #expect(directory.description.hasSuffix("it is a directory, not a regular file"))
    }

    @Test func aFileOverTheLimitIsRefusedAndOneAtItIsRead() throws {
        FileTree.write(base + "/f", String(repeating: "x", count: 100))
        #expect(try fileContents(base + "/f", limit: 100).get().count == 100)
        guard case .failure(let error) = fileContents(base + "/f", limit: 99) else { Issue.record("read past the limit"); return }
        #expect(error.description == "cannot read \(base)/f: it is larger than 99 bytes (hostdevd's limit for it)")
        #expect(fileContents(base + "/missing").failureValue?.isMissing == true)
    }

    @Test func anEndlessStreamStopsOneBytePastTheLimit() throws {
        let fd = open("/dev/zero", O_RDONLY)
        defer { close(fd) }
        guard case .failure(let error) = readBounded(fd: fd, limit: FileLimits.domainXML) else { Issue.record("read /dev/zero to its end"); return }
        #expect(error.description == "cannot read standard input: it is larger than 16777216 bytes (hostdevd's limit for it)")
        #expect(lseek(fd, 0, SEEK_CUR) >= 0)
    }

    @Test func aPipeUnderTheLimitIsReadWhole() throws {
        var ends: [Int32] = [0, 0]
        #expect(pipe(&ends) == 0)
        _ = "<domain><name>a</name></domain>".withCString { write(ends[1], $0, strlen($0)) }
        close(ends[1])
        defer { close(ends[0]) }
        #expect(try readBounded(fd: ends[0], limit: 31).get() == Array("<domain><name>a</name></domain>".utf8))
    }

    @Test func theLimitsAreTheDocumentedOnes() {
        #expect(FileLimits.manifest == 4 * 1024 * 1024 && FileLimits.manifest == ManifestDecoder.maximumBytes)
        #expect(FileLimits.state == 16 * 1024 * 1024 && FileLimits.domainXML == 16 * 1024 * 1024)
        #expect(FileLimits.snapshot == 64 * 1024 * 1024)
    }
}

extension Result {
    var failureValue: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}

@Suite struct JournalLineTests {
    @Test(arguments: [
        ("", nil),
        ("torn", nil),
        ("a\n", "a"),
        ("a\nb\n", "b"),
        ("a\nb\ntorn", "b"),
        ("a\n\n\n", "a"),
        ("\n\nb\n\ntorn", "b"),
    ] as [(String, String?)])
    func lastCompleteLine(journal: String, expected: String?) {
        let line = LedgerStore.lastCompleteLine(Array(journal.utf8)).map { String(decoding: $0, as: UTF8.self) }
        #expect(line == expected)
    }
}
