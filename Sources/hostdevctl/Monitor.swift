import ArgumentParser
import HostdevCore
import HostdevUdev

extension UdevMonitor.Source: ExpressibleByArgument {}

struct Monitor: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print hotplug events as hostdevd receives them, one JSON object a line.",
        discussion: "Prints 'listening' on stderr once subscribed; events sent before that are not seen.")

    @Option(help: ArgumentHelp("Subsystems to watch, comma-separated.", valueName: "list"))
    var subsystems: String = "pci,usb,vfio"

    @Option(help: "Netlink source: udev (after udevd's rules) or kernel (hosts without udevd).")
    var source: UdevMonitor.Source = .udev

    @Option(help: "Exit after this many events (0: run until interrupted).")
    var count: Int = 0

    func run() async throws {
        let monitor: UdevMonitor
        do {
            monitor = try UdevMonitor(subsystems: subsystems.split(separator: ",").map(String.init), source: source)
        } catch {
            throw fail(error)
        }
        printError("listening on \(source.rawValue) for \(subsystems)")
        var seen = 0
        for await event in monitor.events {
            var fields: [(String, JSONText)] = [
                ("action", .string(event.action)), ("subsystem", .string(event.subsystem)),
                ("sysname", .string(event.sysname)), ("devpath", .string(event.devpath)),
                ("seqnum", .number(Int(event.seqnum))),
            ]
            if let devtype = event.devtype { fields.append(("devtype", .string(devtype))) }
            if let driver = event.driver { fields.append(("driver", .string(driver))) }
            emit(JSONText.object(fields).rendered().split(separator: "\n").map { $0.trimming { $0 == " " } }.joined(separator: " ") + "\n")
            seen += 1
            if count > 0 && seen >= count { break }
        }
        monitor.stop()
    }
}
