/// One change to the host. The executor has one `switch` over these.
public enum Action: Sendable, Equatable, Codable {
    /// Move a PCI function to `driver` (vfio-pci), remembering the one it had.
    case bind(PCIAddress, driver: String, vm: String)
    /// Give a PCI function back to `driver` (nil: whatever the kernel matches).
    case restore(PCIAddress, driver: String?)
    case attachConfig(vm: String, HostdevEntry)
    case detachConfig(vm: String, HostdevEntry)
    case attachLive(vm: String, HostdevEntry)
    case detachLive(vm: String, HostdevEntry)
    case setNumVFs(pf: PCIAddress, count: Int)
    /// Single-GPU passthrough (`force: [console]`): unbind the virtual
    /// consoles from this GPU's framebuffer, then the firmware framebuffer
    /// on it, before the GPU leaves its host driver.
    case releaseConsole(PCIAddress)
    /// The reverse, after the GPU is back on its host driver.
    case restoreConsole(PCIAddress)
    /// Create a mediated device on its parent (sysfs `create`) for `vm`.
    case createMdev(MdevSpec, vm: String)
    /// Remove a mediated device this tool created (sysfs `remove`) and
    /// forget it; `destroy: false` only forgets it (it is gone, or mdevctl
    /// now defines it: the host's own).
    case removeMdev(MdevSpec, destroy: Bool)
    /// Set an SR-IOV VF's MAC, VLAN, trust or spoofchk through its PF
    /// (rtnetlink), for `vm`; `previous` is what they are now, journaled
    /// first so that a release puts them back.
    case configureVF(VFTarget, VFSettings, previous: VFSettings, vm: String)
    /// Put a VF's journaled settings back and forget them; `apply: false`
    /// only forgets (the VF or its PF is gone).
    case restoreVF(VFTarget, VFSettings, apply: Bool)

    /// `+`, `-` or `~`, as `terraform plan` marks additions, removals, changes.
    public var symbol: String {
        switch self {
        case .bind, .attachConfig, .attachLive, .createMdev: return "+"
        case .restore, .detachConfig, .detachLive: return "-"
        case .removeMdev(_, let destroy): return destroy ? "-" : "~"
        case .setNumVFs, .releaseConsole, .restoreConsole, .configureVF, .restoreVF: return "~"
        }
    }

    public var summary: String {
        switch self {
        case .bind(let a, let driver, _): return "bind \(a) to \(driver)"
        case .restore(let a, let driver): return "release \(a) to \(driver ?? "its host driver")"
        case .attachConfig(let vm, let e): return "add \(e.element) \(e) to \(vm)'s config"
        case .detachConfig(let vm, let e): return "remove \(e.element) \(e) from \(vm)'s config"
        case .attachLive(let vm, let e): return "hotplug \(e) into running \(vm)"
        case .detachLive(let vm, let e): return "unplug \(e) from running \(vm)"
        case .setNumVFs(let pf, let n): return "set \(pf) sriov_numvfs to \(n)"
        case .releaseConsole(let gpu): return "hand the host console on \(gpu) over (unbind its virtual consoles and firmware framebuffer)"
        case .restoreConsole(let gpu): return "give the host console back to \(gpu)"
        case .createMdev(let spec, let vm): return "create \(spec) (\(spec.type) on \(spec.parent)) for \(vm)"
        case .removeMdev(let spec, let destroy):
            return destroy ? "remove \(spec) (\(spec.type) on \(spec.parent))" : "forget \(spec) (left on the host)"
        case .configureVF(let target, let settings, _, _): return "set \(target) \(settings)"
        case .restoreVF(let target, let settings, let apply):
            return apply ? "give \(target) back its \(settings)" : "forget the settings of \(target) (it is gone)"
        }
    }
}

extension Action {
    /// The device a step is about: a failure skips that device's later
    /// steps, and its backoff is charged to this key.
    public var deviceKey: String {
        switch self {
        case .bind(let a, _, _), .restore(let a, _), .releaseConsole(let a), .restoreConsole(let a): return DeviceIdentifier.pci(a)
        case .attachConfig(_, let e), .detachConfig(_, let e), .attachLive(_, let e), .detachLive(_, let e): return e.description
        case .setNumVFs(let pf, _): return "sriov \(pf)"
        case .createMdev(let spec, _), .removeMdev(let spec, _): return spec.description
        case .configureVF(let target, _, _, _), .restoreVF(let target, _, _): return DeviceIdentifier.pci(target.vf)
        }
    }

    /// The VM a step concerns, if any.
    public var vm: String? {
        switch self {
        case .bind(_, _, let vm), .attachConfig(let vm, _), .detachConfig(let vm, _), .attachLive(let vm, _), .detachLive(let vm, _),
            .createMdev(_, let vm), .configureVF(_, _, _, let vm):
            return vm
        case .restore, .setNumVFs, .releaseConsole, .restoreConsole, .removeMdev, .restoreVF: return nil
        }
    }

    /// Moves a device between drivers or creates or removes one (sysfs,
    /// under the state lock), as opposed to editing a domain (libvirt,
    /// never under the lock).
    public var movesDriver: Bool {
        switch self {
        case .bind, .restore, .setNumVFs, .releaseConsole, .restoreConsole, .createMdev, .removeMdev, .configureVF, .restoreVF: return true
        case .attachConfig, .detachConfig, .attachLive, .detachLive: return false
        }
    }
}

/// An action with the reason a person needs to trust it.
public struct Step: Sendable, Equatable {
    public var action: Action
    public var reason: String

    public init(_ action: Action, reason: String) {
        self.action = action
        self.reason = reason
    }
}

/// A binding that claims a PCI device.
public struct Claimant: Sendable, Equatable {
    public var vm: String
    /// The device the binding names; the claimed one itself, or the IOMMU
    /// group sibling it comes with.
    public var via: PCIAddress
    /// Attached to the VM; false: held on vfio-pci as a group placeholder.
    public var attach: Bool

    public init(vm: String, via: PCIAddress, attach: Bool) {
        self.vm = vm
        self.via = via
        self.attach = attach
    }
}

/// A binding that claims a USB, mediated or SCSI device.
public struct SourceClaimant: Sendable, Equatable {
    public var vm: String
    /// The claim as the manifest names the device (`usb bus 1 device 4`,
    /// `scsi /dev/disk/by-id/…`): the key of its condition.
    public var selector: String
    /// What a mediated-device claim asks for (parent and type), which
    /// describes the device before it exists.
    public var mdev: MdevSpec?

    public init(vm: String, selector: String, mdev: MdevSpec? = nil) {
        self.vm = vm
        self.selector = selector
        self.mdev = mdev
    }
}

/// A binding's or device's state after planning.
public enum Condition: Sendable, Equatable, Codable, CustomStringConvertible {
    /// Nothing left to do.
    case ready
    /// Steps are planned (or it waits for something: a VM to be defined, a device to appear).
    case pending(String)
    /// It cannot proceed; the reason says why and what to do.
    case blocked(String)

    public var description: String {
        switch self {
        case .ready: return "Ready"
        case .pending(let why): return "Pending: \(why)"
        case .blocked(let why): return "Blocked: \(why)"
        }
    }

    public var isBlocked: Bool { if case .blocked = self { return true } else { return false } }

    /// Why it is Pending or Blocked; nil when Ready.
    public var reason: String? {
        switch self {
        case .ready: return nil
        case .pending(let why), .blocked(let why): return why
        }
    }
}

/// What the planner decided: ordered steps, and a condition for each binding
/// and each device it considered.
public struct Plan: Sendable, Equatable {
    public var steps: [Step]
    public var bindings: [String: Condition]
    /// By device description (`pci 0000:01:00.0`).
    public var devices: [String: Condition]
    /// Things an operator should know that need no action (foreign vfio devices, …).
    public var notes: [String]

    public init(steps: [Step] = [], bindings: [String: Condition] = [:], devices: [String: Condition] = [:], notes: [String] = []) {
        self.steps = steps
        self.bindings = bindings
        self.devices = devices
        self.notes = notes
    }

    /// VMs whose `live: true` the ledger should remember (see `Ledger.liveVMs`).
    public var liveVMs: Set<String> = []
    /// Host-use kinds the manifest hands over, by device (`force:`): the
    /// executor's last check before a bind lets exactly these through.
    public var handedOver: [PCIAddress: Set<HandOver>] = [:]
    /// Every binding that claims each PCI device (itself or as an IOMMU
    /// group sibling), before conflicts and safety rules: who wants it, for
    /// `hostdevctl describe`. Two claimants of one device are a conflict.
    public var claimants: [PCIAddress: [Claimant]] = [:]
    /// Every binding that claims a USB, mediated or SCSI device, by the
    /// `<hostdev>` source its claim resolved to (a SCSI path to its
    /// address, a USB ID picked by `index` to bus:device), before conflicts
    /// and safety: the other kinds' `claimants`, for `hostdevctl describe`.
    public var sourceClaimants: [HostdevEntry.Source: [SourceClaimant]] = [:]

    public var isEmpty: Bool { steps.isEmpty }

    /// What `plan`'s exit status and a GitOps pipeline need to know.
    public enum Verdict: Sendable, Equatable {
        /// No steps and every binding Ready: 0.
        case converged
        /// Steps to apply: 2.
        case changes
        /// No steps, but a binding is Blocked or Pending: 3.
        case waiting

        public var exitCode: Int32 {
            switch self {
            case .converged: return 0
            case .changes: return 2
            case .waiting: return 3
            }
        }
    }

    public var verdict: Verdict {
        if !steps.isEmpty { return .changes }
        return bindings.values.allSatisfy { $0 == .ready } ? .converged : .waiting
    }

    /// Bindings that are Blocked, by VM.
    public var blockedBindings: [String] { bindings.filter { $0.value.isBlocked }.map(\.key).sorted() }
}
