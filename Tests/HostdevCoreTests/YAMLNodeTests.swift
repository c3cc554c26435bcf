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
        #expect(binding[0].value == .scalar(YAMLScalar("win 11", style: .doubleQuoted), mark(3, 9)))
        #expect(binding[1].value == .sequence([.scalar(YAMLScalar("0000:01:00.0", style: .singleQuoted), mark(4, 15))], mark(4, 14)))
    }

    @Test(arguments: [
        ("", nil),
        ("# only a comment\n", nil),
        ("{\"version\": 1}", "mapping"),
        ("a: &x [1, 2]\nb: *x\n", "alias"),
        ("--- 1\n...\n", "first"),
    ] as [(String, String?)])
    func documents(text: String, kind: String?) throws {
        let node = try YAMLNode.compose(text)
        switch kind {
        case nil: #expect(node == nil)
        case "mapping":
            #expect(node == .mapping([.init(key: .scalar(YAMLScalar("version", style: .doubleQuoted), mark(1, 2)), value: .scalar("1", mark(1, 13)))], mark(1, 1)))
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
        ("--- 1\n--- 2\n", 2, 1, "a second document starts here"),
        ("a: 1\n...\n---\nb: 2\n", 3, 1, "a second document starts here"),
        ("a: 1\n...\nb: 2\n", 3, 1, "did not find expected <document start>"),
        ("a: !!binary aGk=\n", 1, 4, "tag '!!binary' is not allowed on a scalar"),
        ("a: !<tag:example.com,2000:x> 1\n", 1, 4, "tag 'tag:example.com,2000:x' is not allowed on a scalar"),
        ("a: !!str [1]\n", 1, 4, "tag '!!str' is not allowed on a list"),
        ("a: ! x\n", 1, 4, "tag '!' is not allowed on a scalar"),
    ])
    func syntaxErrorsSayWhatAndWhere(text: String, line: Int, column: Int, problem: String) {
        let error = #expect(throws: YAMLSyntaxError.self) { try YAMLNode.compose(text) }
        #expect(error?.problem == problem)
        #expect(error?.mark == mark(line, column))
    }
}

/// Scalars get their YAML 1.2 core-schema type from their form: the
/// decoder and the JSON Schema see the same value.
@Suite struct YAMLScalarTests {
    @Test(arguments: [
        ("", YAMLScalar.Kind.null), ("~", .null), ("null", .null), ("NULL", .null), ("Null", .null),
        ("true", .bool), ("False", .bool), ("TRUE", .bool), ("yes", .string), ("on", .string), ("tRUE", .string),
        ("1", .int), ("-12", .int), ("+3", .int), ("007", .int), ("0x1F", .int), ("0o17", .int), ("0o8", .string),
        ("0x", .string), ("-0x1", .string), ("99999999999999999999999", .int),
        ("1.0", .float), (".5", .float), ("1e3", .float), ("-1.5E-3", .float), (".inf", .float), ("-.INF", .float), (".NaN", .float),
        ("1.", .float), (".", .string), ("1e", .string), ("e3", .string),
        ("0000:01:00.0", .string), ("01:00.0", .string), ("10de", .string), ("8086", .int), ("win11", .string),
    ])
    func plainScalarsResolveByTheCoreSchema(text: String, kind: YAMLScalar.Kind) {
        #expect(YAMLScalar.resolve(plain: text) == kind)
        #expect(YAMLScalar(text).kind == kind)
        #expect(YAMLScalar(text, style: .doubleQuoted).kind == .string)
    }

    @Test(arguments: [
        ("a: !!str 1\n", YAMLScalar.Kind.string), ("a: !!int \"1\"\n", .int), ("a: !!bool \"true\"\n", .bool),
        ("a: !!null \"\"\n", .null), ("a: !!float 1\n", .float), ("a: 'x'\n", .string), ("a: |\n  x\n", .string),
    ])
    func tagsAndQuotesOverrideThePlainForm(text: String, kind: YAMLScalar.Kind) throws {
        guard case .mapping(let pairs, _) = try YAMLNode.compose(text) else { Issue.record("not a mapping"); return }
        #expect(pairs.first?.value.scalar?.kind == kind)
    }

    @Test(arguments: [
        ("0", 0), ("-12", -12), ("+3", 3), ("007", 7), ("0x1F", 31), ("0o17", 15), ("9223372036854775807", Int.max),
    ])
    func coreIntegers(text: String, value: Int) {
        #expect(YAMLScalar.coreInteger(text) == value)
    }

    @Test(arguments: ["9223372036854775808", "0x10000000000000000", "1.0", "x", "", "0o8"])
    func notAnIntegerOrTooLarge(text: String) {
        #expect(YAMLScalar.coreInteger(text) == nil)
    }
}

/// UTF-8 is checked before libyaml sees the text: the first bad byte with
/// its line and column (in characters).
@Suite struct UTF8CheckTests {
    @Test(arguments: [
        ([0x61, 0xff], 0xff, 1, 2),
        ([0x61, 0x0a, 0xc3, 0xa4, 0xc0, 0x80], 0xc0, 2, 2),  // ä, then an overlong NUL
        ([0xed, 0xa0, 0x80], 0xed, 1, 1),  // a surrogate
        ([0xf4, 0x90, 0x80, 0x80], 0xf4, 1, 1),  // above U+10FFFF
        ([0x0a, 0x0a, 0x20, 0xe2, 0x82], 0xe2, 3, 2),  // cut short at the end
        ([0xfe, 0xff, 0x00, 0x61], 0xfe, 1, 1),  // a UTF-16 byte order mark
    ] as [([UInt8], UInt8, Int, Int)])
    func theFirstBadByteAndWhereItIs(bytes: [UInt8], byte: UInt8, line: Int, column: Int) {
        let bad = YAMLNode.firstInvalidUTF8(bytes)
        #expect(bad?.byte == byte)
        #expect(bad?.mark == YAMLMark(line: line, column: column))
    }

    @Test func validTextPasses() {
        #expect(YAMLNode.firstInvalidUTF8(Array("vm: \"Gäste — 🎮\"\n".utf8)) == nil)
    }
}
