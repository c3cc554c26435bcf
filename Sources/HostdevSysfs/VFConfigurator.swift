#if canImport(Glibc)
    import Glibc
#endif
public import HostdevCore

/// Reads and sets SR-IOV VFs' settings (MAC, VLAN, trust, spoofchk)
/// through their physical function: rtnetlink on the live host
/// (`NetlinkVFConfigurator`), an in-memory one in tests.
public protocol VFConfigurator: Sendable {
    /// The settings of every VF of `pf`, by VF number.
    func settings(of pf: PCIAddress) throws -> [Int: VFSettings]
    /// Sets the given settings (nil fields are left alone) on VF `index` of `pf`.
    func apply(_ settings: VFSettings, toVF index: Int, of pf: PCIAddress) throws
}

extension VFConfigurator {
    /// Each VF's settings on this host, by the VF's PCI address, for every
    /// physical function in `inventory` with VFs enabled and a network
    /// interface; a PF whose settings cannot be read is left out (its
    /// VFs' settings are then unknown, and none is changed).
    public func settings(in inventory: Inventory) -> [PCIAddress: VFSettings] {
        var result: [PCIAddress: VFSettings] = [:]
        for device in inventory.devices {
            guard let pci = device.pci, let sriov = pci.sriov, !sriov.virtualFunctions.isEmpty,
                let byIndex = try? settings(of: pci.address)
            else { continue }
            for (index, vf) in sriov.virtualFunctions.enumerated() { if let found = byIndex[index] { result[vf] = found } }
        }
        return result
    }
}

/// Why a VF's settings could not be read or set.
public struct VFConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    public var pf: PCIAddress
    /// The PF's network interface, when one was found.
    public var interface: String?
    public var operation: String
    public var errno: Int32
    public var detail: String?

    public init(pf: PCIAddress, interface: String?, operation: String, errno: Int32, detail: String? = nil) {
        self.pf = pf
        self.interface = interface
        self.operation = operation
        self.errno = errno
        self.detail = detail
    }

    public var description: String {
        var text = "\(operation) on \(pf)" + (interface.map { " (\($0))" } ?? "") + " failed"
        if errno != 0 { text += ": \(String(cString: strerror(errno))) (errno \(errno))" }
        if let detail { text += ": \(detail)" }
        switch errno {
        case EOPNOTSUPP: text += "; its driver does not support this VF setting (or the device has no VFs)"
        case EINVAL: text += "; the driver refused the value (is the VF number within sriov_numvfs?)"
        case EPERM, EACCES: text += "; run as root (CAP_NET_ADMIN)"
        default: break
        }
        return text
    }
}

/// VF settings through rtnetlink on the PF's network interface (found as
/// `/sys/bus/pci/devices/PF/net/*` under the sysfs root): `RTM_GETLINK`
/// with `RTEXT_FILTER_VF` to read, `RTM_SETLINK` with `IFLA_VFINFO_LIST`
/// to set, as `ip link` does, over a socket of its own (no `ip` process).
/// The messages are `RTNetlink`'s.
public struct NetlinkVFConfigurator: VFConfigurator {
    public let root: SysfsRoot
    /// How long one request waits for the kernel's answer.
    public var timeout: Duration = .seconds(5)

    public init(root: SysfsRoot) { self.root = root }

    /// The PF's network interface name and index, from sysfs.
    public func interface(of pf: PCIAddress) throws -> (name: String, index: Int32) {
        let net = "/sys/bus/pci/devices/\(pf)/net"
        guard let name = root.list(net)?.sorted().first else {
            throw VFConfigurationError(pf: pf, interface: nil, operation: "finding the network interface", errno: ENOENT,
                detail: "\(net) is empty or missing: the PF has no network interface (is its driver bound?)")
        }
        guard let index = root.read("\(net)/\(name)/ifindex").flatMap({ Int32($0) }) else {
            throw VFConfigurationError(pf: pf, interface: name, operation: "reading \(net)/\(name)/ifindex", errno: ENOENT)
        }
        return (name, index)
    }

    public func settings(of pf: PCIAddress) throws -> [Int: VFSettings] {
        let (name, index) = try interface(of: pf)
        do {
            return try Self.settings(ifindex: index, timeout: timeout)
        } catch var error {
            error.pf = pf
            error.interface = name
            throw error
        }
    }

    public func apply(_ settings: VFSettings, toVF vf: Int, of pf: PCIAddress) throws {
        let (name, index) = try interface(of: pf)
        do {
            try Self.apply(settings, toVF: vf, ifindex: index, timeout: timeout)
        } catch var error {
            error.pf = pf
            error.interface = name
            throw error
        }
    }

    /// The VFs' settings of interface `ifindex` in this thread's network namespace.
    public static func settings(ifindex: Int32, timeout: Duration) throws(VFConfigurationError) -> [Int: VFSettings] {
        let socket = try NetlinkSocket(timeout: timeout)
        let sequence = socket.nextSequence()
        switch try socket.exchange(RTNetlink.getLinkRequest(ifindex: ifindex, sequence: sequence), sequence: sequence, what: "RTM_GETLINK") {
        case .link(let vfs): return vfs
        case .acknowledged: return [:]
        case .failed(let errno): throw VFConfigurationError(pf: .unknown, interface: nil, operation: "RTM_GETLINK", errno: errno)
        }
    }

    /// Sets `settings` on VF `vf` of interface `ifindex` in this thread's network namespace.
    public static func apply(_ settings: VFSettings, toVF vf: Int, ifindex: Int32, timeout: Duration) throws(VFConfigurationError) {
        let socket = try NetlinkSocket(timeout: timeout)
        let sequence = socket.nextSequence()
        let request = RTNetlink.setVFRequest(ifindex: ifindex, vf: vf, settings: settings, sequence: sequence)
        switch try socket.exchange(request, sequence: sequence, what: "RTM_SETLINK") {
        case .acknowledged, .link: return
        case .failed(let errno):
            throw VFConfigurationError(pf: .unknown, interface: nil, operation: "RTM_SETLINK VF \(vf) \(settings)", errno: errno)
        }
    }
}

extension PCIAddress {
    /// A placeholder until the caller fills in the PF it asked about.
    static let unknown = PCIAddress(domain: 0, bus: 0, slot: 0, function: 0)
}

/// One `NETLINK_ROUTE` socket: a request sent, its answer read; closed when it goes.
struct NetlinkSocket: ~Copyable {
    let fd: Int32
    /// Netlink replies carry the request's sequence number; this one is per socket.
    private static let start = UInt32(truncatingIfNeeded: getpid())

    init(timeout: Duration) throws(VFConfigurationError) {
        // NETLINK_ROUTE is protocol 0. Unbound: the kernel assigns the
        // port on the first send, and sends go to the kernel (port 0).
        let fd = socket(AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw VFConfigurationError(pf: .unknown, interface: nil, operation: "socket(AF_NETLINK)", errno: errno) }
        let (seconds, attoseconds) = timeout.components
        var limit = timeval(tv_sec: Int(seconds), tv_usec: Int(attoseconds / 1_000_000_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        self.fd = fd
    }

    func nextSequence() -> UInt32 { Self.start &+ UInt32(truncatingIfNeeded: fd) }

    deinit { Glibc.close(fd) }

    /// Sends `request` to the kernel and reads datagrams until one answers `sequence`.
    func exchange(_ request: [UInt8], sequence: UInt32, what: String) throws(VFConfigurationError) -> RTNetlink.Reply {
        let sent = request.withUnsafeBytes { raw in retrying { send(fd, raw.baseAddress, raw.count, 0) } }
        guard sent == request.count else {
            throw VFConfigurationError(pf: .unknown, interface: nil, operation: "sending \(what)", errno: sent < 0 ? errno : EIO)
        }
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let received = buffer.withUnsafeMutableBytes { raw in retrying { recv(fd, raw.baseAddress, raw.count, 0) } }
            guard received > 0 else {
                let error = received < 0 ? errno : EIO
                throw VFConfigurationError(pf: .unknown, interface: nil, operation: "reading the answer to \(what)", errno: error,
                    detail: error == EAGAIN ? "no answer within the timeout" : nil)
            }
            do {
                return try RTNetlink.parseReply(Array(buffer[..<received]), sequence: sequence)
            } catch {
                // Another message (an answer to nothing we sent): read on, unless it was not netlink at all.
                if error.detail.hasPrefix("no answer") { continue }
                throw VFConfigurationError(pf: .unknown, interface: nil, operation: "reading the answer to \(what)", errno: EPROTO, detail: error.description)
            }
        }
    }

    private func retrying(_ call: () -> Int) -> Int {
        var result = call()
        while result < 0, errno == EINTR { result = call() }
        return result
    }
}
