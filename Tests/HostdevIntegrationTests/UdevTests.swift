#if canImport(Glibc)
    import Glibc
#endif
import Foundation
import HostdevCore
import HostdevTestSupport
import Testing

/// The real libudev code of hostdevctl, run under umockdev with the
/// workstation tree as the testbed (TESTING.md §3). Serialized: each test
/// owns its UMOCKDEV_DIR.
@Suite(.serialized, .enabled(if: RealComponent.umockdevWrapper.shouldRun, "umockdev missing: apt-get install umockdev"))
struct UdevTests {
    let tree = SysfsTree.workstation()

    var environment: [String: String] {
        var env = ProcessInfo.processInfo.environment
        env["UMOCKDEV_DIR"] = tree.root
        return env
    }

    @Test func libudevEnumerationSeesTheTestbed() throws {
        let result = try ChildProcess.run(
            RealComponent.umockdevWrapper.rawValue, [BuiltProducts.hostdevctl, "devices", "--format", "json"],
            environment: environment)
        #expect(result.status == 0, "\(result.stderr)")
        let json = try parseDevicesJSON(result.stdout)
        let gpu = try #require(params(json, "pci_0000_01_00_0"))
        #expect(gpu["parent"] as? String == "pci_0000_00_01_0")
        #expect(gpu["driver"] as? String == "nouveau")
        #expect(gpu["iommu_group"] as? String == "1")
        #expect(params(json, "usb_1_4_1_0")?["capability"] as? String == "usb")
        #expect(params(json, "scsi_target0_0_0")?["parent"] as? String == "scsi_host0")
        #expect(params(json, "block_sda")?["block"] as? String == "/dev/sda")
        #expect(params(json, "net_eno1_3c_7c_3f_1e_22_10") != nil)
        #expect(json["net_lo_00_00_00_00_00_00"] == nil)
        // Same devices as the sysfs walk of the same tree.
        let walked = try parseDevicesJSON(try hostdevctl("devices", "--sysfs-root", tree.root, "--format", "json").stdout)
        #expect(Set(json.keys) == Set(walked.keys))
    }

    @Test(arguments: ["udev", "kernel"])
    func monitorReceivesAddAndRemove(source: String) throws {
        let monitor = try ChildProcess(
            RealComponent.umockdevWrapper.rawValue,
            [BuiltProducts.hostdevctl, "monitor", "--subsystems", "pci,usb", "--source", source, "--count", "3"],
            environment: environment)
        defer { monitor.terminate() }
        let ready = try #require(monitor.readLine(fromStderr: true))
        #expect(ready.hasPrefix("listening on \(source)"))
        let socket = try #require(UeventSender.sockets(in: tree.root).first)
        let gpu = "/devices/pci0000:00/0000:00:01.0/0000:01:00.0"
        try UeventSender.send(to: socket, action: "add", devpath: gpu, subsystem: "pci", seqnum: 10, properties: [("DRIVER", "nouveau")])
        // Filtered out: not a watched subsystem.
        try UeventSender.send(to: socket, action: "add", devpath: "/devices/virtual/net/lo", subsystem: "net", seqnum: 11)
        try UeventSender.send(to: socket, action: "unbind", devpath: gpu, subsystem: "pci", seqnum: 12)
        try UeventSender.send(to: socket, action: "remove", devpath: gpu, subsystem: "pci", seqnum: 13)
        var events: [[String: Any]] = []
        while events.count < 3, let line = monitor.readLine() {
            events.append(try #require(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]))
        }
        #expect(events.map { $0["action"] as? String } == ["add", "unbind", "remove"])
        #expect(events.map { $0["seqnum"] as? Int } == [10, 12, 13])
        #expect(events.allSatisfy { $0["sysname"] as? String == "0000:01:00.0" && $0["subsystem"] as? String == "pci" })
        #expect(events.first?["driver"] as? String == "nouveau")
        #expect(events.first?["devpath"] as? String == gpu)
    }
}
