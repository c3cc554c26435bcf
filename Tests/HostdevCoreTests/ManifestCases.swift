// The manifest table: every row a manifest and the decoder's exact
// diagnostics for it (none: valid). ManifestDecoderTests checks the
// diagnostics; ManifestSchemaAgreementTests (HostdevIntegrationTests, which
// compiles this same file through a symbolic link) runs every row through
// manifests/validate-schema.py and requires the same verdict, except where
// a row says why JSON Schema cannot express the rule.

/// One manifest of the table.
struct ManifestCase: Sendable, CustomStringConvertible {
    var name: String
    var bytes: [UInt8]
    /// The decoder's diagnostics for file `m.yaml`, in order; empty when valid.
    var errors: [String]
    /// Why the JSON Schema cannot give the decoder's verdict; nil when it must.
    var schemaCannotExpress: String?

    init(_ name: String, _ yaml: String, _ errors: [String] = [], schemaCannotExpress: String? = nil) {
        self.init(name, bytes: Array(yaml.utf8), errors, schemaCannotExpress: schemaCannotExpress)
    }

    init(_ name: String, bytes: [UInt8], _ errors: [String] = [], schemaCannotExpress: String? = nil) {
        self.name = name
        self.bytes = bytes
        self.errors = errors
        self.schemaCannotExpress = schemaCannotExpress
    }

    var isValid: Bool { errors.isEmpty }
    var description: String { name }
}

private func binding(_ body: String) -> String { "version: 1\nbindings:\n  - vm: a\n" + body }

let manifestCases: [ManifestCase] = [
    // Valid.
    ManifestCase("minimal", "version: 1\nbindings:\n  - vm: gaming\n    devices:\n      - pci: \"0000:01:00.0\"\n"),
    ManifestCase(
        "every field",
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
                force: [console, network]
              - pci: {vendor: "10de", device: "0x1b80", index: 1}
              - usb: {vendor: "046d", product: "c52b"}
              - usb: {bus: 1, device: 4}
                force: [network]
        """),
    ManifestCase("json", #"{"version": 1, "bindings": [{"vm": "a", "devices": [{"pci": "01:00.0"}]}]}"#),
    ManifestCase("unquoted address is text", binding("    devices: [{pci: 0000:01:00.0}]\n")),
    ManifestCase("core-schema booleans and integers", "version: 0x1\nbindings:\n  - vm: a\n    live: TRUE\n    devices: [{usb: {bus: +1, device: 0o17}}]\n"),
    ManifestCase("a tagged string", binding("    devices: [{pci: !!str 01:00.0}]\n")),
    ManifestCase("an upper-case 0X ID", binding("    devices: [{pci: {vendor: \"0X10DE\", device: \"1B80\"}}]\n")),
    ManifestCase("an empty force list", binding("    devices: [{pci: \"01:00.0\", force: []}]\n")),
    ManifestCase("a domain name with spaces and unicode", "version: 1\nbindings:\n  - vm: \"win 11 — Gäste\"\n    devices: [{pci: \"01:00.0\"}]\n"),
    ManifestCase("an explicit document end", "---\nversion: 1\n...\n"),
    ManifestCase("hosts globs", binding("    hosts: [gpu-01, \"lab-*\", \"node[0-9]\"]\n    devices: [{pci: \"01:00.0\"}]\n")),
    ManifestCase("one device for two hosts", """
        version: 1
        bindings:
          - vm: a
            hosts: [gpu-01]
            devices: [{pci: "01:00.0"}]
          - vm: a
            hosts: [gpu-02]
            devices: [{pci: "01:00.0"}]
        """),

    // The decoder's positioned diagnostics.
    ManifestCase("version 2", "version: 2\n", ["m.yaml:1:10: error: unsupported manifest version 2; this hostdevd reads version 1"]),
    ManifestCase("empty hosts", binding("    hosts: []\n    devices: [{pci: \"01:00.0\"}]\n"),
        ["m.yaml:4:12: error: binding for 'a' lists no hosts; name at least one host (globs like gpu-* work), or remove 'hosts' for every host"]),
    ManifestCase("a host with a space", binding("    hosts: [\"gpu 01\"]\n    devices: [{pci: \"01:00.0\"}]\n"),
        ["m.yaml:4:13: error: 'gpu 01' is not a host name or glob; write a host name as 'uname -n' prints it, or a glob such as \"gpu-*\" (no spaces)"]),
    ManifestCase("hosts as text", binding("    hosts: gpu-01\n    devices: [{pci: \"01:00.0\"}]\n"),
        ["m.yaml:4:12: error: hosts must be a list (lines starting with '- '), not the text 'gpu-01'"]),
    ManifestCase("one device twice for the same host", """
        version: 1
        bindings:
          - vm: a
            hosts: [gpu-01]
            devices: [{pci: "01:00.0"}]
          - vm: b
            hosts: ["gpu-*"]
            devices: [{pci: "01:00.0"}]
        """, ["m.yaml:8:15: error: pci 0000:01:00.0 is named twice; it is already claimed by 'a' at line 5; a device belongs to one VM"],
        schemaCannotExpress: "uniqueness across bindings"),
    ManifestCase("no version", "bindings: []\n", ["m.yaml:1:1: error: missing 'version'; add 'version: 1' at the top"]),
    ManifestCase("misspelt key", "version: 1\nbindngs: []\n", ["m.yaml:2:1: error: unknown key 'bindngs' in the manifest; did you mean 'bindings'?"]),
    ManifestCase(
        "short address", binding("    devices:\n      - pci: \"0000:01:00\"\n"),
        ["m.yaml:5:14: error: '0000:01:00' is not a PCI address; write it as lspci -D does, DDDD:BB:SS.F, e.g. \"0000:01:00.0\" (quoted)"]),
    ManifestCase(
        "unknown release", binding("    release: sometimes\n    devices: [{pci: \"01:00.0\"}]\n"),
        ["m.yaml:4:14: error: release must be one of never, onStop, not 'sometimes'"]),
    ManifestCase(
        "three-digit ID", binding("    devices: [{pci: {vendor: \"10de\", device: \"1b8\"}}]\n"),
        ["m.yaml:4:46: error: device '1b8' is not a 4-digit hex ID; quote it and use four hex digits as lspci -nn shows, e.g. \"10de\""]),
    ManifestCase(
        "second binding for a VM", binding("    devices: [{pci: \"01:00.0\"}]\n  - vm: a\n    devices: [{pci: \"02:00.0\"}]\n"),
        ["m.yaml:5:5: error: VM 'a' has a second binding; merge it into the first, at line 3"],
        schemaCannotExpress: "a VM named by two bindings: JSON Schema compares whole items (uniqueItems), not one key across items"),
    ManifestCase(
        "device named twice", binding("    devices: [{pci: \"01:00.0\"}]\n  - vm: b\n    devices: [{pci: \"0000:01:00.0\"}]\n"),
        ["m.yaml:6:15: error: pci 0000:01:00.0 is named twice; it is already claimed by 'a' at line 4; a device belongs to one VM"],
        schemaCannotExpress: "a device named in two bindings, and two spellings of one address: a schema cannot compare across items"),
    ManifestCase(
        "sriov PF twice", "version: 1\nhost:\n  sriov:\n    - {pf: \"03:00.0\", numvfs: 1}\n    - {pf: \"0000:03:00.0\", numvfs: 2}\n",
        ["m.yaml:5:7: error: sriov for 0000:03:00.0 is given twice; keep one entry per physical function"],
        schemaCannotExpress: "one PF in two sriov entries (spelt two ways): a schema cannot compare one key across items"),
    ManifestCase(
        "every error at once", binding("    live: maybe\n    devices: [{usb: {vendor: \"046d\"}}]\n"),
        [
            "m.yaml:4:11: error: live must be true or false, not the text 'maybe'",
            "m.yaml:5:21: error: usb needs either {vendor, product} or {bus, device}; e.g. usb: {vendor: \"046d\", product: \"c52b\"} or usb: {bus: 1, device: 4}",
        ]),
    ManifestCase(
        "binding without vm", "version: 1\nbindings:\n  - devices: [{pci: \"01:00.0\", usb: {bus: 1, device: 2}}]\n",
        ["m.yaml:3:5: error: binding without 'vm'; name the libvirt domain: vm: win11"]),
    ManifestCase(
        "group on usb", binding("    devices: [{usb: {bus: 1, device: 2}, group: hold}]\n"),
        ["m.yaml:4:49: error: 'group' applies to PCI devices only; USB devices have no IOMMU group; remove it"]),
    ManifestCase(
        "syntax error", binding("    devices:\n     - pci: [\n"),
        ["m.yaml:6:1: error: YAML syntax: did not find expected node content; check indentation and quoting around here"]),
    ManifestCase("empty", "", ["m.yaml:1:1: error: the manifest is empty; start with 'version: 1'"]),
    ManifestCase(
        "negative numvfs", "version: 1\nhost:\n  sriov:\n    - pf: \"0000:03:00.0\"\n      numvfs: -1\n",
        ["m.yaml:5:15: error: numvfs must be 0 to 65535, not -1"]),
    ManifestCase(
        "huge numvfs", "version: 1\nhost:\n  sriov:\n    - pf: \"0000:03:00.0\"\n      numvfs: 99999999999999999999999\n",
        ["m.yaml:5:15: error: numvfs 99999999999999999999999 is too large"]),
    ManifestCase(
        "negative index", binding("    devices: [{pci: {vendor: \"10de\", device: \"1b80\", index: -1}}]\n"),
        ["m.yaml:4:61: error: index must be 0 to 65535, not -1; index 0 is the first match by PCI address"]),

    // Strict typing (issue 10, point 6): YAML's own types, as the schema sees them.
    ManifestCase(
        "quoted boolean", binding("    live: \"true\"\n    devices: [{pci: \"01:00.0\"}]\n"),
        ["m.yaml:4:11: error: live must be true or false, not the text 'true'; remove the quotes"]),
    ManifestCase(
        "yes is not a boolean", binding("    live: yes\n    devices: [{pci: \"01:00.0\"}]\n"),
        ["m.yaml:4:11: error: live must be true or false, not the text 'yes'"]),
    ManifestCase(
        "quoted version", "version: \"1\"\n",
        ["m.yaml:1:10: error: version must be a whole number, not the text '1'; remove the quotes"]),
    ManifestCase(
        "float version", "version: 1.0\n", ["m.yaml:1:10: error: version must be a whole number, not the number 1.0"],
        schemaCannotExpress: "JSON has one number type: 1.0 equals 1 and is an integer to JSON Schema"),
    ManifestCase(
        "quoted numvfs", "version: 1\nhost:\n  sriov:\n    - {pf: \"0000:03:00.0\", numvfs: \"8\"}\n",
        ["m.yaml:4:36: error: numvfs must be a whole number, not the text '8'; remove the quotes"]),
    ManifestCase(
        "double 0x", binding("    devices: [{pci: {vendor: \"0x0x10\", device: \"1b80\"}}]\n"),
        ["m.yaml:4:30: error: vendor '0x0x10' is not a 4-digit hex ID; quote it and use four hex digits as lspci -nn shows, e.g. \"10de\""]),
    ManifestCase(
        "unquoted numeric ID", binding("    devices: [{pci: {vendor: 8086, device: \"1b80\"}}]\n"),
        ["m.yaml:4:30: error: vendor must be text, not the number 8086; quote it and use four hex digits as lspci -nn shows, e.g. \"10de\""]),
    ManifestCase(
        "null vm", "version: 1\nbindings:\n  - vm: ~\n    devices: [{pci: \"01:00.0\"}]\n",
        ["m.yaml:3:9: error: vm must be text, not null ('~'); e.g. vm: win11"]),
    ManifestCase(
        "null word vm", "version: 1\nbindings:\n  - vm: null\n    devices: [{pci: \"01:00.0\"}]\n",
        ["m.yaml:3:9: error: vm must be text, not null ('null'); e.g. vm: win11"]),
    ManifestCase(
        "empty vm", "version: 1\nbindings:\n  - vm:\n    devices: [{pci: \"01:00.0\"}]\n",
        ["m.yaml:3:8: error: vm must be text, not empty (null); e.g. vm: win11"]),
    ManifestCase(
        "numeric vm", "version: 1\nbindings:\n  - vm: 123\n    devices: [{pci: \"01:00.0\"}]\n",
        ["m.yaml:3:9: error: vm must be text, not the number 123; quote it if it is meant as text: \"123\""]),
    ManifestCase(
        "boolean vm", "version: 1\nbindings:\n  - vm: true\n    devices: [{pci: \"01:00.0\"}]\n",
        ["m.yaml:3:9: error: vm must be text, not the boolean true; quote it if it is meant as text: \"true\""]),
    ManifestCase(
        "NUL in a vm name", "version: 1\nbindings:\n  - vm: \"win\\0x\"\n    devices: [{pci: \"01:00.0\"}]\n",
        ["m.yaml:3:9: error: 'win\\u{00}x' is not a libvirt domain name; use the name 'virsh list --all' shows (not empty, no '/', no control characters)"]),
    ManifestCase(
        "quoted empty vm", "version: 1\nbindings:\n  - vm: \"\"\n    devices: [{pci: \"01:00.0\"}]\n",
        ["m.yaml:3:9: error: '' is not a libvirt domain name; use the name 'virsh list --all' shows (not empty, no '/', no control characters)"]),
    ManifestCase(
        "slash in a vm name", "version: 1\nbindings:\n  - vm: a/b\n    devices: [{pci: \"01:00.0\"}]\n",
        ["m.yaml:3:9: error: 'a/b' is not a libvirt domain name; use the name 'virsh list --all' shows (not empty, no '/', no control characters)"]),
    ManifestCase(
        "non-UTF-8 vm name", bytes: Array("version: 1\nbindings:\n  - vm: win".utf8) + [0xff] + Array("11\n    devices: [{pci: \"01:00.0\"}]\n".utf8),
        ["m.yaml:3:12: error: not UTF-8: byte 0xff starts no valid character; save the file as UTF-8; names must be spelled exactly as libvirt has them"]),
    ManifestCase(
        "a second document", "version: 1\n---\nversion: 2\n",
        ["m.yaml:2:1: error: a second document starts here; a manifest is one YAML document: remove this '---' or '...' and what follows it"]),
    ManifestCase(
        "garbage after the document", "version: 1\n...\nrm -rf /\n",
        ["m.yaml:3:1: error: YAML syntax: did not find expected <document start>; check indentation and quoting around here"]),
    ManifestCase(
        "a third document", "version: 1\n...\n---\nversion: 1\n---\n",
        ["m.yaml:3:1: error: a second document starts here; a manifest is one YAML document: remove this '---' or '...' and what follows it"]),
    ManifestCase(
        "a local tag", "version: 1\nbindings:\n  - vm: !vm win11\n    devices: [{pci: \"01:00.0\"}]\n",
        ["m.yaml:3:9: error: tag '!vm' is not allowed on a scalar; remove the tag; a manifest uses plain YAML (core schema tags only: !!str, !!int, !!bool, !!null, !!float, !!map, !!seq)"]),
    ManifestCase(
        "a non-core tag", "version: 1\nbindings: !!set {a: null}\n",
        ["m.yaml:2:11: error: tag '!!set' is not allowed on a mapping; remove the tag; a manifest uses plain YAML (core schema tags only: !!str, !!int, !!bool, !!null, !!float, !!map, !!seq)"]),
    ManifestCase(
        "duplicate key", "version: 1\nversion: 1\n",
        ["m.yaml:2:1: error: duplicate key 'version' in the manifest; each key may appear once"]),
    ManifestCase(
        "a numeric key", "version: 1\n1: x\n",
        ["m.yaml:2:1: error: keys in the manifest must be plain words, not the number 1"]),
    ManifestCase(
        "a sequence for a mapping", "version: 1\nhost: []\n",
        ["m.yaml:2:7: error: host must be a mapping (key: value lines), not a list"]),

    // force (per device): console and network may be handed over, storage never.
    ManifestCase(
        "force storage", binding("    devices: [{pci: \"01:00.0\", force: [storage]}]\n"),
        ["m.yaml:4:40: error: storage is never handed over: a device that holds a mounted filesystem, swap or a pool would lose data; unmount or stop using it on the host first; force accepts console and network"]),
    ManifestCase(
        "force unknown", binding("    devices: [{pci: \"01:00.0\", force: [gpu]}]\n"),
        ["m.yaml:4:40: error: force must list console or network, not 'gpu'; force hands over a host use explicitly: force: [console] or force: [network]"]),
    ManifestCase(
        "force twice", binding("    devices: [{pci: \"01:00.0\", force: [console, console]}]\n"),
        ["m.yaml:4:49: error: 'console' is listed twice in force; list each kind once"]),
    // Mediated devices: parent and type; uuid optional (derived when left out).
    ManifestCase(
        "mediated devices",
        binding("""
                devices:
                  - mdev: {parent: "0000:00:02.0", type: "i915-GVTg_V5_4"}
                  - mdev: {parent: "0000:00:02.0", type: "i915-GVTg_V5_4", uuid: "4B20D080-1B54-4048-85B3-A6A62D165C01"}
            """)),
    ManifestCase(
        "mdev with a bad uuid", binding("    devices: [{mdev: {parent: \"00:02.0\", type: t, uuid: \"not-a-uuid\"}}]\n"),
        ["m.yaml:4:57: error: 'not-a-uuid' is not a UUID; write 8-4-4-4-12 hex digits (uuidgen prints one), or leave uuid out to have one derived"]),
    ManifestCase(
        "mdev without a type", binding("    devices: [{mdev: {parent: \"00:02.0\"}}]\n"),
        ["m.yaml:4:22: error: mdev needs 'parent' and 'type'; e.g. mdev: {parent: \"0000:00:02.0\", type: \"i915-GVTg_V5_4\"}; the types a parent offers are listed by 'hostdevctl devices'"]),
    ManifestCase(
        "mdev with a path for a type", binding("    devices: [{mdev: {parent: \"00:02.0\", type: \"../x\"}}]\n"),
        ["m.yaml:4:48: error: '../x' is not a mediated device type name; use a directory name under the parent's mdev_supported_types, as 'hostdevctl devices' lists them"]),
    ManifestCase(
        "mdev with group", binding("    devices: [{mdev: {parent: \"00:02.0\", type: t}, group: hold}]\n"),
        ["m.yaml:4:59: error: 'group' does not apply to a mediated device; a mediated device shares its parent with the host and has no IOMMU group of its own; remove it"]),
    ManifestCase(
        "mdev and pci in one entry", binding("    devices: [{mdev: {parent: \"00:02.0\", type: t}, pci: \"01:00.0\"}]\n"),
        ["m.yaml:4:15: error: a device has both 'pci' and 'mdev'; one entry names one device; split it in two"]),
    ManifestCase(
        "one mdev uuid twice",
        "version: 1\nbindings:\n  - vm: a\n    devices: [{mdev: {parent: \"00:02.0\", type: t, uuid: \"4b20d080-1b54-4048-85b3-a6a62d165c01\"}}]\n"
            + "  - vm: b\n    devices: [{mdev: {parent: \"00:02.0\", type: u, uuid: \"4B20D080-1B54-4048-85B3-A6A62D165C01\"}}]\n",
        ["m.yaml:6:15: error: mdev 4b20d080-1b54-4048-85b3-a6a62d165c01 is named twice; it is already claimed by 'a' at line 4; a device belongs to one VM"], schemaCannotExpress: "a UUID named twice across bindings"),
    // SCSI devices: by H:B:T:L or by a stable /dev name.
    ManifestCase(
        "scsi devices",
        binding("""
                devices:
                  - scsi: {host: 1, bus: 0, target: 0, unit: 0}
                  - scsi: "/dev/disk/by-id/wwn-0x5000c500a1b2c3d4"
            """)),
    ManifestCase(
        "scsi without a unit", binding("    devices: [{scsi: {host: 1, bus: 0, target: 0}}]\n"),
        ["m.yaml:4:22: error: scsi needs host, bus, target and unit; e.g. scsi: {host: 1, bus: 0, target: 0, unit: 0} (lsscsi shows [H:B:T:L]), or a /dev/disk/by-id path"]),
    ManifestCase(
        "scsi by a relative path", binding("    devices: [{scsi: \"sdb\"}]\n"),
        ["m.yaml:4:22: error: 'sdb' is not a device path; name the disk by a stable /dev path, e.g. \"/dev/disk/by-id/wwn-0x5000c500a1b2c3d4\", or by {host, bus, target, unit} as lsscsi shows"]),
    ManifestCase(
        "scsi with force", binding("    devices: [{scsi: \"/dev/sdb\", force: [network]}]\n"),
        ["m.yaml:4:41: error: 'force' does not apply to a SCSI device; a SCSI device the host uses is never passed to a VM; remove it"]),
    ManifestCase(
        "scsi with a negative unit", binding("    devices: [{scsi: {host: 1, bus: 0, target: 0, unit: -1}}]\n"),
        ["m.yaml:4:57: error: unit must be 0 to 65535, not -1"]),
    // SR-IOV VFs as network interfaces: pf and index; mac, vlan, trust, spoofchk optional.
    ManifestCase(
        "virtual functions",
        binding("""
                devices:
                  - vf: {pf: "0000:3b:00.0", index: 2, mac: "52:54:00:12:34:56", vlan: 100, trust: false, spoofchk: true}
                  - vf: {pf: "0000:3b:00.0", index: 3, vlan: 0}
                    group: device
            """)),
    ManifestCase(
        "vf without an index", binding("    devices: [{vf: {pf: \"3b:00.0\"}}]\n"),
        ["m.yaml:4:20: error: vf needs 'pf' and 'index'; e.g. vf: {pf: \"0000:3b:00.0\", index: 2}, VF number index of the physical function pf (its virtfnINDEX link in sysfs)"]),
    ManifestCase(
        "vf with a multicast mac", binding("    devices: [{vf: {pf: \"3b:00.0\", index: 0, mac: \"01:00:5e:00:00:01\"}}]\n"),
        ["m.yaml:4:51: error: '01:00:5e:00:00:01' is not a unicast MAC address; write six hex pairs with colons, e.g. \"52:54:00:12:34:56\"; the first octet must be even (not multicast) and the address not all zeros"]),
    ManifestCase(
        "vf with an all-zero mac", binding("    devices: [{vf: {pf: \"3b:00.0\", index: 0, mac: \"00:00:00:00:00:00\"}}]\n"),
        ["m.yaml:4:51: error: '00:00:00:00:00:00' is not a unicast MAC address; write six hex pairs with colons, e.g. \"52:54:00:12:34:56\"; the first octet must be even (not multicast) and the address not all zeros"]),
    ManifestCase(
        "vf with a dashed mac", binding("    devices: [{vf: {pf: \"3b:00.0\", index: 0, mac: \"52-54-00-12-34-56\"}}]\n"),
        ["m.yaml:4:51: error: '52-54-00-12-34-56' is not a unicast MAC address; write six hex pairs with colons, e.g. \"52:54:00:12:34:56\"; the first octet must be even (not multicast) and the address not all zeros"]),
    ManifestCase(
        "vf with vlan 4095", binding("    devices: [{vf: {pf: \"3b:00.0\", index: 0, vlan: 4095}}]\n"),
        ["m.yaml:4:52: error: vlan must be 0 to 4094, not 4095; 0 means no VLAN (4095 is reserved)"]),
    ManifestCase(
        "vf with a quoted trust", binding("    devices: [{vf: {pf: \"3b:00.0\", index: 0, trust: \"true\"}}]\n"),
        ["m.yaml:4:53: error: trust must be true or false, not the text 'true'; remove the quotes"]),
    ManifestCase(
        "vf with an unknown key", binding("    devices: [{vf: {pf: \"3b:00.0\", index: 0, spoofcheck: true}}]\n"),
        ["m.yaml:4:46: error: unknown key 'spoofcheck' in vf; did you mean 'spoofchk'?"]),
    ManifestCase(
        "vf with a negative index", binding("    devices: [{vf: {pf: \"3b:00.0\", index: -1}}]\n"),
        ["m.yaml:4:43: error: index must be 0 to 65534, not -1; VFs are numbered from 0, as the PF's virtfn0, virtfn1, … links"]),
    ManifestCase(
        "vf and pci in one entry", binding("    devices: [{vf: {pf: \"3b:00.0\", index: 0}, pci: \"01:00.0\"}]\n"),
        ["m.yaml:4:15: error: a device has both 'pci' and 'vf'; one entry names one device; split it in two"]),
    ManifestCase(
        "one vf twice",
        "version: 1\nbindings:\n  - vm: a\n    devices: [{vf: {pf: \"3b:00.0\", index: 1}}]\n"
            + "  - vm: b\n    devices: [{vf: {pf: \"0000:3b:00.0\", index: 1, vlan: 5}}]\n",
        ["m.yaml:6:15: error: vf 0000:3b:00.0 index 1 is named twice; it is already claimed by 'a' at line 4; a device belongs to one VM"], schemaCannotExpress: "a VF named twice across bindings"),
    ManifestCase(
        "force not a list", binding("    devices: [{pci: \"01:00.0\", force: console}]\n"),
        ["m.yaml:4:39: error: force must be a list (lines starting with '- '), not the text 'console'"]),
]
