#if canImport(Glibc)
    import Glibc
#endif
import HostdevController
import HostdevSysfs

/// Where `hostdevd --metrics` listens: a unix socket (`unix:/run/hostdevd/metrics.sock`)
/// or a loopback TCP port (`127.0.0.1:9464`, `[::1]:9464`, `localhost:9464`;
/// port 0: any free one, logged). Other addresses are refused: the endpoint
/// has no authentication, and what it tells (the host's VMs and devices) is
/// for this host's scraper.
public enum MetricsAddress: Sendable, Equatable, CustomStringConvertible {
    case unix(String)
    /// An address in 127.0.0.0/8, as four octets.
    case ipv4([UInt8], port: UInt16)
    /// ::1.
    case ipv6(port: UInt16)

    public struct ParseError: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    static let usage = "give unix:/run/hostdevd/metrics.sock or a loopback port such as 127.0.0.1:9464"

    public init(_ text: String) throws(ParseError) {
        if text.hasPrefix("unix:") {
            let path = String(text.dropFirst(5))
            guard path.hasPrefix("/") else { throw ParseError(description: "--metrics \(text): the socket path must be absolute; \(Self.usage)") }
            // sun_path holds 107 bytes and a NUL.
            guard path.utf8.count < 108 else {
                throw ParseError(description: "--metrics \(text): the socket path is longer than 107 bytes; use a shorter one")
            }
            self = .unix(path)
            return
        }
        guard let colon = text.lastIndex(of: ":"), let port = UInt16(text[text.index(after: colon)...]) else {
            throw ParseError(description: "--metrics '\(text)' is neither unix:PATH nor HOST:PORT; \(Self.usage)")
        }
        let host = String(text[..<colon])
        switch host {
        case "localhost": self = .ipv4([127, 0, 0, 1], port: port)
        case "[::1]": self = .ipv6(port: port)
        default:
            let octets = host.split(separator: ".", omittingEmptySubsequences: false).compactMap { UInt8($0) }
            guard octets.count == 4, host.split(separator: ".", omittingEmptySubsequences: false).count == 4 else {
                throw ParseError(description: "--metrics '\(text)': '\(host)' is not a loopback address; \(Self.usage)")
            }
            guard octets[0] == 127 else {
                throw ParseError(description: "--metrics '\(text)': \(host) is not a loopback address; hostdevd serves metrics on loopback or a unix socket only (they have no authentication): \(Self.usage), and let a local Prometheus or agent forward them")
            }
            self = .ipv4(octets, port: port)
        }
    }

    public var description: String {
        switch self {
        case .unix(let path): return "unix:\(path)"
        case .ipv4(let octets, let port): return octets.map(String.init).joined(separator: ".") + ":\(port)"
        case .ipv6(let port): return "[::1]:\(port)"
        }
    }
}

/// `GET /metrics` over HTTP/1.1 on one thread: a blocking accept loop that
/// answers each connection and closes it (Prometheus scrapes every few
/// seconds; nothing here needs more). A request is read for at most two
/// seconds and 8 KiB: a client that sends nothing cannot hold the thread.
public final class MetricsServer: @unchecked Sendable {
    // @unchecked: the listening socket is used by the server thread only;
    // stop() writes to the pipe, which wakes the thread to close it.

    /// What the server listens on (for port 0: the port the kernel chose).
    public let address: MetricsAddress
    private let wake: Int32

    public struct StartError: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    /// Binds and listens now (so a bad address or a port in use fails at
    /// start), then serves `body()` on a thread of its own.
    public init(address: MetricsAddress, body: @escaping @Sendable () -> [UInt8]) throws(StartError) {
        let (listener, bound) = try Self.listen(address)
        self.address = bound
        var pipeFDs: [Int32] = [0, 0]
        guard pipe(&pipeFDs) == 0 else {
            close(listener)
            throw StartError(description: "pipe2 failed: \(String(cString: strerror(errno)))")
        }
        for end in pipeFDs { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
        let wakeRead = pipeFDs[0]
        wake = pipeFDs[1]
        detachedThread {
            defer {
                close(listener)
                close(wakeRead)
            }
            var fds = [pollfd(fd: listener, events: Int16(POLLIN), revents: 0), pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0)]
            while true {
                let ready = poll(&fds, 2, -1)
                if ready < 0 && errno == EINTR { continue }
                guard ready > 0, fds[1].revents == 0 else { return }
                let client = accept(listener, nil, nil)
                guard client >= 0 else { continue }
                _ = fcntl(client, F_SETFD, FD_CLOEXEC)
                Self.answer(client, body: body)
                close(client)
            }
        }
    }

    /// Stops serving: a unix socket's name is removed at once (the process
    /// may exit next), and the thread closes the socket.
    public func stop() {
        if case .unix(let path) = address { unlink(path) }
        var one: UInt8 = 1
        _ = write(wake, &one, 1)
    }

    static func listen(_ address: MetricsAddress) throws(StartError) -> (Int32, MetricsAddress) {
        let family: Int32
        switch address {
        case .unix: family = AF_UNIX
        case .ipv4: family = AF_INET
        case .ipv6: family = AF_INET6
        }
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw StartError(description: "metrics: cannot open a socket for \(address): \(String(cString: strerror(errno)))") }
        func fail(_ what: String) -> StartError {
            let message = String(cString: strerror(errno))
            close(fd)
            return StartError(description: "metrics: cannot \(what) \(address): \(message)")
        }
        var bound = address
        switch address {
        case .unix(let path):
            // A socket left by an earlier run is replaced; anything else there is not.
            var info = stat()
            if lstat(path, &info) == 0 {
                guard info.st_mode & S_IFMT == S_IFSOCK else {
                    close(fd)
                    throw StartError(description: "metrics: \(path) exists and is not a socket; remove it or choose another path")
                }
                unlink(path)
            }
            var socketAddress = sockaddr_un()
            socketAddress.sun_family = sa_family_t(AF_UNIX)
            let bytes = Array(path.utf8)
            withUnsafeMutableBytes(of: &socketAddress.sun_path) { raw in
                for (i, byte) in bytes.enumerated() { raw[i] = byte }
            }
            let result = withUnsafePointer(to: &socketAddress) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            guard result == 0 else { throw fail("bind to") }
            // Scrapers in the reader group may connect (connect needs write permission).
            chmod(path, 0o660)
            if let group = ReaderGroup.id { _ = chown(path, uid_t.max, group) }
        case .ipv4(let octets, let port):
            var one: Int32 = 1
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            var socketAddress = sockaddr_in()
            socketAddress.sin_family = sa_family_t(AF_INET)
            socketAddress.sin_port = port.bigEndian
            socketAddress.sin_addr.s_addr = (UInt32(octets[0]) << 24 | UInt32(octets[1]) << 16 | UInt32(octets[2]) << 8 | UInt32(octets[3])).bigEndian
            let result = withUnsafePointer(to: &socketAddress) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard result == 0 else { throw fail("bind to") }
            var actual = sockaddr_in()
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafeMutablePointer(to: &actual) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
            bound = .ipv4(octets, port: UInt16(bigEndian: actual.sin_port))
        case .ipv6(let port):
            var one: Int32 = 1
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            var socketAddress = sockaddr_in6()
            socketAddress.sin6_family = sa_family_t(AF_INET6)
            socketAddress.sin6_port = port.bigEndian
            socketAddress.sin6_addr = in6addr_loopback
            let result = withUnsafePointer(to: &socketAddress) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
            guard result == 0 else { throw fail("bind to") }
            var actual = sockaddr_in6()
            var length = socklen_t(MemoryLayout<sockaddr_in6>.size)
            _ = withUnsafeMutablePointer(to: &actual) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
            bound = .ipv6(port: UInt16(bigEndian: actual.sin6_port))
        }
        guard Glibc.listen(fd, 16) == 0 else { throw fail("listen on") }
        return (fd, bound)
    }

    /// Reads one request (to the end of its headers) and writes one response.
    static func answer(_ client: Int32, body: () -> [UInt8]) {
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var request: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 2048)
        let end = Array("\r\n\r\n".utf8)
        while request.count < 8192 {
            let n = read(client, &chunk, chunk.count)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            request += chunk[0..<n]
            if headersEnd(request, end) { break }
        }
        let response = respond(to: request, body: body)
        response.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = send(client, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { return }
                offset += n
            }
        }
    }

    static func headersEnd(_ bytes: [UInt8], _ end: [UInt8]) -> Bool {
        guard bytes.count >= end.count else { return false }
        return (0...(bytes.count - end.count)).contains { bytes[$0..<($0 + end.count)].elementsEqual(end) }
    }

    /// The response to a request's bytes: the metrics for `GET /metrics`
    /// (or `HEAD`), 404 for another path, 405 for another method, 400 for
    /// what is not HTTP. Pure: tested without a socket.
    static func respond(to request: [UInt8], body: () -> [UInt8]) -> [UInt8] {
        let firstLine = request.firstIndex(of: UInt8(ascii: "\r")).map { request[..<$0] } ?? request[...]
        let words = String(decoding: firstLine, as: UTF8.self).split(separator: " ", omittingEmptySubsequences: false)
        guard words.count == 3, words[2].hasPrefix("HTTP/1.") else { return response(400, "Bad Request", Array("not an HTTP/1 request\n".utf8)) }
        let (method, target) = (words[0], words[1])
        let path = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        guard path == "/metrics" else { return response(404, "Not Found", Array("hostdevd serves /metrics only\n".utf8)) }
        guard method == "GET" || method == "HEAD" else {
            return response(405, "Method Not Allowed", Array("use GET\n".utf8), extra: "Allow: GET, HEAD\r\n")
        }
        let metrics = body()
        var head = response(200, "OK", [], contentType: "text/plain; version=0.0.4; charset=utf-8", length: metrics.count)
        if method == "GET" { head += metrics }
        return head
    }

    static func response(
        _ code: Int, _ reason: String, _ body: [UInt8], contentType: String = "text/plain; charset=utf-8", length: Int? = nil,
        extra: String = ""
    ) -> [UInt8] {
        let head = "HTTP/1.1 \(code) \(reason)\r\nContent-Type: \(contentType)\r\nContent-Length: \(length ?? body.count)\r\n\(extra)Connection: close\r\n\r\n"
        return Array(head.utf8) + body
    }
}
