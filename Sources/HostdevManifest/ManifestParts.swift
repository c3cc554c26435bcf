public import HostdevCore

/// One file of a manifest: the main file (`bindings.yaml`) or a drop-in
/// beside it (`bindings.d/NAME.yaml`), with its bytes as read.
public struct ManifestPart: Sendable, Equatable {
    public var file: String
    public var bytes: [UInt8]

    public init(file: String, bytes: [UInt8]) {
        self.file = file
        self.bytes = bytes
    }

    /// The file's last path component: drop-ins merge in this order.
    public var name: Substring { file.split(separator: "/").last ?? Substring(file) }

    /// The drop-in directory beside a manifest: `/etc/hostdevd/bindings.yaml`
    /// → `/etc/hostdevd/bindings.d`.
    public static func dropInDirectory(of manifest: String) -> String {
        let slash = manifest.lastIndex(of: "/")
        let directory = slash.map { String(manifest[..<$0]) } ?? "."
        var name = slash.map { String(manifest[manifest.index(after: $0)...]) } ?? manifest
        for suffix in [".yaml", ".yml", ".json"] where name.hasSuffix(suffix) {
            name = String(name.dropLast(suffix.count))
            break
        }
        return (directory.isEmpty && slash != nil ? "" : directory) + "/" + name + ".d"
    }

    /// Whether a file in the drop-in directory is a drop-in: `*.yaml`, not
    /// hidden (editors' and git's temporary files start with a dot).
    public static func isDropIn(_ name: String) -> Bool {
        name.hasSuffix(".yaml") && !name.hasPrefix(".") && name.count > ".yaml".count
    }

    /// Identifies the manifest's text across all its files: for the main
    /// file alone, the fingerprint of its bytes (the same as before
    /// drop-ins existed); with drop-ins, of every file's name and bytes.
    public static func fingerprint(of parts: [ManifestPart]) -> String {
        guard parts.count > 1 else { return Manifest.fingerprint(of: parts.first?.bytes ?? []) }
        var all: [UInt8] = []
        all.reserveCapacity(parts.reduce(0) { $0 + $1.bytes.count + $1.file.utf8.count + 2 })
        for part in parts {
            all += Array(part.file.utf8) + [0]
            all += part.bytes + [0]
        }
        return Manifest.fingerprint(of: all)
    }
}

extension ManifestDecoder {
    /// The manifest of a main file and its drop-ins (`parts[0]` the main
    /// file; the rest are merged in file-name order whatever order they
    /// come in). Every file is decoded and all their errors reported
    /// together; a drop-in may not set `host:` (host policy is one per
    /// host, in the main file). A VM or device named by two bindings that
    /// can apply to the same host is an error naming both files and lines.
    ///
    /// `host`: keep only the bindings whose `hosts:` match this host name
    /// (and check again for duplicates among them: two globs may both
    /// match it); nil keeps every binding (checking a fleet's manifest).
    public static func decode(parts: [ManifestPart], host: String? = nil) throws(ManifestErrors) -> Manifest {
        guard let main = parts.first else {
            throw ManifestErrors(diagnostics: [ManifestDiagnostic(
                location: SourceLocation(file: "", line: 1, column: 1), message: "no manifest given", hint: nil)])
        }
        let dropIns = parts.dropFirst().sorted { $0.name < $1.name }
        var diagnostics: [ManifestDiagnostic] = []
        var policy = HostPolicy()
        var bindings: [Binding] = []
        for (index, part) in ([main] + dropIns).enumerated() {
            var decoder = ManifestDecoder(file: part.file)
            let document = decoder.decodeDocument(part.bytes, allowHost: index == 0)
            if let document {
                if index == 0 {
                    decoder.checkDuplicates([], host: document.host)
                    policy = document.host
                }
                bindings += document.bindings
            }
            decoder.countDropped()
            diagnostics += decoder.diagnostics
        }
        diagnostics += duplicates(in: bindings, byHosts: true)
        guard diagnostics.isEmpty else { throw ManifestErrors(diagnostics: diagnostics) }
        if let host {
            bindings = bindings.filter { $0.applies(to: host) }
            // Only what the conservative check above could not see (it
            // found nothing): two different globs that both match this host.
            let missed = duplicates(in: bindings, byHosts: false, onHost: host)
            guard missed.isEmpty else { throw ManifestErrors(diagnostics: missed) }
        }
        return Manifest(host: policy, bindings: bindings, fingerprint: ManifestPart.fingerprint(of: [main] + dropIns))
    }
}
