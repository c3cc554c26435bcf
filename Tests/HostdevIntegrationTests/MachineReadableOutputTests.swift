import Foundation
import HostdevController
import HostdevCore
import HostdevSysfs
import HostdevTestSupport
import Logging
import Testing

/// Checks `text` against `manifests/schemas/KIND.schema.json` with
/// manifests/validate-schema.py (Debian's python3-jsonschema), as a
/// consumer of the output would.
func schemaCheck(_ kind: String, _ text: String) throws -> (valid: Bool, report: String) {
    let dir = FileTree.makeTemporaryDirectory(prefix: "hostdev-schema")
    defer { FileTree.remove(dir) }
    FileTree.write(dir + "/out.json", text)
    let result = try ChildProcess.run("/usr/bin/python3", [repositoryRoot + "/manifests/validate-schema.py", "--output", kind, dir + "/out.json"])
    #expect(result.status == 0 || result.status == 1, "validate-schema.py itself failed: \(result.stderr)")
    return (result.status == 0, result.stdout + result.stderr)
}

func expectValid(_ kind: String, _ text: String, sourceLocation: Testing.SourceLocation = #_sourceLocation) throws {
    let check = try schemaCheck(kind, text)
    #expect(check.valid, "\(kind): \(check.report)\n\(text)", sourceLocation: sourceLocation)
}

func jsonObject(_ text: String) throws -> [String: Any] {
    try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
}

func jsonText(_ object: Any) throws -> String {
    String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self)
}

@Suite struct MachineReadableOutputTests {
    let snapshot = repositoryRoot + "/manifests/examples/workstation-host.json"
    let example = repositoryRoot + "/manifests/examples/workstation.yaml"
    var offline: [String] { ["--manifest", example, "--observed", snapshot, "--state-dir", "/nonexistent/state"] }

    @Test func everyReportingCommandMatchesItsSchema() throws {
        let plan = try ChildProcess.run(BuiltProducts.hostdevctl, ["plan", "--format", "json"] + offline)
        #expect(plan.status == 2, "\(plan.stderr)")
        try expectValid("plan", plan.stdout)
        let planned = try jsonObject(plan.stdout)
        #expect(planned["verdict"] as? String == "changes" && planned["exitCode"] as? Int == 2)

        let status = try ChildProcess.run(BuiltProducts.hostdevctl, ["status", "--live", "--format", "json"] + offline)
        #expect(status.status == 3)
        try expectValid("status", status.stdout)
        #expect(try jsonObject(status.stdout)["source"] as? String == "live")

        for device in ["01:00.0", "pci_0000_00_17_0"] {
            let describe = try ChildProcess.run(BuiltProducts.hostdevctl, ["describe", device, "--format", "json", "--status-file", "/nonexistent"] + offline)
            #expect(describe.status == 0, "\(describe.stderr)")
            try expectValid("describe", describe.stdout)
        }
        let absent = try ChildProcess.run(BuiltProducts.hostdevctl, ["describe", "0c:00.0", "--format", "json"] + offline)
        #expect(absent.status == 1)
        try expectValid("describe", absent.stdout)

        let devices = try hostdevctl("devices", "--observed", snapshot, "--state-dir", "/nonexistent/state", "--format", "json")
        #expect(devices.status == 0)
        try expectValid("devices", devices.stdout)
        #expect(try parseDevicesJSON(devices.stdout)["pci_0000_01_00_0"]?["device"] as? String == "pci 0000:01:00.0")

        let validate = try hostdevctl("validate", example, "/nonexistent/bindings.yaml", "--format", "json")
        #expect(validate.status == 1)
        try expectValid("validate", validate.stdout)
    }

    /// Mediated and SCSI devices: their steps and conditions are named as
    /// the schema's device forms say.
    @Test func mediatedAndSCSIDevicesMatchThePlanSchema() throws {
        let spec = MdevSpec(uuid: "4b20d080-1b54-4048-85b3-a6a62d165c01", parent: PCIAddress("0000:00:02.0")!, type: "i915-GVTg_V5_4")
        let plan = Plan(
            steps: [Step(.createMdev(spec, vm: "gaming"), reason: "claimed by gaming"), Step(.removeMdev(spec, destroy: true), reason: "orphan")],
            bindings: ["gaming": .pending("2 step(s) to apply")],
            devices: [spec.description: .pending("to be created for gaming"), "scsi 1:0:0:0": .ready], notes: [])
        let text = PlanDocument(plan: plan, inventory: nil).json.rendered()
        try expectValid("plan", text)
        #expect(text.contains("\"device\": \"mdev 4b20d080-1b54-4048-85b3-a6a62d165c01\""), "\(text)")
    }

    /// The same device is named alike by plan, status, describe and devices.
    @Test func oneNamePerDeviceAcrossCommands() throws {
        let plan = try jsonObject(try ChildProcess.run(BuiltProducts.hostdevctl, ["plan", "--format", "json"] + offline).stdout)
        let steps = try #require(plan["steps"] as? [[String: Any]])
        #expect(steps.compactMap { $0["device"] as? String } == ["pci 0000:01:00.0", "pci 0000:01:00.1"])
        let status = try jsonObject(try ChildProcess.run(BuiltProducts.hostdevctl, ["status", "--live", "--format", "json"] + offline).stdout)
        #expect((status["devices"] as? [String: Any])?["pci 0000:01:00.0"] != nil)
        let describe = try jsonObject(try ChildProcess.run(BuiltProducts.hostdevctl, ["describe", "pci_0000_01_00_0", "--format", "json"] + offline).stdout)
        #expect(describe["device"] as? String == "pci 0000:01:00.0")
    }

    /// Broken documents fail their schema: the check is not vacuous.
    @Test func brokenDocumentsFailTheirSchemas() throws {
        let plan = try ChildProcess.run(BuiltProducts.hostdevctl, ["plan", "--format", "json"] + offline).stdout
        func mutated(_ change: (inout [String: Any]) -> Void) throws -> String {
            var object = try jsonObject(plan)
            change(&object)
            return try jsonText(object)
        }
        func step(_ change: @escaping (inout [String: Any]) -> Void) -> (inout [String: Any]) -> Void {
            { object in
                var steps = object["steps"] as! [[String: Any]]
                change(&steps[0])
                object["steps"] = steps
            }
        }
        let broken: [(String, (inout [String: Any]) -> Void)] = [
            ("no verdict", { $0["verdict"] = nil }),
            ("exit code that contradicts the verdict", { $0["exitCode"] = 0 }),
            ("libvirt's name instead of the device", step { $0["device"] = "pci_0000_01_00_0" }),
            ("a bare address", step { $0["device"] = "0000:01:00.0" }),
            ("prose for the action", step { $0["action"] = "add <hostdev> pci 0000:01:00.0 to win11's config" }),
            ("an unknown field", step { $0["extra"] = 1 }),
            ("a step without its order", step { $0["order"] = nil }),
            ("a bind without drivers", step { $0["action"] = "bind" }),
            ("Blocked without a reason", { $0["bindings"] = ["win11": ["condition": "Blocked"]] }),
            ("an unknown condition", { $0["bindings"] = ["win11": ["condition": "Fine"]] }),
        ]
        for (what, change) in broken {
            #expect(try !schemaCheck("plan", try mutated(change)).valid, "\(what) passed the plan schema")
        }
        #expect(try schemaCheck("plan", try mutated { _ in }).valid, "the unchanged document must pass")
        #expect(try !schemaCheck("status", plan).valid, "a plan is not a status")
        #expect(try !schemaCheck("apply", #"{"kind":"step","outcome":"exploded","order":1,"action":"bind","device":"pci 0000:01:00.0","vm":"a","driver":{"from":null,"to":"vfio-pci"},"summary":"s","reason":"r"}"#).valid)
        #expect(try !schemaCheck("apply", #"{"kind":"step","outcome":"failed","order":1,"action":"bind","device":"pci 0000:01:00.0","vm":"a","driver":{"from":null,"to":"vfio-pci"},"summary":"s","reason":"r"}"#).valid, "a failure without its detail")
        #expect(try schemaCheck("apply", #"{"kind":"step","outcome":"failed","detail":"EBUSY","order":1,"action":"bind","device":"pci 0000:01:00.0","vm":"a","driver":{"from":null,"to":"vfio-pci"},"summary":"s","reason":"r"}"#).valid)
        #expect(try !schemaCheck("validate", #"{"kind":"validate","exitCode":0,"files":[{"file":"a","valid":true,"bindings":1,"devices":1,"errors":[{"line":1,"column":1,"message":"m"}]}]}"#).valid, "valid with errors")
        #expect(try !schemaCheck("check", #"{"kind":"check","exitCode":0,"findings":[{"verdict":"ok","check":"iommu","what":"w"}],"advice":"a"}"#).valid)
        #expect(try !schemaCheck("describe", #"{"kind":"describe","device":"pci 0000:0c:00.0","present":true}"#).valid, "a present device with nothing said")
    }

    @Test func validateTakesSeveralFilesAndStandardInput() throws {
        let dir = FileTree.makeTemporaryDirectory()
        defer { FileTree.remove(dir) }
        let bad = dir + "/bad.yaml"
        FileTree.write(bad, "version: 1\nbindings:\n  - vm: a\n    devices:\n      - pci: \"0000:01:00.0\"\n        grup: hold\n")
        let both = try hostdevctl("validate", example, bad)
        #expect(both.status == 1)
        #expect(both.stdout.contains("\(example): valid (2 bindings, 3 devices)"))
        #expect(both.stderr.contains("\(bad):6:9: error: unknown key 'grup' in a device; did you mean 'group'?"))
        #expect(both.stderr.contains("1 error(s) in \(bad)"))
        #expect(try hostdevctl("validate", example, repositoryRoot + "/manifests/examples/minimal.yaml").status == 0)
        let withOption = try hostdevctl("validate", "-f", bad, example, "--format", "json")
        #expect(withOption.status == 1)
        #expect(try (jsonObject(withOption.stdout)["files"] as? [[String: Any]])?.compactMap { $0["file"] as? String } == [bad, example])
        let stdin = try ChildProcess.run("/bin/sh", ["-c", "\"$0\" validate - < \"$1\"", BuiltProducts.hostdevctl, example])
        #expect(stdin.status == 0)
        #expect(stdin.stdout == "<stdin>: valid (2 bindings, 3 devices)\n")
        let badStdin = try ChildProcess.run("/bin/sh", ["-c", "\"$0\" validate --format json - < \"$1\"", BuiltProducts.hostdevctl, bad])
        #expect(badStdin.status == 1)
        try expectValid("validate", badStdin.stdout)
        let files = try #require(try jsonObject(badStdin.stdout)["files"] as? [[String: Any]])
        #expect(files.first?["file"] as? String == "-")
        #expect((files.first?["errors"] as? [[String: Any]])?.first?["line"] as? Int == 6)
        #expect(try hostdevctl("validate", "-", "-").status == 64, "stdin twice is a usage error")
    }

    @Test func checkSuggestsTheVMNameLibvirtKnows() throws {
        let tree = SysfsTree.workstation()
        let dir = FileTree.makeTemporaryDirectory()
        defer { FileTree.remove(dir) }
        FileTree.write(dir + "/bindings.yaml", "version: 1\nbindings:\n  - vm: win-11\n    devices:\n      - pci: \"0000:01:00.0\"\n")
        let text = try hostdevctl("check", "--sysfs-root", tree.root, "--connect", exampleHostURI, "--manifest", dir + "/bindings.yaml")
        #expect(text.stdout.contains("warn  VM 'win-11' is not defined in libvirt; did you mean 'win11'?"), "\(text.stdout)\(text.stderr)")
        let json = try hostdevctl("check", "--sysfs-root", tree.root, "--connect", exampleHostURI, "--manifest", dir + "/bindings.yaml", "--format", "json")
        #expect(json.status == text.status)
        try expectValid("check", json.stdout)
        let findings = try #require(try jsonObject(json.stdout)["findings"] as? [[String: Any]])
        #expect(findings.contains { $0["check"] as? String == "vm" && $0["vm"] as? String == "win-11" })
        #expect(findings.contains { $0["check"] as? String == "iommu-group" && $0["device"] as? String == "pci 0000:01:00.0" })
        // plan and status say the same.
        let plan = try hostdevctl("plan", "--sysfs-root", tree.root, "--connect", exampleHostURI, "--manifest", dir + "/bindings.yaml", "--state-dir", dir + "/state")
        #expect(plan.stdout.contains("VM 'win-11' is not defined in libvirt; did you mean 'win11'?"), "\(plan.stdout)\(plan.stderr)")
        let status = try hostdevctl("status", "--live", "--sysfs-root", tree.root, "--connect", exampleHostURI, "--manifest", dir + "/bindings.yaml", "--state-dir", dir + "/state")
        #expect(status.stdout.contains("did you mean 'win11'?"))
    }

    @Test func describeRejectsWhatIsNotAPCIDevice() throws {
        let result = try hostdevctl("describe", "usb 1:4")
        #expect(result.status == 64)
        #expect(result.stderr.contains("'usb 1:4' is not a PCI device; write it as 0000:0c:00.0, 0c:00.0 or pci_0000_0c_00_0"))
        // release takes the same forms.
        let tree = SysfsTree.workstation()
        let state = FileTree.makeTemporaryDirectory()
        defer { FileTree.remove(state) }
        let release = try hostdevctl(
            "release", "pci_0000_0c_00_0", "--sysfs-root", tree.root, "--connect", exampleHostURI, "--state-dir", state, "--manifest", state + "/none.yaml")
        #expect(release.status == 1)
        #expect(release.stderr.contains("error: not releasing 0000:0c:00.0: no such PCI device on this host"), "\(release.stderr)")
    }
}

/// The daemon remembers its last actions per device in status.json, across
/// restarts, and `describe` shows them.
@Suite struct DaemonHistoryTests {
    @Test func reconcileRecordsHistoryThatDescribeShows() throws {
        let tree = SysfsTree.workstation()
        let state = FileTree.makeTemporaryDirectory(prefix: "hostdev-history")
        defer { FileTree.remove(state) }
        let nic = PCIAddress("0000:00:05.0")!
        tree.addPCI(.init(nic.description, vendor: "8086", device: "10d3", classCode: 0x020000, driver: "e1000e", iommuGroup: 31))
        FileTree.write(state + "/bindings.yaml", "version: 1\nbindings:\n  - vm: win11\n    devices:\n      - pci: \"0000:00:05.0\"\n")
        let reconciler = testReconciler(tree: tree, state: state)
        reconciler.writer = FakeKernel(tree: tree)
        reconciler.now = { 3_600 }
        _ = reconciler.reconcile([.all])
        #expect(tree.driver(of: nic) == "vfio-pci")
        let status = try #require(FileTree.read(state + "/status.json"))
        try expectValid("status", status)
        let history = try #require(Reconciler.history(inStatusFile: state + "/status.json"))
        #expect(history.of("pci 0000:00:05.0").map(\.action) == ["bind", "attachConfig"])
        #expect(history.of("pci 0000:00:05.0").allSatisfy { $0.outcome == "done" && $0.time == 3_600 })
        // A restarted daemon starts from the history it wrote.
        #expect(testReconciler(tree: tree, state: state).history == history)

        let describe = try hostdevctl(
            "describe", "0000:00:05.0", "--sysfs-root", tree.root, "--connect", exampleHostURI, "--manifest", state + "/bindings.yaml",
            "--state-dir", state, "--status-file", state + "/status.json")
        #expect(describe.status == 0, "\(describe.stderr)")
        #expect(describe.stdout.contains("driver:      vfio-pci; bound by hostdevd, gives back to e1000e"), "\(describe.stdout)")
        #expect(describe.stdout.contains("claimed by:  win11 in \(state)/bindings.yaml (named directly)"))
        #expect(describe.stdout.contains("history:     01:00:00 UTC done bind 0000:00:05.0 to vfio-pci"))
        // libvirt's test driver gives each process its own copy of the
        // domains: this one has not seen the daemon's config edit.
        #expect(describe.stdout.contains("condition:   Pending: to be added to win11's config"))
    }
}

extension DaemonHistoryTests {
    /// Before any valid manifest the status has no conditions, and still matches the schema.
    @Test func statusWithoutAManifestMatchesTheSchema() throws {
        let tree = SysfsTree.workstation()
        let state = FileTree.makeTemporaryDirectory(prefix: "hostdev-nomanifest")
        defer { FileTree.remove(state) }
        let reconciler = testReconciler(tree: tree, state: state, manifest: "missing.yaml")
        _ = reconciler.reconcile([.all])
        let status = try #require(FileTree.read(state + "/status.json"))
        try expectValid("status", status)
        let object = try jsonObject(status)
        #expect(object["source"] as? String == "daemon" && object["exitCode"] as? Int == 3 && object["bindings"] == nil)
        #expect((object["summary"] as? String)?.hasPrefix("waiting for a valid manifest") == true)
    }
}

@Suite(.serialized, .enabled(if: RealComponent.libvirtd.shouldRun, "libvirtd missing: apt-get install libvirt-daemon"))
struct ApplyJSONLinesTests {
    /// One object per completed step as it completes, then the result;
    /// every line valid against the apply schema.
    @Test func applyStreamsStepsThenTheResult() throws {
        let daemon = try LibvirtDaemon()
        defer { daemon.stop() }
        let rig = try ApplyRig(daemon: daemon)
        let result = try rig.apply("--format", "json")
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        try expectValid("apply", result.stdout)
        let lines = try result.stdout.split(separator: "\n").map { try jsonObject(String($0)) }
        #expect(lines.count == 11)
        #expect(lines.dropLast().allSatisfy { $0["kind"] as? String == "step" && $0["outcome"] as? String == "done" })
        #expect(lines.dropLast().compactMap { $0["order"] as? Int } == Array(1...10))
        let gpuBind = try #require(lines.first { $0["action"] as? String == "bind" && $0["device"] as? String == "pci 0000:01:00.0" })
        #expect(gpuBind["driver"] as? [String: String] == ["from": "nouveau", "to": "vfio-pci"])
        #expect(gpuBind["vm"] as? String == "win11")
        let last = try #require(lines.last)
        #expect(last["kind"] as? String == "result" && last["exitCode"] as? Int == 0 && last["steps"] as? Int == 10)
        let again = try rig.apply("--format", "json")
        try expectValid("apply", again.stdout)
        #expect(try jsonObject(again.stdout)["steps"] as? Int == 0)
    }
}
