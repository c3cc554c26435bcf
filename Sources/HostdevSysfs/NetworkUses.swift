import HostdevCore

/// Network uses: an interface is used when it is up (`operstate` up or
/// unknown, or IFF_UP in `flags`) and has a global address or a route; so is
/// every interface beneath it, found through `lower_*` links, `brif/`,
/// `bonding/slaves`, and the lowers' `master`/`upper_*` links, down to the
/// PCI function under the lowest one.
///
/// Sources: `/proc/net/route` (IPv4 main table), `/proc/net/if_inet6`
/// (global IPv6 addresses), `/proc/net/ipv6_route` (IPv6 routes other than
/// link-local, multicast and local ones). An IPv4 address always brings a
/// prefix route in the main table unless it is a /32 added with
/// `noprefixroute`: such an address alone is not seen.
extension HostUseScanner {
    struct Interface {
        var name: String
        var path: String
        var up: Bool
        var lowers: Set<String>
    }

    func interfaces() -> [String: Interface] {
        var all: [String: Interface] = [:]
        var extraLowers: [String: Set<String>] = [:]
        for name in root.list("/sys/class/net") ?? [] {
            let path = resolved("/sys/class/net/\(name)")
            guard let dir = root.directory(path) else { continue }
            let operstate = dir.read("operstate")
            let flags = dir.read("flags").flatMap { UInt32(hexText: $0) }
            var lowers = Set<String>()
            // One getdents tells which of the optional entries exist.
            var has = Set<String>()
            for entry in dir.entries() {
                if entry.hasPrefix("lower_") { lowers.insert(String(entry.dropFirst(6))) }
                if entry.hasPrefix("upper_") { extraLowers[String(entry.dropFirst(6)), default: []].insert(name) }
                if entry == "master" || entry == "brif" || entry == "bonding" { has.insert(entry) }
            }
            if has.contains("master"), let master = dir.linkName("master") { extraLowers[master, default: []].insert(name) }
            if has.contains("brif") { lowers.formUnion(root.list(path + "/brif") ?? []) }
            if has.contains("bonding"), let slaves = dir.read("bonding/slaves") {
                lowers.formUnion(slaves.split(separator: " ").map(String.init))
            }
            all[name] = Interface(
                name: name, path: path,
                up: operstate == "up" || operstate == "unknown" || (flags ?? 0) & 1 != 0, lowers: lowers)
        }
        for (upper, lowers) in extraLowers { all[upper]?.lowers.formUnion(lowers) }
        return all
    }

    func networkUses() -> [HostUse] {
        let all = interfaces()
        guard !all.isEmpty else { return [] }
        let why = NetworkFacts.read(root)
        var uses: [HostUse] = []
        for top in all.values.sorted(by: { $0.name < $1.name }) where top.up {
            guard let reason = why.reason(for: top.name) else { continue }
            // Breadth first: the shortest chain to each interface beneath.
            var parent: [String: String] = [top.name: top.name]
            var queue = [top.name]
            var index = 0
            while index < queue.count {
                let current = queue[index]
                index += 1
                if let interface = all[current], let address = Self.pciAncestor(interface.path) {
                    var chain = [current]
                    var step = current
                    while step != top.name, let up = parent[step] {
                        chain.append(up)
                        step = up
                    }
                    uses.append(HostUse(address: address, kind: .network, chain: [address.description] + chain, why: reason))
                }
                for lower in (all[current]?.lowers ?? []).sorted() where parent[lower] == nil && all[lower] != nil {
                    parent[lower] = current
                    queue.append(lower)
                }
            }
        }
        return uses
    }
}

/// Why an interface counts as used: its routes and addresses.
struct NetworkFacts {
    var defaultRoute = Set<String>()
    var addresses: [String: [String]] = [:]
    var routes: [String: [String]] = [:]

    func reason(for name: String) -> String? {
        if name == "lo" { return nil }
        if defaultRoute.contains(name) { return "which carries the default route" }
        if let address = addresses[name]?.first { return "which has address \(address)" }
        if let route = routes[name]?.first { return "which has a route to \(route)" }
        return nil
    }

    static func read(_ root: SysfsRoot) -> NetworkFacts {
        var facts = NetworkFacts()
        // Iface Destination Gateway Flags RefCnt Use Metric Mask …, hex in host (little-endian) order.
        for line in (root.read("/proc/net/route") ?? "").split(separator: "\n").dropFirst() {
            let f = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard f.count >= 8, let destination = UInt32(f[1], radix: 16), let mask = UInt32(f[7], radix: 16),
                let flags = UInt32(f[3], radix: 16), flags & 1 != 0
            else { continue }
            let name = String(f[0])
            if destination == 0 && mask == 0 {
                facts.defaultRoute.insert(name)
            } else {
                facts.routes[name, default: []].append("\(ipv4(destination))/\(mask.nonzeroBitCount)")
            }
        }
        // address ifindex prefixlen scope flags name; scope 00 is global.
        for line in (root.read("/proc/net/if_inet6") ?? "").split(separator: "\n") {
            let f = line.split(separator: " ", omittingEmptySubsequences: true)
            guard f.count >= 6, f[3] == "00", let prefix = Int(f[2], radix: 16) else { continue }
            facts.addresses[String(f[5]), default: []].append("\(ipv6(f[0]))/\(prefix)")
        }
        // dest plen src plen nexthop metric refcnt use flags name.
        for line in (root.read("/proc/net/ipv6_route") ?? "").split(separator: "\n") {
            let f = line.split(separator: " ", omittingEmptySubsequences: true)
            guard f.count >= 10, let plen = Int(f[1], radix: 16), let flags = UInt32(f[8], radix: 16) else { continue }
            let name = String(f[9])
            let destination = f[0]
            // RTF_UP set; not RTF_REJECT, RTF_LOCAL or RTF_ANYCAST; not link-local or multicast.
            guard flags & 1 != 0, flags & (0x200 | 0x8000_0000 | 0x0010_0000) == 0, !destination.hasPrefix("fe8"),
                !destination.hasPrefix("ff")
            else { continue }
            if plen == 0 {
                facts.defaultRoute.insert(name)
            } else {
                facts.routes[name, default: []].append("\(ipv6(destination))/\(plen)")
            }
        }
        return facts
    }

    /// `0102A8C0` (as /proc/net/route prints 192.168.2.1) → `192.168.2.1`.
    static func ipv4(_ value: UInt32) -> String {
        (0..<4).map { String(value >> ($0 * 8) & 0xff) }.joined(separator: ".")
    }

    /// 32 hex digits → the shortest text form (`2001:db8::5`).
    static func ipv6(_ hex: some StringProtocol) -> String {
        let digits = Array(hex)
        guard digits.count == 32 else { return String(hex) }
        let groups = (0..<8).map { UInt16(String(digits[$0 * 4..<$0 * 4 + 4]), radix: 16) ?? 0 }
        // The longest run (of two or more) of zero groups becomes "::".
        var best = (start: -1, length: 0)
        var run = (start: -1, length: 0)
        for (i, group) in groups.enumerated() {
            if group == 0 {
                run = run.start < 0 ? (i, 1) : (run.start, run.length + 1)
                if run.length > best.length { best = run }
            } else {
                run = (-1, 0)
            }
        }
        let text = groups.map { String($0, radix: 16) }
        guard best.length >= 2 else { return text.joined(separator: ":") }
        let head = text[..<best.start].joined(separator: ":")
        let tail = text[(best.start + best.length)...].joined(separator: ":")
        return head + "::" + tail
    }
}
