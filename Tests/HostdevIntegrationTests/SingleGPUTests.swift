import HostdevController
import HostdevCore
import HostdevManifest
import HostdevSysfs
import HostdevTestSupport
import Testing

/// Single-GPU passthrough, planned and executed through the controller
/// against the fake kernel: `force: [console]` hands the console over in
/// order (virtual consoles, firmware framebuffer, then the GPU) and gets it
/// back in reverse when the binding goes.
@Suite struct SingleGPUTests {
    let gpu = PCIAddress("0000:01:00.0")!

    func pass(_ controller: Controller, _ yaml: String) throws -> (Plan, [StepOutcome]) {
        let manifest = try ManifestDecoder.decode(yaml, file: "m.yaml")
        var observed = try controller.observe(connection: nil)
        // No VM here: every domain is known (there are none).
        (observed.domains, observed.coverage) = ([], .all)
        let (plan, ledger) = try controller.plan(manifest: manifest, observed: observed)
        return (plan, try controller.act(plan, ledger: ledger, scope: .everything, domains: nil).outcomes)
    }

    @Test func forcedConsoleIsHandedOverAndBack() throws {
        let tree = SysfsTree.hostLayout(.efiFramebufferConsole)
        let state = FileTree.makeTemporaryDirectory(prefix: "hostdev-gpu")
        defer { FileTree.remove(state) }
        let kernel = FakeKernel(tree: tree)
        var controller = Controller(sources: HostSources(sysfsRoot: tree.sysfs, useUdev: false, libvirtURI: "test:///default"), stateDirectory: state, writer: kernel)
        controller.lockTimeout = .seconds(5)
        let claim = "version: 1\nbindings:\n  - vm: win11\n    devices:\n      - pci: \"0000:01:00.0\"\n        group: device\n"

        // Without force the console blocks it, naming the chain.
        let (refused, _) = try pass(controller, claim)
        #expect(refused.steps.isEmpty)
        #expect(refused.devices["pci 0000:01:00.0"]?.description.contains("fb0") == true, "\(refused.devices)")

        let forced = claim + "        force: [console]\n"
        let (plan, outcomes) = try pass(controller, forced)
        #expect(plan.steps.map(\.action.summary).prefix(2) == [
            "hand the host console on 0000:01:00.0 over (unbind its virtual consoles and firmware framebuffer)",
            "bind 0000:01:00.0 to vfio-pci",
        ])
        #expect(outcomes.prefix(2).allSatisfy { $0 == .done }, "\(outcomes)")
        #expect(tree.virtualConsoleBound(1) == false)
        #expect(tree.platformDriver(of: "efi-framebuffer.0") == nil)
        #expect(tree.driver(of: gpu) == "vfio-pci")
        #expect(try LedgerStore(directory: state).load().consoles[gpu]?.virtualConsoles == [1])

        // The binding removed: the GPU goes back, then its console.
        let (release, outcomes2) = try pass(controller, "version: 1\n")
        #expect(outcomes2.allSatisfy { $0 == .done }, "\(release.steps) \(outcomes2)")
        #expect(release.steps.map(\.action.summary).filter { !$0.hasPrefix("remove") } == [
            "release 0000:01:00.0 to nouveau", "give the host console back to 0000:01:00.0",
        ])
        #expect(tree.driver(of: gpu) == "nouveau")
        #expect(tree.platformDriver(of: "efi-framebuffer.0") == "efi-framebuffer")
        #expect(tree.virtualConsoleBound(1) == true)
        #expect(try LedgerStore(directory: state).load().consoles.isEmpty)
    }
}
