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
public struct ManifestDecoder {
    public let file: String
    private var diagnostics: [ManifestDiagnostic] = []

    private init(file: String) { self.file = file }

    public static func decode(_ text: String, file: String) throws(ManifestErrors) -> Manifest {
        var decoder = ManifestDecoder(file: file)
        let manifest = decoder.decodeDocument(text)
        guard decoder.diagnostics.isEmpty, let manifest else { throw ManifestErrors(diagnostics: decoder.diagnostics) }
        return manifest
    }

    // MARK: document

    mutating func decodeDocument(_ text: String) -> Manifest? {
        let root: YAMLNode
        do {
            guard let node = try YAMLNode.compose(text) else {
                report(nil, "the manifest is empty", hint: "start with 'version: 1'")
                return nil
            }
            root = node
        } catch {
            diagnostics.append(ManifestDiagnostic(
                location: SourceLocation(file: file, line: error.mark.line, column: error.mark.column),
                message: "YAML syntax: \(error.problem)", hint: "check indentation and quoting around here"))
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
        let host = fields["host"].map { decodeHost($0) } ?? HostPolicy()
        var bindings: [Binding] = []
        if let list = fields["bindings"].flatMap({ sequence($0, "bindings") }) {
            bindings = list.compactMap { decodeBinding($0) }
        }
        checkDuplicates(bindings, host: host)
        return Manifest(host: host, bindings: bindings, fingerprint: Manifest.fingerprint(of: text))
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
                if let pf = pciAddress(pfNode, "pf"), let count = integer(numNode, "numvfs") {
                    if count < 0 { report(numNode, "numvfs must be 0 or more, not \(count)") }
                    host.sriov.append(SRIOVSetting(pf: pf, numVFs: count, location: location(entry)))
                }
            }
        }
        return host
    }

    mutating func decodeBinding(_ node: YAMLNode) -> Binding? {
        guard let fields = mapping(node, "a binding", keys: ["vm", "release", "live", "devices"]) else { return nil }
        guard let vmNode = fields["vm"] else {
            report(node, "binding without 'vm'", hint: "name the libvirt domain: vm: win11")
            return nil
        }
        guard let vm = string(vmNode, "vm") else { return nil }
        if vm.isEmpty || vm.contains("/") {
            report(vmNode, "'\(vm)' is not a libvirt domain name", hint: "use the name 'virsh list --all' shows")
        }
        var binding = Binding(vm: vm, devices: [], location: location(node))
        if let value = fields["release"] { binding.release = choice(value, "release") ?? .never }
        if let value = fields["live"] { binding.live = boolean(value, "live") ?? false }
        guard let devicesNode = fields["devices"] else {
            report(node, "binding for '\(vm)' has no 'devices'", hint: "list at least one device, or remove the binding")
            return binding
        }
        if let list = sequence(devicesNode, "devices") {
            if list.isEmpty { report(devicesNode, "binding for '\(vm)' lists no devices", hint: "add a device or remove the binding") }
            binding.devices = list.compactMap { decodeClaim($0) }
        }
        return binding
    }

    mutating func decodeClaim(_ node: YAMLNode) -> DeviceClaim? {
        guard let fields = mapping(node, "a device", keys: ["pci", "usb", "group"]) else { return nil }
        let group = fields["group"].flatMap { choice($0, "group") as GroupMode? } ?? .attach
        switch (fields["pci"], fields["usb"]) {
        case (let pci?, nil):
            guard let selector = pciSelector(pci) else { return nil }
            return DeviceClaim(selector, group: group, location: location(node))
        case (nil, let usb?):
            if let groupNode = fields["group"] {
                report(groupNode, "'group' applies to PCI devices only", hint: "USB devices have no IOMMU group; remove it")
            }
            guard let selector = usbSelector(usb) else { return nil }
            return DeviceClaim(selector, group: group, location: location(node))
        case (nil, nil):
            report(node, "device without 'pci' or 'usb'", hint: "write pci: \"0000:01:00.0\" or usb: {vendor: \"046d\", product: \"c52b\"}")
        case (_?, _?):
            report(node, "a device has both 'pci' and 'usb'", hint: "one entry names one device; split it in two")
        }
        return nil
    }

    mutating func pciSelector(_ node: YAMLNode) -> DeviceSelector? {
        if case .scalar = node { return pciAddress(node, "pci").map(DeviceSelector.pci) }
        guard let fields = mapping(node, "pci", keys: ["vendor", "device", "index"]) else { return nil }
        guard let vendorNode = fields["vendor"], let deviceNode = fields["device"] else {
            report(node, "pci by ID needs both 'vendor' and 'device'", hint: "e.g. pci: {vendor: \"10de\", device: \"1b80\"}")
            return nil
        }
        guard let vendor = hexID(vendorNode, "vendor"), let device = hexID(deviceNode, "device") else { return nil }
        return .pciID(vendor: vendor, device: device, index: fields["index"].flatMap { index($0) })
    }

    mutating func usbSelector(_ node: YAMLNode) -> DeviceSelector? {
        guard let fields = mapping(node, "usb", keys: ["vendor", "product", "index", "bus", "device"]) else { return nil }
        switch (fields["vendor"], fields["product"], fields["bus"], fields["device"]) {
        case (let v?, let p?, nil, nil):
            guard let vendor = hexID(v, "vendor"), let product = hexID(p, "product") else { return nil }
            return .usbID(vendor: vendor, product: product, index: fields["index"].flatMap { index($0) })
        case (nil, nil, let b?, let d?):
            if let i = fields["index"] { report(i, "'index' applies to usb by vendor/product only") }
            guard let bus = integer(b, "bus"), let device = integer(d, "device") else { return nil }
            guard (1...127).contains(device), bus >= 1 else {
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
    /// manifest must say one thing about each.
    mutating func checkDuplicates(_ bindings: [Binding], host: HostPolicy) {
        var firstVM: [String: SourceLocation] = [:]
        var firstDevice: [DeviceSelector: (vm: String, location: SourceLocation?)] = [:]
        for binding in bindings {
            if let first = firstVM[binding.vm] {
                diagnostics.append(ManifestDiagnostic(
                    location: binding.location ?? first, message: "VM '\(binding.vm)' has a second binding",
                    hint: "merge it into the first, at line \(first.line)"))
            } else if let location = binding.location {
                firstVM[binding.vm] = location
            }
            for claim in binding.devices {
                if let first = firstDevice[claim.selector] {
                    diagnostics.append(ManifestDiagnostic(
                        location: claim.location ?? SourceLocation(file: file, line: 0, column: 0),
                        message: "\(claim.selector) is named twice",
                        hint: "it is already claimed by '\(first.vm)'" + (first.location.map { " at line \($0.line)" } ?? "")
                            + "; a device belongs to one VM"))
                } else {
                    firstDevice[claim.selector] = (binding.vm, claim.location)
                }
            }
        }
        var seenPF = Set<PCIAddress>()
        for setting in host.sriov where !seenPF.insert(setting.pf).inserted {
            diagnostics.append(ManifestDiagnostic(
                location: setting.location ?? SourceLocation(file: file, line: 0, column: 0),
                message: "sriov for \(setting.pf) is given twice", hint: "keep one entry per physical function"))
        }
    }

    // MARK: typed readers

    func location(_ node: YAMLNode?) -> SourceLocation {
        SourceLocation(file: file, line: node?.mark.line ?? 1, column: node?.mark.column ?? 1)
    }

    mutating func report(_ node: YAMLNode?, _ message: String, hint: String? = nil) {
        diagnostics.append(ManifestDiagnostic(location: location(node), message: message, hint: hint))
    }

    /// A mapping with string keys, each from `keys`; unknown keys are reported
    /// with the nearest known one as a hint.
    mutating func mapping(_ node: YAMLNode, _ what: String, keys: [String]) -> [String: YAMLNode]? {
        guard case .mapping(let mapping, _) = node else {
            report(node, "\(what) must be a mapping (key: value lines)")
            return nil
        }
        var fields: [String: YAMLNode] = [:]
        for pair in mapping {
            let (keyNode, value) = (pair.key, pair.value)
            guard let key = keyNode.scalarText else {
                report(keyNode, "keys in \(what) must be plain words")
                continue
            }
            guard keys.contains(key) else {
                let suggestion = keys.min { editDistance($0, key) < editDistance($1, key) }
                let close = suggestion.map { editDistance($0, key) <= 2 } ?? false
                report(keyNode, "unknown key '\(key)' in \(what)",
                    hint: close ? "did you mean '\(suggestion!)'?" : "known keys: \(keys.joined(separator: ", "))")
                continue
            }
            if fields[key] != nil {
                report(keyNode, "duplicate key '\(key)' in \(what)", hint: "each key may appear once")
            }
            fields[key] = value
        }
        return fields
    }

    mutating func sequence(_ node: YAMLNode, _ what: String) -> [YAMLNode]? {
        guard case .sequence(let sequence, _) = node else {
            report(node, "\(what) must be a list (lines starting with '- ')")
            return nil
        }
        return Array(sequence)
    }

    mutating func string(_ node: YAMLNode, _ what: String) -> String? {
        guard let text = node.scalarText else {
            report(node, "\(what) must be a text value")
            return nil
        }
        return text
    }

    mutating func integer(_ node: YAMLNode, _ what: String) -> Int? {
        guard let text = node.scalarText, let value = Int(text) else {
            report(node, "\(what) must be a whole number")
            return nil
        }
        return value
    }

    mutating func index(_ node: YAMLNode) -> Int? {
        guard let value = integer(node, "index") else { return nil }
        guard value >= 0 else {
            report(node, "index must be 0 or more", hint: "index 0 is the first match by PCI address")
            return nil
        }
        return value
    }

    mutating func boolean(_ node: YAMLNode, _ what: String) -> Bool? {
        guard let text = node.scalarText else {
            report(node, "\(what) must be true or false")
            return nil
        }
        switch text {
        case "true", "True", "yes": return true
        case "false", "False", "no": return false
        default:
            report(node, "\(what) must be true or false, not '\(text)'")
            return nil
        }
    }

    mutating func choice<T: RawRepresentable & CaseIterable>(_ node: YAMLNode, _ what: String) -> T? where T.RawValue == String {
        guard let text = string(node, what) else { return nil }
        guard let value = T(rawValue: text) else {
            report(node, "\(what) must be one of \(T.allCases.map { $0.rawValue }.joined(separator: ", ")), not '\(text)'")
            return nil
        }
        return value
    }

    mutating func pciAddress(_ node: YAMLNode, _ what: String) -> PCIAddress? {
        guard let text = string(node, what) else { return nil }
        guard let address = PCIAddress(text) else {
            report(node, "'\(text)' is not a PCI address",
                hint: "write it as lspci -D does, DDDD:BB:SS.F, e.g. \"0000:01:00.0\" (quoted)")
            return nil
        }
        return address
    }

    /// `"10de"` or `"0x10de"`: four hex digits.
    mutating func hexID(_ node: YAMLNode, _ what: String) -> UInt16? {
        guard let text = string(node, what) else { return nil }
        let digits = text.hasPrefix("0x") || text.hasPrefix("0X") ? text.dropFirst(2) : Substring(text)
        guard digits.count == 4, let value = UInt16(hexText: digits) else {
            report(node, "\(what) '\(text)' is not a 4-digit hex ID",
                hint: "quote it and use four hex digits as lspci -nn shows, e.g. \"10de\"")
            return nil
        }
        return value
    }
}

/// Levenshtein distance, for "did you mean" hints on short keys.
func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a.lowercased())
    let b = Array(b.lowercased())
    var previous = Array(0...b.count)
    for i in 1...max(a.count, 1) where !a.isEmpty {
        var current = [i] + Array(repeating: 0, count: b.count)
        for j in stride(from: 1, through: b.count, by: 1) {
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        previous = current
    }
    return a.isEmpty ? b.count : previous[b.count]
}
