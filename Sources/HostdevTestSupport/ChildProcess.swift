#if canImport(Glibc)
    import Glibc
#endif
import Foundation

/// A program the test runs (`hostdevctl`, `umockdev-wrapper`, `libvirtd`),
/// with its output read line by line under a deadline, never a sleep.
///
/// Spawned with posix_spawn and a cleared signal mask: Swift's worker threads
/// block most signals, Foundation's `Process` passes that mask on, and a
/// child that inherits it never sees SIGTERM (libvirtd then cannot be stopped).
public final class ChildProcess: @unchecked Sendable {
    // @unchecked: used from one test task at a time; buffers are not shared.

    public let pid: pid_t
    private let stdoutFD: Int32
    private let stderrFD: Int32
    private var buffers: [Int32: [UInt8]] = [:]
    private var exitStatus: Int32?

    /// `outputFile`: where the child's stdout and stderr go instead of pipes
    /// (a long-running daemon whose log nobody reads must not block on a full pipe).
    public init(_ executable: String, _ arguments: [String], environment: [String: String]? = nil, outputFile: String? = nil) throws {
        var outPipe: [Int32] = [0, 0]
        var errPipe: [Int32] = [0, 0]
        guard pipe(&outPipe) == 0, pipe(&errPipe) == 0 else { throw SpawnError(executable: executable, errno: errno) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        if let outputFile {
            posix_spawn_file_actions_addopen(&actions, 1, outputFile, O_WRONLY | O_CREAT | O_APPEND, 0o644)
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
        } else {
            posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
            posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
        }
        for fd in outPipe + errPipe { posix_spawn_file_actions_addclose(&actions, fd) }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let env = (environment ?? ProcessInfo.processInfo.environment).map { "\($0.key)=\($0.value)" }
        let argv = [executable] + arguments
        var child: pid_t = 0
        let result = withCStrings(argv) { argvPointers in
            withCStrings(env) { envPointers in
                posix_spawn(&child, executable, &actions, &attributes, argvPointers, envPointers)
            }
        }
        close(outPipe[1])
        close(errPipe[1])
        guard result == 0 else {
            close(outPipe[0])
            close(errPipe[0])
            throw SpawnError(executable: executable, errno: result)
        }
        pid = child
        stdoutFD = outPipe[0]
        stderrFD = errPipe[0]
    }

    deinit {
        if isRunning {
            kill(pid, SIGKILL)
            _ = wait()
        }
        close(stdoutFD)
        close(stderrFD)
    }

    public struct SpawnError: Error, CustomStringConvertible {
        public var executable: String
        public var errno: Int32
        public var description: String { "cannot run \(executable): \(String(cString: strerror(errno)))" }
    }

    /// Runs to completion and returns exit status and both outputs.
    /// `started` gets the child's pid as soon as it runs (a test that kills it mid-way).
    public static func run(
        _ executable: String, _ arguments: [String], environment: [String: String]? = nil, started: (pid_t) -> Void = { _ in }
    ) throws -> (status: Int32, stdout: String, stderr: String) {
        let child = try ChildProcess(executable, arguments, environment: environment)
        started(child.pid)
        var out: [UInt8] = []
        var err: [UInt8] = []
        var open: [Int32] = [child.stdoutFD, child.stderrFD]
        while !open.isEmpty {
            var fds = open.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            if poll(&fds, nfds_t(fds.count), -1) < 0 {
                if errno == EINTR { continue }
                break
            }
            for pfd in fds where pfd.revents != 0 {
                var chunk = [UInt8](repeating: 0, count: 65536)
                let n = Glibc.read(pfd.fd, &chunk, chunk.count)
                if n <= 0 {
                    open.removeAll { $0 == pfd.fd }
                } else if pfd.fd == child.stdoutFD {
                    out += chunk[0..<n]
                } else {
                    err += chunk[0..<n]
                }
            }
        }
        return (child.wait(), String(decoding: out, as: UTF8.self), String(decoding: err, as: UTF8.self))
    }

    /// The next line on stdout (or stderr), or nil at the deadline or end of output.
    public func readLine(fromStderr: Bool = false, timeout: Double = 10) -> String? {
        let fd = fromStderr ? stderrFD : stdoutFD
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if let newline = buffers[fd]?.firstIndex(of: 0x0a) {
                let line = Array(buffers[fd]![..<newline])
                buffers[fd]!.removeSubrange(...newline)
                return String(decoding: line, as: UTF8.self)
            }
            let remaining = deadline.timeIntervalSinceNow
            guard remaining > 0 else { return nil }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, Int32(remaining * 1000) + 1) > 0 else { return nil }
            var chunk = [UInt8](repeating: 0, count: 4096)
            let n = Glibc.read(fd, &chunk, chunk.count)
            guard n > 0 else { return nil }
            buffers[fd, default: []].append(contentsOf: chunk[0..<n])
        }
    }

    public var isRunning: Bool {
        guard exitStatus == nil else { return false }
        var status: Int32 = 0
        let result = waitpid(pid, &status, WNOHANG)
        if result == pid {
            exitStatus = Self.decode(status)
            return false
        }
        return result == 0
    }

    /// Waits for exit; the exit code, or 128 + signal for a killed child.
    @discardableResult
    public func wait() -> Int32 {
        if let exitStatus { return exitStatus }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        exitStatus = Self.decode(status)
        return exitStatus!
    }

    static func decode(_ status: Int32) -> Int32 {
        let signal = status & 0x7f
        return signal == 0 ? (status >> 8) & 0xff : 128 + signal
    }

    /// SIGTERM, then SIGKILL if the child has not exited within `grace` seconds.
    public func terminate(grace: Double = 5) {
        guard isRunning else { return }
        kill(pid, SIGTERM)
        let deadline = Date().addingTimeInterval(grace)
        while isRunning && Date() < deadline { usleep(2_000) }
        if isRunning { kill(pid, SIGKILL) }
        wait()
    }
}

private func withCStrings<R>(_ strings: [String], _ body: ([UnsafeMutablePointer<CChar>?]) -> R) -> R {
    var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
    pointers.append(nil)
    defer { for pointer in pointers { free(pointer) } }
    return body(pointers)
}

/// Where the package's executables are: beside the test bundle.
public enum BuiltProducts {
    public static var directory: String {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return (exe as NSString).deletingLastPathComponent
    }

    public static var hostdevctl: String { directory + "/hostdevctl" }
    public static var hostdevd: String { directory + "/hostdevd" }
}

/// Real components the tests need. Under `HOSTDEV_REQUIRE_REAL=1` (set by
/// `.ci/run`) a missing one is a failure; elsewhere its tests are skipped
/// with the reason each test gives (naming the package to install).
public enum RealComponent: String, CaseIterable, Sendable {
    case libvirtd = "/usr/sbin/libvirtd"
    case umockdevWrapper = "/usr/bin/umockdev-wrapper"
    case virtXMLValidate = "/usr/bin/virt-xml-validate"
    case systemdAnalyze = "/usr/bin/systemd-analyze"
    case unshare = "/usr/bin/unshare"


    public var isPresent: Bool { access(rawValue, X_OK) == 0 }

    public static var required: Bool { ProcessInfo.processInfo.environment["HOSTDEV_REQUIRE_REAL"] == "1" }

    /// Whether a test needing this component should run: true when present,
    /// and also when it is required (so that the test runs and fails loudly).
    public var shouldRun: Bool { isPresent || RealComponent.required }
}
