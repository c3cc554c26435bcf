import Foundation
import HostdevTestSupport
import Testing

/// The repository's root, for shipped example files.
let repositoryRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.path
}()

let exampleHostXML = repositoryRoot + "/manifests/examples/workstation.xml"
let exampleHostURI = "test://" + exampleHostXML

/// Runs the built `hostdevctl`.
func hostdevctl(_ arguments: String..., environment: [String: String]? = nil) throws -> (status: Int32, stdout: String, stderr: String) {
    try ChildProcess.run(BuiltProducts.hostdevctl, arguments, environment: environment)
}

/// Parses `hostdevctl devices --format json` output.
func parseDevicesJSON(_ text: String) throws -> [String: [String: Any]] {
    let object = try JSONSerialization.jsonObject(with: Data(text.utf8))
    return try #require(object as? [String: [String: Any]])
}

func params(_ json: [String: [String: Any]], _ name: String) -> [String: Any]? {
    json[name]?["params"] as? [String: Any]
}
