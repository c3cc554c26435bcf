import CYAML
import HostdevCore

/// A YAML document as a tree of nodes with their positions: what the
/// manifest decoder reads. Composed from libyaml's event parser, which is
/// all the YAML the manifest needs (JSON included) without a Foundation-
/// based library in every hostdevd and hostdevctl process.
///
/// The composer is iterative (an explicit stack, never recursion) and
/// bounded (`YAMLLimits`): the manifest is often pulled from git and read by
/// root, so a hostile or corrupt file must be refused in linear time and
/// constant stack, never crash or stall the daemon.
// Not `indirect`: collections already live in arrays, and a box per
// scalar was a third of the composer's time on a large manifest.
public enum YAMLNode: Sendable, Equatable {
    /// A scalar with its text (quotes removed, escapes resolved), its style
    /// and tag, and so its type under the YAML 1.2 core schema.
    case scalar(YAMLScalar, YAMLMark)
    /// Key–value pairs in document order (duplicates kept for the decoder to report).
    case mapping([Pair], YAMLMark)
    case sequence([YAMLNode], YAMLMark)

    public struct Pair: Sendable, Equatable {
        public var key: YAMLNode
        public var value: YAMLNode

        public init(key: YAMLNode, value: YAMLNode) {
            self.key = key
            self.value = value
        }
    }

    public var mark: YAMLMark {
        switch self {
        case .scalar(_, let mark), .mapping(_, let mark), .sequence(_, let mark): return mark
        }
    }

    /// The scalar's text, whatever its type; nil for a collection.
    public var scalarText: String? {
        if case .scalar(let scalar, _) = self { return scalar.text }
        return nil
    }

    public var scalar: YAMLScalar? {
        if case .scalar(let scalar, _) = self { return scalar }
        return nil
    }
}

/// A scalar as written: its text, how it was quoted, its explicit tag, and
/// the type these give it under the YAML 1.2 core schema (the schema JSON
/// Schema validators also use: `true` is a boolean, `"true"` a string,
/// `~` null, `0x10` an integer).
public struct YAMLScalar: Sendable, Equatable, ExpressibleByStringLiteral {
    public enum Style: Sendable, Equatable {
        case plain, singleQuoted, doubleQuoted, literal, folded
    }

    /// The core schema's scalar types.
    public enum Kind: String, Sendable, Equatable {
        case null, bool, int, float, string
    }

    public var text: String
    public var style: Style
    /// The explicit tag, fully resolved (`tag:yaml.org,2002:str`), or nil when none was written.
    public var tag: String?

    public init(_ text: String, style: Style = .plain, tag: String? = nil) {
        self.text = text
        self.style = style
        self.tag = tag
    }

    /// A plain, untagged scalar (for tests and tables).
    public init(stringLiteral text: String) { self.init(text) }

    /// The type: from the explicit tag if any, else `string` for any quoted
    /// or block scalar, else resolved from the plain text by the core schema.
    public var kind: Kind {
        if let tag {
            switch tag {
            case YAMLTag.null: return .null
            case YAMLTag.bool: return .bool
            case YAMLTag.int: return .int
            case YAMLTag.float: return .float
            default: return .string
            }
        }
        guard style == .plain else { return .string }
        return Self.resolve(plain: text)
    }

    /// The YAML 1.2 core schema's resolution of a plain scalar.
    public static func resolve(plain text: String) -> Kind {
        // Most plain scalars are words (keys, names): one byte decides.
        guard let first = text.utf8.first else { return .null }
        switch first {
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "+"), UInt8(ascii: "."), UInt8(ascii: "~"),
            UInt8(ascii: "n"), UInt8(ascii: "N"), UInt8(ascii: "t"), UInt8(ascii: "T"), UInt8(ascii: "f"), UInt8(ascii: "F"):
            break
        default: return .string
        }
        switch text {
        case "", "~", "null", "Null", "NULL": return .null
        case "true", "True", "TRUE", "false", "False", "FALSE": return .bool
        case ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF", ".nan", ".NaN", ".NAN": return .float
        default: break
        }
        if isCoreIntegerSyntax(text) { return .int }
        if isCoreFloat(text) { return .float }
        return .string
    }

    /// `[-+]?[0-9]+`, `0o[0-7]+` or `0x[0-9a-fA-F]+`, whatever its size.
    static func isCoreIntegerSyntax(_ text: String) -> Bool {
        var bytes = Substring(text).utf8[...]
        if bytes.first == UInt8(ascii: "0"), bytes.count > 2 {
            let marker = bytes[bytes.index(after: bytes.startIndex)]
            let rest = bytes.dropFirst(2)
            if marker == UInt8(ascii: "x") { return rest.allSatisfy(isHexDigit) }
            if marker == UInt8(ascii: "o") { return rest.allSatisfy { (0x30...0x37).contains($0) } }
        }
        if bytes.first == UInt8(ascii: "-") || bytes.first == UInt8(ascii: "+") { bytes = bytes.dropFirst() }
        return !bytes.isEmpty && bytes.allSatisfy { (0x30...0x39).contains($0) }
    }

    /// The value of a core-schema integer, nil when the text is not one or
    /// does not fit in an `Int`.
    public static func coreInteger(_ text: String) -> Int? {
        let bytes = Array(text.utf8)
        if bytes.count > 2, bytes[0] == UInt8(ascii: "0"), bytes[1] == UInt8(ascii: "x") {
            return Int(hexDigits: bytes[2...])
        }
        if bytes.count > 2, bytes[0] == UInt8(ascii: "0"), bytes[1] == UInt8(ascii: "o") {
            guard bytes[2...].allSatisfy({ (0x30...0x37).contains($0) }) else { return nil }
            return Int(String(decoding: bytes[2...], as: UTF8.self), radix: 8)
        }
        var digits = bytes[...]
        if digits.first == UInt8(ascii: "-") || digits.first == UInt8(ascii: "+") { digits = digits.dropFirst() }
        guard !digits.isEmpty, digits.allSatisfy({ (0x30...0x39).contains($0) }) else { return nil }
        // Int("+5") and Int("-5") both parse; leading zeros are decimal, as in the core schema.
        return Int(text)
    }

    /// `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`
    static func isCoreFloat(_ text: String) -> Bool {
        var bytes = Array(text.utf8)[...]
        func digits() -> Int {
            let count = bytes.prefix { (0x30...0x39).contains($0) }.count
            bytes = bytes.dropFirst(count)
            return count
        }
        if bytes.first == UInt8(ascii: "-") || bytes.first == UInt8(ascii: "+") { bytes = bytes.dropFirst() }
        let whole = digits()
        var fraction = 0
        if bytes.first == UInt8(ascii: ".") {
            bytes = bytes.dropFirst()
            fraction = digits()
            guard whole > 0 || fraction > 0 else { return false }
        } else if whole == 0 {
            return false
        }
        if bytes.first == UInt8(ascii: "e") || bytes.first == UInt8(ascii: "E") {
            bytes = bytes.dropFirst()
            if bytes.first == UInt8(ascii: "-") || bytes.first == UInt8(ascii: "+") { bytes = bytes.dropFirst() }
            guard digits() > 0 else { return false }
        }
        return bytes.isEmpty
    }

    private static func isHexDigit(_ byte: UInt8) -> Bool {
        (0x30...0x39).contains(byte) || (0x41...0x46).contains(byte) || (0x61...0x66).contains(byte)
    }
}

/// The core schema's tags: the only explicit tags a manifest may carry.
public enum YAMLTag {
    public static let str = "tag:yaml.org,2002:str"
    public static let int = "tag:yaml.org,2002:int"
    public static let bool = "tag:yaml.org,2002:bool"
    public static let null = "tag:yaml.org,2002:null"
    public static let float = "tag:yaml.org,2002:float"
    public static let map = "tag:yaml.org,2002:map"
    public static let seq = "tag:yaml.org,2002:seq"

    static let scalars: Set<String> = [str, int, bool, null, float]
}

/// Where a node starts: 1-based line and column.
public struct YAMLMark: Sendable, Equatable {
    public var line: Int
    public var column: Int

    public init(line: Int, column: Int) {
        self.line = line
        self.column = column
    }
}

/// Why a text is not a YAML document the manifest decoder will read:
/// libyaml's own account of a syntax error, or a limit or rule of the
/// composer (then with a hint saying what to do).
public struct YAMLSyntaxError: Error, Sendable, Equatable {
    public var problem: String
    public var mark: YAMLMark
    /// Set for the composer's own refusals (limits, tags, UTF-8, a second
    /// document); nil for libyaml's syntax errors.
    public var hint: String?

    public init(problem: String, mark: YAMLMark, hint: String? = nil) {
        self.problem = problem
        self.mark = mark
        self.hint = hint
    }
}

/// How much a document may ask of the composer. The defaults are far above
/// what any manifest needs (a manifest nests 6 levels and uses no aliases)
/// and far below what would hurt: the stack, memory, the daemon's loop.
public struct YAMLLimits: Sendable, Equatable {
    /// The text's size in bytes.
    public var maximumBytes: Int
    /// Collections open at once.
    public var maximumDepth: Int
    /// Nodes after aliases are expanded may be at most
    /// `aliasFactor` × the document's own nodes + `aliasAllowance`.
    public var aliasFactor: Int
    public var aliasAllowance: Int

    public init(maximumBytes: Int = 4 << 20, maximumDepth: Int = 64, aliasFactor: Int = 4, aliasAllowance: Int = 1000) {
        self.maximumBytes = maximumBytes
        self.maximumDepth = maximumDepth
        self.aliasFactor = aliasFactor
        self.aliasAllowance = aliasAllowance
    }

    public static let manifest = YAMLLimits()
}

extension YAMLNode {
    /// The one document of `text`, or nil when it holds none (empty, or
    /// comments only). Anchors and aliases are resolved.
    public static func compose(_ text: String, limits: YAMLLimits = .manifest) throws(YAMLSyntaxError) -> YAMLNode? {
        try compose(bytes: Array(text.utf8), limits: limits)
    }

    /// The one document of `bytes`, which must be UTF-8; nil when it holds
    /// none. Refuses (with the place): bytes that are not UTF-8, more than
    /// one document, explicit tags outside the core schema, nesting or alias
    /// expansion beyond `limits`.
    public static func compose(bytes: [UInt8], limits: YAMLLimits = .manifest) throws(YAMLSyntaxError) -> YAMLNode? {
        guard bytes.count <= limits.maximumBytes else {
            throw YAMLSyntaxError(
                problem: "the text is \(bytes.count) bytes, more than the limit of \(limits.maximumBytes)",
                mark: YAMLMark(line: 1, column: 1), hint: "a manifest is a few kilobytes; check that this is the right file")
        }
        if let bad = firstInvalidUTF8(bytes) {
            throw YAMLSyntaxError(
                problem: "not UTF-8: byte 0x\(hex(bad.byte, 2)) starts no valid character", mark: bad.mark,
                hint: "save the file as UTF-8; names must be spelled exactly as libvirt has them")
        }
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) == 1 else {
            throw YAMLSyntaxError(problem: "cannot start the YAML parser (out of memory)", mark: YAMLMark(line: 1, column: 1))
        }
        defer { yaml_parser_delete(&parser) }
        return try bytes.withUnsafeBufferPointer { (buffer) throws(YAMLSyntaxError) -> YAMLNode? in
            yaml_parser_set_input_string(&parser, buffer.baseAddress, buffer.count)
            yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING)
            var composer = Composer(limits: limits)
            var document: YAMLNode?
            while true {
                var event = yaml_event_t()
                guard yaml_parser_parse(&parser, &event) == 1 else { throw Self.syntaxError(parser) }
                defer { yaml_event_delete(&event) }
                if event.type == YAML_STREAM_END_EVENT { return document }
                if event.type == YAML_DOCUMENT_START_EVENT, composer.documents > 0 {
                    throw YAMLSyntaxError(
                        problem: "a second document starts here", mark: Composer.mark(event.start_mark),
                        hint: "a manifest is one YAML document: remove this '---' or '...' and what follows it")
                }
                if let root = try composer.take(event) { document = root }
            }
        }
    }

    static func syntaxError(_ parser: yaml_parser_t) -> YAMLSyntaxError {
        // The problem and where it is; libyaml's context ("while parsing a
        // flow node") names its own state, not the operator's mistake.
        let problem = parser.problem.map { String(cString: $0) } ?? "malformed YAML"
        let mark = parser.problem_mark
        return YAMLSyntaxError(problem: problem, mark: YAMLMark(line: Int(mark.line) + 1, column: Int(mark.column) + 1))
    }

    /// The first byte that does not belong to a well-formed UTF-8 sequence
    /// (no overlong forms, no surrogates, nothing above U+10FFFF), with its
    /// 1-based line and column (in characters, as libyaml counts).
    public static func firstInvalidUTF8(_ bytes: [UInt8]) -> (byte: UInt8, mark: YAMLMark)? {
        var line = 1
        var column = 1
        var i = 0
        let n = bytes.count
        while i < n {
            let lead = bytes[i]
            var length = 0
            var low: UInt8 = 0x80
            var high: UInt8 = 0xbf
            switch lead {
            case 0x00...0x7f: length = 1
            case 0xc2...0xdf: length = 2
            case 0xe0: length = 3; low = 0xa0
            case 0xe1...0xec, 0xee...0xef: length = 3
            case 0xed: length = 3; high = 0x9f
            case 0xf0: length = 4; low = 0x90
            case 0xf1...0xf3: length = 4
            case 0xf4: length = 4; high = 0x8f
            default: return (lead, YAMLMark(line: line, column: column))
            }
            for k in 1..<length {
                guard i + k < n else { return (lead, YAMLMark(line: line, column: column)) }
                let next = bytes[i + k]
                let (min, max) = k == 1 ? (low, high) : (UInt8(0x80), UInt8(0xbf))
                guard next >= min, next <= max else { return (lead, YAMLMark(line: line, column: column)) }
            }
            if lead == UInt8(ascii: "\n") {
                line += 1
                column = 1
            } else {
                column += 1
            }
            i += length
        }
        return nil
    }
}

/// Builds nodes from the event stream: a stack of open collections, each
/// appended to in place (linear in the document), never deeper than the
/// limit, and an account of the nodes aliases add.
private struct Composer {
    struct Frame {
        var isMapping: Bool
        var items: [YAMLNode] = []
        var pairs: [YAMLNode.Pair] = []
        var pendingKey: YAMLNode?
        var mark: YAMLMark
        var anchor: String?
        /// Nodes in this collection once aliases are expanded, itself included.
        var size = 1
    }

    let limits: YAMLLimits
    var stack: [Frame] = []
    var anchors: [String: (node: YAMLNode, size: Int)] = [:]
    /// Nodes as written (an alias counts one).
    var ownNodes = 0
    /// Nodes after expanding aliases.
    var expandedNodes = 0
    var documents = 0

    init(limits: YAMLLimits) { self.limits = limits }

    static func mark(_ mark: yaml_mark_t) -> YAMLMark {
        YAMLMark(line: Int(mark.line) + 1, column: Int(mark.column) + 1)
    }

    /// Feeds one event; returns the document's root when it is complete.
    mutating func take(_ event: yaml_event_t) throws(YAMLSyntaxError) -> YAMLNode? {
        let mark = Self.mark(event.start_mark)
        switch event.type {
        case YAML_DOCUMENT_START_EVENT:
            documents += 1
        case YAML_SCALAR_EVENT:
            let scalar = event.data.scalar
            var tag: String?
            if let written = Self.string(scalar.tag) { tag = try checkTag(written, allowed: YAMLTag.scalars, mark: mark, what: "a scalar") }
            let text = scalar.value.map { String(decoding: UnsafeBufferPointer(start: $0, count: scalar.length), as: UTF8.self) } ?? ""
            let style: YAMLScalar.Style
            switch scalar.style {
            case YAML_SINGLE_QUOTED_SCALAR_STYLE: style = .singleQuoted
            case YAML_DOUBLE_QUOTED_SCALAR_STYLE: style = .doubleQuoted
            case YAML_LITERAL_SCALAR_STYLE: style = .literal
            case YAML_FOLDED_SCALAR_STYLE: style = .folded
            default: style = .plain
            }
            ownNodes += 1
            return add(.scalar(YAMLScalar(text, style: style, tag: tag), mark), size: 1, anchor: Self.string(scalar.anchor))
        case YAML_ALIAS_EVENT:
            let name = Self.string(event.data.alias.anchor) ?? ""
            guard let (node, size) = anchors[name] else {
                throw YAMLSyntaxError(problem: "found undefined alias '\(printable(name))'", mark: mark)
            }
            ownNodes += 1
            // Checked at each alias, against the nodes written so far: a
            // bomb is refused at its first excess, in linear time.
            let (sum, overflow) = expandedNodes.addingReportingOverflow(size)
            let budget = ownNodes.multipliedReportingOverflow(by: limits.aliasFactor).partialValue + limits.aliasAllowance
            if overflow || sum > budget {
                throw YAMLSyntaxError(
                    problem: "aliases expand the document beyond \(limits.aliasFactor)× its own \(ownNodes) nodes + \(limits.aliasAllowance)",
                    mark: mark, hint: "write the repeated parts out, or use fewer aliases")
            }
            return add(node, size: size, anchor: nil, counted: true)
        case YAML_MAPPING_START_EVENT, YAML_SEQUENCE_START_EVENT:
            let isMapping = event.type == YAML_MAPPING_START_EVENT
            guard stack.count < limits.maximumDepth else {
                throw YAMLSyntaxError(
                    problem: "nesting deeper than \(limits.maximumDepth) levels", mark: mark,
                    hint: "a manifest nests a few levels; this file is corrupt or generated wrongly")
            }
            let tag = isMapping ? Self.string(event.data.mapping_start.tag) : Self.string(event.data.sequence_start.tag)
            if let tag { _ = try checkTag(tag, allowed: [isMapping ? YAMLTag.map : YAMLTag.seq], mark: mark, what: isMapping ? "a mapping" : "a list") }
            let anchor = isMapping ? Self.string(event.data.mapping_start.anchor) : Self.string(event.data.sequence_start.anchor)
            ownNodes += 1
            stack.append(Frame(isMapping: isMapping, mark: mark, anchor: anchor))
        case YAML_MAPPING_END_EVENT, YAML_SEQUENCE_END_EVENT:
            let frame = stack.removeLast()
            let node: YAMLNode = frame.isMapping ? .mapping(frame.pairs, frame.mark) : .sequence(frame.items, frame.mark)
            return add(node, size: frame.size, anchor: frame.anchor)
        default:
            break
        }
        return nil
    }

    /// Places a finished node in the collection that is open, or returns it as the root.
    mutating func add(_ node: YAMLNode, size: Int, anchor: String?, counted: Bool = false) -> YAMLNode? {
        if !counted { expandedNodes += 1 } else { expandedNodes += size }
        if let anchor { anchors[anchor] = (node, size) }
        guard !stack.isEmpty else { return node }
        let top = stack.count - 1
        stack[top].size = min(stack[top].size &+ size, Int.max / 2)
        if stack[top].isMapping {
            if let key = stack[top].pendingKey {
                stack[top].pairs.append(YAMLNode.Pair(key: key, value: node))
                stack[top].pendingKey = nil
            } else {
                stack[top].pendingKey = node
            }
        } else {
            stack[top].items.append(node)
        }
        return nil
    }

    /// The tag when it is one of `allowed`.
    func checkTag(_ tag: String, allowed: Set<String>, mark: YAMLMark, what: String) throws(YAMLSyntaxError) -> String {
        guard allowed.contains(tag) else {
            let shown = tag.hasPrefix("tag:yaml.org,2002:") ? "!!" + tag.dropFirst("tag:yaml.org,2002:".count) : tag
            throw YAMLSyntaxError(
                problem: "tag '\(printable(shown))' is not allowed on \(what)", mark: mark,
                hint: "remove the tag; a manifest uses plain YAML (core schema tags only: !!str, !!int, !!bool, !!null, !!float, !!map, !!seq)")
        }
        return tag
    }

    static func string(_ pointer: UnsafeMutablePointer<yaml_char_t>?) -> String? {
        pointer.map { String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self)) }
    }
}

/// `text` safe to print in a message: control characters escaped, and at
/// most `limit` characters (a hostile file must not write to the terminal
/// or flood the status file).
public func printable(_ text: String, limit: Int = 80) -> String {
    var out = ""
    var count = 0
    for scalar in text.unicodeScalars {
        if count >= limit {
            out += "…"
            break
        }
        if scalar.value < 0x20 || (0x7f...0x9f).contains(scalar.value) {
            out += "\\u{" + hex(scalar.value, 2) + "}"
        } else {
            out.unicodeScalars.append(scalar)
        }
        count += 1
    }
    return out
}
