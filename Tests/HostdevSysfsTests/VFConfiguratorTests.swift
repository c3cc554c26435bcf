#if canImport(Glibc)
    import Glibc
#endif
import Foundation
import HostdevCore
import HostdevSysfs
import HostdevTestSupport
import Testing

/// Runs `body` on a thread of its own in a new, empty network namespace
/// (only `lo`, ifindex 1): the namespace is the thread's, so nothing
/// reaches this machine's interfaces. Throws when it cannot be made
/// (no CAP_SYS_ADMIN).
func inPrivateNetworkNamespace<T: Sendable>(_ body: @escaping @Sendable () -> T) throws -> T {
    let box = ThreadResult<T>()
    let done = DispatchSemaphore(value: 0)
    let thread = Thread {
        // CLONE_NEWNET: a namespace for this thread only.
        if unshareCall(0x4000_0000) != 0 {
            box.result = .failure(VFConfigurationError(pf: PCIAddress("0000:00:00.0")!, interface: nil, operation: "unshare(CLONE_NEWNET)", errno: errno))
        } else {
            box.result = .success(body())
        }
        done.signal()
    }
    thread.start()
    done.wait()
    return try box.result!.get()
}

/// A value a thread hands back. Written by the thread before it signals,
/// read after the wait: the semaphore orders the two.
final class ThreadResult<T>: @unchecked Sendable {
    var result: Result<T, any Error>?
}

/// unshare(2), which Glibc's module does not export, from the C library itself.
let unshareCall: @convention(c) (Int32) -> Int32 = unsafeBitCast(dlsym(dlopen(nil, RTLD_NOW), "unshare")!, to: (@convention(c) (Int32) -> Int32).self)

/// Whether this process may make network namespaces (root in CI).
let canMakeNetworkNamespaces: Bool = (try? inPrivateNetworkNamespace { true }) ?? false

@Suite struct VFConfiguratorTests {
    /// The real kernel parses the messages: in an empty namespace, `lo`
    /// has no VFs, so the link reply lists none and the kernel answers
    /// the VF settings with EOPNOTSUPP (lo's driver has no VF operations),
    /// not EINVAL (a malformed message) and not success.
    @Test(.enabled(if: canMakeNetworkNamespaces || RealComponent.required, "needs CAP_SYS_ADMIN for a private network namespace"))
    func theKernelAnswersTheMessagesOnADeviceWithoutVFs() throws {
        let (read, set) = try inPrivateNetworkNamespace { () -> (Result<[Int: VFSettings], VFConfigurationError>, VFConfigurationError?) in
            let read = Result { () throws(VFConfigurationError) in try NetlinkVFConfigurator.settings(ifindex: 1, timeout: .seconds(5)) }
            do {
                try NetlinkVFConfigurator.apply(
                    VFSettings(mac: MACAddress("52:54:00:12:34:56")!, vlan: 100, trust: false, spoofchk: true), toVF: 2, ifindex: 1, timeout: .seconds(5))
                return (read, nil)
            } catch {
                return (read, error as? VFConfigurationError)
            }
        }
        #expect(try read.get() == [:])
        #expect(set?.errno == EOPNOTSUPP)
        #expect(set?.description.contains("its driver does not support this VF setting") == true)
    }

    @Test(.enabled(if: canMakeNetworkNamespaces || RealComponent.required, "needs CAP_SYS_ADMIN for a private network namespace"))
    func anInterfaceThatDoesNotExistIsENODEV() throws {
        let error = try inPrivateNetworkNamespace { () -> VFConfigurationError? in
            do {
                try NetlinkVFConfigurator.apply(VFSettings(vlan: 5), toVF: 0, ifindex: 4242, timeout: .seconds(5))
                return nil
            } catch {
                return error as? VFConfigurationError
            }
        }
        #expect(error?.errno == ENODEV)
    }

    @Test func thePFsInterfaceComesFromSysfs() throws {
        let tree = SysfsTree.sriovHost(pfs: 2, vfsPerPF: 2)
        let pf0 = PCIAddress("0000:81:00.0")!
        tree.addNet("enp129s0f0", under: tree.pciPath(pf0), mac: "3c:fd:fe:00:00:01", ifindex: 7)
        let configurator = NetlinkVFConfigurator(root: tree.sysfs)
        let found = try configurator.interface(of: pf0)
        #expect(found.name == "enp129s0f0" && found.index == 7)
        // A PF without a netdev (its driver unbound) says so, naming the directory.
        #expect {
            try configurator.interface(of: PCIAddress("0000:81:00.1")!)
        } throws: { error in
            "\(error)".contains("/sys/bus/pci/devices/0000:81:00.1/net is empty or missing: the PF has no network interface")
        }
    }

    @Test func theFakeActsLikeAPFsDriver() throws {
        let tree = SysfsTree.sriovHost(pfs: 1, vfsPerPF: 2)
        let pf0 = PCIAddress("0000:81:00.0")!
        let fake = FakeVFConfigurator(tree: tree)
        #expect(throws: VFConfigurationError.self) { try fake.settings(of: pf0) }  // no netdev yet
        tree.addNet("enp129s0f0", under: tree.pciPath(pf0), mac: "3c:fd:fe:00:00:01")
        #expect(try fake.settings(of: pf0) == [0: FakeVFConfigurator.defaults, 1: FakeVFConfigurator.defaults])
        try fake.apply(VFSettings(vlan: 7), toVF: 1, of: pf0)
        #expect(fake.current(pf0, 1) == VFSettings(mac: .zero, vlan: 7, trust: false, spoofchk: true))
        #expect { try fake.apply(VFSettings(vlan: 7), toVF: 2, of: pf0) } throws: { ($0 as? VFConfigurationError)?.errno == EINVAL }
        // By VF address, over an inventory.
        let inventory = try InventoryReader(root: tree.sysfs).read()
        let vfs = try #require(inventory.device(at: pf0)?.pci?.sriov?.virtualFunctions)
        #expect(fake.settings(in: inventory) == [vfs[0]: FakeVFConfigurator.defaults, vfs[1]: VFSettings(mac: .zero, vlan: 7, trust: false, spoofchk: true)])
    }

    @Test func aVFsPositionIsItsNumber() throws {
        let tree = SysfsTree.sriovHost(pfs: 1, vfsPerPF: 3)
        let pf0 = PCIAddress("0000:81:00.0")!
        // virtfn1 missing (a VF being removed): VF 2 must not take its place.
        unlink(tree.sysfs.hostPath(tree.pciPath(pf0) + "/virtfn1"))
        let inventory = try InventoryReader(root: tree.sysfs).read()
        #expect(inventory.device(at: pf0)?.pci?.sriov?.virtualFunctions.map(\.description) == ["0000:82:00.0"])
    }
}
