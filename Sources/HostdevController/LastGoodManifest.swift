public import Logging

/// The last manifest the daemon or `apply` accepted, kept in the state
/// directory: libvirt's hook falls back to it when the manifest in place
/// cannot be read or is invalid, so a bad edit never stops a VM from
/// starting (nor starts one without its devices).
public struct LastGoodManifest: Sendable {
    public let stateDirectory: String
    static let name = "manifest.last-good"
    public var path: String { stateDirectory + "/" + Self.name }

    public init(stateDirectory: String) { self.stateDirectory = absolutePath(stateDirectory) }

    /// Saves `bytes` when they differ from what is saved; a failure is
    /// logged, never fatal (the manifest itself was fine).
    public func save(_ bytes: [UInt8], logger: Logger? = nil) {
        do {
            guard let directory = try StateDirectory.open(stateDirectory, mode: 0o700, create: true) else { return }
            if case .success(let saved) = directory.read(Self.name, limit: FileLimits.manifest), saved == bytes { return }
            try directory.replace(Self.name, with: bytes, mode: 0o600, durable: true)
        } catch {
            logger?.warning("cannot keep the last good manifest: \(error)")
        }
    }

    public func load() -> [UInt8]? {
        guard let directory = try? StateDirectory.open(stateDirectory, mode: 0o700, create: false),
            case .success(let bytes) = directory.read(Self.name, limit: FileLimits.manifest)
        else { return nil }
        return bytes
    }
}
