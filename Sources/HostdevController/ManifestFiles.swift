#if canImport(Glibc)
    import Glibc
#endif
public import HostdevManifest

/// Reads a manifest as the daemon and hostdevctl do: the main file, then
/// every `*.yaml` drop-in in the directory beside it
/// (`/etc/hostdevd/bindings.yaml` → `/etc/hostdevd/bindings.d/*.yaml`), in
/// name order. Other files there (`README`, `x.yaml.orig`, `.x.yaml.swp`)
/// are ignored; a missing drop-in directory is no drop-ins. A drop-in that
/// cannot be read fails the whole read, naming it: half a fleet's bindings
/// must never be taken for all of them.
public enum ManifestFiles {
    /// The most drop-ins read: a directory with more is refused.
    public static let maximumDropIns = 1000

    public static func read(_ manifest: String) -> Result<[ManifestPart], FileReadError> {
        let main: [UInt8]
        switch fileContents(manifest, limit: FileLimits.manifest) {
        case .success(let bytes): main = bytes
        case .failure(let error): return .failure(error)
        }
        var parts = [ManifestPart(file: manifest, bytes: main)]
        let directory = ManifestPart.dropInDirectory(of: manifest)
        let names: [String]
        switch dropInNames(directory) {
        case .success(let found): names = found
        case .failure(let error): return .failure(error)
        }
        for name in names {
            let path = directory + "/" + name
            switch fileContents(path, limit: FileLimits.manifest) {
            case .success(let bytes): parts.append(ManifestPart(file: path, bytes: bytes))
            case .failure(let error): return .failure(error)
            }
        }
        return .success(parts)
    }

    /// The drop-ins' names in `directory`, sorted; none when it is missing.
    static func dropInNames(_ directory: String) -> Result<[String], FileReadError> {
        guard let handle = opendir(directory) else {
            let code = errno
            if code == ENOENT { return .success([]) }
            return .failure(FileReadError(path: directory, problem: .system(code)))
        }
        defer { closedir(handle) }
        var names: [String] = []
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard ManifestPart.isDropIn(name) else { continue }
            names.append(name)
            if names.count > maximumDropIns {
                return .failure(FileReadError(path: directory, problem: .tooManyFiles(maximumDropIns)))
            }
        }
        // Byte order, as `ls` in the C locale: the same on every host.
        return .success(names.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) })
    }
}

/// The name `hosts:` globs are matched against: the kernel's node name
/// (`uname -n`), as systemd and libvirt see it.
public func currentHostName() -> String {
    var names = utsname()
    guard uname(&names) == 0 else { return "localhost" }
    return withUnsafeBytes(of: names.nodename) { raw in String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self) }
}
