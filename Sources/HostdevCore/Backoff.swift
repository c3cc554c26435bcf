/// Failed steps, charged to the device (or domain entry) they were about,
/// not to whatever woke the reconcile: a bind that fails and rolls back
/// sends its own uevents, and those must not retry it at once. The planner
/// leaves a device alone until its retry time; the condition says when.
public struct Backoff: Sendable, Equatable {
    public struct Retry: Sendable, Equatable {
        /// Failures in a row.
        public var attempt: Int
        /// When the device may be tried again (seconds since the epoch).
        public var notBefore: Double
        public var lastError: String
    }

    /// By `Action.deviceKey` (`pci 0000:01:00.0`, `sriov 0000:03:00.0`, …).
    public private(set) var retries: [String: Retry] = [:]

    public init() {}

    /// The longest wait: a driver that flaps is tried again every 5 minutes.
    public static let maximumDelay: Double = 300
    /// The longest wait for a step that was refused before it wrote
    /// anything because a process holds the device's VFIO group: trying
    /// again only reads `/proc`, and the holder's exit sends no event.
    public static let holderDelay: Double = 10

    /// 1 s, 2 s, 4 s, … doubling, at most `maximum`.
    public static func delay(afterFailures count: Int, maximum: Double = maximumDelay) -> Double {
        min(Double(1 << min(max(count - 1, 0), 16)), maximum)
    }

    public mutating func failed(_ key: String, error: String, now: Double, maximumDelay: Double = Self.maximumDelay) {
        let attempt = (retries[key]?.attempt ?? 0) + 1
        retries[key] = Retry(attempt: attempt, notBefore: now + Self.delay(afterFailures: attempt, maximum: maximumDelay), lastError: error)
    }

    public mutating func succeeded(_ key: String) { retries[key] = nil }

    /// The retry that holds `key` back at `now`, if any.
    public func waiting(_ key: String, now: Double) -> Retry? {
        guard let retry = retries[key], retry.notBefore > now else { return nil }
        return retry
    }

    /// The earliest retry time still ahead of `now`.
    public func nextRetry(after now: Double) -> Double? {
        retries.values.map(\.notBefore).filter { $0 > now }.min()
    }
}

/// `HH:MM:SS UTC` of a time in seconds since the epoch (pure: no time zone database).
public func clockTime(_ seconds: Double) -> String {
    let s = Int(seconds.rounded(.up)) % 86_400
    func two(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
    return "\(two(s / 3600)):\(two(s / 60 % 60)):\(two(s % 60)) UTC"
}
