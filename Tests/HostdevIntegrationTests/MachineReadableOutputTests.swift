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

    @Test func describeRejectsWhatNamesNoDevice() throws {
        let result = try hostdevctl("describe", "win11")
        #expect(result.status == 64)
        #expect(result.stderr.contains("'win11' names no device; write a PCI address (0000:0c:00.0, 0c:00.0, pci_0000_0c_00_0), a USB device"), "\(result.stderr)")
        // release takes the same forms.
        let tree = SysfsTree.workstation()
        let state = FileTree.makeTemporaryDirectory()
        defer { FileTree.remove(state) }
        let release = try hostdevctl(
            "release", "pci_0000_0c_00_0", "--sysfs-root", tree.root, "--connect", exampleHostURI, "--state-dir", state, "--manifest", state + "/none.yaml")
        #expect(release.status == 1)
        #expect(release.stderr.contains("error: not releasing pci 0000:0c:00.0: no such PCI device on this host"), "\(release.stderr)")
    }
}

/// `describe` of a USB, a mediated and a SCSI device on a built host: each
/// form a person types, the text, and JSON that matches the schema.
@Suite struct DescribeEveryKindTests {
    @Test func describesUSBMediatedAndSCSIDevices() throws {
        let tree = SysfsTree.workstation()
        let igpu = PCIAddress("0000:00:02.0")!
        tree.addMdevParent(igpu, types: [.init("i915-GVTg_V5_4", name: "GVTg_V5_4", description: "resolution: 1920x1200", available: 1)])
        let uuid = "4b20d080-1b54-4048-85b3-a6a62d165c01"
        tree.addSCSIDisk(under: tree.pciPath(PCIAddress("0000:00:17.0")!), host: 1, disk: "sdb", generic: "sg1", vendor: "ATA", model: "ST4000VN008")
        FileTree.makeDirectory(tree.host("/dev/disk/by-id"))
        FileTree.link(tree.host("/dev/disk/by-id/wwn-0x5000c500a1b2c3d4"), to: "../../sdb")
        let state = FileTree.makeTemporaryDirectory(prefix: "hostdev-describe")
        defer { FileTree.remove(state) }
        FileTree.write(state + "/bindings.yaml", """
            version: 1
            bindings:
              - vm: win11
                devices:
                  - usb: {vendor: "046d", product: "c52b"}
                  - mdev: {parent: "0000:00:02.0", type: "i915-GVTg_V5_4", uuid: "\(uuid)"}
                  - scsi: "/dev/disk/by-id/wwn-0x5000c500a1b2c3d4"
            """)
        let options = ["--sysfs-root", tree.root, "--connect", exampleHostURI, "--manifest", state + "/bindings.yaml", "--state-dir", state, "--status-file", state + "/none.json"]
        func run(_ device: String, json: Bool = false) throws -> (status: Int32, stdout: String, stderr: String) {
            try ChildProcess.run(BuiltProducts.hostdevctl, ["describe", device] + options + (json ? ["--format", "json"] : []))
        }
        // Each row: what is typed → lines the text must hold.
        let rows: [(String, [String])] = [
            ("usb 1:4", ["usb 1:4  usb_1_4", "Logitech USB Receiver [046d:c52b], bus 1 device 4, port 1-4", "controller:  pci 0000:00:14.0", "IOMMU group: 3, alone",
                "claimed by:  win11 in \(state)/bindings.yaml (named as usb 046d:c52b)", 
                // The example host's win11 has the receiver in a hand-written <hostdev>: hostdevd leaves it, and adds none.
                "used by:     shut-off win11 through a hand-written <hostdev>", "condition:   Ready"]),
            ("usb_1_4", ["usb 1:4  usb_1_4"]),
            ("usb 046d:c52b", ["usb 1:4  usb_1_4"]),
            (uuid, ["mdev \(uuid)", "mediated device of type i915-GVTg_V5_4 (GVTg_V5_4: resolution: 1920x1200), 1 more can be created",
                "parent:      pci 0000:00:02.0", "exists:      no (not created yet)", "condition:   Pending: to be created for win11"]),
            ("/dev/disk/by-id/wwn-0x5000c500a1b2c3d4", ["scsi 1:0:0:0", "ATA ST4000VN008, disk", "block:       /dev/sdb (/dev/disk/by-id/wwn-0x5000c500a1b2c3d4), generic /dev/sg1",
                "controller:  pci 0000:00:17.0", "claimed by:  win11 in \(state)/bindings.yaml (named as scsi /dev/disk/by-id/wwn-0x5000c500a1b2c3d4)"]),
            ("scsi 0:0:0:0", ["used by:     the host (storage): 0000:00:17.0 → sda → sda1, mounted at /srv/data set", "claimed by:  no binding in"]),
        ]
        for (device, lines) in rows {
            let text = try run(device)
            #expect(text.status == 0, "\(device): \(text.stderr)")
            for line in lines { #expect(text.stdout.contains(line), "\(device): no '\(line)' in\n\(text.stdout)") }
            let json = try run(device, json: true)
            #expect(json.status == 0)
            try expectValid("describe", json.stdout)
        }
        let absent = try run("usb 1:5")
        #expect(absent.status == 1)
        #expect(absent.stdout == "usb 1:5: no such USB device on this host; did you mean 'usb 1:4'?\n")
        let absentJSON = try run("usb 1:5", json: true)
        #expect(absentJSON.status == 1)
        try expectValid("describe", absentJSON.stdout)
        #expect(try jsonObject(absentJSON.stdout)["suggestion"] as? String == "usb 1:4")

        // Each kind's document fails the schema when broken: the check is not vacuous.
        for device in ["usb 1:4", uuid, "scsi 1:0:0:0"] {
            let object = try jsonObject(try run(device, json: true).stdout)
            var withoutKind = object
            withoutKind["deviceKind"] = nil
            #expect(try !schemaCheck("describe", try jsonText(withoutKind)).valid, "\(device) without its deviceKind")
            var asPCI = object
            asPCI["deviceKind"] = "pci"
            #expect(try !schemaCheck("describe", try jsonText(asPCI)).valid, "\(device) as a PCI function")
            var extra = object
            extra["className"] = "VGA compatible controller"
            #expect(try !schemaCheck("describe", try jsonText(extra)).valid, "\(device) with a PCI field")
        }
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
