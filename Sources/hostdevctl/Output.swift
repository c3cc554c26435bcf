import ArgumentParser
#if canImport(Glibc)
    import Glibc
#endif

/// Writes to stderr with write(2): unbuffered, so notes and errors never
/// interleave badly with stdout (and no C `FILE*` global is touched).
func printError(_ text: String) {
    writeAll(2, text.hasSuffix("\n") ? text : text + "\n")
}

/// Writes to stdout at once, for line-by-line consumers (pipes, tests).
func emit(_ text: String) { writeAll(1, text) }

private func writeAll(_ fd: Int32, _ text: String) {
    var bytes = Array(text.utf8)
    var offset = 0
    while offset < bytes.count {
        let n = bytes.withUnsafeMutableBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { return }
        offset += n
    }
}

/// Collects output and writes it in 64 KiB pieces: one write per device
/// would cost thousands of syscalls on a large host.
final class BufferedOutput {
    private var pending = ""

    func write(_ text: String) {
        pending += text
        if pending.utf8.count >= 65536 { flush() }
    }

    func flush() {
        emit(pending)
        pending = ""
    }
}

/// `--format text|json`, for every command that reports.
struct FormatOption: ParsableArguments {
    enum Format: String, ExpressibleByArgument, CaseIterable { case text, json }

    @Option(help: "Output format: text or json (see README, \"Machine-readable output\").")
    var format: Format = .text
}
