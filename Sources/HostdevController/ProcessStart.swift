#if canImport(Glibc)
    import Glibc
#endif

/// When a process started, in clock ticks since boot (`/proc/PID/stat`
/// field 22): a reader of `status.json` compares it with the running
/// daemon's to tell a current status from one a previous daemon left.
public struct ProcessStart: Sendable, Equatable {
    public var ticks: UInt64

    public static func current() -> ProcessStart { of(pid: getpid()) ?? ProcessStart(ticks: 0) }

    /// nil when no such process runs (or /proc cannot tell).
    public static func of(pid: Int32, proc: String = "/proc") -> ProcessStart? {
        guard case .success(let bytes) = fileContents("\(proc)/\(pid)/stat") else { return nil }
        return parse(String(decoding: bytes, as: UTF8.self))
    }

    /// The comm field may hold spaces and parentheses: fields are counted
    /// after its last ')'.
    static func parse(_ stat: String) -> ProcessStart? {
        guard let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // After ')' come field 3 (state) onwards: starttime (22) is index 19.
        guard fields.count > 19, let ticks = UInt64(fields[19]) else { return nil }
        return ProcessStart(ticks: ticks)
    }
}
