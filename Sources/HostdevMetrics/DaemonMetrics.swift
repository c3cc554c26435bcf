public import HostdevController
import Prometheus

/// hostdevd's metrics in the Prometheus text format, updated from each
/// reconcile pass's record. Every series exists from the start (at zero),
/// so alert rules and dashboards never see one appear out of nowhere.
public final class DaemonMetrics: PassRecorder {
    // Sendable: the registry and its metrics are Sendable (their own locks).
    let registry: PrometheusCollectorRegistry
    let bindings: [String: Gauge]
    let devices: [String: Gauge]
    let reconciles: Counter
    let reconcileDuration: ValueHistogram
    let eventToBind: ValueHistogram
    let failures: [FailureKind: Counter]
    let libvirtConnected: Gauge
    let manifestGeneration: Gauge
    let manifestRejected: Gauge
    let lastErrorTime: Gauge

    static let conditions = ["Ready", "Pending", "Blocked"]
    /// Seconds: a pass takes milliseconds; a hotplug with a slow driver, seconds.
    static let durationBuckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]

    public init() {
        let registry = PrometheusCollectorRegistry()
        self.registry = registry
        func descriptor(_ name: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
            MetricNameDescriptor(namespace: "hostdevd", metricName: name, unitName: unit, helpText: help)
        }
        let bindingsName = descriptor("bindings", "", "Bindings of the manifest in force, by condition.")
        bindings = Dictionary(uniqueKeysWithValues: Self.conditions.map { ($0, registry.makeGauge(descriptor: bindingsName, labels: [("condition", $0)])) })
        let devicesName = descriptor("devices", "", "Devices the manifest claims, by condition.")
        devices = Dictionary(uniqueKeysWithValues: Self.conditions.map { ($0, registry.makeGauge(descriptor: devicesName, labels: [("condition", $0)])) })
        reconciles = registry.makeCounter(descriptor: descriptor("reconciles", "total", "Reconcile passes run."))
        reconcileDuration = registry.makeValueHistogram(
            descriptor: descriptor("reconcile_duration", "seconds", "How long each reconcile pass took."), buckets: Self.durationBuckets)
        eventToBind = registry.makeValueHistogram(
            descriptor: descriptor("event_to_bind", "seconds", "From the event (udev, libvirt, manifest edit) to the device bound to vfio-pci."),
            buckets: Self.durationBuckets)
        let failuresName = descriptor("failures", "total", "Failures by kind: step, reconcile, manifest (each rejected text once), libvirt.")
        failures = Dictionary(uniqueKeysWithValues: FailureKind.allCases.map {
            ($0, registry.makeCounter(descriptor: failuresName, labels: [("kind", $0.rawValue)]))
        })
        libvirtConnected = registry.makeGauge(descriptor: descriptor("libvirt_connected", "", "1 when the last pass reached libvirt, else 0."))
        manifestGeneration = registry.makeGauge(descriptor: descriptor("manifest_generation", "", "Counts the manifest texts accepted since start."))
        manifestRejected = registry.makeGauge(
            descriptor: descriptor("manifest_rejected", "", "1 while the manifest on disk is rejected (the last good one is in force), else 0."))
        lastErrorTime = registry.makeGauge(
            descriptor: descriptor("last_error_timestamp", "seconds", "When the last failure of any kind happened (Unix time; 0: none yet)."))
    }

    public func record(_ pass: PassRecord) {
        reconciles.increment()
        reconcileDuration.record(pass.duration)
        if let counts = pass.bindings { for (condition, gauge) in bindings { gauge.set(Double(counts[condition] ?? 0)) } }
        if let counts = pass.devices { for (condition, gauge) in devices { gauge.set(Double(counts[condition] ?? 0)) } }
        for latency in pass.bindLatencies { eventToBind.record(latency) }
        for (kind, count) in pass.failures where count > 0 { failures[kind]?.increment(by: Int64(count)) }
        if pass.failures.values.contains(where: { $0 > 0 }) { lastErrorTime.set(pass.time) }
        libvirtConnected.set(pass.libvirtConnected ? 1.0 : 0.0)
        manifestGeneration.set(Double(pass.manifestGeneration))
        manifestRejected.set(pass.manifestRejected ? 1.0 : 0.0)
    }

    /// The text format (`text/plain; version=0.0.4`), as `GET /metrics` serves it.
    public func exposition() -> [UInt8] { registry.emitToBuffer() }
}
