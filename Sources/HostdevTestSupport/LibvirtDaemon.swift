#if canImport(Glibc)
    import Glibc
#endif
import Foundation

/// A private libvirtd with only its built-in drivers (the test driver), all
/// paths in a temp directory (TESTING.md §1). Connect with `uri`; a test
/// driver instance lives as long as one client stays connected.
public final class LibvirtDaemon: @unchecked Sendable {
    // @unchecked: started and stopped by one test; fields are immutable after init.

    public let directory: String
    public let socketPath: String
    private var child: ChildProcess

    /// `test+unix:///default?socket=…`: the shared default test driver.
    public var uri: String { "test+unix:///default?socket=\(socketPath)" }

    public init() throws {
        directory = FileTree.makeTemporaryDirectory(prefix: "hostdev-libvirtd")
        for sub in ["run", "home", "xdg-run", "xdg-config", "xdg-cache", "empty-drivers"] {
            FileTree.makeDirectory(directory + "/" + sub)
        }
        socketPath = directory + "/run/libvirt-sock"
        FileTree.write(
            directory + "/libvirtd.conf",
            """
            unix_sock_dir = "\(directory)/run"
            unix_sock_ro_perms = "0770"
            unix_sock_rw_perms = "0770"
            auth_unix_ro = "none"
            auth_unix_rw = "none"
            listen_tls = 0
            listen_tcp = 0
            log_outputs = "3:file:\(directory)/libvirtd.log"

            """)
        child = try Self.launch(directory)
        try waitForSocket()
    }

    static func launch(_ directory: String) throws -> ChildProcess {
        try ChildProcess(
            RealComponent.libvirtd.rawValue,
            ["-f", directory + "/libvirtd.conf", "-p", directory + "/libvirtd.pid"],
            environment: [
                "PATH": "/usr/bin:/usr/sbin", "HOME": directory + "/home", "XDG_RUNTIME_DIR": directory + "/xdg-run",
                "XDG_CONFIG_HOME": directory + "/xdg-config", "XDG_CACHE_HOME": directory + "/xdg-cache",
                "LIBVIRT_DRIVER_DIR": directory + "/empty-drivers",
            ])
    }

    func waitForSocket() throws {
        let deadline = Date().addingTimeInterval(20)
        // The socket file appears at bind(), before libvirtd listens: wait
        // until a connection is accepted.
        while !acceptsConnections() {
            guard child.isRunning, Date() < deadline else {
                let log = (try? String(contentsOfFile: directory + "/libvirtd.log", encoding: .utf8)) ?? ""
                stop()
                throw StartError(detail: "libvirtd did not create \(socketPath): \(log.suffix(500))")
            }
            usleep(10_000)
        }
    }

    func acceptsConnections() -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return withUnixAddress(socketPath) { connect(fd, $0, $1) } == 0
    }

    public struct StartError: Error, CustomStringConvertible {
        public var detail: String
        public var description: String { detail }
    }


    /// The daemon's process (a test may SIGSTOP it: libvirtd holding a domain).
    public var pid: pid_t { child.pid }

    public func stop() {
        child.terminate()
        FileTree.remove(directory)
    }

    /// libvirtd goes away (SIGKILL: no goodbye to clients).
    public func kill() {
        Glibc.kill(child.pid, SIGKILL)
        child.wait()
        unlink(socketPath)
    }

    /// A new libvirtd on the same socket, as after a package upgrade.
    public func restart() throws {
        child = try Self.launch(directory)
        try waitForSocket()
    }

    deinit { stop() }
}
