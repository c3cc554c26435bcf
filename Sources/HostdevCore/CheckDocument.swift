/// `hostdevctl check`: each finding with its verdict and, when it is not a
/// pass, what to do. Text for people, `--format json` for scripts; exit
/// status 1 when anything failed (warnings allowed).
public struct CheckReport: JSONDocument, Sendable, Equatable {
    public enum Verdict: String, Sendable, Equatable {
        case pass, warn, fail

        /// The text report's column: `ok  `, `warn`, `FAIL`.
        public var label: String {
            switch self {
            case .pass: return "ok  "
            case .warn: return "warn"
            case .fail: return "FAIL"
            }
        }
    }

    public struct Finding: Sendable, Equatable {
        public var verdict: Verdict
        /// Which check: `iommu`, `vfio-pci`, `interrupt-remapping`, `libvirt`, `vfio-node`, `iommu-group`, `vm`,
        /// and per claim `pci`, `vf`, `mdev`, `scsi`, `usb`.
        public var check: String
        public var what: String
        public var remedy: String?
        /// The device the finding is about, as `DeviceIdentifier` names it.
        public var device: String?
        public var vm: String?

        public init(_ verdict: Verdict, check: String, _ what: String, remedy: String? = nil, device: String? = nil, vm: String? = nil) {
            self.verdict = verdict
            self.check = check
            self.what = what
            self.remedy = remedy
            self.device = device
            self.vm = vm
        }
    }

    public var findings: [Finding]

    public init(findings: [Finding]) { self.findings = findings }

    /// The seed's last word on a device that will not assign.
    public static let advice = "If a device still fails to assign, booting with pci=realloc lets the kernel reassign the resources the firmware gave it."

    public var failed: Bool { findings.contains { $0.verdict == .fail } }
    public var exitCode: Int32 { failed ? 1 : 0 }

    public func text() -> String {
        var out = ""
        for finding in findings {
            out += "\(finding.verdict.label)  \(finding.what)\n"
            if let remedy = finding.remedy, finding.verdict != .pass { out += "      → \(remedy)\n" }
        }
        return out + "\n" + Self.advice + "\n"
    }

    public var json: JSONText {
        .object([
            ("kind", .string("check")), ("exitCode", .number(Int(exitCode))),
            ("findings", .array(findings.map { finding in
                var fields: [(String, JSONText)] = [
                    ("verdict", .string(finding.verdict.rawValue)), ("check", .string(finding.check)), ("what", .string(finding.what)),
                ]
                if let device = finding.device { fields.append(("device", .string(device))) }
                if let vm = finding.vm { fields.append(("vm", .string(vm))) }
                if let remedy = finding.remedy { fields.append(("remedy", .string(remedy))) }
                return .object(fields)
            })),
            ("advice", .string(Self.advice)),
        ])
    }

    /// A finding per binding whose VM libvirt does not define, with a
    /// "did you mean" when a defined VM's name is close.
    public static func undefinedVMs(_ manifest: Manifest, defined: [String]) -> [Finding] {
        let known = Set(defined)
        return manifest.bindings.filter { !known.contains($0.vm) }.map { binding in
            Finding(.warn, check: "vm", "VM '\(binding.vm)' is not defined in libvirt\(Suggestion.hint(for: binding.vm, among: defined.sorted()))",
                remedy: "fix the name in the manifest, or define the VM; until then its devices are reserved per 'release'", vm: binding.vm)
        }
    }
}

/// `hostdevctl validate --format json`: each file's verdict and its
/// errors with line and column. `exitCode` 1 when any file is invalid.
public struct ValidateDocument: JSONDocument, Sendable, Equatable {
    public struct Problem: Sendable, Equatable {
        /// The drop-in (`bindings.d/NAME.yaml`) the problem is in; nil: the file checked.
        public var dropIn: String?
        public var line: Int
        public var column: Int
        public var message: String
        public var hint: String?

        public init(dropIn: String? = nil, line: Int, column: Int, message: String, hint: String?) {
            self.dropIn = dropIn
            self.line = line
            self.column = column
            self.message = message
            self.hint = hint
        }
    }

    public struct FileResult: Sendable, Equatable {
        /// The path as given; `-` is standard input.
        public var file: String
        public var bindings: Int
        public var devices: Int
        /// Empty when valid. A file that cannot be read has one problem at 0:0.
        public var problems: [Problem]

        public init(file: String, bindings: Int = 0, devices: Int = 0, problems: [Problem] = []) {
            self.file = file
            self.bindings = bindings
            self.devices = devices
            self.problems = problems
        }

        public var valid: Bool { problems.isEmpty }
    }

    public var files: [FileResult]

    public init(files: [FileResult]) { self.files = files }

    public var exitCode: Int32 { files.allSatisfy(\.valid) ? 0 : 1 }

    public var json: JSONText {
        .object([
            ("kind", .string("validate")), ("exitCode", .number(Int(exitCode))),
            ("files", .array(files.map { file in
                .object([
                    ("file", .string(file.file)), ("valid", .bool(file.valid)),
                    ("bindings", .number(file.bindings)), ("devices", .number(file.devices)),
                    ("errors", .array(file.problems.map { problem in
                        var fields: [(String, JSONText)] = problem.dropIn.map { [("dropIn", .string($0))] } ?? []
                        fields += [("line", .number(problem.line)), ("column", .number(problem.column)), ("message", .string(problem.message))]
                        if let hint = problem.hint { fields.append(("hint", .string(hint))) }
                        return .object(fields)
                    })),
                ])
            })),
        ])
    }
}
