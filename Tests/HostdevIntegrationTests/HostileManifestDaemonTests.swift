#if canImport(Glibc)
    import Glibc
#endif
import Foundation
import HostdevCore
import HostdevTestSupport
import Testing

/// Issue 10, point 6: hostile manifests renamed over the good one (as a
/// `git pull` would) leave the running daemon on the last good manifest,
/// reporting the error; before, the 50,000-deep one killed it with SIGSEGV
/// on every restart.
@Suite(.serialized, .enabled(if: RealComponent.libvirtd.shouldRun && RealComponent.umockdevWrapper.shouldRun, "needs libvirtd and umockdev"))
struct HostileManifestDaemonTests {
    @Test func hostileManifestsLeaveTheDaemonOnTheLastGoodOne() throws {
        let libvirtd = try LibvirtDaemon()
        defer { libvirtd.stop() }
        let rig = try DaemonRig(libvirtd: libvirtd, manifest: "version: 1\nbindings:\n  - vm: win11\n    devices:\n      - pci: \"0000:01:00.0\"\n")
        _ = try #require(rig.notify.next(), "no READY from hostdevd")
        #expect(eventually { rig.tree.driver(of: gpu0) == "vfio-pci" })

        let deep = "version: 1\nbindings: " + String(repeating: "[", count: 50_000) + String(repeating: "]", count: 50_000) + "\n"
        var bomb = "version: 1\nbindings:\n  - &b\n    vm: win11\n    devices:\n"
        for i in 0..<1000 { bomb += "      - pci: \"0000:\(String(i / 256 + 16, radix: 16)):\(String(format: "%02x", i / 8 % 32)).\(i % 8)\"\n" }
        bomb += String(repeating: "  - *b\n", count: 1000)
        for (text, error) in [
            (deep, "nesting deeper than 64 levels"),
            (bomb, "aliases expand the document beyond"),
            ("version: 1\n...\nrm -rf /\n", "did not find expected <document start>"),
            ("version: 1\nbindings:\n  - vm: ~\n    devices: [{pci: \"0000:01:00.0\"}]\n", "vm must be text, not null"),
        ] {
            rig.edit(text)
            #expect(eventually { (rig.status()["manifestError"] as? String)?.contains(error) == true }, "\(error)")
            #expect(rig.daemon.isRunning)
            #expect(rig.tree.driver(of: gpu0) == "vfio-pci")
        }

        // An endless file in the manifest's place: refused, not read forever.
        FileTree.link(rig.state + "/bindings.new", to: "/dev/zero")
        rename(rig.state + "/bindings.new", rig.manifest)
        #expect(eventually { (rig.status()["manifestError"] as? String)?.contains("not a regular file") == true })
        #expect(rig.daemon.isRunning)

        // A restart on the hostile manifest comes up (keeping what the ledger says) instead of crashing.
        rig.edit(deep)
        rig.daemon.terminate()
        try rig.restart()
        _ = try #require(rig.notify.next(), "no READY after a restart on a hostile manifest")
        #expect(rig.daemon.isRunning)
        // READY may be a message the stopped daemon queued: wait for the new one's status.
        #expect(eventually { (rig.status()["manifestError"] as? String)?.contains("nesting deeper than 64 levels") == true })
    }
}
