#if canImport(Glibc)
    import Glibc
#endif
import Foundation
import HostdevController
import HostdevCore
import HostdevSysfs
import HostdevTestSupport
import Testing

/// udevadm from the udev package, unpacked by .ci/setup (never installed).
let udevadm = repositoryRoot + "/.build-udev/root/bin/udevadm"
let udevadmPresent = access(udevadm, X_OK) == 0 || RealComponent.required

@Suite(.serialized) struct ShippedFilesTests {
    func checkRules(_ file: String, group: String = "kvm") throws -> (status: Int32, stdout: String, stderr: String) {
        try ChildProcess.run("/bin/bash", [repositoryRoot + "/udev/check-rules.sh", udevadm, file, group])
    }

    /// The shipped rule, applied for real by udevadm in a private mount
    /// namespace, gives /dev/vfio/N group kvm and mode 0660.
    @Test(.enabled(if: udevadmPresent && RealComponent.umockdevWrapper.shouldRun, "udevadm missing: run .ci/setup"))
    func udevRuleSetsGroupAndMode() throws {
        let result = try checkRules(repositoryRoot + "/udev/70-hostdevd-vfio.rules")
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("70-hostdevd-vfio.rules:4 MODE 0660"))
        #expect(result.stdout.hasSuffix("node: 660 kvm\n"), "\(result.stdout)")
        #expect(!result.stdout.contains("Invalid"))
        // The machine's own /dev was not touched.
        #expect(access("/dev/vfio/12", F_OK) != 0)
    }

    @Test(.enabled(if: udevadmPresent && RealComponent.umockdevWrapper.shouldRun, "udevadm missing: run .ci/setup"))
    func aBrokenRuleIsCaught() throws {
        let dir = FileTree.makeTemporaryDirectory()
        defer { FileTree.remove(dir) }
        FileTree.write(dir + "/70-bad.rules", "SUBSYSTEM==\"vfio\", KERNEL==\"[0-9]*\", GRUOP=\"kvm\", MODE=\"0660\"\n")
        let result = try checkRules(dir + "/70-bad.rules")
        #expect(result.stdout.contains("70-bad.rules:1 Invalid key 'GRUOP'"))
        #expect(result.stdout.hasSuffix("node: 600 root\n"))
    }

    /// Runs manifests/install.sh (this build's binaries stand in for a
    /// release build) with `variables` added to the environment.
    func installScript(_ arguments: [String] = [], _ variables: [String: String]) throws -> (status: Int32, stdout: String, stderr: String) {
        var environment = ProcessInfo.processInfo.environment
        environment["BUILD"] = BuiltProducts.directory
        environment.merge(variables) { _, new in new }
        return try ChildProcess.run("/bin/bash", [repositoryRoot + "/manifests/install.sh"] + arguments, environment: environment)
    }

    /// Every file under `root`, as paths relative to it.
    func files(under root: String) -> Set<String> {
        var result = Set<String>()
        let enumerator = FileManager.default.enumerator(atPath: root)
        while let path = enumerator?.nextObject() as? String {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: root + "/" + path, isDirectory: &isDirectory), !isDirectory.boolValue {
                result.insert("/" + path)
            }
        }
        return result
    }

    /// install.sh stages every file, with the /dev/vfio group substituted;
    /// shipped files go under PREFIX, never /etc (but libvirt's hook).
    @Test func installStagesEveryFile() throws {
        let stage = FileTree.makeTemporaryDirectory(prefix: "hostdev-stage")
        defer { FileTree.remove(stage) }
        let result = try installScript([], ["DESTDIR": stage, "VFIO_GROUP": "libvirt-qemu"])
        #expect(result.status == 0, "\(result.stderr)")
        for file in ["/usr/local/bin/hostdevd", "/usr/local/bin/hostdevctl", "/usr/local/lib/systemd/system/hostdevd.service",
            "/etc/libvirt/hooks/qemu.d/hostdevd", "/etc/hostdevd/bindings.yaml.example", "/usr/local/share/hostdevd/hostdevd-manifest.schema.json",
            "/usr/local/share/bash-completion/completions/hostdevctl", "/usr/local/share/zsh/site-functions/_hostdevctl",
            "/usr/local/share/fish/vendor_completions.d/hostdevctl.fish", "/usr/local/share/doc/hostdevd/examples/workstation.yaml"]
        {
            #expect(access(stage + file, F_OK) == 0, "\(file) not installed")
        }
        #expect(access(stage + "/etc/libvirt/hooks/qemu.d/hostdevd", X_OK) == 0)
        #expect(FileTree.read(stage + "/usr/local/lib/udev/rules.d/70-hostdevd-vfio.rules")?.hasSuffix("GROUP=\"libvirt-qemu\", MODE=\"0660\"") == true)
        #expect(!files(under: stage).contains { $0.hasPrefix("/etc/") && !$0.hasPrefix("/etc/hostdevd/") && !$0.hasPrefix("/etc/libvirt/hooks/") })
        #expect(access(stage + "/etc/hostdevd/bindings.yaml", F_OK) != 0)
        #expect(try installScript([], ["DESTDIR": stage, "VFIO_GROUP": "bad group"]).status == 1)
    }

    /// PREFIX=/usr: binaries in /usr/bin, the unit in /usr/lib/systemd/system
    /// (on Debian 12 the same directory as /lib/systemd/system), the rule in
    /// /usr/lib/udev/rules.d, and the unit and hook run /usr/bin.
    @Test func installHonoursPrefix() throws {
        let stage = FileTree.makeTemporaryDirectory(prefix: "hostdev-stage")
        defer { FileTree.remove(stage) }
        let result = try installScript([], ["DESTDIR": stage, "PREFIX": "/usr"])
        #expect(result.status == 0, "\(result.stderr)")
        let installed = files(under: stage)
        for file in ["/usr/bin/hostdevd", "/usr/bin/hostdevctl", "/usr/lib/systemd/system/hostdevd.service",
            "/usr/lib/udev/rules.d/70-hostdevd-vfio.rules", "/usr/share/hostdevd/hostdevd-manifest.schema.json"]
        {
            #expect(installed.contains(file), "\(file) not installed")
        }
        #expect(!installed.contains { $0.hasPrefix("/usr/local") })
        let unit = FileTree.read(stage + "/usr/lib/systemd/system/hostdevd.service") ?? ""
        #expect(unit.contains("ExecStart=/usr/bin/hostdevd ") && !unit.contains("/usr/local"))
        #expect(FileTree.read(stage + "/etc/libvirt/hooks/qemu.d/hostdevd")?.contains("exec /usr/bin/hostdevctl hook") == true)
        #expect(try installScript([], ["DESTDIR": stage, "PREFIX": "usr"]).status == 1)
    }

    /// --uninstall removes exactly what install put there; the operator's
    /// manifest and the ledger stay, and it says so.
    @Test func uninstallRemovesExactlyWhatWasInstalled() throws {
        let stage = FileTree.makeTemporaryDirectory(prefix: "hostdev-stage")
        defer { FileTree.remove(stage) }
        FileTree.makeDirectory(stage + "/usr/bin")
        FileTree.write(stage + "/usr/bin/someone-elses", "#!/bin/sh\n")
        let before = files(under: stage)
        #expect(try installScript([], ["DESTDIR": stage, "PREFIX": "/usr"]).status == 0)
        FileTree.makeDirectory(stage + "/etc/hostdevd")
        FileTree.write(stage + "/etc/hostdevd/bindings.yaml", "version: 1\n")
        try LedgerStore(directory: stage + "/var/lib/hostdevd").save(Ledger())
        let operators = files(under: stage).filter { $0.hasPrefix("/etc/hostdevd/bindings.yaml") && !$0.hasSuffix(".example") || $0.hasPrefix("/var/lib/hostdevd/") }
        let result = try installScript(["--uninstall"], ["DESTDIR": stage, "PREFIX": "/usr"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(files(under: stage) == before.union(operators))
        #expect(result.stdout.contains("kept: /etc/hostdevd (your manifest) and /var/lib/hostdevd (the ledger)"))
        #expect(access(stage + "/usr/share/hostdevd", F_OK) != 0 && access(stage + "/usr/share/doc/hostdevd", F_OK) != 0)
        // A second uninstall has nothing to remove, and says why.
        let again = try installScript(["--uninstall"], ["DESTDIR": stage, "PREFIX": "/usr"])
        #expect(again.status == 1 && again.stderr.contains("nothing to uninstall"))
    }

    /// While the ledger (as hostdevd writes it) holds a device on vfio-pci,
    /// uninstall refuses and says how to release it; FORCE=1 goes ahead.
    @Test func uninstallRefusesWhileTheLedgerHoldsDevices() throws {
        let stage = FileTree.makeTemporaryDirectory(prefix: "hostdev-stage")
        defer { FileTree.remove(stage) }
        #expect(try installScript([], ["DESTDIR": stage]).status == 0)
        let ledger = Ledger(devices: [PCIAddress("0000:01:00.0")!: .init(originalDriver: "nouveau", vm: "win11")])
        try LedgerStore(directory: stage + "/var/lib/hostdevd").save(ledger)
        let refused = try installScript(["--uninstall"], ["DESTDIR": stage])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("0000:01:00.0 nouveau win11"), "\(refused.stderr)")
        #expect(refused.stderr.contains("hostdevctl release 0000:01:00.0"))
        #expect(access(stage + "/usr/local/bin/hostdevctl", X_OK) == 0)
        let forced = try installScript(["--uninstall"], ["DESTDIR": stage, "FORCE": "1"])
        #expect(forced.status == 0, "\(forced.stderr)")
        #expect(access(stage + "/usr/local/bin/hostdevctl", F_OK) != 0)
    }

    /// systemd itself parses the unit: its only complaint may be that the
    /// binary is not installed on this machine.
    @Test(.enabled(if: RealComponent.systemdAnalyze.shouldRun, "systemd-analyze missing: apt-get install systemd"))
    func systemdUnitVerifies() throws {
        let unit = repositoryRoot + "/manifests/systemd/hostdevd.service"
        let result = try ChildProcess.run(RealComponent.systemdAnalyze.rawValue, ["verify", "--man=no", unit])
        let complaints = (result.stdout + result.stderr).split(separator: "\n").filter { !$0.contains("/usr/local/bin/hostdevd is not executable") }
        #expect(complaints.isEmpty, "\(complaints)")
        let text = FileTree.read(unit) ?? ""
        for hardening in ["Type=notify", "ProtectSystem=strict", "NoNewPrivileges=yes", "ReadWritePaths=/sys/bus/pci /sys/devices"] {
            #expect(text.contains(hardening))
        }
        let dir = FileTree.makeTemporaryDirectory()
        defer { FileTree.remove(dir) }
        FileTree.write(dir + "/bad.service", "[Service]\nType=notfy\nExecStart=/bin/true\n")
        let bad = try ChildProcess.run(RealComponent.systemdAnalyze.rawValue, ["verify", "--man=no", dir + "/bad.service"])
        #expect((bad.stdout + bad.stderr).contains("Failed to parse service type"))
    }
}

/// `hostdevctl hook` as libvirt runs it: another process, the domain XML on
/// stdin, sysfs only, under the state lock.
@Suite(.serialized) struct HookTests {
    let tree = SysfsTree.workstation()
    let state = FileTree.makeTemporaryDirectory(prefix: "hostdev-state")

    func hook(_ vm: String, _ operation: String, manifest: String) throws -> (status: Int32, stdout: String, stderr: String) {
        FileTree.write(state + "/bindings.yaml", manifest)
        FileTree.write(state + "/domain.xml", domainXML(vm))
        // libvirt passes the XML on stdin; so does this shell.
        return try ChildProcess.run("/bin/sh", ["-c",
            "exec \"$0\" hook \"$1\" \"$2\" begin - --sysfs-root \"$3\" --manifest \"$4\" --state-dir \"$5\" --connect bogus:///no-libvirt-in-hooks < \"$6\"",
            BuiltProducts.hostdevctl, vm, operation, tree.root, state + "/bindings.yaml", state, state + "/domain.xml"])
    }

    @Test func prepareBindsAndReleaseGivesBack() throws {
        defer { FileTree.remove(state) }
        let server = FakeKernelServer(tree: tree)
        defer { server.stop() }
        let manifest = "version: 1\nbindings:\n  - vm: win11\n    release: onStop\n    devices:\n      - pci: \"0000:01:00.0\"\n  - vm: other\n    devices:\n      - pci: \"0000:00:14.0\"\n"
        let prepared = try hook("win11", "prepare", manifest: manifest)
        #expect(prepared.status == 0, "\(prepared.stderr)")
        #expect(tree.driver(of: PCIAddress("0000:01:00.0")!) == "vfio-pci")
        #expect(tree.driver(of: PCIAddress("0000:01:00.1")!) == "vfio-pci")
        // Another VM's devices are not this hook's business.
        #expect(tree.driver(of: PCIAddress("0000:00:14.0")!) == "xhci_hcd")
        let ledger = try LedgerStore(directory: state).load()
        #expect(Set(ledger.devices.keys) == [PCIAddress("0000:01:00.0")!, PCIAddress("0000:01:00.1")!])
        // A started hook operation is none of hostdevd's concern.
        #expect(try hook("win11", "started", manifest: manifest).status == 0)
        let released = try hook("win11", "release", manifest: manifest)
        #expect(released.status == 0, "\(released.stderr)")
        #expect(tree.driver(of: PCIAddress("0000:01:00.0")!) == "nouveau")
        #expect(tree.driver(of: PCIAddress("0000:01:00.1")!) == "snd_hda_intel")
        #expect(try LedgerStore(directory: state).load().devices.isEmpty)
    }

    @Test func aBlockedBindingRefusesToPrepare() throws {
        defer { FileTree.remove(state) }
        let result = try hook("win11", "prepare", manifest: "version: 1\nbindings:\n  - vm: win11\n    devices:\n      - pci: \"0000:00:1f.6\"\n")
        #expect(result.status == 1)
        #expect(result.stderr.contains("error: hostdevd cannot prepare win11's devices: win11: Blocked: needed by the host: 0000:00:1f.6 → eno1, which carries the default route"))
        #expect(tree.driver(of: PCIAddress("0000:00:1f.6")!) == "e1000e")
    }

    @Test func vmsWithoutABindingAreLeftAlone() throws {
        defer { FileTree.remove(state) }
        let result = try hook("unmanaged", "prepare", manifest: "version: 1\n")
        #expect(result.status == 0 && result.stderr.isEmpty)
    }
}

@Suite struct CheckCommandTests {
    @Test func readyHostPassesAndSaysWhatIsMissing() throws {
        let tree = SysfsTree.workstation()
        FileTree.write(tree.host("/proc/cmdline"), "root=/dev/nvme0n1p1 intel_iommu=on\n")
        FileTree.write(tree.host("/proc/interrupts"), " 24: 0 IR-PCI-MSI 327680-edge xhci_hcd\n")
        FileTree.makeDirectory(tree.host("/dev/vfio"))
        FileTree.write(tree.host("/dev/vfio/1"), "")
        chmod(tree.host("/dev/vfio/1"), 0o600)
        let result = try hostdevctl("check", "--sysfs-root", tree.root, "--connect", "test:///default")
        #expect(result.stdout.contains("ok    IOMMU enabled: 8 IOMMU groups (intel_iommu=on)"))
        #expect(result.stdout.contains("ok    vfio-pci driver loaded"))
        #expect(result.stdout.contains("ok    interrupt remapping active"))
        #expect(result.stdout.contains("ok    libvirt reachable at test:///default"))
        #expect(result.stdout.contains("FAIL  /dev/vfio/1 is root, mode 600: QEMU will fail with \"error opening /dev/vfio/1: Permission denied\""))
        #expect(result.stdout.contains("→ install udev/70-hostdevd-vfio.rules"))
        #expect(result.stdout.contains("pci=realloc"))
        #expect(result.status == 1)
    }

    /// `check --manifest` on the workstation tree.
    func checkManifest(_ yaml: String) throws -> (status: Int32, stdout: String, stderr: String) {
        let tree = SysfsTree.workstation()
        let dir = FileTree.makeTemporaryDirectory()
        defer { FileTree.remove(dir) }
        FileTree.write(dir + "/m.yaml", yaml)
        return try hostdevctl("check", "--sysfs-root", tree.root, "--connect", "test:///default", "--manifest", dir + "/m.yaml")
    }

    @Test func nonViableGroupNamesTheSiblings() throws {
        let result = try checkManifest("version: 1\nbindings:\n  - vm: win11\n    devices:\n      - pci: \"0000:01:00.0\"\n        group: device\n")
        #expect(result.stdout.contains("FAIL  group 1 is not viable for 0000:01:00.0 (win11): 0000:01:00.0 (nouveau), 0000:01:00.1 (snd_hda_intel) still on host drivers"))
        // The remedy is about viability, not interrupt remapping.
        #expect(result.stdout.contains("VFIO needs every non-bridge device of the group on vfio-pci or on no driver"))
        #expect(result.stdout.contains("allowing unsafe interrupts does not help here"))
        let remedy = result.stdout.split(separator: "\n").first { $0.contains("VFIO needs every non-bridge device") } ?? ""
        #expect(!remedy.contains("allow_unsafe_interrupts"), "\(remedy)")
        #expect(result.status == 1)
    }

    /// group: attach takes the siblings along: check says which, as a warning.
    @Test func attachNamesTheSiblingsItTakes() throws {
        let result = try checkManifest("version: 1\nbindings:\n  - vm: win11\n    devices:\n      - pci: \"0000:01:00.0\"\n")
        #expect(result.stdout.contains("warn  IOMMU group 1 of 0000:01:00.0 (win11): hostdevd will also take 0000:01:00.1 (snd_hda_intel) off their host drivers (group: attach)"), "\(result.stdout)")
    }

    /// Claims by vendor/device ID are checked too.
    @Test func nonViableGroupOfAnIDClaim() throws {
        let result = try checkManifest("version: 1\nbindings:\n  - vm: win11\n    devices:\n      - pci: {vendor: \"10de\", device: \"1b80\"}\n        group: device\n")
        #expect(result.stdout.contains("FAIL  group 1 is not viable for 0000:01:00.0 (win11)"), "\(result.stdout)")
    }

    /// Without interrupt remapping VFIO refuses the container: a failure,
    /// not a warning, unless allow_unsafe_interrupts is set (then a warning).
    @Test(arguments: [(nil, "FAIL  no interrupt remapping"), ("Y", "warn  no interrupt remapping; vfio_iommu_type1.allow_unsafe_interrupts=1")])
    func interruptRemapping(unsafe: String?, line: String) throws {
        let tree = SysfsTree.workstation()
        FileTree.write(tree.host("/proc/interrupts"), " 24: 0 PCI-MSI 327680-edge xhci_hcd\n")
        if let unsafe {
            FileTree.makeDirectory(tree.host("/sys/module/vfio_iommu_type1/parameters"))
            FileTree.write(tree.host("/sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts"), unsafe + "\n")
        }
        let result = try hostdevctl("check", "--sysfs-root", tree.root, "--connect", "test:///default")
        #expect(result.stdout.contains(line), "\(result.stdout)")
    }

    @Test func thisMachineSaysIOMMUIsOff() throws {
        let result = try hostdevctl("check", "--connect", "test:///default")
        if (SysfsRoot("/").list("/sys/kernel/iommu_groups") ?? []).isEmpty {
            #expect(result.stdout.contains("FAIL  IOMMU not enabled"))
            #expect(result.stdout.contains("intel_iommu=on"))
            #expect(result.status == 1)
        }
    }
}
