#if canImport(Glibc)
    import Glibc
#endif
import Foundation
@testable import HostdevController
import HostdevCore
import HostdevManifest
import HostdevTestSupport
import Testing

/// A manifest directory laid out as a fleet's repository would be: the main
/// file and drop-ins beside it, some for some hosts only.
struct FleetDirectory {
    let dir = FileTree.makeTemporaryDirectory(prefix: "hostdev-fleet")
    var manifest: String { dir + "/bindings.yaml" }
    var dropIns: String { dir + "/bindings.d" }

    init(main: String = "version: 1\n", dropIns files: [String: String] = [:]) {
        FileTree.write(manifest, main)
        if !files.isEmpty { FileTree.makeDirectory(dropIns) }
        for (name, text) in files { FileTree.write(dropIns + "/" + name, text) }
    }

    func remove() { FileTree.remove(dir) }
}

@Suite struct ManifestDropInFilesTests {
    @Test func readsTheMainFileThenYAMLDropInsInNameOrder() throws {
        let fleet = FleetDirectory(dropIns: [
            "20-b.yaml": "version: 1\n", "10-a.yaml": "version: 1\n", "README": "not yaml", "x.yaml.orig": "x",
            ".10-a.yaml.swp": "x",
        ])
        defer { fleet.remove() }
        let parts = try ManifestFiles.read(fleet.manifest).get()
        #expect(parts.map(\.file) == [fleet.manifest, fleet.dropIns + "/10-a.yaml", fleet.dropIns + "/20-b.yaml"])
    }

    @Test func noDropInDirectoryIsNoDropIns() throws {
        let fleet = FleetDirectory()
        defer { fleet.remove() }
        #expect(try ManifestFiles.read(fleet.manifest).get().count == 1)
    }

    /// A drop-in that cannot be read fails the read, naming it.
    @Test func anUnreadableDropInIsNamed() throws {
        let fleet = FleetDirectory(dropIns: ["a.yaml": "version: 1\n"])
        defer { fleet.remove() }
        FileTree.makeDirectory(fleet.dropIns + "/b.yaml")
        switch ManifestFiles.read(fleet.manifest) {
        case .success: Issue.record("a directory named b.yaml was read as a drop-in")
        case .failure(let error): #expect(error.description == "cannot read \(fleet.dropIns)/b.yaml: it is a directory, not a regular file")
        }
    }

    @Test func theLastGoodManifestKeepsEveryPart() throws {
        let state = FileTree.makeTemporaryDirectory()
        defer { FileTree.remove(state) }
        let parts = [
            ManifestPart(file: "/etc/hostdevd/bindings.yaml", bytes: Array("version: 1\n".utf8)),
            ManifestPart(file: "/etc/hostdevd/bindings.d/a.yaml", bytes: Array("version: 1\nbindings:\n  - vm: a\n    devices: [{pci: \"01:00.0\"}]\n".utf8)),
            ManifestPart(file: "/etc/hostdevd/bindings.d/empty.yaml", bytes: []),
        ]
        let saved = LastGoodManifest(stateDirectory: state)
        saved.save(parts)
        #expect(saved.load() == parts)
        // One file, as before drop-ins: its bytes, read back as one part.
        saved.save(Array("version: 1\n".utf8))
        #expect(try fileContents(saved.path).get() == Array("version: 1\n".utf8))
        #expect(saved.load() == [ManifestPart(file: saved.path, bytes: Array("version: 1\n".utf8))])
        // A broken frame is no manifest at all, never a part of one.
        #expect(LastGoodManifest.decode(Array("#hostdevd-manifest-parts 1\n#part 999 /x\nversion: 1\n".utf8), savedAt: "p") == nil)
    }
}

@Suite struct FleetCommandTests {
    let snapshot = repositoryRoot + "/manifests/examples/workstation-host.json"
    static let gpuBinding = "version: 1\nbindings:\n  - vm: win11\n    hosts: [\"gpu-*\"]\n    devices:\n      - pci: \"0000:01:00.0\"\n"

    /// CI plans each host of a fleet from that host's recorded snapshot.
    @Test func planAsAnotherHostFromItsSnapshot() throws {
        let fleet = FleetDirectory(dropIns: ["gpu.yaml": Self.gpuBinding])
        defer { fleet.remove() }
        let gpu = try hostdevctl("plan", "--manifest", fleet.manifest, "--host", "gpu-07", "--observed", snapshot, "--state-dir", fleet.dir + "/state")
        #expect(gpu.status == 2, "\(gpu.stderr)")
        #expect(gpu.stdout.contains("+ add <hostdev> pci 0000:01:00.0 to win11's config"), "\(gpu.stdout)")
        let other = try hostdevctl("plan", "--manifest", fleet.manifest, "--host", "build-01", "--observed", snapshot, "--state-dir", fleet.dir + "/state")
        #expect(other.status == 0, "\(other.stdout)\(other.stderr)")
        #expect(other.stdout.hasPrefix("No changes."))
    }

    @Test func validateChecksEveryDropInForEveryHost() throws {
        let fleet = FleetDirectory(dropIns: [
            "gpu.yaml": Self.gpuBinding,
            "lab.yaml": "version: 1\nbindings:\n  - vm: lab\n    hosts: [lab1]\n    devices:\n      - pci: \"0000:02:00.0\"\n",
        ])
        defer { fleet.remove() }
        let valid = try hostdevctl("validate", "--manifest", fleet.manifest)
        #expect(valid.status == 0, "\(valid.stderr)")
        #expect(valid.stdout == "\(fleet.manifest): valid (2 bindings, 2 devices)\n")

        FileTree.write(fleet.dropIns + "/zz.yaml", "version: 1\nbindings:\n  - vm: other\n    devices:\n      - pci: \"0000:01:00.0\"\n")
        let duplicate = try hostdevctl("validate", "--manifest", fleet.manifest)
        #expect(duplicate.status == 1)
        #expect(duplicate.stderr.contains("\(fleet.dropIns)/zz.yaml:5:9: error: pci 0000:01:00.0 is named twice; it is already claimed by 'win11' at \(fleet.dropIns)/gpu.yaml:6"), "\(duplicate.stderr)")
    }

    @Test func planRefusesAnEmptyHostName() throws {
        let result = try hostdevctl("plan", "--host", "", "--observed", snapshot)
        #expect(result.status != 0)
        #expect(result.stderr.contains("--host '' is not a host name"))
    }
}

/// status.json and the ledger are readable by the reader group (0640) and
/// the state directory listable by it (0750): `hostdevctl status` works
/// for the group's members without root.
@Suite struct StateFilePermissionTests {
    func mode(_ path: String) -> (mode: mode_t, gid: gid_t) {
        var info = stat()
        #expect(stat(path, &info) == 0, "\(path) is missing")
        return (info.st_mode & 0o7777, info.st_gid)
    }

    /// A group that exists on any Debian machine stands for `hostdevd`.
    let group = ReaderGroup.lookup("nogroup")!

    @Test func statusFileIs0640InTheReaderGroup() throws {
        let dir = FileTree.makeTemporaryDirectory()
        defer { FileTree.remove(dir) }
        try writeStatusFile(dir + "/run/status.json", Array("{}\n".utf8), group: group)
        #expect(mode(dir + "/run/status.json") == (0o640, group))
        // No such group: root's group, quietly.
        try writeStatusFile(dir + "/run/status.json", Array("{}\n".utf8), group: ReaderGroup.lookup("no-such-group-hostdevd"))
        #expect(mode(dir + "/run/status.json") == (0o640, getegid()))
    }

    @Test func ledgerAndStateDirectoryAreGroupReadable() throws {
        let dir = FileTree.makeTemporaryDirectory()
        defer { FileTree.remove(dir) }
        var store = LedgerStore(directory: dir + "/state")
        store.readerGroup = group
        try store.save(Ledger())
        try store.compact(Ledger())
        #expect(mode(dir + "/state") == (0o750, group))
        #expect(mode(dir + "/state/ledger.json") == (0o640, group))
        #expect(mode(dir + "/state/ledger.journal") == (0o640, group))
    }

    /// A state directory made 0700 by an older hostdevd becomes 0750 in the group.
    @Test func anOlderPrivateStateDirectoryIsShared() throws {
        let dir = FileTree.makeTemporaryDirectory()
        defer { FileTree.remove(dir) }
        mkdir(dir + "/state", 0o700)
        FileTree.write(dir + "/state/ledger.journal", "", mode: 0o600)
        var store = LedgerStore(directory: dir + "/state")
        store.readerGroup = group
        try store.save(Ledger())
        #expect(mode(dir + "/state") == (0o750, group))
        #expect(mode(dir + "/state/ledger.journal") == (0o640, group))
    }

    /// A member of the group (here: nobody in nogroup) reads the status
    /// without root; someone outside it gets a clear refusal.
    @Test func aGroupMemberRunsHostdevctlStatus() throws {
        let dir = FileTree.makeTemporaryDirectory()
        defer { FileTree.remove(dir) }
        chmod(dir, 0o755)
        let status = #"{"summary": "0 bindings: 0 ready, 0 pending, 0 blocked", "libvirt": "connected", "reconciles": 1}"#
        try writeStatusFile(dir + "/status.json", Array(status.utf8), group: group)
        let member = try ChildProcess.run("/usr/bin/setpriv", [
            "--reuid=65534", "--regid=\(group)", "--clear-groups", BuiltProducts.hostdevctl, "status", "--status-file", dir + "/status.json",
            "--state-dir", dir + "/state", "--manifest", dir + "/none.yaml",
        ])
        #expect(member.status == 0, "\(member.stderr)")
        #expect(member.stdout.hasPrefix("hostdevd: 0 bindings"), "\(member.stdout)")
        let outsider = try ChildProcess.run("/usr/bin/setpriv", [
            "--reuid=65534", "--regid=1", "--clear-groups", BuiltProducts.hostdevctl, "status", "--status-file", dir + "/status.json",
            "--state-dir", dir + "/state", "--manifest", dir + "/none.yaml",
        ])
        #expect(outsider.status == 1)
        #expect(outsider.stderr.contains("cannot read status \(dir)/status.json: Permission denied"), "\(outsider.stderr)")
        #expect(outsider.stderr.contains("group hostdevd"), "\(outsider.stderr)")
    }
}

/// hostdevd sees drop-ins come, change and go, and applies only its host's.
@Suite(.serialized, .enabled(if: RealComponent.libvirtd.shouldRun && RealComponent.umockdevWrapper.shouldRun, "needs libvirtd and umockdev"))
struct FleetDaemonTests {
    @Test func dropInsAreWatchedAndHostSelectorsApplied() throws {
        let libvirtd = try LibvirtDaemon()
        defer { libvirtd.stop() }
        let rig = try DaemonRig(libvirtd: libvirtd, manifest: "version: 1\n")
        _ = try #require(rig.notify.next(), "no READY from hostdevd")
        let dropIns = rig.state + "/bindings.d"
        FileTree.makeDirectory(dropIns)

        // For another host only: nothing happens here.
        FileTree.write(dropIns + "/other.yaml", "version: 1\nbindings:\n  - vm: win11\n    hosts: [\"not-this-host-*\"]\n    devices:\n      - pci: \"0000:01:00.0\"\n")
        #expect(eventually { (rig.status()["reconciles"] as? Int ?? 0) >= 2 })
        #expect(rig.tree.driver(of: gpu0) == "nouveau")

        // For this host (by its name, as uname gives it): applied.
        FileTree.write(dropIns + "/other.yaml", "version: 1\nbindings:\n  - vm: win11\n    hosts: [\"\(currentHostName())\"]\n    devices:\n      - pci: \"0000:01:00.0\"\n")
        #expect(eventually { rig.tree.driver(of: gpu0) == "vfio-pci" && rig.ours("win11").count == 2 })

        // A bad drop-in: rejected, named, the last good manifest stays in force.
        FileTree.write(dropIns + "/bad.yaml", "version: 1\nbindings: [\n")
        #expect(eventually { (rig.status()["manifestError"] as? String)?.contains(dropIns + "/bad.yaml") == true })
        #expect(rig.tree.driver(of: gpu0) == "vfio-pci")
        // The hook's fallback has every part of the good manifest.
        let saved = try #require(LastGoodManifest(stateDirectory: rig.state).load())
        #expect(saved.map(\.file) == [rig.manifest, dropIns + "/other.yaml"])

        // Removed: the error clears; the binding's drop-in removed: released.
        unlink(dropIns + "/bad.yaml")
        #expect(eventually { rig.status()["manifestError"] is NSNull })
        unlink(dropIns + "/other.yaml")
        #expect(eventually { rig.tree.driver(of: gpu0) == "nouveau" && rig.ours("win11").isEmpty })
    }
}

/// The libvirt hook reads the drop-ins too, and falls back to every saved
/// part of the last good manifest when one of them turns bad.
@Suite(.serialized) struct FleetHookTests {
    @Test func theHookFallsBackToTheLastGoodDropIns() throws {
        let rig = HookRig()
        let dropIns = rig.state + "/bindings.d"
        FileTree.makeDirectory(dropIns)
        FileTree.write(rig.manifest, "version: 1\n")
        FileTree.write(dropIns + "/gpu.yaml", HookRig.claims.replacingOccurrences(of: "    release: onStop\n", with: "    release: onStop\n    hosts: [\"\(currentHostName())\"]\n"))
        LastGoodManifest(stateDirectory: rig.state).save(try ManifestFiles.read(rig.manifest).get())
        FileTree.write(dropIns + "/bad.yaml", "version: 1\nbindings: [\n")
        let result = try rig.hook("win11", "prepare")
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("\(dropIns)/bad.yaml"), "\(result.stderr)")
        #expect(result.stderr.contains("using the last good manifest \(rig.state)/manifest.last-good"))
        #expect(rig.gpuDriver == "vfio-pci")
    }
}
