/// The reconcile work queue as a pure state machine (client-go's workqueue,
/// reduced to what a whole-host reconcile needs): keys say *why* a reconcile
/// is wanted; adding a key already waiting is a no-op; a batch is processed
/// at most once at a time, and a key added while its batch runs waits for the
/// next one; failed keys come back after an exponential backoff.
public struct WorkQueue<Key: Hashable & Sendable>: Sendable {
    public private(set) var waiting: Set<Key> = []
    public private(set) var processing: Set<Key>?
    public private(set) var failures: [Key: Int] = [:]

    public init() {}

    public mutating func add(_ key: Key) { waiting.insert(key) }

    /// The next batch to reconcile, or nil while one runs or nothing waits.
    public mutating func next() -> Set<Key>? {
        guard processing == nil, !waiting.isEmpty else { return nil }
        let batch = waiting
        waiting = []
        processing = batch
        return batch
    }

    /// Ends the running batch. Keys in `failed` count one more failure;
    /// the others are forgiven. Returns the delay after which the failed
    /// keys should be added again, if any failed.
    public mutating func done(failed: Set<Key>) -> Duration? {
        let batch = processing ?? []
        processing = nil
        for key in batch where !failed.contains(key) { failures[key] = nil }
        guard !failed.isEmpty else { return nil }
        var worst = 0
        for key in failed {
            failures[key, default: 0] += 1
            worst = max(worst, failures[key]!)
        }
        return Self.backoff(afterFailures: worst)
    }

    /// 5 ms, 10 ms, 20 ms, … doubling, at most 5 minutes.
    public static func backoff(afterFailures count: Int) -> Duration {
        let milliseconds = 5 * (1 << min(max(count - 1, 0), 16))
        return .milliseconds(min(milliseconds, 300_000))
    }
}

/// Why a reconcile was asked for.
public enum ReconcileKey: Hashable, Sendable, CustomStringConvertible {
    /// Everything: start-up, periodic resync, SIGHUP, libvirt reconnect.
    case all
    case manifest
    case vm(String)
    /// A device that changed, by the kernel's path (`/devices/pci0000:00/…`).
    case device(subsystem: String, devpath: String)
    /// A device that changed, by libvirt's node-device name (`pci_0000_01_00_0`).
    case nodeDevice(String)
    /// A device held back by its backoff may be tried again.
    case retry

    public var description: String {
        switch self {
        case .all: return "resync"
        case .manifest: return "manifest"
        case .vm(let name): return "vm \(name)"
        case .device(let subsystem, let devpath): return "\(subsystem) \(devpath.split(separator: "/").last ?? "")"
        case .nodeDevice(let name): return "node-device \(name)"
        case .retry: return "retry"
        }
    }
}
