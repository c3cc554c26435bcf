import ArgumentParser
import HostdevController
import HostdevMetrics
import HostdevSysfs
import Logging
import ServiceLifecycle
import UnixSignals

@main
struct Hostdevd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hostdevd",
        abstract: "Keep the host's PCI/USB passthrough as the manifest says, driven by udev, libvirt and manifest events.",
        discussion: "Run by systemd (Type=notify). SIGHUP reloads and resyncs; SIGTERM finishes the step in flight and stops.",
        version: "0.1.0")

    @Option(help: ArgumentHelp("The manifest.", valueName: "file"))
    var manifest: String = "/etc/hostdevd/bindings.yaml"

    @Option(help: ArgumentHelp("Where the ledger is kept.", valueName: "dir"))
    var stateDir: String = "/var/lib/hostdevd"

    @Option(help: ArgumentHelp("Status written after every reconcile (read by hostdevctl status).", valueName: "file"))
    var statusFile: String = "/run/hostdevd/status.json"

    @Option(help: ArgumentHelp("libvirt connection URI.", valueName: "uri"))
    var connect: String = "qemu:///system"

    @Option(help: ArgumentHelp("Directory that stands for / when reading and writing sysfs.", valueName: "path"))
    var sysfsRoot: String = "/"

    @Option(help: "Seconds between full resyncs.")
    var resync: Int = 300

    @Option(help: "udev monitor source: udev (after udevd's rules) or kernel (hosts without udevd).")
    var udevSource: String = "udev"

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    @Option(help: ArgumentHelp(
        "Serve Prometheus metrics at GET /metrics on a unix socket (unix:/run/hostdevd/metrics.sock) or a loopback port (127.0.0.1:9464); off by default.",
        valueName: "address"))
    var metrics: String?

    @Option(
        name: .customLong("host"),
        help: ArgumentHelp("The host name bindings' 'hosts:' globs are matched against (default: uname -n).", valueName: "name"))
    var hostName: String?

    func validate() throws {
        guard resync > 0 else { throw ValidationError("--resync must be a positive number of seconds") }
        guard ["udev", "kernel"].contains(udevSource) else { throw ValidationError("--udev-source must be udev or kernel") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("unknown --log-level '\(logLevel)'") }
        if let metrics {
            do { _ = try MetricsAddress(metrics) } catch { throw ValidationError(error.description) }
        }
        if let hostName, hostName.isEmpty || hostName.contains(where: \.isWhitespace) {
            throw ValidationError("--host '\(hostName)' is not a host name; give the name 'uname -n' prints")
        }
    }

    func run() async throws {
        // Under systemd (JOURNAL_STREAM) lines carry syslog priorities and no
        // timestamp; elsewhere an ISO 8601 timestamp and the level's name.
        let format = JournalLogHandler.Format.detect()
        LoggingSystem.bootstrap { label in
            JournalLogHandler(label: label, format: format, logLevel: Logger.Level(rawValue: logLevel) ?? .info)
        }
        let logger = Logger(label: "hostdevd")
        var recorder: DaemonMetrics?
        var server: MetricsServer?
        if let metrics {
            let collected = DaemonMetrics()
            do {
                server = try MetricsServer(address: try MetricsAddress(metrics)) { collected.exposition() }
            } catch {
                logger.critical("\(error)")
                throw ExitCode.failure
            }
            logger.info("metrics at \(server!.address) (GET /metrics)")
            recorder = collected
        }
        defer { server?.stop() }
        let daemon = HostdevDaemon(
            configuration: DaemonConfiguration(
                manifestPath: manifest, stateDirectory: stateDir, statusFile: statusFile, sysfsRoot: SysfsRoot(sysfsRoot),
                libvirtURI: connect, resyncInterval: .seconds(resync), udevSource: udevSource,
                hostName: hostName ?? currentHostName()),
            logger: logger, recorder: recorder)
        let group = ServiceGroup(services: [daemon], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        try await group.run()
    }
}
