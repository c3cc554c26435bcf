public import HostdevCore

/// What one reconcile pass did, for metrics: the daemon hands one to its
/// recorder after every pass (the Prometheus endpoint's is in HostdevMetrics).
public struct PassRecord: Sendable, Equatable {
    /// How long the pass took, in seconds (its wait in the queue not included).
    public var duration: Double
    /// Bindings and devices by condition (`Ready`, `Pending`, `Blocked`);
    /// nil when the pass produced no plan (no valid manifest yet, or it failed).
    public var bindings: [String: Int]?
    public var devices: [String: Int]?
    public var libvirtConnected: Bool
    /// Counts up each time a new manifest text is accepted.
    public var manifestGeneration: Int
    /// A manifest edit is rejected and the last good one is in force (or none).
    public var manifestRejected: Bool
    /// Failures in this pass, by kind (`FailureKind`).
    public var failures: [FailureKind: Int]
    /// Seconds from the event that woke the pass to each device bound to vfio-pci.
    public var bindLatencies: [Double]
    /// Wall-clock time of the pass's end, seconds since the epoch.
    public var time: Double

    public init(
        duration: Double, bindings: [String: Int]?, devices: [String: Int]?, libvirtConnected: Bool, manifestGeneration: Int,
        manifestRejected: Bool, failures: [FailureKind: Int], bindLatencies: [Double], time: Double
    ) {
        self.duration = duration
        self.bindings = bindings
        self.devices = devices
        self.libvirtConnected = libvirtConnected
        self.manifestGeneration = manifestGeneration
        self.manifestRejected = manifestRejected
        self.failures = failures
        self.bindLatencies = bindLatencies
        self.time = time
    }

    /// Conditions counted by their names, every condition present (zeros too).
    public static func count(_ conditions: some Collection<Condition>) -> [String: Int] {
        var counts = ["Ready": 0, "Pending": 0, "Blocked": 0]
        for condition in conditions {
            switch condition {
            case .ready: counts["Ready", default: 0] += 1
            case .pending: counts["Pending", default: 0] += 1
            case .blocked: counts["Blocked", default: 0] += 1
            }
        }
        return counts
    }
}

/// What failed, for `hostdevd_failures_total{kind=…}`.
public enum FailureKind: String, Sendable, CaseIterable, Hashable {
    /// A plan step (bind, release, config edit) failed; it is retried with backoff.
    case step
    /// A whole pass failed (the ledger unreadable, sysfs unreadable).
    case reconcile
    /// A new manifest text was rejected (counted once per text).
    case manifest
    /// libvirt could not be reached during a pass.
    case libvirt
}

/// Receives each pass's record (on the reconcile thread: must not block).
public protocol PassRecorder: Sendable {
    func record(_ pass: PassRecord)
}
