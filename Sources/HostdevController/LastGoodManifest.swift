public import HostdevManifest
public import Logging

/// The last manifest the daemon or `apply` accepted, kept in the state
/// directory: libvirt's hook falls back to it when the manifest in place
/// cannot be read or is invalid, so a bad edit never stops a VM from
/// starting (nor starts one without its devices).
///
/// A manifest without drop-ins is kept as its bytes. With drop-ins, every
/// file is kept in the one file (replaced atomically, so the hook never
/// reads one file's new text beside another's old), framed as
/// `#hostdevd-manifest-parts 1` then, per file, `#part BYTES PATH` and
/// its bytes: decoding the parts again gives the same bindings, the same
/// diagnostics' file names and the same fingerprint.
public struct LastGoodManifest: Sendable {
    public let stateDirectory: String
    static let name = "manifest.last-good"
    static let magic = Array("#hostdevd-manifest-parts 1\n".utf8)
    public var path: String { stateDirectory + "/" + Self.name }

    public init(stateDirectory: String) { self.stateDirectory = absolutePath(stateDirectory) }

    /// Saves the manifest's files when they differ from what is saved; a
    /// failure is logged, never fatal (the manifest itself was fine).
    public func save(_ parts: [ManifestPart], logger: Logger? = nil) {
        let bytes = Self.encode(parts)
        do {
            guard let directory = try LedgerStore.openStateDirectory(stateDirectory, create: true) else { return }
            if case .success(let saved) = directory.read(Self.name, limit: FileLimits.manifest + FileLimits.manifest), saved == bytes { return }
            try directory.replace(Self.name, with: bytes, mode: 0o600, durable: true)
        } catch {
            logger?.warning("cannot keep the last good manifest: \(error)")
        }
    }

    /// Saves a manifest without drop-ins.
    public func save(_ bytes: [UInt8], logger: Logger? = nil) {
        save([ManifestPart(file: path, bytes: bytes)], logger: logger)
    }

    /// The saved files; a file saved before drop-ins existed is one part
    /// named after the saved file.
    public func load() -> [ManifestPart]? {
        guard let directory = try? LedgerStore.openStateDirectory(stateDirectory, create: false),
            case .success(let bytes) = directory.read(Self.name, limit: FileLimits.manifest + FileLimits.manifest)
        else { return nil }
        return Self.decode(bytes, savedAt: path)
    }

    static func encode(_ parts: [ManifestPart]) -> [UInt8] {
        guard parts.count > 1 else { return parts.first?.bytes ?? [] }
        var bytes = magic
        for part in parts {
            bytes += Array("#part \(part.bytes.count) \(part.file)\n".utf8)
            bytes += part.bytes
            bytes.append(UInt8(ascii: "\n"))
        }
        return bytes
    }

    /// The parts of a saved file; nil when its framing is broken.
    static func decode(_ bytes: [UInt8], savedAt path: String) -> [ManifestPart]? {
        guard bytes.starts(with: magic) else { return [ManifestPart(file: path, bytes: bytes)] }
        var parts: [ManifestPart] = []
        var offset = magic.count
        let header = Array("#part ".utf8)
        while offset < bytes.count {
            guard bytes[offset...].starts(with: header),
                let newline = bytes[offset...].firstIndex(of: UInt8(ascii: "\n"))
            else { return nil }
            let fields = String(decoding: bytes[(offset + header.count)..<newline], as: UTF8.self)
            guard let space = fields.firstIndex(of: " "), let count = Int(fields[..<space]), count >= 0,
                newline + 1 + count < bytes.count, bytes[newline + 1 + count] == UInt8(ascii: "\n")
            else { return nil }
            let file = String(fields[fields.index(after: space)...])
            parts.append(ManifestPart(file: file, bytes: Array(bytes[(newline + 1)..<(newline + 1 + count)])))
            offset = newline + 2 + count
        }
        return parts.isEmpty ? nil : parts
    }
}
