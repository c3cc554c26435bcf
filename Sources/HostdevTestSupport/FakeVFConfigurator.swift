#if canImport(Glibc)
    import Glibc
#endif
public import HostdevCore
public import HostdevSysfs
import Synchronization

/// A physical function's driver as rtnetlink shows it, for tests: each VF
/// of a PF in a `SysfsTree` has settings (igb's defaults until set);
/// reading or setting them needs the PF's network interface
/// (`net/NAME`) and a VF number below its `sriov_numvfs`, as the kernel
/// does. Every change is logged, so tests can check what was set and in
/// which order.
public final class FakeVFConfigurator: VFConfigurator {
    public let tree: SysfsTree
    /// What a VF shows before anyone sets it (igb: zero MAC, no VLAN, spoof checking on).
    public static let defaults = VFSettings(mac: .zero, vlan: 0, trust: false, spoofchk: true)
    private let state = Mutex<(settings: [PCIAddress: [Int: VFSettings]], log: [String], failing: Set<PCIAddress>)>(([:], [], []))

    public init(tree: SysfsTree) { self.tree = tree }

    /// Each `apply`, as `PF vf N SETTINGS`, in order.
    public var log: [String] { state.withLock { $0.log } }

    /// The settings VF `index` of `pf` has now.
    public func current(_ pf: PCIAddress, _ index: Int) -> VFSettings {
        state.withLock { $0.settings[pf]?[index] } ?? Self.defaults
    }

    /// Makes every later change on `pf` fail with EOPNOTSUPP (a driver without VF settings).
    public func failChanges(on pf: PCIAddress) { state.withLock { _ = $0.failing.insert(pf) } }

    public func settings(of pf: PCIAddress) throws -> [Int: VFSettings] {
        let count = try numVFs(pf)
        return state.withLock { state in
            Dictionary(uniqueKeysWithValues: (0..<count).map { ($0, state.settings[pf]?[$0] ?? Self.defaults) })
        }
    }

    public func apply(_ settings: VFSettings, toVF index: Int, of pf: PCIAddress) throws {
        let count = try numVFs(pf)
        try state.withLock { state in
            if state.failing.contains(pf) { throw VFConfigurationError(pf: pf, interface: nil, operation: "RTM_SETLINK", errno: EOPNOTSUPP) }
            guard index < count else { throw VFConfigurationError(pf: pf, interface: nil, operation: "RTM_SETLINK VF \(index)", errno: EINVAL) }
            let now = state.settings[pf]?[index] ?? Self.defaults
            state.settings[pf, default: [:]][index] = settings.filling(from: now)
            state.log.append("\(pf) vf \(index) \(settings)")
        }
    }

    /// The PF's enabled VFs; throws as the netlink adapter does when it has no interface.
    private func numVFs(_ pf: PCIAddress) throws -> Int {
        let root = tree.sysfs
        guard let names = root.list("/sys/bus/pci/devices/\(pf)/net"), !names.isEmpty else {
            throw VFConfigurationError(pf: pf, interface: nil, operation: "finding the network interface", errno: ENOENT)
        }
        return root.read("/sys/bus/pci/devices/\(pf)/sriov_numvfs").flatMap { Int($0) } ?? 0
    }
}
