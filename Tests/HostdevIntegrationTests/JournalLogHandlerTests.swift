import Foundation
import HostdevController
import HostdevTestSupport
import Logging
import Synchronization
import Testing

/// Collects what a handler writes.
final class CapturedOutput: Sendable {
    private let texts = Mutex<[String]>([])
    var text: String { texts.withLock { $0.joined() } }
    var write: @Sendable (String) -> Void { { [self] text in texts.withLock { $0.append(text) } } }
}

@Suite struct JournalLogHandlerTests {
    static let noon = Date(timeIntervalSince1970: 1_796_040_000.25)  // 2026-11-30T12:00:00.250Z

    func makeLogger(_ format: JournalLogHandler.Format, level: Logger.Level = .trace) -> (Logger, CapturedOutput) {
        let output = CapturedOutput()
        let handler = JournalLogHandler(
            label: "hostdevd", format: format, logLevel: level, metadataProvider: nil, write: output.write, now: { Self.noon })
        return (Logger(label: "hostdevd", factory: { _ in handler }), output)
    }

    /// `journalctl -p err` shows priorities 0–3: error and critical are in,
    /// warning and below are out.
    @Test(arguments: [
        (Logger.Level.critical, "<2>"), (.error, "<3>"), (.warning, "<4>"), (.notice, "<5>"), (.info, "<6>"),
        (.debug, "<7>"), (.trace, "<7>"),
    ])
    func eachLevelHasItsSyslogPriority(level: Logger.Level, prefix: String) {
        let (logger, output) = makeLogger(.journal)
        logger.log(level: level, "manifest rejected")
        #expect(output.text == "\(prefix)manifest rejected\n")
        let priority = JournalLogHandler.syslogPriority(level)
        #expect((priority <= 3) == (level >= .error), "journalctl -p err must show exactly error and above")
    }

    @Test func journalLinesCarryNoTimestampPlainLinesDo() {
        let (journal, journalOutput) = makeLogger(.journal)
        journal.warning("libvirt unreachable")
        #expect(journalOutput.text == "<4>libvirt unreachable\n")
        #expect(!journalOutput.text.contains("2026"))
        let (plain, plainOutput) = makeLogger(.plain)
        plain.warning("libvirt unreachable")
        #expect(plainOutput.text == "2026-11-30T12:00:00.250Z warning hostdevd: libvirt unreachable\n")
    }

    /// A message that already names its level does not name it twice.
    @Test(arguments: [
        ("warning: libvirt unreachable", "libvirt unreachable"),
        ("warning: warning: libvirt unreachable", "libvirt unreachable"),
        ("error: warning:  cannot read ledger.json", "cannot read ledger.json"),
        ("Warning: x", "x"),
        ("a warning: inside stays", "a warning: inside stays"),
        ("warning:no space is not a prefix", "warning:no space is not a prefix"),
    ])
    func levelWordsDoNotNest(message: String, expected: String) {
        let (logger, output) = makeLogger(.journal)
        logger.warning("\(message)")
        #expect(output.text == "<4>\(expected)\n")
    }

    @Test func metadataIsAppendedAsSortedKeyValuePairs() {
        let (made, output) = makeLogger(.journal)
        var logger = made
        logger[metadataKey: "vm"] = "win11"
        logger.error("bind failed", metadata: ["device": "0000:01:00.0", "reason": "Device or resource busy"])
        #expect(output.text == "<3>bind failed device=0000:01:00.0 reason=\"Device or resource busy\" vm=win11\n")
    }

    /// journald files each line on its own: every line of a multi-line
    /// message keeps the priority (else its continuation would be info).
    @Test func everyLineOfAMessageKeepsItsPriority() {
        let (journal, output) = makeLogger(.journal)
        journal.error("manifest rejected:\n  bindings.yaml:3:5: unknown key 'devcies'")
        #expect(output.text == "<3>manifest rejected:\n<3>  bindings.yaml:3:5: unknown key 'devcies'\n")
        let (plain, plainOutput) = makeLogger(.plain)
        plain.error("a\nb")
        #expect(plainOutput.text == "2026-11-30T12:00:00.250Z error hostdevd: a\n                                         b\n")
    }

    @Test func levelBelowTheHandlersIsNotWritten() {
        let (logger, output) = makeLogger(.journal, level: .notice)
        logger.info("quiet")
        logger.notice("loud")
        #expect(output.text == "<5>loud\n")
    }

    /// systemd's rule: JOURNAL_STREAM names stderr's device:inode; a child
    /// whose stderr was redirected keeps the variable but not the journal.
    @Test(arguments: [
        ([String: String](), (UInt64(8), UInt64(1234)) as (UInt64, UInt64)?, JournalLogHandler.Format.plain),
        (["JOURNAL_STREAM": ""], (8, 1234), .plain),
        (["JOURNAL_STREAM": "8:1234"], (8, 1234), .journal),
        (["JOURNAL_STREAM": "8:1234"], (8, 999), .plain),
        (["JOURNAL_STREAM": "8:1234"], nil, .journal),
        (["JOURNAL_STREAM": "garbage"], (8, 1234), .journal),
    ])
    func formatFollowsJournalStream(environment: [String: String], standardError: (UInt64, UInt64)?, expected: JournalLogHandler.Format) {
        let identity = standardError.map { (device: $0.0, inode: $0.1) }
        #expect(JournalLogHandler.Format.detect(environment: environment, standardError: identity) == expected)
    }

    @Test func timestampsAreUTCWithMilliseconds() {
        #expect(JournalLogHandler.timestamp(Date(timeIntervalSince1970: 0)) == "1970-01-01T00:00:00.000Z")
        #expect(JournalLogHandler.timestamp(Self.noon) == "2026-11-30T12:00:00.250Z")
    }
}

/// The daemon itself, as systemd runs it: with JOURNAL_STREAM naming its
/// stderr, every line starts with a priority and none has a timestamp;
/// without it, every line starts with one.
@Suite struct DaemonLogFormatTests {
    /// Runs hostdevd for two seconds against a missing manifest and no
    /// libvirt (so it has errors and warnings to say), stderr to a file.
    func daemonLines(journal: Bool) throws -> [Substring] {
        let dir = FileTree.makeTemporaryDirectory(prefix: "hostdev-journal")
        defer { FileTree.remove(dir) }
        let script = """
            exec 2>"$1/stderr"
            [ "$3" = journal ] && export JOURNAL_STREAM="$(stat -c '%d:%i' "$1/stderr")"
            timeout -s TERM 2 "$2" --manifest "$1/missing/bindings.yaml" --state-dir "$1" --status-file "$1/status.json" \\
              --connect bogus:///nothing --sysfs-root "$1" --udev-source kernel
            rc=$?; [ $rc -eq 124 ] || [ $rc -eq 0 ]
            """
        let result = try ChildProcess.run("/bin/sh", ["-c", script, "sh", dir, BuiltProducts.hostdevd, journal ? "journal" : "plain"])
        #expect(result.status == 0, "\(result.stderr)")
        return (FileTree.read(dir + "/stderr") ?? "").split(separator: "\n")
    }

    @Test func hostdevdWritesPrioritiesUnderJournalStream() throws {
        let lines = try daemonLines(journal: true)
        #expect(!lines.isEmpty)
        for line in lines {
            #expect(line.range(of: #"^<[0-7]>"#, options: .regularExpression) != nil, "no priority: \(line)")
            #expect(line.range(of: #"\d{4}-\d\d-\d\dT\d\d:"#, options: .regularExpression) == nil, "timestamp: \(line)")
            #expect(line.range(of: #"^<[0-7]>(warning|error): "#, options: .regularExpression) == nil, "level said twice: \(line)")
        }
        // The manifest error is what `journalctl -p err` shows.
        #expect(lines.contains { $0.hasPrefix("<3>") && $0.contains("missing/bindings.yaml") }, "\(lines)")
    }

    /// libvirt away while the daemon plans: its warning is said once per
    /// line, at priority 4, never as "warning … warning:" (the observer's
    /// and the retry loop's messages carry their own level words).
    @Test func libvirtWarningsAreNotNested() throws {
        let tree = SysfsTree.workstation()
        let dir = FileTree.makeTemporaryDirectory(prefix: "hostdev-journal")
        defer {
            FileTree.remove(dir)
            FileTree.remove(tree.root)
        }
        FileTree.write(dir + "/bindings.yaml", "version: 1\n")
        let script = """
            exec 2>"$1/stderr"
            export JOURNAL_STREAM="$(stat -c '%d:%i' "$1/stderr")"
            timeout -s TERM 2 "$2" --manifest "$1/bindings.yaml" --state-dir "$1/state" --status-file "$1/status.json" \\
              --connect bogus:///nothing --sysfs-root "$3" --udev-source kernel --resync 1
            rc=$?; [ $rc -eq 124 ] || [ $rc -eq 0 ]
            """
        let result = try ChildProcess.run("/bin/sh", ["-c", script, "sh", dir, BuiltProducts.hostdevd, tree.root])
        #expect(result.status == 0, "\(result.stderr)")
        let lines = (FileTree.read(dir + "/stderr") ?? "").split(separator: "\n")
        #expect(lines.contains { $0.hasPrefix("<4>libvirt unreachable: ") }, "\(lines)")
        for line in lines {
            #expect(line.range(of: #"^<[0-7]>"#, options: .regularExpression) != nil, "no priority: \(line)")
            #expect(!line.lowercased().contains("warning:"), "nested level word: \(line)")
            #expect(!line.lowercased().contains("error: error:"), "nested level word: \(line)")
        }
    }

    @Test func hostdevdWritesTimestampsElsewhere() throws {
        let lines = try daemonLines(journal: false)
        #expect(!lines.isEmpty)
        for line in lines where !line.hasPrefix(" ") {
            #expect(line.range(of: #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (trace|debug|info|notice|warning|error|critical) "#, options: .regularExpression) != nil, "\(line)")
        }
    }
}
