/// The daemon's last actions on each device, newest last, bounded: at most
/// `perDevice` per device and `devices` devices (the one acted on longest
/// ago goes first). Kept in status.json so `hostdevctl describe` can say
/// what hostdevd last did to a device and how it went.
public struct DeviceHistory: Sendable, Equatable, Codable {
    public struct Entry: Sendable, Equatable, Codable {
        /// Seconds since the epoch.
        public var time: Int
        /// `Action.kind`: `bind`, `restore`, `attachConfig`, …
        public var action: String
        public var summary: String
        /// `done`, `skipped`, `failed`.
        public var outcome: String
        /// Why it was skipped or how it failed.
        public var detail: String?

        public init(time: Int, action: String, summary: String, outcome: String, detail: String? = nil) {
            self.time = time
            self.action = action
            self.summary = summary
            self.outcome = outcome
            self.detail = detail
        }

        public var json: JSONText {
            var fields: [(String, JSONText)] = [
                ("time", .number(time)), ("action", .string(action)), ("summary", .string(summary)), ("outcome", .string(outcome)),
            ]
            if let detail { fields.append(("detail", .string(detail))) }
            return .object(fields)
        }
    }

    /// By `DeviceIdentifier`.
    public private(set) var entries: [String: [Entry]]
    public var perDevice: Int
    public var devices: Int

    public init(entries: [String: [Entry]] = [:], perDevice: Int = 8, devices: Int = 512) {
        self.entries = entries
        self.perDevice = perDevice
        self.devices = devices
    }

    public init(from decoder: any Decoder) throws {
        self.init(entries: try [String: [Entry]](from: decoder))
    }

    public func encode(to encoder: any Encoder) throws { try entries.encode(to: encoder) }

    public mutating func record(_ step: Step, outcome: StepOutcomeValue, time: Int) {
        let device = step.action.device
        var list = entries[device] ?? []
        list.append(Entry(time: time, action: step.action.kind, summary: step.action.summary, outcome: outcome.name, detail: outcome.detail))
        if list.count > perDevice { list.removeFirst(list.count - perDevice) }
        entries[device] = list
        while entries.count > devices, let oldest = entries.min(by: { ($0.value.last?.time ?? 0, $0.key) < ($1.value.last?.time ?? 0, $1.key) }) {
            entries[oldest.key] = nil
        }
    }

    public func of(_ device: String) -> [Entry] { entries[device] ?? [] }

    public var json: JSONText {
        .object(entries.sorted { $0.key < $1.key }.map { ($0.key, .array($0.value.map(\.json))) })
    }
}
