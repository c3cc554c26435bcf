#if canImport(Glibc)
    import Glibc
#endif
import HostdevSysfs

/// Sends hotplug events to programs running under umockdev: umockdev turns
/// libudev's netlink socket into a datagram socket `$UMOCKDEV_DIR/event<N>`,
/// and this writes libudev's own wire format to it (header with magic
/// 0xfeedcafe and the MurmurHash2 of the subsystem for the socket filter,
/// then `KEY=VALUE\0` properties).
public enum UeventSender {
    /// The monitor sockets umockdev created in `testbed` (one per monitor).
    public static func sockets(in testbed: String) -> [String] {
        (SysfsRoot("/").list(testbed) ?? []).filter { $0.hasPrefix("event") }.sorted().map { testbed + "/" + $0 }
    }

    /// Sends one event; `properties` adds to ACTION/DEVPATH/SUBSYSTEM/SEQNUM.
    public static func send(
        to socketPath: String, action: String, devpath: String, subsystem: String, seqnum: UInt64,
        properties: [(String, String)] = []
    ) throws {
        var payload: [UInt8] = []
        let all = [("ACTION", action), ("DEVPATH", devpath), ("SUBSYSTEM", subsystem), ("SEQNUM", String(seqnum))]
            + properties
        for (key, value) in all {
            payload += Array("\(key)=\(value)".utf8)
            payload.append(0)
        }
        var message = Array("libudev".utf8) + [0]
        let headerSize: UInt32 = 40
        message += bytes(0xfeed_cafe, network: true)
        message += bytes(headerSize, network: false)  // header_size
        message += bytes(headerSize, network: false)  // properties_off
        message += bytes(UInt32(payload.count), network: false)  // properties_len
        message += bytes(murmurHash2(Array(subsystem.utf8)), network: true)
        message += [UInt8](repeating: 0, count: 12)  // devtype hash, tag bloom hi/lo: unused
        message += payload

        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { throw SendError(errno: errno) }
        defer { close(fd) }
        let sent = withUnixAddress(socketPath) { sendto(fd, message, message.count, 0, $0, $1) }
        guard sent == message.count else { throw SendError(errno: errno) }
    }

    public struct SendError: Error { public var errno: Int32 }

    /// Header integers: the magic and hashes in network order, sizes and
    /// offsets in host order (as libudev writes them).
    static func bytes(_ value: UInt32, network: Bool) -> [UInt8] {
        let v = network ? value.bigEndian : value
        return withUnsafeBytes(of: v) { Array($0) }
    }

    /// MurmurHash2 with seed 0, as systemd's `string_hash32`.
    public static func murmurHash2(_ data: [UInt8]) -> UInt32 {
        let m: UInt32 = 0x5bd1_e995
        var h: UInt32 = UInt32(truncatingIfNeeded: data.count)
        var i = 0
        while data.count - i >= 4 {
            var k = UInt32(data[i]) | UInt32(data[i + 1]) << 8 | UInt32(data[i + 2]) << 16 | UInt32(data[i + 3]) << 24
            k = k &* m
            k ^= k >> 24
            k = k &* m
            h = h &* m
            h ^= k
            i += 4
        }
        let rest = data.count - i
        if rest == 3 { h ^= UInt32(data[i + 2]) << 16 }
        if rest >= 2 { h ^= UInt32(data[i + 1]) << 8 }
        if rest >= 1 {
            h ^= UInt32(data[i])
            h = h &* m
        }
        h ^= h >> 13
        h = h &* m
        h ^= h >> 15
        return h
    }
}
