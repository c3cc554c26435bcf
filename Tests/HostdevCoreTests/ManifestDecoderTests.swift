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
        // The shared table's "every field" manifest (ManifestCases.swift),
        // checked here field by field.
        let row = try #require(manifestCases.first { $0.name == "every field" })
        let manifest = try ManifestDecoder.decode(bytes: row.bytes, file: "m.yaml")
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
        #expect(binding.devices.map(\.force) == [[.console, .network], [], [], [.network]])
        #expect(binding.devices[0].location == SourceLocation(file: "m.yaml", line: 13, column: 9))
        #expect(manifest.fingerprint != nil)
    }

    @Test func jsonIsAcceptedAsYAML() throws {
        let manifest = try decode(#"{"version": 1, "bindings": [{"vm": "a", "devices": [{"pci": "01:00.0"}]}]}"#)
        #expect(manifest.bindings[0].devices[0].selector == .pci(PCIAddress("0000:01:00.0")!))
        #expect(manifest.bindings[0].release == .never && !manifest.bindings[0].live)
    }

    @Test func forceHandsOverConsoleAndNetworkPerDevice() throws {
        let manifest = try decode(
            "version: 1\nbindings:\n  - vm: a\n    devices:\n      - pci: \"01:00.0\"\n        force: [network, console]\n      - pci: \"02:00.0\"\n")
        #expect(manifest.bindings[0].devices.map(\.force) == [[.console, .network], []])
    }

    /// Each row of the shared table (ManifestCases.swift): a manifest and the
    /// diagnostics it must produce, all at once; none for a valid one.
    @Test(arguments: manifestCases)
    func reportsEveryErrorWithItsPlace(row: ManifestCase) {
        let result: [String]
        do {
            _ = try ManifestDecoder.decode(bytes: row.bytes, file: "m.yaml")
            result = []
        } catch {
            result = error.diagnostics.map(\.description)
        }
        #expect(result == row.errors)
    }

    @Test func theStringAndTheBytesDecodeAlike() throws {
        let text = manifestCases[1].bytes
        let fromBytes = try ManifestDecoder.decode(bytes: text, file: "m.yaml")
        #expect(try ManifestDecoder.decode(String(decoding: text, as: UTF8.self), file: "m.yaml") == fromBytes)
        #expect(fromBytes.fingerprint == Manifest.fingerprint(of: String(decoding: text, as: UTF8.self)))
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
