public import Logging

/// The last manifest the daemon or `apply` accepted, kept in the state
/// directory: libvirt's hook falls back to it when the manifest in place
/// cannot be read or is invalid, so a bad edit never stops a VM from
/// starting (nor starts one without its devices).
public struct LastGoodManifest: Sendable {
    public let stateDirectory: String
    public var path: String { stateDirectory + "/manifest.last-good" }

    public init(stateDirectory: String) { self.stateDirectory = stateDirectory }

    /// Saves `text` when it differs from what is saved; a failure is logged,
    /// never fatal (the manifest itself was fine).
    public func save(_ text: String, logger: Logger? = nil) {
        if case .success(let saved) = fileContents(path), saved.elementsEqual(text.utf8) { return }
        do {
            try LedgerStore(directory: stateDirectory).makeDirectory()
            try replaceFile(path, with: Array(text.utf8), mode: 0o600, durable: true)
        } catch {
            logger?.warning("cannot keep the last good manifest: \(error)")
        }
    }

    public func load() -> String? {
        guard case .success(let bytes) = fileContents(path) else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }
}
