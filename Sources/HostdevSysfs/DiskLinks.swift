/// The stable names udev gives disks (`/dev/disk/by-id/…`,
/// `/dev/disk/by-path/…`), each with the block device it names now
/// (`sdb`, `sdb1`): how a manifest's `scsi: "/dev/disk/by-id/…"` finds its
/// device. Read under the root, one directory level at a time.
public struct DiskLinks: Sendable {
    public let root: SysfsRoot

    public init(root: SysfsRoot) { self.root = root }

    public static let directories = ["/dev/disk/by-id", "/dev/disk/by-path"]

    public func read() -> [String: String] {
        var links: [String: String] = [:]
        for directory in Self.directories {
            for name in root.list(directory) ?? [] {
                let path = "\(directory)/\(name)"
                guard let target = root.readLink(path) else { continue }
                links[path] = SysfsPath.lastComponent(SysfsPath.resolve(directory, target))
            }
        }
        return links
    }
}
