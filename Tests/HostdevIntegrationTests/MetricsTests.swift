#if canImport(Glibc)
    import Glibc
#endif
import Foundation
import HostdevController
@testable import HostdevMetrics
import HostdevTestSupport
import Testing

/// One HTTP request to a metrics endpoint; the whole response as text.
func httpGet(_ address: MetricsAddress, _ path: String = "/metrics", method: String = "GET") throws -> String {
    let fd: Int32
    switch address {
    case .unix(let socketPath):
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var socketAddress = sockaddr_un()
        socketAddress.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(socketPath.utf8)
        withUnsafeMutableBytes(of: &socketAddress.sun_path) { raw in for (i, b) in bytes.enumerated() { raw[i] = b } }
        let result = withUnsafePointer(to: &socketAddress) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        try #require(result == 0, "connect \(socketPath): \(String(cString: strerror(errno)))")
    case .ipv4(_, let port):
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var socketAddress = sockaddr_in()
        socketAddress.sin_family = sa_family_t(AF_INET)
        socketAddress.sin_port = port.bigEndian
        socketAddress.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        let result = withUnsafePointer(to: &socketAddress) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        try #require(result == 0, "connect 127.0.0.1:\(port): \(String(cString: strerror(errno)))")
    case .ipv6:
        Issue.record("not used by these tests")
        return ""
    }
    defer { close(fd) }
    let request = Array("\(method) \(path) HTTP/1.1\r\nHost: localhost\r\nAccept: text/plain\r\n\r\n".utf8)
    _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
    var response: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = read(fd, &chunk, chunk.count)
        guard n > 0 else { break }
        response += chunk[0..<n]
    }
    return String(decoding: response, as: UTF8.self)
}

/// The samples of a Prometheus text exposition: `name{labels}` → value.
func samples(_ exposition: String) -> [String: Double] {
    var values: [String: Double] = [:]
    for line in exposition.split(separator: "\n") where !line.hasPrefix("#") {
        guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
        values[String(line[..<space])] = value
    }
    return values
}

func body(_ response: String) -> String {
    response.range(of: "\r\n\r\n").map { String(response[$0.upperBound...]) } ?? ""
}

@Suite struct MetricsEndpointTests {
    @Test(arguments: [
        ("unix:/run/hostdevd/metrics.sock", "unix:/run/hostdevd/metrics.sock"),
        ("127.0.0.1:9464", "127.0.0.1:9464"),
        ("127.0.0.53:9464", "127.0.0.53:9464"),
        ("localhost:9464", "127.0.0.1:9464"),
        ("[::1]:9464", "[::1]:9464"),
        ("127.0.0.1:0", "127.0.0.1:0"),
    ])
    func loopbackAndUnixAddressesAreAccepted(text: String, shown: String) throws {
        #expect(try MetricsAddress(text).description == shown)
    }

    @Test(arguments: [
        ("0.0.0.0:9464", "0.0.0.0 is not a loopback address; hostdevd serves metrics on loopback or a unix socket only"),
        ("192.168.1.5:9464", "192.168.1.5 is not a loopback address"),
        ("[::]:9464", "'[::]' is not a loopback address"),
        ("example.com:9464", "'example.com' is not a loopback address"),
        ("9464", "is neither unix:PATH nor HOST:PORT"),
        ("127.0.0.1:99999", "is neither unix:PATH nor HOST:PORT"),
        ("unix:relative.sock", "the socket path must be absolute"),
    ])
    func otherAddressesAreRefusedWithTheReason(text: String, reason: String) {
        #expect(throws: MetricsAddress.ParseError.self) { try MetricsAddress(text) }
        do { _ = try MetricsAddress(text) } catch { #expect(error.description.contains(reason), "\(error)") }
    }

    @Test(arguments: [
        ("GET /metrics HTTP/1.1\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: 4\r\nConnection: close\r\n\r\nx 1\n"),
        ("GET /metrics?x=1 HTTP/1.0\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: 4\r\nConnection: close\r\n\r\nx 1\n"),
        ("HEAD /metrics HTTP/1.1\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: 4\r\nConnection: close\r\n\r\n"),
        ("GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 30\r\nConnection: close\r\n\r\nhostdevd serves /metrics only\n"),
        ("POST /metrics HTTP/1.1\r\n\r\n", "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 8\r\nAllow: GET, HEAD\r\nConnection: close\r\n\r\nuse GET\n"),
        ("hello\r\n\r\n", "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 22\r\nConnection: close\r\n\r\nnot an HTTP/1 request\n"),
    ])
    func responses(request: String, expected: String) {
        let response = MetricsServer.respond(to: Array(request.utf8)) { Array("x 1\n".utf8) }
        #expect(String(decoding: response, as: UTF8.self) == expected)
    }

    /// A pass's record moves the series it names; failures stamp the time.
    @Test func recordsUpdateTheSeries() {
        let metrics = DaemonMetrics()
        let before = samples(String(decoding: metrics.exposition(), as: UTF8.self))
        #expect(before["hostdevd_reconciles_total"] == 0)
        #expect(before["hostdevd_failures_total{kind=\"manifest\"}"] == 0)
        #expect(before["hostdevd_bindings{condition=\"Blocked\"}"] == 0)
        metrics.record(PassRecord(
            duration: 0.004, bindings: ["Ready": 2, "Pending": 0, "Blocked": 1], devices: ["Ready": 3, "Pending": 1, "Blocked": 0],
            libvirtConnected: true, manifestGeneration: 3, manifestRejected: true, failures: [.manifest: 1, .step: 2],
            bindLatencies: [0.02, 0.3], time: 1_796_040_000))
        let after = samples(String(decoding: metrics.exposition(), as: UTF8.self))
        #expect(after["hostdevd_reconciles_total"] == 1)
        #expect(after["hostdevd_bindings{condition=\"Ready\"}"] == 2)
        #expect(after["hostdevd_bindings{condition=\"Blocked\"}"] == 1)
        #expect(after["hostdevd_devices{condition=\"Pending\"}"] == 1)
        #expect(after["hostdevd_failures_total{kind=\"step\"}"] == 2)
        #expect(after["hostdevd_failures_total{kind=\"libvirt\"}"] == 0)
        #expect(after["hostdevd_libvirt_connected"] == 1)
        #expect(after["hostdevd_manifest_generation"] == 3)
        #expect(after["hostdevd_manifest_rejected"] == 1)
        #expect(after["hostdevd_last_error_timestamp_seconds"] == 1_796_040_000)
        #expect(after["hostdevd_event_to_bind_seconds_count"] == 2)
        #expect(after["hostdevd_event_to_bind_seconds_bucket{le=\"0.025\"}"] == 1)
        #expect(after["hostdevd_reconcile_duration_seconds_count"] == 1)
    }

    @Test func servesOnALoopbackPortTheKernelChose() throws {
        let server = try MetricsServer(address: try MetricsAddress("127.0.0.1:0")) { Array("hostdevd_up 1\n".utf8) }
        defer { server.stop() }
        guard case .ipv4(_, let port) = server.address else { Issue.record("not IPv4: \(server.address)"); return }
        #expect(port != 0)
        let response = try httpGet(server.address)
        #expect(response.hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(body(response) == "hostdevd_up 1\n")
        #expect(try httpGet(server.address, "/").hasPrefix("HTTP/1.1 404"))
    }

    /// A socket left by an earlier run is replaced; a regular file is not.
    @Test func aUnixSocketReplacesAStaleOneOnly() throws {
        let dir = FileTree.makeTemporaryDirectory()
        defer { FileTree.remove(dir) }
        let first = try MetricsServer(address: .unix(dir + "/m.sock")) { [] }
        let second = try MetricsServer(address: .unix(dir + "/m.sock")) { Array("x 2\n".utf8) }
        defer { second.stop() }
        _ = first
        #expect(body(try httpGet(second.address)) == "x 2\n")
        FileTree.write(dir + "/file", "keep")
        #expect(throws: MetricsServer.StartError.self) { try MetricsServer(address: .unix(dir + "/file")) { [] } }
        #expect(FileTree.read(dir + "/file") == "keep")
    }
}

/// A running hostdevd's endpoint, scraped as Prometheus would.
@Suite(.serialized, .enabled(if: RealComponent.libvirtd.shouldRun && RealComponent.umockdevWrapper.shouldRun, "needs libvirtd and umockdev"))
struct DaemonMetricsTests {
    @Test func scrapedValuesFollowReconciles() throws {
        let libvirtd = try LibvirtDaemon()
        defer { libvirtd.stop() }
        let socketDir = FileTree.makeTemporaryDirectory(prefix: "hostdev-metrics")
        defer { FileTree.remove(socketDir) }
        let address = MetricsAddress.unix(socketDir + "/metrics.sock")
        let rig = try DaemonRig(libvirtd: libvirtd, manifest: "version: 1\n", arguments: ["--metrics", address.description])
        _ = try #require(rig.notify.next(), "no READY from hostdevd")
        func scrape() -> [String: Double] { samples(body((try? httpGet(address)) ?? "")) }

        let first = scrape()
        #expect((first["hostdevd_reconciles_total"] ?? 0) >= 1, "\(first)")
        #expect(first["hostdevd_bindings{condition=\"Ready\"}"] == 0)
        #expect(first["hostdevd_libvirt_connected"] == 1)
        #expect(first["hostdevd_manifest_generation"] == 1)
        #expect(first["hostdevd_manifest_rejected"] == 0)
        #expect(first["hostdevd_event_to_bind_seconds_count"] == 0)

        // A binding: the GPU is bound, the binding Ready, the latency observed.
        rig.edit("version: 1\nbindings:\n  - vm: win11\n    devices:\n      - pci: \"0000:01:00.0\"\n")
        #expect(eventually { scrape()["hostdevd_bindings{condition=\"Ready\"}"] == 1 })
        let bound = scrape()
        #expect(bound["hostdevd_manifest_generation"] == 2)
        #expect((bound["hostdevd_event_to_bind_seconds_count"] ?? 0) >= 1)
        #expect((bound["hostdevd_reconciles_total"] ?? 0) > (first["hostdevd_reconciles_total"] ?? 0))
        #expect((bound["hostdevd_reconcile_duration_seconds_count"] ?? 0) == bound["hostdevd_reconciles_total"])

        // A rejected edit: flagged, counted once, its time stamped.
        rig.edit("version: 1\nbindings: [\n")
        #expect(eventually { scrape()["hostdevd_manifest_rejected"] == 1 })
        let rejected = scrape()
        #expect(rejected["hostdevd_failures_total{kind=\"manifest\"}"] == 1)
        #expect((rejected["hostdevd_last_error_timestamp_seconds"] ?? 0) > 1_700_000_000)
        #expect(rejected["hostdevd_manifest_generation"] == 2)

        // Stopped: the socket goes with it.
        kill(rig.daemon.pid, SIGTERM)
        #expect(rig.daemon.wait() == 0)
        #expect(access(socketDir + "/metrics.sock", F_OK) != 0)
    }

    @Test func aNonLoopbackAddressIsRefusedAtStart() throws {
        let result = try ChildProcess.run(BuiltProducts.hostdevd, ["--metrics", "0.0.0.0:9464"])
        #expect(result.status != 0)
        #expect(result.stderr.contains("0.0.0.0 is not a loopback address"), "\(result.stderr)")
    }
}
