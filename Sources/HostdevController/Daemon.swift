#if canImport(Glibc)
    import Glibc
#endif
import HostdevCore
import HostdevLibvirt
import HostdevUdev
public import Logging
public import ServiceLifecycle
import Synchronization
import UnixSignals

/// hostdevd: event handlers only enqueue keys; one loop takes batches from
/// the work queue and reconciles the whole host, level-triggered. Sources:
/// udev (pci, usb, vfio), libvirt domain and node-device lifecycle events, the manifest's
/// directory, a periodic resync, SIGHUP. Idle means blocked in poll/read:
/// no timers but the resync.
public struct HostdevDaemon: Service {
    public let configuration: DaemonConfiguration
    public let logger: Logger
    /// Gets a record of every reconcile pass (the metrics endpoint's).
    public let recorder: (any PassRecorder)?
    let notifier = SystemdNotifier()

    public init(configuration: DaemonConfiguration, logger: Logger, recorder: (any PassRecorder)? = nil) {
        self.configuration = configuration
        self.logger = logger
        self.recorder = recorder
    }

    /// The work queue and the loop's wake-up, shared with the event tasks.
    final class Queue: Sendable {
        struct State {
            var keys = WorkQueue<ReconcileKey>()
            /// When the oldest waiting key came (monotonic ms): how long a
            /// batch waited before its reconcile began, for the debug log.
            var since: Double?
        }

        private let state = Mutex(State())
        let wake: AsyncStream<Void>
        let continuation: AsyncStream<Void>.Continuation

        init() { (wake, continuation) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1)) }

        func add(_ key: ReconcileKey) {
            let now = PhaseClock.now()
            state.withLock {
                $0.keys.add(key)
                $0.since = $0.since ?? now
            }
            continuation.yield()
        }

        /// The next batch and how long its oldest key waited (ms).
        func next() -> (Set<ReconcileKey>, waited: Double)? {
            let taken = state.withLock { state -> (Set<ReconcileKey>, Double?)? in
                guard let batch = state.keys.next() else { return nil }
                defer { state.since = nil }
                return (batch, state.since)
            }
            guard let (batch, since) = taken else { return nil }
            return (batch, since.map { PhaseClock.now() - $0 } ?? 0)
        }

        /// Ends the running batch; the delay before failed keys come back, if any failed.
        func done(failed: Set<ReconcileKey>) -> Duration? {
            state.withLock { $0.keys.done(failed: failed) }
        }
    }

    public func run() async throws {
        LibvirtEventLoop.start()
        let queue = Queue()
        let stopping = Atomic<Bool>(false)
        let reconciler = Reconciler(configuration: configuration, logger: logger)
        let thread = SerialThread()
        reconciler.shouldStop = { stopping.load(ordering: .relaxed) }
        reconciler.recorder = recorder
        let monitor: UdevMonitor?
        do {
            monitor = try UdevMonitor(
                subsystems: Reconciler.watchedSubsystems, source: UdevMonitor.Source(rawValue: configuration.udevSource) ?? .udev)
        } catch {
            logger.error("no hotplug events: \(error); relying on libvirt events and the periodic resync")
            monitor = nil
        }
        let watcher = try? ManifestWatcher(path: configuration.manifestPath)
        if watcher == nil { logger.error("cannot watch \(configuration.manifestPath); edits are seen at the next resync or SIGHUP") }
        let hangups = await UnixSignalsSequence(trapping: .sighup)

        await withGracefulShutdownHandler {
            await withThrowingTaskGroup(of: Void.self) { group in
                if let monitor {
                    group.addTask {
                        for await event in monitor.events {
                            if event.isOverflow {
                                logger.warning("udev events were lost (the monitor's buffer overflowed); reading the whole host again")
                                queue.add(.all)
                                continue
                            }
                            logger.debug("udev \(event.action) \(event.subsystem) \(event.devpath) seqnum \(event.seqnum)")
                            queue.add(.device(subsystem: event.subsystem, devpath: event.devpath))
                        }
                    }
                }
                if let watcher {
                    group.addTask {
                        for await _ in watcher.changes { queue.add(.manifest) }
                    }
                }
                group.addTask {
                    for await _ in hangups {
                        logger.info("SIGHUP: reloading the manifest and resyncing")
                        queue.add(.all)
                    }
                }
                group.addTask { [configuration] in
                    while !Task.isCancelled {
                        try await Task.sleep(for: configuration.resyncInterval)
                        queue.add(.all)
                    }
                }
                group.addTask { try await watchLibvirt(queue) }
                // The loop: the first full observation comes before the first
                // reconcile (it is the first reconcile), then READY=1.
                queue.add(.all)
                var ready = false
                // The earliest pending wake-up for devices in backoff.
                var retryAt: ContinuousClock.Instant?
                for await _ in queue.wake {
                    if stopping.load(ordering: .relaxed) { break }
                    while let (batch, waited) = queue.next() {
                        // On a thread of its own: a pass blocks in flock, libvirt and sysfs.
                        let outcome = await thread.run { reconciler.reconcile(batch, queued: waited) }
                        let retry = queue.done(failed: outcome.failed ? batch : [])
                        if let delay = outcome.retryAfter {
                            let at = ContinuousClock.now + delay
                            if retryAt.map({ at < $0 || $0 < .now }) ?? true {
                                retryAt = at
                                group.addTask {
                                    try await Task.sleep(until: at)
                                    queue.add(.retry)
                                }
                            }
                        }
                        if !ready {
                            notifier.notify("READY=1\nSTATUS=\(outcome.summary)")
                            logger.info("ready: \(outcome.summary)")
                            ready = true
                        } else {
                            notifier.notify("STATUS=\(outcome.summary)")
                        }
                        if let retry {
                            group.addTask {
                                try await Task.sleep(for: retry)
                                for key in batch { queue.add(key) }
                            }
                        }
                        if stopping.load(ordering: .relaxed) { break }
                    }
                    if stopping.load(ordering: .relaxed) { break }
                }
                notifier.notify("STOPPING=1")
                monitor?.stop()
                watcher?.stop()
                group.cancelAll()
            }
        } onGracefulShutdown: {
            stopping.store(true, ordering: .relaxed)
            queue.continuation.finish()
        }
        logger.info("stopped")
    }

    /// Domain events enqueue the VM's key; a lost connection is reopened with
    /// backoff, and a full resync follows, covering events missed meanwhile.
    func watchLibvirt(_ queue: Queue) async throws {
        var failures = 0
        while !Task.isCancelled {
            do {
                let connection = try LibvirtConnection(uri: configuration.libvirtURI)
                let source = try LibvirtEventSource(connection: connection)
                if failures > 0 {
                    logger.info("libvirt is back at \(configuration.libvirtURI); resyncing")
                    queue.add(.all)
                }
                failures = 0
                for await event in source.events {
                    switch event {
                    case .lifecycle(let vm, _): queue.add(.vm(vm))
                    case .nodeDevice(let name, _):
                        logger.debug("libvirt node-device event for \(name)")
                        queue.add(.nodeDevice(name))
                    case .connectionClosed: logger.warning("libvirt connection to \(configuration.libvirtURI) closed")
                    }
                }
            } catch {
                if failures == 0 { logger.warning("libvirt unreachable: \(error); retrying with backoff") }
            }
            failures += 1
            try await Task.sleep(for: WorkQueue<ReconcileKey>.backoff(afterFailures: failures + 6))
        }
    }
}
