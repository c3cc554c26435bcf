#if canImport(Glibc)
    import Glibc
#endif
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

/// Runs `hostdevctl` as a user would and returns wall time and the child's peak RSS (KiB).
func timedChild(_ arguments: [String]) -> (seconds: Double, maxRSSKiB: Int) {
    let start = now()
    let child = try! ChildProcess(BuiltProducts.hostdevctl, arguments)
    _ = try? drain(child)
    var status: Int32 = 0
    var usage = rusage()
    _ = wait4(child.pid, &status, 0, &usage)
    let elapsed = now() - start
    precondition(status == 0, "hostdevctl \(arguments) failed with status \(status)")
    return (elapsed, Int(usage.ru_maxrss))
}

func drain(_ child: ChildProcess) throws {
    while child.readLine(timeout: 60) != nil {}
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

let options = parseOptions()
for benchmark in options.benchmarks {
    switch benchmark {
    case "inventory": benchmarkInventory(options)
    case "plan": benchmarkPlan(options)
    case "workstation-tree":
        // Not a benchmark: lays out the test workstation and keeps it (for snapshots and demos).
        let tree = SysfsTree.workstation()
        tree.keep = true
        print(tree.root)
    default:
        print("unknown benchmark '\(benchmark)'; known: inventory, plan, workstation-tree")
        exit(2)
    }
}
