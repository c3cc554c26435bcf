import HostdevCore
import Testing

@Suite struct WorkQueueTests {
    @Test func deduplicatesAndBatches() {
        var queue = WorkQueue<ReconcileKey>()
        queue.add(.vm("a"))
        queue.add(.vm("a"))
        queue.add(.device(subsystem: "pci", devpath: "/devices/pci0000:00/0000:01:00.0"))
        #expect(queue.next() == [.vm("a"), .device(subsystem: "pci", devpath: "/devices/pci0000:00/0000:01:00.0")])
        #expect(queue.next() == nil)  // one batch at a time
    }

    @Test func keyAddedDuringProcessingRunsAgainAfter() {
        var queue = WorkQueue<ReconcileKey>()
        queue.add(.vm("a"))
        _ = queue.next()
        queue.add(.vm("a"))
        #expect(queue.next() == nil)
        #expect(queue.done(failed: []) == nil)
        #expect(queue.next() == [.vm("a")])
    }

    @Test(arguments: [(1, 5), (2, 10), (3, 20), (10, 2560), (30, 300_000)])
    func backoffDoublesAndCaps(failures: Int, milliseconds: Int) {
        #expect(WorkQueue<ReconcileKey>.backoff(afterFailures: failures) == .milliseconds(milliseconds))
    }

    @Test func failuresGrowUntilASuccess() {
        var queue = WorkQueue<ReconcileKey>()
        for expected in [5, 10, 20] {
            queue.add(.device(subsystem: "usb", devpath: "/devices/x"))
            _ = queue.next()
            #expect(queue.done(failed: [.device(subsystem: "usb", devpath: "/devices/x")]) == .milliseconds(expected))
        }
        queue.add(.device(subsystem: "usb", devpath: "/devices/x"))
        _ = queue.next()
        #expect(queue.done(failed: []) == nil)
        #expect(queue.failures.isEmpty)
    }
}
