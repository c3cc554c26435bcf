public import HostdevCore

/// One problem in a manifest, with where it is and what to write instead.
public struct ManifestDiagnostic: Sendable, Equatable, CustomStringConvertible {
    public var location: SourceLocation
    public var message: String
    public var hint: String?

    public var description: String {
        "\(location): error: \(message)" + (hint.map { "; \($0)" } ?? "")
    }
}

/// Every problem found in a manifest at once.
public struct ManifestErrors: Error, Sendable, CustomStringConvertible {
    public var diagnostics: [ManifestDiagnostic]
    public var description: String { diagnostics.map(\.description).joined(separator: "\n") }
}

/// Decodes manifest version 1 from YAML (JSON is YAML too). Unknown keys and
/// wrong types are errors; all errors are collected, each with
/// `file:line:column` from the YAML node it is about.
///
/// Strict, because root acts on it: UTF-8 only, one document, core-schema
/// tags only, and every value typed by how YAML reads it (`live: "true"` is
/// text, not a boolean; `vm: ~` is null, not a name). Bounded: at most
/// `maximumBytes`, `YAMLLimits.manifest` nesting and alias expansion,
/// linear time. `manifests/hostdevd-manifest.schema.json` gives the same
/// verdict wherever JSON Schema can say it (see ManifestCases.swift).
public struct ManifestDecoder {
    public let file: String
    var diagnostics: [ManifestDiagnostic] = []
    /// Reported one by one up to this many; the rest are counted.
    static let diagnosticLimit = 100
    var dropped = 0

    /// The largest manifest read: 4 MiB (a real one is a few KB).
    public static let maximumBytes = YAMLLimits.manifest.maximumBytes

    init(file: String) { self.file = file }

    public static func decode(_ text: String, file: String) throws(ManifestErrors) -> Manifest {
        try decode(bytes: Array(text.utf8), file: file)
    }

    /// Decodes the manifest's bytes as read from the file: bytes that are
    /// not UTF-8 are an error (with their line and column), never replaced.
    public static func decode(bytes: [UInt8], file: String) throws(ManifestErrors) -> Manifest {
        var decoder = ManifestDecoder(file: file)
        let manifest = decoder.decodeDocument(bytes)
        if let manifest { decoder.checkDuplicates(manifest.bindings, host: manifest.host) }
        decoder.countDropped()
        guard decoder.diagnostics.isEmpty, let manifest else { throw ManifestErrors(diagnostics: decoder.diagnostics) }
        return manifest
    }

    /// "and N more error(s)" for the diagnostics past the limit.
    mutating func countDropped() {
        guard dropped > 0 else { return }
        diagnostics.append(ManifestDiagnostic(
            location: SourceLocation(file: file, line: 1, column: 1),
            message: "and \(dropped) more error(s)", hint: "fix the ones above first"))
        dropped = 0
    }

    // MARK: document

    mutating func decodeDocument(_ bytes: [UInt8], allowHost: Bool = true) -> Manifest? {
        guard bytes.count <= Self.maximumBytes else {
            report(nil, "the manifest is \(bytes.count) bytes, more than the limit of \(Self.maximumBytes) (4 MiB)",
                hint: "a manifest is a few kilobytes; check that this is the right file")
            return nil
        }
        let root: YAMLNode
        do {
            guard let node = try YAMLNode.compose(bytes: bytes, limits: .manifest) else {
                report(nil, "the manifest is empty", hint: "start with 'version: 1'")
                return nil
            }
            root = node
        } catch {
            diagnostics.append(ManifestDiagnostic(
                location: SourceLocation(file: file, line: error.mark.line, column: error.mark.column),
                message: error.hint == nil ? "YAML syntax: \(error.problem)" : error.problem,
                hint: error.hint ?? "check indentation and quoting around here"))
            return nil
        }
        guard let fields = mapping(root, "the manifest", keys: ["version", "host", "bindings"]) else { return nil }
        switch fields["version"] {
        case nil: report(root, "missing 'version'", hint: "add 'version: 1' at the top")
        case let node?:
            if let version = integer(node, "version"), version != 1 {
                report(node, "unsupported manifest version \(version)", hint: "this hostdevd reads version 1")
            }
        }
        if !allowHost, let node = fields["host"] {
            report(node, "a drop-in cannot set 'host'",
                hint: "host settings (orphans, protect, sriov) belong in the main manifest; move them there")
        }
        let host = fields["host"].map { decodeHost($0) } ?? HostPolicy()
        var bindings: [Binding] = []
        if let list = fields["bindings"].flatMap({ sequence($0, "bindings") }) {
            bindings = list.compactMap { decodeBinding($0) }
        }
        return Manifest(host: host, bindings: bindings, fingerprint: Manifest.fingerprint(of: bytes))
    }

    mutating func decodeHost(_ node: YAMLNode) -> HostPolicy {
        var host = HostPolicy()
        guard let fields = mapping(node, "host", keys: ["orphans", "protect", "sriov"]) else { return host }
        if let value = fields["orphans"] { host.orphans = choice(value, "host.orphans") ?? .release }
        if let list = fields["protect"].flatMap({ sequence($0, "host.protect") }) {
            host.protect = list.compactMap { pciAddress($0, "host.protect entry") }
        }
        if let list = fields["sriov"].flatMap({ sequence($0, "host.sriov") }) {
            for entry in list {
                guard let item = mapping(entry, "an sriov entry", keys: ["pf", "numvfs"]) else { continue }
                guard let pfNode = item["pf"] else {
                    report(entry, "sriov entry without 'pf'", hint: "name the physical function: pf: \"0000:03:00.0\"")
                    continue
                }
                guard let numNode = item["numvfs"] else {
                    report(entry, "sriov entry without 'numvfs'", hint: "add numvfs: N (0 disables the VFs)")
                    continue
                }
                let pf = pciAddress(pfNode, "pf")
                let count = integer(numNode, "numvfs")
                if let pf, let count {
                    guard (0...Self.maximumCount).contains(count) else {
                        report(numNode, "numvfs must be 0 to \(Self.maximumCount), not \(count)")
                        continue
                    }
                    host.sriov.append(SRIOVSetting(pf: pf, numVFs: count, location: location(entry)))
                }
            }
        }
        return host
    }

    /// The largest numvfs, index and USB bus number (a PCI function has at most 65535 VFs).
    static let maximumCount = 65535

    mutating func decodeBinding(_ node: YAMLNode) -> Binding? {
        guard let fields = mapping(node, "a binding", keys: ["vm", "release", "live", "hosts", "devices"]) else { return nil }
        guard let vmNode = fields["vm"] else {
            report(node, "binding without 'vm'", hint: "name the libvirt domain: vm: win11")
            return nil
        }
        guard let vm = string(vmNode, "vm", example: "vm: win11") else { return nil }
        if vm.isEmpty || vm.contains("/") || vm.unicodeScalars.contains(where: isControl) {
            report(vmNode, "'\(printable(vm))' is not a libvirt domain name",
                hint: "use the name 'virsh list --all' shows (not empty, no '/', no control characters)")
        }
        var binding = Binding(vm: vm, devices: [], location: location(node))
        if let value = fields["release"] { binding.release = choice(value, "release") ?? .never }
        if let value = fields["live"] { binding.live = boolean(value, "live") ?? false }
        if let value = fields["hosts"] { binding.hosts = hostPatterns(value, vm: vm) }
        guard let devicesNode = fields["devices"] else {
            report(node, "binding for '\(printable(vm))' has no 'devices'", hint: "list at least one device, or remove the binding")
            return binding
        }
        if let list = sequence(devicesNode, "devices") {
            if list.isEmpty {
                report(devicesNode, "binding for '\(printable(vm))' lists no devices", hint: "add a device or remove the binding")
            }
            // Derived mdev UUIDs count the VM's earlier claims of the same parent and type.
            var mdevOrdinals: [String: Int] = [:]
            binding.devices = list.compactMap { decodeClaim($0, vm: vm, mdevOrdinals: &mdevOrdinals) }
        }
        return binding
    }

    /// The keys that name what a device entry is; exactly one per entry.
    static let deviceKinds = ["pci", "usb", "mdev", "scsi", "vf"]

    mutating func decodeClaim(_ node: YAMLNode, vm: String, mdevOrdinals: inout [String: Int]) -> DeviceClaim? {
        guard let fields = mapping(node, "a device", keys: Self.deviceKinds + ["group", "force"]) else { return nil }
        let kinds = Self.deviceKinds.filter { fields[$0] != nil }
        if kinds.count > 1 {
            report(node, "a device has both '\(kinds[0])' and '\(kinds[1])'", hint: "one entry names one device; split it in two")
            return nil
        }
        let group = fields["group"].flatMap { choice($0, "group") as GroupMode? } ?? .attach
        let force = fields["force"].map { handOver($0) } ?? []
        if let mdev = fields["mdev"] {
            for key in ["group", "force"] {
                if let extra = fields[key] {
                    report(extra, "'\(key)' does not apply to a mediated device",
                        hint: "a mediated device shares its parent with the host and has no IOMMU group of its own; remove it")
                }
            }
            guard let spec = mdevSpec(mdev, vm: vm, ordinals: &mdevOrdinals) else { return nil }
            return DeviceClaim(.mdev(spec), location: location(node))
        }
        if let scsi = fields["scsi"] {
            for key in ["group", "force"] {
                if let extra = fields[key] {
                    report(extra, "'\(key)' does not apply to a SCSI device",
                        hint: key == "force" ? "a SCSI device the host uses is never passed to a VM; remove it" : "a SCSI device has no IOMMU group; remove it")
                }
            }
            guard let selector = scsiSelector(scsi) else { return nil }
            return DeviceClaim(selector, location: location(node))
        }
        if let vf = fields["vf"] {
            guard let spec = vfSpec(vf) else { return nil }
            return DeviceClaim(.vf(spec), group: group, force: force, location: location(node))
        }
        switch (fields["pci"], fields["usb"]) {
        case (let pci?, nil):
            guard let selector = pciSelector(pci) else { return nil }
            return DeviceClaim(selector, group: group, force: force, location: location(node))
        case (nil, let usb?):
            if let groupNode = fields["group"] {
                report(groupNode, "'group' applies to PCI devices only", hint: "USB devices have no IOMMU group; remove it")
            }
            guard let selector = usbSelector(usb) else { return nil }
            return DeviceClaim(selector, group: group, force: force, location: location(node))
        case (nil, nil):
            report(node, "device without 'pci', 'usb', 'mdev', 'scsi' or 'vf'",
                hint: "write pci: \"0000:01:00.0\", usb: {vendor: \"046d\", product: \"c52b\"} or mdev: {parent: \"0000:00:02.0\", type: \"i915-GVTg_V5_4\"}")
        case (_?, _?):
            break  // reported above
        }
        return nil
    }

    /// `scsi: {host: 1, bus: 0, target: 0, unit: 0}` or `scsi: "/dev/disk/by-id/…"`.
    mutating func scsiSelector(_ node: YAMLNode) -> DeviceSelector? {
        if case .scalar = node {
            guard let path = string(node, "scsi", example: "scsi: \"/dev/disk/by-id/wwn-0x5000c500a1b2c3d4\"") else { return nil }
            guard path.hasPrefix("/dev/"), !path.contains("/../"), !path.hasSuffix("/.."), !path.unicodeScalars.contains(where: isControl) else {
                report(node, "'\(printable(path))' is not a device path",
                    hint: "name the disk by a stable /dev path, e.g. \"/dev/disk/by-id/wwn-0x5000c500a1b2c3d4\", or by {host, bus, target, unit} as lsscsi shows")
                return nil
            }
            return .scsiPath(path)
        }
        guard let fields = mapping(node, "scsi", keys: ["host", "bus", "target", "unit"]) else { return nil }
        var numbers: [Int] = []
        for key in ["host", "bus", "target", "unit"] {
            guard let value = fields[key] else {
                report(node, "scsi needs host, bus, target and unit",
                    hint: "e.g. scsi: {host: 1, bus: 0, target: 0, unit: 0} (lsscsi shows [H:B:T:L]), or a /dev/disk/by-id path")
                return nil
            }
            guard let number = integer(value, key) else { return nil }
            guard (0...Self.maximumCount).contains(number) else {
                report(value, "\(key) must be 0 to \(Self.maximumCount), not \(number)")
                return nil
            }
            numbers.append(number)
        }
        return .scsi(SCSIAddress(host: numbers[0], bus: numbers[1], target: numbers[2], unit: numbers[3]))
    }

    /// `mdev: {parent: "0000:00:02.0", type: "i915-GVTg_V5_4", uuid: "…"}`;
    /// without `uuid`, one derived from the VM, parent, type and position.
    mutating func mdevSpec(_ node: YAMLNode, vm: String, ordinals: inout [String: Int]) -> MdevSpec? {
        let example = "mdev: {parent: \"0000:00:02.0\", type: \"i915-GVTg_V5_4\"}"
        guard let fields = mapping(node, "mdev", keys: ["parent", "type", "uuid"]) else { return nil }
        guard let parentNode = fields["parent"], let typeNode = fields["type"] else {
            report(node, "mdev needs 'parent' and 'type'",
                hint: "e.g. \(example); the types a parent offers are listed by 'hostdevctl devices'")
            return nil
        }
        let parent = pciAddress(parentNode, "parent")
        var type = string(typeNode, "type", example: "type: \"i915-GVTg_V5_4\"")
        if let text = type, !MdevSpec.isValidTypeName(text) {
            report(typeNode, "'\(printable(text))' is not a mediated device type name",
                hint: "use a directory name under the parent's mdev_supported_types, as 'hostdevctl devices' lists them")
            type = nil
        }
        var uuid: String?
        if let uuidNode = fields["uuid"], let text = string(uuidNode, "uuid", example: "uuid: \"4b20d080-1b54-4048-85b3-a6a62d165c01\"") {
            uuid = MdevSpec.normalizedUUID(text)
            if uuid == nil {
                report(uuidNode, "'\(printable(text))' is not a UUID",
                    hint: "write 8-4-4-4-12 hex digits (uuidgen prints one), or leave uuid out to have one derived")
                return nil
            }
        }
        guard let parent, let type else { return nil }
        if uuid == nil {
            let key = "\(parent)/\(type)"
            let ordinal = ordinals[key, default: 0]
            ordinals[key] = ordinal + 1
            uuid = MdevSpec.derivedUUID(vm: vm, parent: parent, type: type, ordinal: ordinal)
        }
        return MdevSpec(uuid: uuid!, parent: parent, type: type)
    }

    /// `vf: {pf: "0000:3b:00.0", index: 2, mac: "52:54:00:12:34:56", vlan: 100, trust: false, spoofchk: true}`:
    /// VF number `index` of the physical function `pf`; the settings are optional.
    mutating func vfSpec(_ node: YAMLNode) -> VFSpec? {
        guard let fields = mapping(node, "vf", keys: ["pf", "index", "mac", "vlan", "trust", "spoofchk"]) else { return nil }
        guard let pfNode = fields["pf"], let indexNode = fields["index"] else {
            report(node, "vf needs 'pf' and 'index'",
                hint: "e.g. vf: {pf: \"0000:3b:00.0\", index: 2}, VF number index of the physical function pf (its virtfnINDEX link in sysfs)")
            return nil
        }
        let pf = pciAddress(pfNode, "pf")
        var index = integer(indexNode, "index")
        if let number = index, !(0..<Self.maximumCount).contains(number) {
            report(indexNode, "index must be 0 to \(Self.maximumCount - 1), not \(number)", hint: "VFs are numbered from 0, as the PF's virtfn0, virtfn1, … links")
            index = nil
        }
        var settings = VFSettings()
        var valid = true
        if let macNode = fields["mac"] {
            settings.mac = macAddress(macNode)
            valid = valid && settings.mac != nil
        }
        if let vlanNode = fields["vlan"] {
            if let vlan = integer(vlanNode, "vlan") {
                if (0...VFSettings.maximumVLAN).contains(vlan) {
                    settings.vlan = vlan
                } else {
                    report(vlanNode, "vlan must be 0 to \(VFSettings.maximumVLAN), not \(vlan)", hint: "0 means no VLAN (4095 is reserved)")
                }
            }
            valid = valid && settings.vlan != nil
        }
        if let trustNode = fields["trust"] {
            settings.trust = boolean(trustNode, "trust")
            valid = valid && settings.trust != nil
        }
        if let spoofNode = fields["spoofchk"] {
            settings.spoofchk = boolean(spoofNode, "spoofchk")
            valid = valid && settings.spoofchk != nil
        }
        guard valid, let pf, let index else { return nil }
        return VFSpec(pf: pf, index: index, settings: settings)
    }

    /// A unicast MAC address as text, six hex pairs with colons.
    mutating func macAddress(_ node: YAMLNode) -> MACAddress? {
        guard let text = string(node, "mac", example: "mac: \"52:54:00:12:34:56\"") else { return nil }
        guard let mac = MACAddress(text), mac.isUnicast, !mac.isZero else {
            report(node, "'\(printable(text))' is not a unicast MAC address",
                hint: "write six hex pairs with colons, e.g. \"52:54:00:12:34:56\"; the first octet must be even (not multicast) and the address not all zeros")
            return nil
        }
        return mac
    }

    /// `hosts: [web-01, "gpu-*"]`: globs for the host names a binding is for.
    mutating func hostPatterns(_ node: YAMLNode, vm: String) -> [HostPattern]? {
        guard let list = sequence(node, "hosts") else { return nil }
        if list.isEmpty {
            report(node, "binding for '\(printable(vm))' lists no hosts",
                hint: "name at least one host (globs like gpu-* work), or remove 'hosts' for every host")
            return nil
        }
        var patterns: [HostPattern] = []
        for item in list {
            guard let text = string(item, "a hosts entry", example: "hosts: [\"gpu-*\"]") else { continue }
            guard !text.isEmpty, !text.unicodeScalars.contains(where: { isControl($0) || $0 == " " || $0 == "\t" }) else {
                report(item, "'\(printable(text))' is not a host name or glob",
                    hint: "write a host name as 'uname -n' prints it, or a glob such as \"gpu-*\" (no spaces)")
                continue
            }
            patterns.append(HostPattern(text))
        }
        return patterns
    }

    /// `force: [console, network]`: the host uses the operator hands over.
    mutating func handOver(_ node: YAMLNode) -> Set<HandOver> {
        guard let list = sequence(node, "force") else { return [] }
        var kinds = Set<HandOver>()
        for item in list {
            guard let text = string(item, "a force entry", example: "force: [console]") else { continue }
            guard let kind = HandOver(rawValue: text) else {
                if text == "storage" {
                    report(item, "storage is never handed over: a device that holds a mounted filesystem, swap or a pool would lose data",
                        hint: "unmount or stop using it on the host first; force accepts console and network")
                } else {
                    report(item, "force must list console or network, not '\(printable(text))'",
                        hint: "force hands over a host use explicitly: force: [console] or force: [network]")
                }
                continue
            }
            if !kinds.insert(kind).inserted {
                report(item, "'\(kind.rawValue)' is listed twice in force", hint: "list each kind once")
            }
        }
        return kinds
    }

    mutating func pciSelector(_ node: YAMLNode) -> DeviceSelector? {
        if case .scalar = node { return pciAddress(node, "pci").map(DeviceSelector.pci) }
        guard let fields = mapping(node, "pci", keys: ["vendor", "device", "index"]) else { return nil }
        guard let vendorNode = fields["vendor"], let deviceNode = fields["device"] else {
            report(node, "pci by ID needs both 'vendor' and 'device'", hint: "e.g. pci: {vendor: \"10de\", device: \"1b80\"}")
            return nil
        }
        let vendor = hexID(vendorNode, "vendor")
        let device = hexID(deviceNode, "device")
        let index = fields["index"].flatMap { self.index($0) }
        guard let vendor, let device else { return nil }
        return .pciID(vendor: vendor, device: device, index: index)
    }

    mutating func usbSelector(_ node: YAMLNode) -> DeviceSelector? {
        guard let fields = mapping(node, "usb", keys: ["vendor", "product", "index", "bus", "device"]) else { return nil }
        switch (fields["vendor"], fields["product"], fields["bus"], fields["device"]) {
        case (let v?, let p?, nil, nil):
            let vendor = hexID(v, "vendor")
            let product = hexID(p, "product")
            let index = fields["index"].flatMap { self.index($0) }
            guard let vendor, let product else { return nil }
            return .usbID(vendor: vendor, product: product, index: index)
        case (nil, nil, let b?, let d?):
            if let i = fields["index"] { report(i, "'index' applies to usb by vendor/product only") }
            guard let bus = integer(b, "bus"), let device = integer(d, "device") else { return nil }
            guard (1...127).contains(device), (1...Self.maximumCount).contains(bus) else {
                report(node, "usb bus \(bus) device \(device) is out of range", hint: "see 'lsusb' for bus and device numbers")
                return nil
            }
            return .usbAddress(bus: bus, device: device)
        default:
            report(node, "usb needs either {vendor, product} or {bus, device}",
                hint: "e.g. usb: {vendor: \"046d\", product: \"c52b\"} or usb: {bus: 1, device: 4}")
            return nil
        }
    }

    /// A device named twice, and a VM with two bindings, are errors: the
    /// manifest must say one thing about each. Bindings for hosts that
    /// cannot be the same (`hosts: [a]` and `hosts: [b]`) may name the
    /// same device and VM: that is how one manifest serves a fleet.
    mutating func checkDuplicates(_ bindings: [Binding], host: HostPolicy) {
        for diagnostic in Self.duplicates(in: bindings, byHosts: true) { append(diagnostic) }
        var seenPF = Set<PCIAddress>()
        for setting in host.sriov where !seenPF.insert(setting.pf).inserted {
            append(ManifestDiagnostic(
                location: setting.location ?? SourceLocation(file: file, line: 0, column: 0),
                message: "sriov for \(setting.pf) is given twice", hint: "keep one entry per physical function"))
        }
    }

    /// A diagnostic at each later binding that names a VM, or claims a
    /// device, an earlier binding already does. `byHosts`: only when the
    /// two may apply to the same host (`Binding.mayShareAHost`); otherwise
    /// always (the bindings already selected for one host). The hint names
    /// the earlier one's line, and its file when that is another file.
    /// Indexed by host name, so a fleet's thousands of single-host
    /// bindings of one device are not compared pairwise.
    static func duplicates(in bindings: [Binding], byHosts: Bool, onHost host: String? = nil) -> [ManifestDiagnostic] {
        var diagnostics: [ManifestDiagnostic] = []
        var byVM: [String: EarlierClaims] = [:]
        // By description: an mdev's is its UUID, whatever parent and type it names.
        var byDevice: [String: EarlierClaims] = [:]
        byVM.reserveCapacity(bindings.count)
        byDevice.reserveCapacity(bindings.count)
        let unknown = SourceLocation(file: "", line: 0, column: 0)
        let suffix = host.map { " (both are for host '\(printable($0))')" } ?? ""
        for (index, binding) in bindings.enumerated() {
            let here = binding.location ?? unknown
            let hosts = byHosts ? binding.hosts : nil
            if let first = byVM[binding.vm]?.conflict(with: hosts) {
                diagnostics.append(ManifestDiagnostic(
                    location: here, message: "VM '\(printable(binding.vm))' has a second binding",
                    hint: "merge it into the first, \(at(first.location, from: here))\(suffix)"))
            }
            byVM[binding.vm, default: EarlierClaims()].add(hosts, binding: index, at: binding.location)
            for claim in binding.devices {
                let claimedAt = claim.location ?? here
                if let first = byDevice[claim.selector.description]?.conflict(with: hosts, binding: index) {
                    diagnostics.append(ManifestDiagnostic(
                        location: claimedAt, message: "\(claim.selector) is named twice",
                        hint: "it is already claimed by '\(printable(bindings[first.binding].vm))' \(at(first.location, from: claimedAt))"
                            + "\(suffix); a device belongs to one VM"))
                }
                byDevice[claim.selector.description, default: EarlierClaims()].add(hosts, binding: index, at: claim.location)
            }
        }
        return diagnostics
    }

    /// The bindings that named one VM or device so far, by the hosts they
    /// are for: which earlier one a new binding collides with.
    struct EarlierClaims {
        typealias Claim = (binding: Int, location: SourceLocation?)
        var first: Claim?
        var latest: Claim?
        var everywhere: Claim?
        var literal: [String: Claim] = [:]
        var globs: [(pattern: HostPattern, claim: Claim)] = []

        /// The earliest claim that can apply on a host the new one applies
        /// on (`hosts` nil: every host); a claim by the same binding always.
        func conflict(with hosts: [HostPattern]?, binding: Int? = nil) -> Claim? {
            if let latest, latest.binding == binding { return latest }
            guard let hosts else { return first }
            var found = everywhere
            func consider(_ claim: Claim?) {
                guard let claim else { return }
                if found.map({ claim.binding < $0.binding }) ?? true { found = claim }
            }
            for pattern in hosts {
                if pattern.isLiteral {
                    consider(literal[pattern.text])
                    for glob in globs where glob.pattern.matches(pattern.text) { consider(glob.claim) }
                } else {
                    for glob in globs where glob.pattern == pattern { consider(glob.claim) }
                    for (name, claim) in literal where pattern.matches(name) { consider(claim) }
                }
            }
            return found
        }

        mutating func add(_ hosts: [HostPattern]?, binding: Int, at location: SourceLocation?) {
            let claim = (binding, location)
            if first == nil { first = claim }
            latest = claim
            guard let hosts else {
                if everywhere == nil { everywhere = claim }
                return
            }
            for pattern in hosts {
                if pattern.isLiteral {
                    if literal[pattern.text] == nil { literal[pattern.text] = claim }
                } else if !globs.contains(where: { $0.pattern == pattern }) {
                    globs.append((pattern, claim))
                }
            }
        }
    }

    /// "at line 4" within the same file, "at FILE:4" in another.
    static func at(_ location: SourceLocation?, from here: SourceLocation) -> String {
        guard let location else { return "earlier" }
        return location.file == here.file ? "at line \(location.line)" : "at \(location.file):\(location.line)"
    }

    // MARK: typed readers

    func location(_ node: YAMLNode?) -> SourceLocation {
        SourceLocation(file: file, line: node?.mark.line ?? 1, column: node?.mark.column ?? 1)
    }

    mutating func report(_ node: YAMLNode?, _ message: String, hint: String? = nil) {
        append(ManifestDiagnostic(location: location(node), message: message, hint: hint))
    }

    /// Keeps the first `diagnosticLimit` diagnostics: a generated file with
    /// a million mistakes must not become a million-line status.
    mutating func append(_ diagnostic: ManifestDiagnostic) {
        if diagnostics.count < Self.diagnosticLimit { diagnostics.append(diagnostic) } else { dropped += 1 }
    }

    /// A mapping with string keys, each from `keys`; unknown keys are reported
    /// with the nearest known one as a hint.
    mutating func mapping(_ node: YAMLNode, _ what: String, keys: [String]) -> Fields? {
        guard case .mapping(let mapping, _) = node else {
            report(node, "\(what) must be a mapping (key: value lines), not \(describe(node))")
            return nil
        }
        var fields = Fields()
        for pair in mapping {
            let (keyNode, value) = (pair.key, pair.value)
            guard let key = keyNode.scalar, key.kind == .string else {
                report(keyNode, "keys in \(what) must be plain words, not \(describe(keyNode))")
                continue
            }
            guard keys.contains(key.text) else {
                let shown = printable(key.text, limit: 40)
                // Only short keys get a "did you mean": the distance is quadratic.
                let suggestion = Suggestion.closest(to: key.text, among: keys.sorted(), longest: 40)
                report(keyNode, "unknown key '\(shown)' in \(what)",
                    hint: suggestion.map { "did you mean '\($0)'?" } ?? "known keys: \(keys.joined(separator: ", "))")
                continue
            }
            if fields[key.text] != nil {
                report(keyNode, "duplicate key '\(key.text)' in \(what)", hint: "each key may appear once")
            }
            fields.set(key.text, value)
        }
        return fields
    }

    /// A mapping's known keys and their values: at most eight, so a list
    /// searched in order (a dictionary per mapping cost more than the rest
    /// of a large manifest's decoding).
    struct Fields {
        private var entries: [(key: String, value: YAMLNode)] = []

        subscript(key: String) -> YAMLNode? { entries.last { $0.key == key }?.value }

        mutating func set(_ key: String, _ value: YAMLNode) { entries.append((key, value)) }
    }

    mutating func sequence(_ node: YAMLNode, _ what: String) -> [YAMLNode]? {
        guard case .sequence(let sequence, _) = node else {
            report(node, "\(what) must be a list (lines starting with '- '), not \(describe(node))")
            return nil
        }
        return sequence
    }

    /// What YAML made of a node, for "must be X, not Y" messages.
    func describe(_ node: YAMLNode) -> String {
        switch node {
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .scalar(let scalar, _):
            switch scalar.kind {
            case .null: return scalar.text.isEmpty ? "empty (null)" : "null ('\(printable(scalar.text))')"
            case .bool: return "the boolean \(scalar.text)"
            case .int: return "the number \(printable(scalar.text))"
            case .float: return "the number \(printable(scalar.text))"
            case .string: return "the text '\(printable(scalar.text))'"
            }
        }
    }

    /// A scalar YAML reads as a string (`vm: "123"` is one, `vm: 123` is not).
    mutating func string(_ node: YAMLNode, _ what: String, example: String? = nil) -> String? {
        guard let scalar = node.scalar, scalar.kind == .string else {
            var hint: String?
            if let scalar = node.scalar, scalar.kind != .null {
                hint = "quote it if it is meant as text: \"\(printable(scalar.text))\""
            } else if let example {
                hint = "e.g. \(example)"
            }
            report(node, "\(what) must be text, not \(describe(node))", hint: hint)
            return nil
        }
        return scalar.text
    }

    /// A scalar YAML reads as an integer (`1`, `0x10`, `0o17`; not `"1"`, not `1.0`).
    mutating func integer(_ node: YAMLNode, _ what: String) -> Int? {
        guard let scalar = node.scalar, scalar.kind == .int else {
            let quoted = node.scalar.map { $0.style != .plain && YAMLScalar.resolve(plain: $0.text) == .int } ?? false
            report(node, "\(what) must be a whole number, not \(describe(node))", hint: quoted ? "remove the quotes" : nil)
            return nil
        }
        guard let value = YAMLScalar.coreInteger(scalar.text) else {
            report(node, "\(what) \(printable(scalar.text)) is too large", hint: scalar.tag != nil ? "write a whole number" : nil)
            return nil
        }
        return value
    }

    mutating func index(_ node: YAMLNode) -> Int? {
        guard let value = integer(node, "index") else { return nil }
        guard (0...Self.maximumCount).contains(value) else {
            report(node, "index must be 0 to \(Self.maximumCount), not \(value)", hint: "index 0 is the first match by PCI address")
            return nil
        }
        return value
    }

    /// A scalar YAML reads as a boolean: true/false (also True, TRUE, …); not "true", not yes.
    mutating func boolean(_ node: YAMLNode, _ what: String) -> Bool? {
        guard let scalar = node.scalar, scalar.kind == .bool else {
            let quoted = node.scalar.map { $0.style != .plain && YAMLScalar.resolve(plain: $0.text) == .bool } ?? false
            report(node, "\(what) must be true or false, not \(describe(node))", hint: quoted ? "remove the quotes" : nil)
            return nil
        }
        switch scalar.text {
        case "true", "True", "TRUE": return true
        case "false", "False", "FALSE": return false
        default:
            report(node, "\(what) must be true or false, not '\(printable(scalar.text))'")
            return nil
        }
    }

    mutating func choice<T: RawRepresentable & CaseIterable>(_ node: YAMLNode, _ what: String) -> T? where T.RawValue == String {
        guard let text = string(node, what) else { return nil }
        guard let value = T(rawValue: text) else {
            let known = T.allCases.map { $0.rawValue }.joined(separator: ", ")
            report(node, "\(what) must be one of \(known), not '\(printable(text))'")
            return nil
        }
        return value
    }

    mutating func pciAddress(_ node: YAMLNode, _ what: String) -> PCIAddress? {
        guard let text = string(node, what, example: "\"0000:01:00.0\"") else { return nil }
        guard let address = PCIAddress(text) else {
            report(node, "'\(printable(text))' is not a PCI address",
                hint: "write it as lspci -D does, DDDD:BB:SS.F, e.g. \"0000:01:00.0\" (quoted)")
            return nil
        }
        return address
    }

    /// `"10de"` or `"0x10de"`: four hex digits, as text (unquoted, `8086`
    /// and `0x10de` are numbers in YAML, and `1b80` text: quote them all).
    mutating func hexID(_ node: YAMLNode, _ what: String) -> UInt16? {
        let hint = "quote it and use four hex digits as lspci -nn shows, e.g. \"10de\""
        guard let scalar = node.scalar, scalar.kind == .string else {
            report(node, "\(what) must be text, not \(describe(node))", hint: hint)
            return nil
        }
        let text = scalar.text
        let utf8 = Array(text.utf8)
        let digits = utf8.count == 6 && utf8[0] == UInt8(ascii: "0") && (utf8[1] | 0x20) == UInt8(ascii: "x") ? utf8[2...] : utf8[...]
        guard digits.count == 4, let value = UInt16(hexDigits: digits) else {
            report(node, "\(what) '\(printable(text))' is not a 4-digit hex ID", hint: hint)
            return nil
        }
        return value
    }
}

/// C0 and C1 control characters and DEL: never part of a name.
func isControl(_ scalar: Unicode.Scalar) -> Bool {
    scalar.value < 0x20 || (0x7f...0x9f).contains(scalar.value)
}
