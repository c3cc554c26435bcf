import HostdevCore
import Testing

@Suite struct SuggestionTests {
    @Test(arguments: [
        // name typed, names known, suggestion
        ("win-11", ["win11", "build-runner"], "win11"),
        ("WIN11", ["win11"], "win11"),
        ("win1", ["win11", "win10"], "win10"),  // a tie goes to the first in sorted order
        ("buildrunner", ["build-runner"], "build-runner"),
        ("win12", ["win11", "win12x"], "win11"),
        ("gaming", ["win11", "build-runner"], nil),  // nothing close
        ("ab", ["xy"], "xy"),  // two substitutions: within the limit of 2
        ("abc", ["xyz"], nil),  // three: too far
        ("win11", ["win11"], nil),  // the name itself is no suggestion
        ("", ["a", "abc"], "a"),
    ] as [(String, [String], String?)])
    func closestKnownName(name: String, known: [String], expected: String?) {
        #expect(Suggestion.closest(to: name, among: known) == expected, "\(name) among \(known)")
    }

    @Test(arguments: [("kitten", "sitting", 3), ("", "abc", 3), ("abc", "", 3), ("Win11", "win11", 0), ("win-11", "win11", 1), ("flaw", "lawn", 2)])
    func editDistance(a: String, b: String, distance: Int) {
        #expect(Suggestion.editDistance(a, b) == distance)
        #expect(Suggestion.editDistance(b, a) == distance)
    }

    @Test func longNamesGetNoSuggestion() {
        let long = String(repeating: "a", count: 65)
        #expect(Suggestion.closest(to: long, among: [long + "b"]) == nil)
        #expect(Suggestion.hint(for: "win-11", among: ["win11"]) == "; did you mean 'win11'?")
        #expect(Suggestion.hint(for: "gaming", among: ["win11"]) == "")
    }

    @Test func undefinedVMConditionSuggestsTheDefinedOne() {
        let result = plan([binding("win-11", DeviceClaim(.pci(gpu)))])
        #expect(result.bindings["win-11"] == .pending("VM 'win-11' is not defined in libvirt; did you mean 'win11'?; its devices are reserved per 'release'"))
        let far = plan([binding("gaming", DeviceClaim(.pci(gpu)))])
        #expect(far.bindings["gaming"] == .pending("VM 'gaming' is not defined in libvirt; its devices are reserved per 'release'"))
    }

    @Test func checkFindsUndefinedVMs() {
        let manifest = Manifest(bindings: [binding("win-11", DeviceClaim(.pci(gpu))), binding("ci", DeviceClaim(.pci(port0)))])
        let findings = CheckReport.undefinedVMs(manifest, defined: ["win11", "ci"])
        #expect(findings.map(\.what) == ["VM 'win-11' is not defined in libvirt; did you mean 'win11'?"])
        #expect(findings.map(\.verdict) == [.warn])
    }
}

@Suite struct DeviceIdentifierTests {
    @Test(arguments: ["0000:0c:00.0", "0c:00.0", "pci_0000_0c_00_0", "pci 0000:0c:00.0", "0000:0C:00.0"])
    func everyFormOfOnePCIAddress(text: String) {
        #expect(DeviceIdentifier.pciAddress(text) == PCIAddress("0000:0c:00.0"))
    }

    @Test(arguments: ["0c:00", "pci_0000_0c_00", "usb 1:4", "garbage", "0000:0c:20.0"])
    func notPCIAddresses(text: String) {
        #expect(DeviceIdentifier.pciAddress(text) == nil)
    }

    @Test func oneFormPerKind() {
        #expect(DeviceIdentifier.pci(gpu) == "pci 0000:01:00.0")
        #expect(DeviceIdentifier.source(.usbID(vendor: 0x046d, product: 0xc52b)) == "usb 046d:c52b")
        #expect(DeviceIdentifier.source(.usbAddress(bus: 3, device: 2)) == "usb 3:2")
        let inventory = workstation().inventory
        #expect(DeviceIdentifier.of(inventory.device(named: "usb_1_4")!) == "usb 1:4")
        #expect(DeviceIdentifier.of(inventory.device(at: gpu)!) == "pci 0000:01:00.0")
        #expect(DeviceIdentifier.of(HostDevice(name: "net_eth0", capability: .net)) == nil)
        // The plan's condition keys and step devices are the same strings.
        let result = plan([binding("win11", DeviceClaim(.pci(gpu)), DeviceClaim(.usbID(vendor: 0x046d, product: 0xc52b, index: nil)))])
        #expect(Set(result.devices.keys) == ["pci 0000:01:00.0", "pci 0000:01:00.1", "usb 046d:c52b"])
        #expect(Set(result.steps.map(\.action.device)).isSubset(of: Set(result.devices.keys)))
    }
}

@Suite struct PlanDocumentTests {
    @Test func stepsAreObjectsWithDriversAndTheVerdict() {
        let result = plan([binding("win-11", DeviceClaim(.pci(gpu)))])
        let text = PlanDocument(plan: result, inventory: workstation().inventory).json.rendered()
        #expect(text == """
            {
              "kind": "plan",
              "verdict": "changes",
              "exitCode": 2,
              "steps": [
                {
                  "order": 1,
                  "action": "bind",
                  "device": "pci 0000:01:00.0",
                  "vm": "win-11",
                  "driver": {
                    "from": "nouveau",
                    "to": "vfio-pci"
                  },
                  "summary": "bind 0000:01:00.0 to vfio-pci",
                  "reason": "\(result.steps[0].reason)"
                },
                {
                  "order": 2,
                  "action": "bind",
                  "device": "pci 0000:01:00.1",
                  "vm": "win-11",
                  "driver": {
                    "from": "snd_hda_intel",
                    "to": "vfio-pci"
                  },
                  "summary": "bind 0000:01:00.1 to vfio-pci",
                  "reason": "\(result.steps[1].reason)"
                }
              ],
              "bindings": {
                "win-11": {
                  "condition": "Pending",
                  "reason": "VM 'win-11' is not defined in libvirt; did you mean 'win11'?; its devices are reserved per 'release'"
                }
              },
              "devices": {
                "pci 0000:01:00.0": {
                  "condition": "Pending",
                  "reason": "\(result.devices["pci 0000:01:00.0"]!.reason!)"
                },
                "pci 0000:01:00.1": {
                  "condition": "Pending",
                  "reason": "\(result.devices["pci 0000:01:00.1"]!.reason!)"
                }
              },
              "notes": []
            }
            """)
    }

    @Test(arguments: [
        (Plan(), "converged", 0),
        (Plan(bindings: ["a": .blocked("x")]), "waiting", 3),
        (Plan(steps: [Step(.setNumVFs(pf: pf, count: 4), reason: "r")], bindings: ["a": .ready]), "changes", 2),
    ])
    func verdictAndExitCode(plan: Plan, verdict: String, exitCode: Int) {
        let text = PlanDocument(plan: plan, inventory: nil).json.compact()
        #expect(text.hasPrefix("{\"kind\":\"plan\",\"verdict\":\"\(verdict)\",\"exitCode\":\(exitCode),"))
    }

    @Test func restoreAndSRIOVSteps() {
        let steps = StepDocument.steps(
            of: Plan(steps: [Step(.restore(gpu, driver: nil), reason: "orphan"), Step(.setNumVFs(pf: pf, count: 4), reason: "manifest")]),
            inventory: workstation(drivers: [gpu: "vfio-pci"]).inventory)
        #expect(steps.map { $0.json.compact() } == [
            #"{"order":1,"action":"restore","device":"pci 0000:01:00.0","driver":{"from":"vfio-pci","to":null},"summary":"release 0000:01:00.0 to its host driver","reason":"orphan"}"#,
            #"{"order":2,"action":"setNumVFs","device":"pci 0000:03:00.0","numVFs":4,"summary":"set 0000:03:00.0 sriov_numvfs to 4","reason":"manifest"}"#,
        ])
    }

    @Test func applyRecordsAndResult() {
        let step = StepDocument(order: 3, step: Step(.attachConfig(vm: "win11", .ours(.usbID(vendor: 0x046d, product: 0xc52b))), reason: "r"), currentDriver: nil)
        #expect(ApplyStepRecord(step: step, outcome: .failed("boom")).json.compact()
            == #"{"kind":"step","outcome":"failed","detail":"boom","order":3,"action":"attachConfig","device":"usb 046d:c52b","vm":"win11","summary":"add <hostdev> usb 046d:c52b to win11's config","reason":"r"}"#)
        #expect(ApplyResultDocument(after: Plan(bindings: ["win11": .ready]), stepsRun: 3, failedSteps: 1).exitCode == 1)
        #expect(ApplyResultDocument(after: Plan(bindings: ["win11": .pending("x")]), stepsRun: 3, failedSteps: 0).exitCode == 3)
        #expect(ApplyResultDocument(after: Plan(bindings: ["win11": .ready]), stepsRun: 3, failedSteps: 0).json.compact()
            == #"{"kind":"result","exitCode":0,"steps":3,"failedSteps":0,"bindings":{"win11":{"condition":"Ready"}},"devices":{},"notes":[]}"#)
    }
}

@Suite struct DeviceHistoryTests {
    func step(_ address: PCIAddress) -> Step { Step(.bind(address, driver: "vfio-pci", vm: "win11"), reason: "r") }

    @Test func keepsTheLastActionsPerDevice() {
        var history = DeviceHistory(perDevice: 3, devices: 10)
        for t in 1...5 { history.record(step(gpu), outcome: t == 5 ? .failed("EBUSY") : .done, time: t) }
        #expect(history.of("pci 0000:01:00.0").map(\.time) == [3, 4, 5])
        #expect(history.of("pci 0000:01:00.0").last == DeviceHistory.Entry(
            time: 5, action: "bind", summary: "bind 0000:01:00.0 to vfio-pci", outcome: "failed", detail: "EBUSY"))
        #expect(history.of("pci 0000:01:00.1").isEmpty)
    }

    @Test func forgetsTheDeviceActedOnLongestAgo() {
        var history = DeviceHistory(perDevice: 3, devices: 2)
        history.record(step(gpu), outcome: .done, time: 1)
        history.record(step(audio), outcome: .done, time: 2)
        history.record(step(gpu), outcome: .done, time: 3)
        history.record(step(nic), outcome: .done, time: 4)
        #expect(Set(history.entries.keys) == ["pci 0000:01:00.0", "pci 0000:00:1f.6"])
    }

    @Test func rendersByDevice() {
        var history = DeviceHistory()
        history.record(step(gpu), outcome: .skipped("an earlier step failed"), time: 7)
        #expect(history.json.compact()
            == #"{"pci 0000:01:00.0":[{"time":7,"action":"bind","summary":"bind 0000:01:00.0 to vfio-pci","outcome":"skipped","detail":"an earlier step failed"}]}"#)
    }
}

@Suite struct DescribeDocumentTests {
    @Test func oneDeviceEndToEnd() {
        let observed = workstation(drivers: [gpu: "vfio-pci"],
            domains: [DomainState(name: "win11", state: .running, active: true, liveHostdevs: [.ours(.pci(gpu))]), DomainState(name: "ci", state: .running)])
        let ledger = Ledger(devices: [gpu: .init(originalDriver: "nouveau", vm: "win11")])
        let manifest = Manifest(bindings: [binding("win11", DeviceClaim(.pci(gpu)))])
        let result = Planner.plan(manifest: manifest, observed: observed, ledger: ledger)
        var history = DeviceHistory()
        history.record(Step(.bind(gpu, driver: "vfio-pci", vm: "win11"), reason: "r"), outcome: .done, time: 60)
        let describe = DescribeDocument(address: gpu, observed: observed, plan: result, ledger: ledger, manifest: "/etc/hostdevd/bindings.yaml", history: history)
        let text = describe.text()
        #expect(text.contains("IOMMU group: 1, with:"))
        #expect(text.contains("pci 0000:01:00.1 on snd_hda_intel"))
        #expect(text.contains("driver:      vfio-pci; bound by hostdevd, gives back to nouveau"))
        #expect(text.contains("used by:     running win11 through hostdevd's <hostdev>"))
        #expect(text.contains("claimed by:  win11 in /etc/hostdevd/bindings.yaml (named directly)"))
        #expect(text.contains("history:     00:01:00 UTC done bind 0000:01:00.0 to vfio-pci"))
        let audioText = DescribeDocument(address: audio, observed: observed, plan: result, ledger: ledger, manifest: "m", history: nil).text()
        #expect(audioText.contains("claimed by:  win11 in m (IOMMU group sibling of 0000:01:00.0, attached)"))
        // Its own condition, not the claimed GPU's.
        #expect(audioText.contains("condition:   \(result.devices["pci 0000:01:00.1"]!)"), "\(audioText)")
        #expect(result.devices["pci 0000:01:00.1"] != result.devices["pci 0000:01:00.0"])
        #expect(audioText.contains("history:     no daemon status file"))
        let json = describe.json.compact()
        #expect(json.contains(#""driver":{"now":"vfio-pci","original":"nouveau","boundByHostdevd":true}"#))
        #expect(json.contains(#""claims":[{"vm":"win11","manifest":"/etc/hostdevd/bindings.yaml","via":"pci 0000:01:00.0","attach":true}]"#))
        #expect(json.contains(#""vmUses":[{"vm":"win11","active":true,"element":"hostdevd's <hostdev>"}]"#))
    }

    @Test func hostUseAndConflictAndAbsence() {
        let observed = workstation()
        let manifest = Manifest(bindings: [binding("win11", DeviceClaim(.pci(nvme))), binding("ci", DeviceClaim(.pci(nvme)))])
        let result = Planner.plan(manifest: manifest, observed: observed, ledger: Ledger())
        let text = DescribeDocument(address: nvme, observed: observed, plan: result, ledger: Ledger(), manifest: "m", history: DeviceHistory()).text()
        #expect(text.contains("used by:     the host (unknown): holds / (nvme0n1p1)"))
        #expect(text.contains("claimed by:  win11 in m"))
        #expect(text.contains("claimed by:  ci in m"))
        #expect(text.contains("condition:   Blocked:"))
        #expect(text.contains("history:     the daemon has not acted on it"))
        let missing = PCIAddress("0000:0c:00.0")!
        let absent = DescribeDocument(address: missing, observed: observed, plan: result, ledger: Ledger(), manifest: "m", history: nil)
        #expect(absent.text() == "pci 0000:0c:00.0: no such PCI device on this host; did you mean 'pci 0000:01:00.0'?\n")
        #expect(absent.json.compact()
            == #"{"kind":"describe","device":"pci 0000:0c:00.0","present":false,"reason":"no such PCI device on this host","suggestion":"pci 0000:01:00.0"}"#)
    }
}

@Suite struct ValidateAndCheckDocumentTests {
    @Test func validateNamesEachFile() {
        let document = ValidateDocument(files: [
            .init(file: "a.yaml", bindings: 1, devices: 2),
            .init(file: "-", problems: [.init(line: 3, column: 5, message: "unknown key 'grup'", hint: "did you mean 'group'?")]),
        ])
        #expect(document.exitCode == 1)
        #expect(document.json.compact() == #"{"kind":"validate","exitCode":1,"files":[{"file":"a.yaml","valid":true,"bindings":1,"devices":2,"errors":[]},{"file":"-","valid":false,"bindings":0,"devices":0,"errors":[{"line":3,"column":5,"message":"unknown key 'grup'","hint":"did you mean 'group'?"}]}]}"#)
        #expect(ValidateDocument(files: [.init(file: "a")]).exitCode == 0)
    }

    @Test func checkTextAndJSON() {
        let report = CheckReport(findings: [
            .init(.pass, check: "iommu", "IOMMU enabled"),
            .init(.fail, check: "vfio-pci", "vfio-pci driver not loaded", remedy: "modprobe vfio-pci"),
        ])
        #expect(report.exitCode == 1)
        #expect(report.text() == "ok    IOMMU enabled\nFAIL  vfio-pci driver not loaded\n      → modprobe vfio-pci\n\n\(CheckReport.advice)\n")
        #expect(report.json.compact().hasPrefix(#"{"kind":"check","exitCode":1,"findings":[{"verdict":"pass","check":"iommu","what":"IOMMU enabled"},"#))
    }
}
