/// A `hosts:` entry of a binding: a shell glob matched against the host's
/// name with fnmatch(3) semantics and no flags: `*` any run of characters,
/// `?` one character, `[abc]`, `[a-z]` and `[!a-z]` (or `[^a-z]`) one
/// character of (or not of) a set, `\x` the character x itself. Case
/// matters, as it does for fnmatch. A `[` without its `]` is a plain `[`.
public struct HostPattern: Sendable, Hashable, CustomStringConvertible {
    public let text: String
    private let pattern: [Unicode.Scalar]

    public init(_ text: String) {
        self.text = text
        pattern = Array(text.unicodeScalars)
    }

    public var description: String { text }

    /// True when the pattern has no glob characters: it names one host.
    public var isLiteral: Bool { !pattern.contains { $0 == "*" || $0 == "?" || $0 == "[" || $0 == "\\" } }

    public func matches(_ host: String) -> Bool {
        let name = Array(host.unicodeScalars)
        // Iterative glob with one backtracking point (the last '*'): linear
        // in practice, never exponential.
        var p = 0
        var n = 0
        var star: (p: Int, n: Int)?
        while n < name.count {
            if p < pattern.count {
                switch pattern[p] {
                case "*":
                    star = (p + 1, n)
                    p += 1
                    continue
                case "?":
                    p += 1
                    n += 1
                    continue
                case "[":
                    if let (matched, next) = matchSet(at: p, name[n]) {
                        if matched {
                            p = next
                            n += 1
                            continue
                        }
                    } else if name[n] == "[" {
                        p += 1
                        n += 1
                        continue
                    }
                case "\\" where p + 1 < pattern.count:
                    if pattern[p + 1] == name[n] {
                        p += 2
                        n += 1
                        continue
                    }
                default:
                    if pattern[p] == name[n] {
                        p += 1
                        n += 1
                        continue
                    }
                }
            }
            guard let last = star else { return false }
            star = (last.p, last.n + 1)
            p = last.p
            n = last.n + 1
        }
        while p < pattern.count, pattern[p] == "*" { p += 1 }
        return p == pattern.count
    }

    /// The bracket expression at `start`: whether `character` is in it, and
    /// where the pattern goes on; nil when the `[` has no closing `]`.
    private func matchSet(at start: Int, _ character: Unicode.Scalar) -> (Bool, Int)? {
        var i = start + 1
        var negated = false
        if i < pattern.count, pattern[i] == "!" || pattern[i] == "^" {
            negated = true
            i += 1
        }
        var found = false
        var first = true
        while i < pattern.count {
            var low = pattern[i]
            if low == "]" && !first { return (found != negated, i + 1) }
            first = false
            if low == "\\", i + 1 < pattern.count {
                i += 1
                low = pattern[i]
            }
            var high = low
            if i + 2 < pattern.count, pattern[i + 1] == "-", pattern[i + 2] != "]" {
                high = pattern[i + 2]
                if high == "\\", i + 3 < pattern.count { high = pattern[i + 3]; i += 1 }
                i += 2
            }
            if low.value <= character.value && character.value <= high.value { found = true }
            i += 1
        }
        return nil
    }
}
