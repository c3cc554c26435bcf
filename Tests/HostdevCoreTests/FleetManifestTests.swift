import HostdevCore
import HostdevManifest
import Testing

/// `hosts:` globs: fnmatch(3) semantics without flags.
@Suite struct HostPatternTests {
    @Test(arguments: [
        ("gpu-01", "gpu-01", true),
        ("gpu-01", "gpu-02", false),
        ("gpu-*", "gpu-01", true),
        ("gpu-*", "gpu-", true),
        ("gpu-*", "cpu-01", false),
        ("*", "anything.example.com", true),
        ("*", "", true),
        ("gpu-??", "gpu-01", true),
        ("gpu-??", "gpu-1", false),
        ("gpu-[0-4]*", "gpu-3x", true),
        ("gpu-[0-4]*", "gpu-5x", false),
        ("gpu-[!0-4]", "gpu-5", true),
        ("gpu-[^0-4]", "gpu-3", false),
        ("gpu-[ab]", "gpu-b", true),
        ("gpu-[]]", "gpu-]", true),
        ("gpu-[", "gpu-[", true),
        ("gpu-[", "gpu-x", false),
        ("gpu\\*", "gpu*", true),
        ("gpu\\*", "gpu1", false),
        ("*.lab.example", "h1.lab.example", true),
        ("*.lab.example", "h1.prod.example", false),
        ("a*b*c", "aXXbYYc", true),
        ("a*b*c", "aXXbYY", false),
        ("GPU-*", "gpu-01", false),
    ])
    func matchesLikeFnmatch(pattern: String, host: String, expected: Bool) {
        #expect(HostPattern(pattern).matches(host) == expected, "\(pattern) vs \(host)")
    }

    @Test func literalPatternsNameOneHost() {
        #expect(HostPattern("gpu-01").isLiteral)
        #expect(!HostPattern("gpu-*").isLiteral)
        #expect(!HostPattern("gpu-[12]").isLiteral)
    }

    @Test func aBindingWithoutHostsIsForEveryHost() {
        let everywhere = Binding(vm: "a", devices: [])
        let some = Binding(vm: "a", devices: [], hosts: [HostPattern("gpu-*"), HostPattern("lab1")])
        #expect(everywhere.applies(to: "anything"))
        #expect(some.applies(to: "gpu-07") && some.applies(to: "lab1") && !some.applies(to: "lab2"))
    }

    @Test(arguments: [
        (nil, ["b"], true),
        (["a"], ["a"], true),
        (["a"], ["b"], false),
        (["gpu-*"], ["gpu-01"], true),
        (["gpu-*"], ["cpu-01"], false),
        (["gpu-*"], ["gpu-*"], true),
        // Two globs that overlap only on some names: known once the host is.
        (["gpu-*"], ["*-01"], false),
    ] as [([String]?, [String]?, Bool)])
    func bindingsMayShareAHost(a: [String]?, b: [String]?, expected: Bool) {
        let first = Binding(vm: "x", devices: [], hosts: a.map { $0.map(HostPattern.init) })
        let second = Binding(vm: "x", devices: [], hosts: b.map { $0.map(HostPattern.init) })
        #expect(first.mayShareAHost(with: second) == expected)
        #expect(second.mayShareAHost(with: first) == expected)
    }
}

/// The main manifest and its drop-ins, merged (pure: the parts are given).
@Suite struct ManifestPartsTests {
    static let main = "/etc/hostdevd/bindings.yaml"
    static func dropIn(_ name: String) -> String { "/etc/hostdevd/bindings.d/" + name }

    func part(_ file: String, _ text: String) -> ManifestPart { ManifestPart(file: file, bytes: Array(text.utf8)) }

    func binding(_ vm: String, _ pci: String, hosts: String? = nil) -> String {
        "version: 1\nbindings:\n  - vm: \(vm)\n" + (hosts.map { "    hosts: \($0)\n" } ?? "") + "    devices:\n      - pci: \"\(pci)\"\n"
    }

    func errors(_ parts: [ManifestPart], host: String? = nil) -> [String] {
        do {
            _ = try ManifestDecoder.decode(parts: parts, host: host)
            return []
        } catch {
            return error.diagnostics.map(\.description)
        }
    }

    @Test func dropInsMergeInFileNameOrderAfterTheMainFile() throws {
        let manifest = try ManifestDecoder.decode(parts: [
            part(Self.main, binding("main", "0000:01:00.0")),
            part(Self.dropIn("20-b.yaml"), binding("b", "0000:03:00.0")),
            part(Self.dropIn("10-a.yaml"), binding("a", "0000:02:00.0")),
        ])
        #expect(manifest.bindings.map(\.vm) == ["main", "a", "b"])
        #expect(manifest.bindings[1].location?.file == Self.dropIn("10-a.yaml"))
    }

    /// Without drop-ins the fingerprint is the main file's, as before
    /// drop-ins existed (an emergency release recorded then still holds).
    @Test func fingerprintCoversEveryFile() throws {
        let text = binding("a", "0000:01:00.0")
        let alone = try ManifestDecoder.decode(parts: [part(Self.main, text)])
        #expect(alone.fingerprint == Manifest.fingerprint(of: text))
        let with = try ManifestDecoder.decode(parts: [part(Self.main, text), part(Self.dropIn("b.yaml"), binding("b", "0000:02:00.0"))])
        let edited = try ManifestDecoder.decode(parts: [part(Self.main, text), part(Self.dropIn("b.yaml"), binding("b", "0000:03:00.0"))])
        #expect(with.fingerprint != alone.fingerprint && with.fingerprint != edited.fingerprint)
    }

    @Test(arguments: [
        // A device in two files: both files and lines named.
        ("device across files", ["a", "b"], [String?.none, nil], [
            "/etc/hostdevd/bindings.d/20-y.yaml:5:9: error: pci 0000:01:00.0 is named twice; it is already claimed by 'a' at /etc/hostdevd/bindings.d/10-x.yaml:5; a device belongs to one VM",
        ]),
        // A VM in two files.
        ("vm across files", ["a", "a"], [nil, nil], [
            "/etc/hostdevd/bindings.d/20-y.yaml:3:5: error: VM 'a' has a second binding; merge it into the first, at /etc/hostdevd/bindings.d/10-x.yaml:3",
            "/etc/hostdevd/bindings.d/20-y.yaml:5:9: error: pci 0000:01:00.0 is named twice; it is already claimed by 'a' at /etc/hostdevd/bindings.d/10-x.yaml:5; a device belongs to one VM",
        ]),
        // The same device and VM for different hosts: a fleet's manifest.
        ("disjoint hosts", ["a", "a"], ["[gpu-01]", "[gpu-02]"], []),
        // A literal host inside the other's glob: the same host.
        ("overlapping hosts", ["a", "b"], ["[gpu-01]", "[\"gpu-*\"]"], [
            "/etc/hostdevd/bindings.d/20-y.yaml:6:9: error: pci 0000:01:00.0 is named twice; it is already claimed by 'a' at /etc/hostdevd/bindings.d/10-x.yaml:6; a device belongs to one VM",
        ]),
    ] as [(String, [String], [String?], [String])])
    func duplicatesAcrossFiles(name: String, vms: [String], hosts: [String?], expected: [String]) {
        let parts = [
            part(Self.main, "version: 1\n"),
            part(Self.dropIn("20-y.yaml"), binding(vms[1], "0000:01:00.0", hosts: hosts[1])),
            part(Self.dropIn("10-x.yaml"), binding(vms[0], "0000:01:00.0", hosts: hosts[0])),
        ]
        #expect(errors(parts) == expected, "\(name)")
    }

    /// A fleet's manifest: one device bound on each of 8,000 hosts, one
    /// binding per host, is not compared pairwise: it decodes about as fast
    /// as 8,000 bindings of different devices (pairwise: 32 million checks).
    @Test func aBindingPerHostOfALargeFleetIsNotComparedPairwise() throws {
        func manifest(_ binding: (Int) -> String) -> [ManifestPart] {
            [part(Self.main, "version: 1\nbindings:\n" + (0..<8_000).map(binding).joined())]
        }
        let fleet = manifest { "  - vm: win11\n    hosts: [node-\($0)]\n    devices: [{pci: \"01:00.0\"}]\n" }
        let baseline = manifest { "  - vm: vm\($0)\n    devices: [{pci: {vendor: \"10de\", device: \"1b80\", index: \($0)}}]\n" }
        let clock = ContinuousClock()
        let baselineTime = try clock.measure { _ = try ManifestDecoder.decode(parts: baseline) }
        let fleetTime = try clock.measure { _ = try ManifestDecoder.decode(parts: fleet, host: "node-77") }
        #expect(fleetTime < baselineTime * 2 + .milliseconds(300), "fleet \(fleetTime), baseline \(baselineTime)")
        #expect(try ManifestDecoder.decode(parts: fleet, host: "node-77").bindings.count == 1)
        // One more binding of that device for every host collides with the first.
        let everyHost = [part(Self.main, String(decoding: fleet[0].bytes, as: UTF8.self) + "  - vm: other\n    devices: [{pci: \"01:00.0\"}]\n")]
        #expect(errors(everyHost).count == 1)
        #expect(errors(everyHost).first?.contains("already claimed by 'win11' at line 5") == true)
    }

    /// `gpu-*` and `*-01` can both match one host: found once the host is known.
    @Test func twoGlobsMatchingTheHostConflictThere() {
        let parts = [
            part(Self.main, binding("a", "0000:01:00.0", hosts: "[\"gpu-*\"]")),
            part(Self.dropIn("x.yaml"), binding("b", "0000:01:00.0", hosts: "[\"*-01\"]")),
        ]
        #expect(errors(parts).isEmpty)
        #expect(errors(parts, host: "gpu-02").isEmpty)
        #expect(errors(parts, host: "gpu-01") == [
            "/etc/hostdevd/bindings.d/x.yaml:6:9: error: pci 0000:01:00.0 is named twice; it is already claimed by 'a' at /etc/hostdevd/bindings.yaml:6 (both are for host 'gpu-01'); a device belongs to one VM",
        ])
    }

    @Test func aHostGetsItsBindingsAndTheUnselectedOnes() throws {
        let parts = [
            part(Self.main, "version: 1\nhost:\n  orphans: keep\n" + binding("all", "0000:09:00.0").dropFirst("version: 1\n".count)),
            part(Self.dropIn("gpu.yaml"), binding("win11", "0000:01:00.0", hosts: "[\"gpu-*\", lab]")),
            part(Self.dropIn("cpu.yaml"), binding("win11", "0000:01:00.0", hosts: "[\"cpu-*\"]")),
        ]
        #expect(try ManifestDecoder.decode(parts: parts, host: "gpu-7").bindings.map(\.vm) == ["all", "win11"])
        #expect(try ManifestDecoder.decode(parts: parts, host: "gpu-7").bindings[1].location?.file == Self.dropIn("gpu.yaml"))
        #expect(try ManifestDecoder.decode(parts: parts, host: "cpu-1").bindings[1].location?.file == Self.dropIn("cpu.yaml"))
        #expect(try ManifestDecoder.decode(parts: parts, host: "other").bindings.map(\.vm) == ["all"])
        #expect(try ManifestDecoder.decode(parts: parts, host: "other").host.orphans == .keep)
        #expect(try ManifestDecoder.decode(parts: parts).bindings.count == 3)
    }

    /// One bad file rejects the whole manifest, every file's errors reported, each naming its file.
    @Test func aBadDropInRejectsTheWholeManifest() {
        let parts = [
            part(Self.main, binding("a", "0000:01:00.0")),
            part(Self.dropIn("b.yaml"), "version: 1\nbindings:\n  - vm: b\n    devcies: []\n"),
            part(Self.dropIn("c.yaml"), "version: 1\nhost:\n  orphans: keep\n"),
            part(Self.dropIn("d.yaml"), ""),
        ]
        #expect(errors(parts) == [
            "/etc/hostdevd/bindings.d/b.yaml:4:5: error: unknown key 'devcies' in a binding; did you mean 'devices'?",
            "/etc/hostdevd/bindings.d/b.yaml:3:5: error: binding for 'b' has no 'devices'; list at least one device, or remove the binding",
            "/etc/hostdevd/bindings.d/c.yaml:3:3: error: a drop-in cannot set 'host'; host settings (orphans, protect, sriov) belong in the main manifest; move them there",
            "/etc/hostdevd/bindings.d/d.yaml:1:1: error: the manifest is empty; start with 'version: 1'",
        ])
    }

    @Test(arguments: [
        ("    hosts: []\n", "m.yaml:4:12: error: binding for 'a' lists no hosts; name at least one host (globs like gpu-* work), or remove 'hosts' for every host"),
        ("    hosts: gpu-01\n", "m.yaml:4:12: error: hosts must be a list (lines starting with '- '), not the text 'gpu-01'"),
        ("    hosts: [\"\"]\n", "m.yaml:4:13: error: '' is not a host name or glob; write a host name as 'uname -n' prints it, or a glob such as \"gpu-*\" (no spaces)"),
        ("    hosts: [\"a b\"]\n", "m.yaml:4:13: error: 'a b' is not a host name or glob; write a host name as 'uname -n' prints it, or a glob such as \"gpu-*\" (no spaces)"),
        ("    hosts: [12]\n", "m.yaml:4:13: error: a hosts entry must be text, not the number 12; quote it if it is meant as text: \"12\""),
    ])
    func badHostsAreReported(line: String, expected: String) {
        let yaml = "version: 1\nbindings:\n  - vm: a\n" + line + "    devices:\n      - pci: \"01:00.0\"\n"
        #expect(diagnostics(yaml) == [expected])
    }

    @Test(arguments: [
        ("/etc/hostdevd/bindings.yaml", "/etc/hostdevd/bindings.d"),
        ("/etc/hostdevd/fleet.yml", "/etc/hostdevd/fleet.d"),
        ("m.yaml", "./m.d"),
        ("/bindings.yaml", "/bindings.d"),
    ])
    func dropInDirectoryIsBesideTheManifest(manifest: String, directory: String) {
        #expect(ManifestPart.dropInDirectory(of: manifest) == directory)
    }

    @Test(arguments: [
        ("10-gpu.yaml", true), ("a.yaml", true), (".a.yaml", false), ("a.yaml.swp", false), ("a.yml", false),
        ("README", false), (".yaml", false), ("a.yaml~", false),
    ])
    func onlyYAMLFilesAreDropIns(name: String, expected: Bool) {
        #expect(ManifestPart.isDropIn(name) == expected)
    }
}
