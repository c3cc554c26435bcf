import Foundation
import HostdevManifest
import HostdevTestSupport
import Testing

/// The JSON Schema (through manifests/validate-schema.py, as a GitOps
/// pipeline without hostdevctl would run it) and the decoder give the same
/// verdict on every manifest of the decoder's table (ManifestCases.swift,
/// shared by symbolic link with HostdevCoreTests), valid and invalid; the
/// few rules a schema cannot express are excluded row by row, with the reason.
@Suite struct ManifestSchemaAgreementTests {
    @Test func schemaAndDecoderAgreeOnEveryRow() throws {
        let dir = FileTree.makeTemporaryDirectory(prefix: "hostdev-schema")
        defer { FileTree.remove(dir) }
        var files: [(path: String, row: ManifestCase)] = []
        for (i, row) in manifestCases.enumerated() {
            let path = dir + "/case-\(i).yaml"
            try Data(row.bytes).write(to: URL(fileURLWithPath: path))
            files.append((path, row))
        }
        let result = try ChildProcess.run("/usr/bin/python3", [repositoryRoot + "/manifests/validate-schema.py"] + files.map(\.path))
        #expect(result.stderr.isEmpty, "\(result.stderr)")
        let valid = Set(result.stdout.split(separator: "\n").compactMap { line in
            line.hasSuffix(": valid") ? String(line.dropLast(": valid".count)) : nil
        })
        var compared = 0
        for (path, row) in files {
            let decoderValid = (try? ManifestDecoder.decode(bytes: row.bytes, file: path)) != nil
            #expect(decoderValid == row.isValid, "\(row.name): the decoder's verdict is not the table's")
            if let reason = row.schemaCannotExpress {
                // Excluded: the schema must pass what only the decoder can refuse.
                #expect(valid.contains(path) && !row.isValid, "\(row.name) is excluded (\(reason)) but the schema refuses it too")
                continue
            }
            compared += 1
            let lines = result.stdout.split(separator: "\n").filter { $0.hasPrefix(path + ":") }.joined(separator: "\n")
            #expect(valid.contains(path) == decoderValid, "\(row.name): schema says \(lines), decoder says \(decoderValid ? "valid" : row.errors.joined(separator: "; "))")
        }
        #expect(compared >= 45)
        #expect(result.status == (files.allSatisfy { valid.contains($0.path) } ? 0 : 1))
    }
}
