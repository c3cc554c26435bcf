import ArgumentParser

@main
struct Hostdevctl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hostdevctl",
        abstract: "Inspect and manage PCI/USB passthrough on a KVM host.",
        discussion: """
            hostdevctl shows the host's devices as the kernel and libvirt see them, \
            and (with hostdevd) keeps them bound to the VMs a manifest names.
            """,
        version: "0.1.0",
        subcommands: [Devices.self, Validate.self, PlanCommand.self, Apply.self, Release.self, Status.self, Describe.self, Snapshot.self, Check.self, Hook.self, Monitor.self])
}

/// Options every command that looks at the host shares.
struct HostOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Directory that stands for / when reading sysfs (tests, snapshots).", valueName: "path"))
    var sysfsRoot: String = "/"

    @Option(help: ArgumentHelp("libvirt connection URI.", valueName: "uri"))
    var connect: String = "qemu:///system"
}

/// Prints `error: …` to stderr and exits 1: one line, no usage dump, for
/// errors that are about the host rather than the command line.
struct Failure: Error, CustomStringConvertible {
    var description: String
    init(_ error: any Error) { description = String(describing: error) }
    init(message: String) { description = message }
}

func fail(_ error: any Error) -> ExitCode {
    printError("error: \(error)")
    return ExitCode.failure
}
