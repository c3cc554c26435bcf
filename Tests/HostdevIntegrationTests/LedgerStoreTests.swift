#if canImport(Glibc)
    import Glibc
#endif
@testable import HostdevController
import HostdevCore
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
