#if canImport(Glibc)
    import Glibc
#endif

/// Where a reconcile's time went (observe, plan, act, report), for the
/// debug log and `status.json`: a slow hotplug reaction names its phase.
struct PhaseClock {
    private var last = PhaseClock.now()
    private let start: Double
    private(set) var phases: [(name: String, milliseconds: Double)] = []

    /// `queued`: time spent before the clock started, shown as its own phase.
    init(queued: Double = 0) {
        start = last
        if queued > 0 { phases.append(("queued", queued)) }
    }

    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) * 1000 + Double(ts.tv_nsec) / 1e6
    }

    /// Ends the phase running since the previous lap.
    mutating func lap(_ name: String) {
        let current = Self.now()
        phases.append((name, current - last))
        last = current
    }

    /// From the start of the reconcile (the queued time not included).
    var totalMilliseconds: Double { last - start }

    var description: String {
        "\(Self.format(totalMilliseconds)) ms (" + phases.map { "\($0.name) \(Self.format($0.milliseconds))" }.joined(separator: ", ") + ")"
    }

    static func format(_ milliseconds: Double) -> String { String((milliseconds * 10).rounded() / 10) }
}
