/// A minimal JSON value with deterministic key order, so that output is
/// byte-for-byte stable (diffable in GitOps reviews and comparable in tests).
public indirect enum JSONText: Sendable, Equatable {
    case string(String)
    case number(Int)
    case bool(Bool)
    case array([JSONText])
    case object([(String, JSONText)])
    case null

    public static func == (a: JSONText, b: JSONText) -> Bool { a.rendered() == b.rendered() }

    /// Pretty-printed with two-space indentation.
    public func rendered(indent: Int = 0) -> String {
        var out = ""
        write(into: &out, indent: indent)
        return out
    }

    /// On one line with no spaces: one JSON Lines record.
    public func compact() -> String {
        var out = ""
        write(into: &out, indent: nil)
        return out
    }

    /// `indent` nil: compact, on one line with no spaces.
    private func write(into out: inout String, indent: Int?) {
        switch self {
        case .string(let s): JSONText.quote(s, into: &out)
        case .number(let n): out += String(n)
        case .bool(let b): out += b ? "true" : "false"
        case .null: out += "null"
        case .array(let items):
            Self.container("[", "]", count: items.count, indent: indent, into: &out) { i, out, inner in items[i].write(into: &out, indent: inner) }
        case .object(let members):
            Self.container("{", "}", count: members.count, indent: indent, into: &out) { i, out, inner in
                JSONText.quote(members[i].0, into: &out)
                out += inner == nil ? ":" : ": "
                members[i].1.write(into: &out, indent: inner)
            }
        }
    }

    /// An array's or object's brackets and separators around its `count`
    /// members, each written by `member` at the members' indentation.
    private static func container(
        _ open: String, _ close: String, count: Int, indent: Int?, into out: inout String, member: (Int, inout String, Int?) -> Void
    ) {
        guard count > 0 else { out += open + close; return }
        guard let indent else {
            out += open
            for i in 0..<count {
                if i > 0 { out += "," }
                member(i, &out, nil)
            }
            out += close
            return
        }
        let pad = String(repeating: " ", count: indent + 2)
        out += open + "\n"
        for i in 0..<count {
            out += pad
            member(i, &out, indent + 2)
            out += i == count - 1 ? "\n" : ",\n"
        }
        out += String(repeating: " ", count: indent) + close
    }

    public static func quote(_ s: String, into out: inout String) {
        out += "\""
        // Fast path: nearly every string (names, IDs, paths) needs no escaping.
        if !s.utf8.contains(where: { $0 < 0x20 || $0 == 0x22 || $0 == 0x5c }) {
            out += s
            out += "\""
            return
        }
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20: out += "\\u" + hex(scalar.value, 4)
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }
}
