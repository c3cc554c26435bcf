#if canImport(Glibc)
    import Glibc
#endif
import Foundation
import Logging

/// A swift-log handler for a daemon that systemd runs.
///
/// When stderr goes to the journal (systemd sets `JOURNAL_STREAM`), every line
/// starts with its syslog priority (`<3>manifest rejected …`), so
/// `journalctl -p err` shows errors and nothing else, and carries no
/// timestamp: journald stamps each line itself. Anywhere else (a terminal, a
/// pipe, a file) a line is `2026-11-30T12:07:16.123Z warning hostdevd: …`.
///
/// The level is said once: a message that itself starts with `warning: ` or
/// `error: ` (an error's text passed on by a caller) loses that word, so a
/// retried warning never reads `warning … warning:`.
public struct JournalLogHandler: LogHandler {
    /// How lines are written.
    public enum Format: Sendable, Equatable {
        /// `<N>message key=value`: for journald, which adds the timestamp.
        case journal
        /// `TIMESTAMP level label: message key=value`.
        case plain

        /// `.journal` when `JOURNAL_STREAM` is set and, where stderr's
        /// device and inode are known, names stderr (systemd's documented
        /// test: a child whose stderr was redirected elsewhere keeps the
        /// variable but no longer writes to the journal).
        public static func detect(environment: [String: String], standardError: (device: UInt64, inode: UInt64)?) -> Format {
            guard let stream = environment["JOURNAL_STREAM"], !stream.isEmpty else { return .plain }
            guard let standardError else { return .journal }
            let parts = stream.split(separator: ":")
            guard parts.count == 2, let device = UInt64(parts[0]), let inode = UInt64(parts[1]) else { return .journal }
            return device == standardError.device && inode == standardError.inode ? .journal : .plain
        }

        /// The format for this process's stderr and environment.
        public static func detect() -> Format {
            var info = stat()
            let identity: (device: UInt64, inode: UInt64)? =
                fstat(STDERR_FILENO, &info) == 0 ? (UInt64(info.st_dev), UInt64(info.st_ino)) : nil
            return detect(environment: ProcessInfo.processInfo.environment, standardError: identity)
        }
    }

    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    public var logLevel: Logger.Level
    public let label: String
    public let format: Format
    private let write: @Sendable (String) -> Void
    private let now: @Sendable () -> Date

    /// - Parameters:
    ///   - format: `.journal` or `.plain`; `Format.detect()` picks it from the environment.
    ///   - write: receives each complete output (one or more lines, each ending
    ///     in a newline); by default one `write(2)` to stderr.
    ///   - now: the clock for plain lines' timestamps.
    public init(
        label: String, format: Format = .detect(), logLevel: Logger.Level = .info,
        metadataProvider: Logger.MetadataProvider? = LoggingSystem.metadataProvider,
        write: @escaping @Sendable (String) -> Void = JournalLogHandler.writeToStandardError,
        now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.label = label
        self.format = format
        self.logLevel = logLevel
        self.metadataProvider = metadataProvider
        self.write = write
        self.now = now
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let own = event.metadata { merged.merge(own) { _, new in new } }
        if let error = event.error { merged["error"] = "\(error)" }
        write(Self.render(level: event.level, message: event.message.description, metadata: merged, label: label, format: format, at: now()))
    }

    /// The syslog priority journald files a line under: `journalctl -p err`
    /// shows priorities 0 to 3, so `.error` and `.critical` and nothing else.
    public static func syslogPriority(_ level: Logger.Level) -> Int {
        switch level {
        case .critical: 2
        case .error: 3
        case .warning: 4
        case .notice: 5
        case .info: 6
        case .debug, .trace: 7
        }
    }

    /// One event as text: one line per line of the message, each ending in a
    /// newline; under `.journal` each starts with the priority, so a message
    /// that spans lines is filed whole under its level.
    public static func render(
        level: Logger.Level, message: String, metadata: Logger.Metadata, label: String, format: Format, at date: Date
    ) -> String {
        var text = stripLevelPrefixes(message)
        let pairs = metadata.keys.sorted().map { "\($0)=\(quoted(metadata[$0]!.description))" }
        if !pairs.isEmpty { text += (text.isEmpty ? "" : " ") + pairs.joined(separator: " ") }
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        switch format {
        case .journal:
            let priority = "<\(syslogPriority(level))>"
            return lines.map { priority + $0 + "\n" }.joined()
        case .plain:
            let head = "\(timestamp(date)) \(level) \(label): "
            let indent = String(repeating: " ", count: head.count)
            return lines.enumerated().map { ($0.offset == 0 ? head : indent) + $0.element + "\n" }.joined()
        }
    }

    /// The message without leading level words (`warning: error: x` → `x`):
    /// the line's level says it already.
    public static func stripLevelPrefixes(_ message: String) -> String {
        var rest = Substring(message)
        let prefixes = Logger.Level.allCases.map { "\($0): " } + ["warn: ", "err: "]
        while let prefix = prefixes.first(where: { rest.lowercased().hasPrefix($0) }) {
            rest = rest.dropFirst(prefix.count)
            while rest.first == " " { rest = rest.dropFirst() }
        }
        return String(rest)
    }

    /// A metadata value as it is, or in double quotes when it is empty or
    /// holds a space, a quote or a newline (so `key=value` pairs stay parseable).
    static func quoted(_ value: String) -> String {
        guard value.isEmpty || value.contains(where: { $0 == " " || $0 == "\"" || $0 == "\n" || $0 == "=" }) else { return value }
        let escaped = value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
        return "\"\(escaped)\""
    }

    /// ISO 8601 in UTC with milliseconds: `2026-11-30T12:07:16.123Z`.
    public static func timestamp(_ date: Date) -> String {
        let interval = date.timeIntervalSince1970
        var seconds = time_t(interval.rounded(.down))
        let milliseconds = min(999, Int(((interval - Double(seconds)) * 1000).rounded(.down)))
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))"
            + "T\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(Int32(milliseconds), 3))Z"
    }

    /// Writes the whole text to stderr in as few `write(2)` calls as it
    /// takes (one for a line of ordinary length), so lines of concurrent
    /// loggers do not interleave.
    public static let writeToStandardError: @Sendable (String) -> Void = { text in
        var bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeMutableBytes { buffer in
                Glibc.write(STDERR_FILENO, buffer.baseAddress! + offset, buffer.count - offset)
            }
            if written < 0 {
                if errno == EINTR { continue }
                return
            }
            offset += written
        }
    }
}
