import CYAML

/// A YAML document as a tree of nodes with their positions: what the
/// manifest decoder reads. Composed from libyaml's event parser, which is
/// all the YAML the manifest needs (JSON included) without a Foundation-
/// based library in every hostdevd and hostdevctl process.
public indirect enum YAMLNode: Sendable, Equatable {
    /// The scalar's text as written (quotes removed, escapes resolved): the
    /// decoder gives it a type, not the YAML resolver.
    case scalar(String, YAMLMark)
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

    public var scalarText: String? {
        if case .scalar(let text, _) = self { return text }
        return nil
    }
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

/// libyaml's own account of a syntax error.
public struct YAMLSyntaxError: Error, Sendable, Equatable {
    public var problem: String
    public var mark: YAMLMark
}

extension YAMLNode {
    /// The first document of `text`, or nil when it holds none (empty, or
    /// comments only). Anchors and aliases are resolved.
    public static func compose(_ text: String) throws(YAMLSyntaxError) -> YAMLNode? {
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) == 1 else {
            throw YAMLSyntaxError(problem: "cannot start the YAML parser (out of memory)", mark: YAMLMark(line: 1, column: 1))
        }
        defer { yaml_parser_delete(&parser) }
        let bytes = Array(text.utf8)
        return try bytes.withUnsafeBufferPointer { (buffer) throws(YAMLSyntaxError) -> YAMLNode? in
            yaml_parser_set_input_string(&parser, buffer.baseAddress, buffer.count)
            var composer = Composer()
            while true {
                var event = yaml_event_t()
                guard yaml_parser_parse(&parser, &event) == 1 else { throw Self.syntaxError(parser) }
                defer { yaml_event_delete(&event) }
                if let document = try composer.take(event) { return document }
                if event.type == YAML_STREAM_END_EVENT { return nil }
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
}

/// Builds nodes from the event stream: a stack of open collections.
private struct Composer {
    enum Open {
        case mapping([YAMLNode.Pair], pendingKey: YAMLNode?, YAMLMark, anchor: String?)
        case sequence([YAMLNode], YAMLMark, anchor: String?)
    }

    var stack: [Open] = []
    var anchors: [String: YAMLNode] = [:]

    /// Feeds one event; returns the document's root when it is complete.
    mutating func take(_ event: yaml_event_t) throws(YAMLSyntaxError) -> YAMLNode? {
        let mark = YAMLMark(line: Int(event.start_mark.line) + 1, column: Int(event.start_mark.column) + 1)
        switch event.type {
        case YAML_SCALAR_EVENT:
            let scalar = event.data.scalar
            let text = scalar.value.map { String(decoding: UnsafeBufferPointer(start: $0, count: scalar.length), as: UTF8.self) } ?? ""
            return add(.scalar(text, mark), anchor: Self.string(scalar.anchor))
        case YAML_ALIAS_EVENT:
            let name = Self.string(event.data.alias.anchor) ?? ""
            guard let node = anchors[name] else { throw YAMLSyntaxError(problem: "found undefined alias '\(name)'", mark: mark) }
            return add(node, anchor: nil)
        case YAML_MAPPING_START_EVENT:
            stack.append(.mapping([], pendingKey: nil, mark, anchor: Self.string(event.data.mapping_start.anchor)))
        case YAML_SEQUENCE_START_EVENT:
            stack.append(.sequence([], mark, anchor: Self.string(event.data.sequence_start.anchor)))
        case YAML_MAPPING_END_EVENT, YAML_SEQUENCE_END_EVENT:
            switch stack.removeLast() {
            case .mapping(let pairs, _, let start, let anchor): return add(.mapping(pairs, start), anchor: anchor)
            case .sequence(let items, let start, let anchor): return add(.sequence(items, start), anchor: anchor)
            }
        default:
            break
        }
        return nil
    }

    /// Places a finished node in the collection that is open, or returns it as the root.
    mutating func add(_ node: YAMLNode, anchor: String?) -> YAMLNode? {
        if let anchor { anchors[anchor] = node }
        guard let open = stack.popLast() else { return node }
        switch open {
        case .mapping(var pairs, let key, let mark, let anchor):
            if let key {
                pairs.append(YAMLNode.Pair(key: key, value: node))
                stack.append(.mapping(pairs, pendingKey: nil, mark, anchor: anchor))
            } else {
                stack.append(.mapping(pairs, pendingKey: node, mark, anchor: anchor))
            }
        case .sequence(var items, let mark, let anchor):
            items.append(node)
            stack.append(.sequence(items, mark, anchor: anchor))
        }
        return nil
    }

    static func string(_ pointer: UnsafeMutablePointer<yaml_char_t>?) -> String? {
        pointer.map { String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self)) }
    }
}
