/// What this tool changed, so it can undo exactly that and nothing else:
/// each device it moved to vfio-pci with the driver it had before, and the
/// step in flight (an intent) when a run stopped.
public struct Ledger: Sendable, Equatable, Codable {
    public struct Entry: Sendable, Equatable, Codable {
        /// The host driver before hostdevd bound it (nil: it had none).
        public var originalDriver: String?
        /// The VM it was bound for, for status and messages.
        public var vm: String?

        public init(originalDriver: String?, vm: String?) {
            self.originalDriver = originalDriver
            self.vm = vm
        }
    }

    /// Devices this tool bound, by address.
    public var devices: [PCIAddress: Entry]
    /// The step that was about to run; set before it, cleared after it.
    public var intent: Action?

    public init(devices: [PCIAddress: Entry] = [:], intent: Action? = nil) {
        self.devices = devices
        self.intent = intent
    }
}
