import HostdevManifest
import Testing

/// The manifest's YAML layer: libyaml's events composed into nodes with
/// 1-based positions.
@Suite struct YAMLNodeTests {
    func mark(_ line: Int, _ column: Int) -> YAMLMark { YAMLMark(line: line, column: column) }

    @Test func composesMappingsSequencesAndScalarsWithPositions() throws {
        let node = try #require(try YAMLNode.compose("version: 1\nbindings:\n  - vm: \"win 11\"\n    devices: ['0000:01:00.0']\n"))
        guard case .mapping(let pairs, let rootMark) = node else { Issue.record("root is not a mapping"); return }
        #expect(rootMark == mark(1, 1))
        #expect(pairs.map { $0.key.scalarText } == ["version", "bindings"])
        #expect(pairs[0].value == .scalar("1", mark(1, 10)))
        guard case .sequence(let items, let listMark) = pairs[1].value, case .mapping(let binding, _) = items.first else {
            Issue.record("bindings is not a list of mappings"); return
        }
        #expect(listMark == mark(3, 3))
        #expect(binding[0].value == .scalar("win 11", mark(3, 9)))
        #expect(binding[1].value == .sequence([.scalar("0000:01:00.0", mark(4, 15))], mark(4, 14)))
    }

    @Test(arguments: [
        ("", nil),
        ("# only a comment\n", nil),
        ("{\"version\": 1}", "mapping"),
        ("a: &x [1, 2]\nb: *x\n", "alias"),
        ("--- 1\n--- 2\n", "first"),
    ] as [(String, String?)])
    func documents(text: String, kind: String?) throws {
        let node = try YAMLNode.compose(text)
        switch kind {
        case nil: #expect(node == nil)
        case "mapping": #expect(node == .mapping([.init(key: .scalar("version", mark(1, 2)), value: .scalar("1", mark(1, 13)))], mark(1, 1)))
        case "alias":
            guard case .mapping(let pairs, _) = node else { Issue.record("not a mapping"); return }
            #expect(pairs[1].value == pairs[0].value)
        default: #expect(node?.scalarText == "1")
        }
    }

    @Test(arguments: [
        ("a: [1, 2\n", 2, 1, "did not find expected ',' or ']'"),
        ("a: b: c\n", 1, 5, "mapping values are not allowed in this context"),
        ("a: *missing\n", 1, 4, "found undefined alias 'missing'"),
    ])
    func syntaxErrorsSayWhatAndWhere(text: String, line: Int, column: Int, problem: String) {
        let error = #expect(throws: YAMLSyntaxError.self) { try YAMLNode.compose(text) }
        #expect(error?.problem == problem)
        #expect(error?.mark == mark(line, column))
    }
}
