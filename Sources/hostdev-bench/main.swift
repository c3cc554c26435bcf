#if canImport(Glibc)
    import Glibc
#endif
import Foundation
import HostdevController
import HostdevCore
import HostdevSysfs
import HostdevTestSupport

// Benchmarks for the README's numbers. Run with a release build:
//   swift build -c release && .build/release/hostdev-bench [inventory] [--runs N] [--functions N]
// Medians of repeated runs, measured side by side in one process run; never
// asserted in tests (shared machines are noisy).

struct Options {
    var benchmarks: [String] = []
    var runs = 21
    var functions = 4096
    /// Keep the generated tree and print its path (for profiling).
    var keep = false
}

func parseOptions() -> Options {
    var options = Options()
    var arguments = CommandLine.arguments.dropFirst()
    while let argument = arguments.popFirst() {
        switch argument {
        case "--runs": options.runs = Int(arguments.popFirst() ?? "") ?? options.runs
        case "--functions": options.functions = Int(arguments.popFirst() ?? "") ?? options.functions
        case "--keep": options.keep = true
        default: options.benchmarks.append(argument)
        }
    }
    if options.benchmarks.isEmpty { options.benchmarks = ["inventory"] }
    return options
}

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
}

func ms(_ seconds: Double) -> String {
    let value = (seconds * 10_000).rounded() / 10
    return "\(value) ms"
}

/// Runs `hostdevctl` as a user would and returns wall time and the child's
/// peak RSS (KiB). The peak comes from GNU time (`apt-get install time`):
/// a child's `ru_maxrss` as this process sees it starts from this process's
/// own size (exec records the spawning address space's high-water mark), so
/// it would report the benchmark's memory, not hostdevctl's.
func timedChild(_ arguments: [String]) -> (seconds: Double, maxRSSKiB: Int) {
    let time = "/usr/bin/time"
    guard access(time, X_OK) == 0 else {
        print("(peak RSS needs GNU time: apt-get install time)")
        exit(2)
    }
    let start = now()
    let run = try! ChildProcess.run(time, ["-f", "maxrss %M", BuiltProducts.hostdevctl] + arguments)
    let elapsed = now() - start
    precondition(run.status == 0, "hostdevctl \(arguments) failed with status \(run.status): \(run.stderr)")
    let line = run.stderr.split(separator: "\n").last { $0.hasPrefix("maxrss ") } ?? ""
    return (elapsed, Int(line.dropFirst(7)) ?? 0)
}

func benchmarkInventory(_ options: Options) {
    print("## inventory: \(options.functions) PCI functions, \(options.runs) runs, release build")
    let buildStart = now()
    // tmpfs when there is one: sysfs too is served from memory.
    let base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp"
    let tree = SysfsTree.large(functions: options.functions, base: base)
    tree.keep = options.keep
    print("(tree built under \(base) in \(ms(now() - buildStart))\(options.keep ? ", kept at " + tree.root : ""))")
    let reader = InventoryReader(root: tree.sysfs)

    // In process: the read alone (enumerate + attributes + names + groups).
    var inProcess: [Double] = []
    var count = 0
    for _ in 0..<options.runs {
        let start = now()
        let inventory = try! reader.read()
        inProcess.append(now() - start)
        count = inventory.devices.count
    }
    // End to end: the real CLI, process start-up and JSON output included.
    var cli: [Double] = []
    var rss: [Int] = []
    for _ in 0..<options.runs {
        let run = timedChild(["devices", "--sysfs-root", tree.root, "--format", "json"])
        cli.append(run.seconds)
        rss.append(run.maxRSSKiB)
    }
    // The floor on this machine: the same number of open/read/close triples
    // as the reader's syscalls (about 13 per PCI function), in one thread,
    // reading nothing else. Syscall cost differs 10x between VMs and metal.
    let floorPath = tree.root + "/sys/bus/pci/devices/" + (tree.sysfs.list("/sys/bus/pci/devices")?.first ?? "") + "/numa_node"
    var floor: [Double] = []
    for _ in 0..<options.runs {
        let start = now()
        for _ in 0..<(count * 13 / 3) {
            let fd = open(floorPath, O_RDONLY)
            var byte: UInt8 = 0
            _ = read(fd, &byte, 1)
            close(fd)
        }
        floor.append(now() - start)
    }
    print(alignColumns([
        ["measure", "median", "min", "max"],
        ["floor: \(count * 13) bare syscalls, one thread", ms(median(floor)), ms(floor.min()!), ms(floor.max()!)],
        ["InventoryReader.read (\(count) devices)", ms(median(inProcess)), ms(inProcess.min()!), ms(inProcess.max()!)],
        ["hostdevctl devices --format json", ms(median(cli)), ms(cli.min()!), ms(cli.max()!)],
        ["hostdevctl peak RSS", "\(rss.sorted()[rss.count / 2] / 1024) MiB", "\(rss.min()! / 1024) MiB", "\(rss.max()! / 1024) MiB"],
    ]))
    print("per device (CLI median / devices): \(ms(median(cli) / Double(count)))")
    print("ratio read / floor (medians): \((median(inProcess) / median(floor) * 100).rounded() / 100)")
    // Baseline of the binary itself (shared libraries: libvirt, gnutls, Swift runtime).
    let idle = timedChild(["--version"])
    print("hostdevctl --version peak RSS (baseline): \(idle.maxRSSKiB / 1024) MiB")
}

/// 4,096 endpoints, each its own IOMMU group (VF-like), 1,000 domains (every
/// other one running), 1,000 bindings: 500 by address, 500 by ID + index,
/// half with release: onStop and live: true; a third of the devices already
/// bound and attached, so the plan mixes binds, releases and no-ops.
func planningWorkload(functions: Int, bindings: Int) -> (Manifest, ObservedHost, Ledger) {
    var devices: [HostDevice] = []
    var groups: [IOMMUGroup] = []
    var ledger = Ledger()
    var domains: [DomainState] = []
    for i in 0..<functions {
        let address = PCIAddress(bus: UInt8(1 + i / 256), slot: UInt8((i / 8) % 32), function: UInt8(i % 8))
        let bound = i < bindings && i % 3 == 0
        devices.append(HostDevice(
            name: address.nodeDeviceName, capability: .pci, driver: bound ? "vfio-pci" : "ixgbevf", vendorID: "0x8086",
            productID: i % 2 == 0 ? "0x10ed" : "0x1515", pci: PCIFunction(address: address, classCode: 0x020000, iommuGroup: 1000 + i)))
        groups.append(IOMMUGroup(number: 1000 + i, members: [address]))
        if bound { ledger.devices[address] = .init(originalDriver: "ixgbevf", vm: "vm\(i)") }
    }
    var list: [Binding] = []
    for i in 0..<bindings {
        let address = devices[i].pci!.address
        let selector: DeviceSelector = i % 2 == 0
            ? .pci(address) : .pciID(vendor: 0x8086, device: 0x1515, index: i / 2)
        list.append(Binding(vm: "vm\(i)", release: i % 4 < 2 ? .never : .onStop, live: i % 4 >= 2, devices: [DeviceClaim(selector)]))
        let attached: [HostdevEntry] = i % 3 == 0 ? [.ours(.pci(address))] : []
        domains.append(DomainState(name: "vm\(i)", state: i % 2 == 0 ? .running : .shutoff, configHostdevs: attached,
            liveHostdevs: i % 2 == 0 ? attached : []))
    }
    return (Manifest(bindings: list), ObservedHost(inventory: Inventory(devices: devices, iommuGroups: groups), domains: domains), ledger)
}

func benchmarkPlan(_ options: Options) {
    let bindings = 1000
    print("## plan: \(bindings) bindings over \(options.functions) PCI functions, \(options.runs) runs, release build")
    let (manifest, observed, ledger) = planningWorkload(functions: options.functions, bindings: bindings)
    var times: [Double] = []
    var steps = 0
    var before = rusage()
    getrusage(RUSAGE_SELF.rawValue, &before)
    for _ in 0..<options.runs {
        let start = now()
        let plan = Planner.plan(manifest: manifest, observed: observed, ledger: ledger)
        times.append(now() - start)
        steps = plan.steps.count
    }
    var after = rusage()
    getrusage(RUSAGE_SELF.rawValue, &after)
    print(alignColumns([
        ["measure", "median", "min", "max"],
        ["Planner.plan (\(steps) steps)", ms(median(times)), ms(times.min()!), ms(times.max()!)],
    ]))
    print("process peak RSS after planning: \(after.ru_maxrss / 1024) MiB (before: \(before.ru_maxrss / 1024) MiB)")
}

/// The daemon's per-event work in process, without event delivery: on the
/// 4,096-function host, one claimed device unplugged and plugged again;
/// each is a cache refresh of that device and a plan of the whole host.
func benchmarkHotplugPath(_ options: Options) {
    print("## hotplug path: cache refresh + plan per event, \(options.functions)-function host, \(options.runs) runs, release build")
    let tree = SysfsTree.large(functions: options.functions, base: access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp")
    tree.addPCIDriver("ixgbe")
    let address = PCIAddress("0000:f0:00.0")!
    let path = tree.addPCI(SysfsTree.PCISpec(address.description, vendor: "8086", device: "10fb", classCode: 0x020000, driver: "ixgbe", iommuGroup: 9000))
    let reader = InventoryReader(root: tree.sysfs)
    let manifest = Manifest(bindings: [Binding(vm: "x", devices: [DeviceClaim(.pci(address))])])
    var observed = ObservedHost(inventory: try! reader.read())
    let change = [(subsystem: "pci", devpath: String(path.dropFirst(4)))]
    var refresh: [Double] = []
    var plan: [Double] = []
    var steps = 0
    for _ in 0..<options.runs {
        for present in [false, true] {
            if present { tree.addPCI(SysfsTree.PCISpec(address.description, vendor: "8086", device: "10fb", classCode: 0x020000, driver: "ixgbe", iommuGroup: 9000)) } else { tree.removePCI(address) }
            var start = now()
            reader.refresh(&observed.inventory, changes: change)
            refresh.append(now() - start)
            start = now()
            steps += Planner.plan(manifest: manifest, observed: observed, ledger: Ledger()).steps.count
            plan.append(now() - start)
        }
    }
    print(alignColumns([
        ["measure", "median", "min", "max"],
        ["InventoryReader.refresh (one device)", ms(median(refresh)), ms(refresh.min()!), ms(refresh.max()!)],
        ["Planner.plan (1 binding, \(observed.inventory.devices.count) devices)", ms(median(plan)), ms(plan.min()!), ms(plan.max()!)],
    ]))
    precondition(steps == options.runs, "expected one bind per plug")
}

/// The host-use checks a pass makes: the full scan every pass, and the
/// re-check of one device right before each bind (under the state lock), on
/// the workstation and on the busiest layout (bond under a bridge, LVM on
/// LUKS, consoles).
func benchmarkHostUses(_ options: Options) {
    print("## host uses: full scan per pass, one device's re-check before a bind, \(options.runs) runs, release build")
    var rows = [["host", "measure", "median", "min", "max"]]
    for (name, tree) in [("workstation", SysfsTree.workstation()), ("bond+bridge host", SysfsTree.hostLayout(.bondUnderBridge))] {
        let scanner = HostUseScanner(root: tree.sysfs)
        let inventory = try! InventoryReader(root: tree.sysfs).read()
        let devices = inventory.devices.compactMap(\.pci?.address)
        var full: [Double] = []
        var one: [Double] = []
        for _ in 0..<options.runs {
            var start = now()
            _ = scanner.scan(inventory)
            full.append(now() - start)
            for address in devices {
                start = now()
                _ = scanner.uses(of: address)
                one.append(now() - start)
            }
        }
        rows.append([name, "scan (\(devices.count) PCI functions)", ms(median(full)), ms(full.min()!), ms(full.max()!)])
        rows.append([name, "uses(of:) one device", ms(median(one)), ms(one.min()!), ms(one.max()!)])
    }
    print(alignColumns(rows))
}

/// hostdevd under umockdev on the 4,096-function host (tmpfs), libvirt's
/// in-process test driver, the fake kernel behind named pipes.
final class DaemonBench {
    let tree: SysfsTree
    let server: FakeKernelServer
    let notify = NotifyListener()
    let state = FileTree.makeTemporaryDirectory(prefix: "hostdev-bench-state", base: ProcessInfo.processInfo.environment["BENCH_STATE_BASE"] ?? "/tmp")
    var daemon: ChildProcess!

    init(tree: SysfsTree, manifest: String) throws {
        self.tree = tree
        server = FakeKernelServer(tree: tree)
        FileTree.write(state + "/bindings.yaml", manifest)
        var environment = ProcessInfo.processInfo.environment
        environment["UMOCKDEV_DIR"] = tree.root
        environment["NOTIFY_SOCKET"] = notify.path
        daemon = try ChildProcess(
            RealComponent.umockdevWrapper.rawValue,
            [BuiltProducts.hostdevd, "--sysfs-root", tree.root, "--connect", "test:///default", "--manifest", state + "/bindings.yaml",
                "--state-dir", state, "--status-file", state + "/status.json", "--resync", "3600", "--log-level", ProcessInfo.processInfo.environment["BENCH_LOG_LEVEL"] ?? "warning"],
            environment: environment, outputFile: state + "/hostdevd.log")
        guard let ready = notify.next(timeout: 60), ready.hasPrefix("READY=1") else { fatalError("hostdevd did not become ready") }
    }

    var socket: String { UeventSender.sockets(in: tree.root).first! }

    func send(_ action: String, _ path: String, seqnum: UInt64) {
        try! UeventSender.send(to: socket, action: action, devpath: String(path.dropFirst(4)), subsystem: "pci", seqnum: seqnum)
    }

    func reconciles() -> Int {
        guard let text = FileTree.read(state + "/status.json"), let range = text.firstRange(of: "\"reconciles\": ") else { return 0 }
        return Int(text[range.upperBound...].prefix { $0.isNumber }) ?? 0
    }

    /// CPU seconds (user + system), resident KiB, and of those the
    /// anonymous KiB (the daemon's own memory, as opposed to clean pages of
    /// shared libraries mapped from files) of the daemon process.
    func usage() -> (cpu: Double, rssKiB: Int, anonymousKiB: Int) {
        // umockdev-wrapper execs hostdevd: same pid.
        let stat = FileTree.read("/proc/\(daemon.pid)/stat") ?? ""
        let fields = stat.split(separator: ")").last?.split(separator: " ") ?? []
        let ticks = fields.count > 13 ? (Double(fields[11]) ?? 0) + (Double(fields[12]) ?? 0) : 0
        let status = FileTree.read("/proc/\(daemon.pid)/status") ?? ""
        let rss = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") }?.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
        let rollup = FileTree.read("/proc/\(daemon.pid)/smaps_rollup") ?? ""
        let anonymous = rollup.split(separator: "\n").first { $0.hasPrefix("Anonymous:") }?.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
        return (ticks / Double(sysconf(Int32(_SC_CLK_TCK))), rss, anonymous)
    }

    deinit {
        daemon.terminate()
        server.stop()
        // BENCH_LOG_LEVEL=debug: the daemon's phase timings, kept for reading.
        if ProcessInfo.processInfo.environment["BENCH_LOG_LEVEL"] != nil, let log = FileTree.read(state + "/hostdevd.log") {
            // Appended: the hotplug and storm daemons' logs both kept.
            let earlier = FileTree.read("/tmp/hostdev-bench-daemon.log").map { $0 + "\n" } ?? ""
            FileTree.write("/tmp/hostdev-bench-daemon.log", earlier + log)
        }
        FileTree.remove(state)
    }
}

func waitUntil(timeout: Double = 10, pause: UInt32 = 50, _ condition: () -> Bool) -> Bool {
    let deadline = now() + timeout
    while now() < deadline {
        if condition() { return true }
        usleep(pause)
    }
    return false
}

func percentile(_ values: [Double], _ p: Double) -> Double {
    let sorted = values.sorted()
    return sorted[min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.up)) - 1)]
}

func benchmarkDaemon(_ options: Options) {
    // Not /dev/shm: the daemon runs under umockdev, which redirects /dev paths.
    let base = "/tmp"
    print("## daemon: \(options.functions)-function host, release build")
    FileTree.remove("/tmp/hostdev-bench-daemon.log")  // this run's daemons append to it
    // 1. Hotplug latency: one claimed device unplugged and plugged again.
    let hotplugged = PCIAddress("0000:f0:00.0")!
    let spec = SysfsTree.PCISpec(hotplugged.description, vendor: "8086", device: "10fb", classCode: 0x020000, driver: "ixgbe", iommuGroup: 9000)
    do {
        let tree = SysfsTree.large(functions: options.functions, base: base)
        tree.addPCIDriver("ixgbe")
        let path = tree.addPCI(spec)
        let bench = try! DaemonBench(tree: tree, manifest: "version: 1\nbindings:\n  - vm: x\n    devices:\n      - pci: \"\(hotplugged)\"\n")
        _ = waitUntil { tree.driver(of: hotplugged) == "vfio-pci" }
        usleep(200_000)  // the initial reconcile's status write
        var latencies: [Double] = []
        var missed = 0
        var seqnum: UInt64 = 1
        let events = options.runs >= 21 ? 1000 : options.runs * 10
        // The clock stops when the fake kernel has carried out the bind
        // (vfio-pci bound by drivers_probe), signalled from its thread.
        let bound = DispatchSemaphore(value: 0)
        bench.server.onWrite { path, value in
            if path == "/sys/bus/pci/drivers_probe", value.hasPrefix(hotplugged.description), tree.driver(of: hotplugged) == "vfio-pci" { bound.signal() }
        }
        var reconciles = bench.reconciles()
        /// Settled: hostdevd has finished the reconcile the event caused (its status is written last).
        func settle() {
            reconciles += 1
            _ = waitUntil(timeout: 5, pause: 200) { bench.reconciles() >= reconciles }
        }
        for _ in 0..<events {
            tree.removePCI(hotplugged)
            bench.send("remove", path, seqnum: seqnum)
            seqnum += 1
            settle()
            tree.addPCI(spec)
            let start = now()
            bench.send("add", path, seqnum: seqnum)
            seqnum += 1
            guard bound.wait(timeout: .now() + 5) == .success else {
                missed += 1
                if missed == 1 {
                    print("(first miss: the fake kernel saw \(bench.server.kernel.writes.suffix(4).map { "\($0.path)=\($0.value)" }), driver_override \(FileTree.read(tree.host(path + "/driver_override")) ?? "-"))")
                    print("hostdevd's log, last lines:\n" + (FileTree.read(bench.state + "/hostdevd.log") ?? "").split(separator: "\n").suffix(30).map { $0.prefix(300) }.joined(separator: "\n"))
                }
                // Stop here: the rest would only wait on the same miss.
                break
            }
            latencies.append(now() - start)
            settle()
        }
        print(alignColumns([
            ["measure", "p50", "p99", "max"],
            ["hotplug add → bound to vfio-pci (\(latencies.count) events)", ms(percentile(latencies, 0.5)), ms(percentile(latencies, 0.99)), ms(latencies.max() ?? 0)],
        ]))
        if missed > 0 { print("stopped after \(latencies.count) of \(events) events: an add was not bound within 5 s (see the line above)") }

        // 3. Idle: nothing happens for 10 s.
        let before = bench.usage()
        let idleStart = now()
        usleep(10_000_000)
        let after = bench.usage()
        let cpu = (after.cpu - before.cpu) / (now() - idleStart) * 100
        print("idle: \((cpu * 100).rounded() / 100)% CPU over 10 s, RSS \(after.rssKiB / 1024) MiB, of which anonymous \(after.anonymousKiB / 1024) MiB; the rest is clean file-backed pages of the shared libraries (host of \(options.functions) functions)")
    }

    // 2. A storm of 2,048 VF add events, 16 of them claimed.
    do {
        let tree = SysfsTree.sriovHost(pfs: 1, vfsPerPF: 0)
        // The VFs' driver must exist before the fake kernel makes its pipes.
        tree.addPCIDriver("iavf")
        let pf = "0000:81:00.0"
        let bindings = (0..<16).map { "  - vm: t\($0)\n    devices:\n      - pci: \"0000:82:\(hex($0 / 8, 2)).\($0 % 8)\"\n" }.joined()
        let bench = try! DaemonBench(tree: tree, manifest: "version: 1\nbindings:\n" + bindings)
        tree.addSRIOV(pf: pf, totalVFs: 2048, numVFs: 2048, vfDevice: "154c", vfDriver: "iavf", firstGroup: 1000)
        var paths: [String] = []
        for i in 0..<2048 {
            let bus = UInt8(0x82 + i / 256)
            let slot = UInt8((i / 8) % 32)
            let function = UInt8(i % 8)
            paths.append(tree.pciPath(PCIAddress(domain: 0, bus: bus, slot: slot, function: function)))
        }
        let reconcilesBefore = bench.reconciles()
        let start = now()
        for (i, path) in paths.enumerated() { bench.send("add", path, seqnum: UInt64(10_000 + i)) }
        let sent = now() - start
        let claimed = (0..<16).map { PCIAddress(domain: 0, bus: 0x82, slot: UInt8($0 / 8), function: UInt8($0 % 8)) }
        let bound = waitUntil(timeout: 30) { claimed.allSatisfy { tree.driver(of: $0) == "vfio-pci" } }
        // Converged: bound, and the reconcile count has stopped moving.
        var last = bench.reconciles()
        var lastChange = now()
        while now() - lastChange < 0.5 {
            usleep(1000)
            let current = bench.reconciles()
            if current != last { last = current; lastChange = now() }
        }
        let converged = lastChange - start
        print("storm: 2048 VF add events sent in \(ms(sent)); \(bound ? "16 claimed VFs bound" : "NOT all bound"), converged in \(ms(converged)) with \(last - reconcilesBefore) reconciles")
    }
}

let options = parseOptions()
for benchmark in options.benchmarks {
    switch benchmark {
    case "inventory": benchmarkInventory(options)
    case "plan": benchmarkPlan(options)
    case "daemon": benchmarkDaemon(options)
    case "hotplug-path": benchmarkHotplugPath(options)
    case "host-uses": benchmarkHostUses(options)
    case "workstation-tree":
        // Not a benchmark: lays out the test workstation and keeps it (for snapshots and demos).
        let tree = SysfsTree.workstation()
        tree.keep = true
        print(tree.root)
    default:
        print("unknown benchmark '\(benchmark)'; known: inventory, plan, hotplug-path, host-uses, daemon, workstation-tree")
        exit(2)
    }
}
