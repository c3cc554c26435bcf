import HostdevCore
import HostdevManifest
import Testing

func decode(_ yaml: String) throws(ManifestErrors) -> Manifest { try ManifestDecoder.decode(yaml, file: "m.yaml") }

func diagnostics(_ yaml: String) -> [String] {
    do {
        _ = try decode(yaml)
        return []
    } catch {
        return error.diagnostics.map(\.description)
    }
}

@Suite struct ManifestDecoderTests {
    @Test func decodesEveryField() throws {
        let manifest = try decode(
            """
            version: 1
            host:
              orphans: keep
              protect: ["0000:00:02.0"]
              sriov:
                - pf: "0000:03:00.0"
                  numvfs: 8
            bindings:
              - vm: win11
                release: onStop
                live: true
                devices:
                  - pci: "0000:01:00.0"
                    group: hold
                  - pci: {vendor: "10de", device: "0x1b80", index: 1}
                  - usb: {vendor: "046d", product: "c52b"}
                  - usb: {bus: 1, device: 4}
            """)
        #expect(manifest.host.orphans == .keep)
        #expect(manifest.host.protect == [PCIAddress("0000:00:02.0")!])
        #expect(manifest.host.sriov.map(\.numVFs) == [8])
        let binding = try #require(manifest.bindings.first)
        #expect(binding.vm == "win11" && binding.release == .onStop && binding.live)
        #expect(binding.devices.map(\.selector) == [
            .pci(PCIAddress("0000:01:00.0")!), .pciID(vendor: 0x10de, device: 0x1b80, index: 1),
            .usbID(vendor: 0x046d, product: 0xc52b, index: nil), .usbAddress(bus: 1, device: 4),
        ])
        #expect(binding.devices.map(\.group) == [.hold, .attach, .attach, .attach])
        #expect(binding.devices[0].location == SourceLocation(file: "m.yaml", line: 13, column: 9))
        #expect(manifest.fingerprint != nil)
    }

    @Test func jsonIsAcceptedAsYAML() throws {
        let manifest = try decode(#"{"version": 1, "bindings": [{"vm": "a", "devices": [{"pci": "01:00.0"}]}]}"#)
        #expect(manifest.bindings[0].devices[0].selector == .pci(PCIAddress("0000:01:00.0")!))
        #expect(manifest.bindings[0].release == .never && !manifest.bindings[0].live)
    }

    /// Each row: a broken manifest and the diagnostics it must produce, all at once.
    @Test(arguments: [
        ("version: 2\n", ["m.yaml:1:10: error: unsupported manifest version 2; this hostdevd reads version 1"]),
        ("bindings: []\n", ["m.yaml:1:1: error: missing 'version'; add 'version: 1' at the top"]),
        ("version: 1\nbindngs: []\n", ["m.yaml:2:1: error: unknown key 'bindngs' in the manifest; did you mean 'bindings'?"]),
        ("version: 1\nbindings:\n  - vm: a\n    devices:\n      - pci: \"0000:01:00\"\n",
            ["m.yaml:5:14: error: '0000:01:00' is not a PCI address; write it as lspci -D does, DDDD:BB:SS.F, e.g. \"0000:01:00.0\" (quoted)"]),
        ("version: 1\nbindings:\n  - vm: a\n    release: sometimes\n    devices: [{pci: \"01:00.0\"}]\n",
            ["m.yaml:4:14: error: release must be one of never, onStop, not 'sometimes'"]),
        ("version: 1\nbindings:\n  - vm: a\n    devices: [{pci: {vendor: \"10de\", device: \"1b8\"}}]\n",
            ["m.yaml:4:46: error: device '1b8' is not a 4-digit hex ID; quote it and use four hex digits as lspci -nn shows, e.g. \"10de\""]),
        ("version: 1\nbindings:\n  - vm: a\n    devices: [{pci: \"01:00.0\"}]\n  - vm: a\n    devices: [{pci: \"02:00.0\"}]\n",
            ["m.yaml:5:5: error: VM 'a' has a second binding; merge it into the first, at line 3"]),
        ("version: 1\nbindings:\n  - vm: a\n    devices: [{pci: \"01:00.0\"}]\n  - vm: b\n    devices: [{pci: \"0000:01:00.0\"}]\n",
            ["m.yaml:6:15: error: pci 0000:01:00.0 is named twice; it is already claimed by 'a' at line 4; a device belongs to one VM"]),
        ("version: 1\nbindings:\n  - vm: a\n    live: maybe\n    devices: [{usb: {vendor: \"046d\"}}]\n", [
            "m.yaml:4:11: error: live must be true or false, not 'maybe'",
            "m.yaml:5:21: error: usb needs either {vendor, product} or {bus, device}; e.g. usb: {vendor: \"046d\", product: \"c52b\"} or usb: {bus: 1, device: 4}",
        ]),
        ("version: 1\nbindings:\n  - devices: [{pci: \"01:00.0\", usb: {bus: 1, device: 2}}]\n", [
            "m.yaml:3:5: error: binding without 'vm'; name the libvirt domain: vm: win11",
        ]),
        ("version: 1\nbindings:\n  - vm: a\n    devices: [{usb: {bus: 1, device: 2}, group: hold}]\n", [
            "m.yaml:4:49: error: 'group' applies to PCI devices only; USB devices have no IOMMU group; remove it",
        ]),
        ("version: 1\nbindings:\n  - vm: a\n    devices:\n     - pci: [\n", ["m.yaml:6:1: error: YAML syntax: did not find expected node content; check indentation and quoting around here"]),
        ("", ["m.yaml:1:1: error: the manifest is empty; start with 'version: 1'"]),
        ("version: 1\nhost:\n  sriov:\n    - pf: \"0000:03:00.0\"\n      numvfs: -1\n", ["m.yaml:5:15: error: numvfs must be 0 or more, not -1"]),
    ])
    func reportsEveryErrorWithItsPlace(yaml: String, expected: [String]) {
        #expect(diagnostics(yaml) == expected)
    }
}

@Suite struct DeviceSelectorTests {
    @Test(arguments: [
        (DeviceSelector.pci(PCIAddress("0000:01:00.0")!), false),
        (.pciID(vendor: 0x10de, device: 0x1b80, index: nil), false),
        (.usbID(vendor: 0x046d, product: 0xc52b, index: 0), true),
        (.usbAddress(bus: 1, device: 4), true),
    ])
    func usbOrNot(selector: DeviceSelector, usb: Bool) {
        #expect(selector.isUSB == usb)
    }
}
