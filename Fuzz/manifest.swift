// libFuzzer harness: the manifest decoder, bytes in (issue 10). Any input
// must end in a Manifest or ManifestErrors: never a crash, a leak, more
// than a second, or more than 512 MB (.ci/fuzz enforces the last three).
import HostdevCore
import HostdevManifest

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzManifest(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    do {
        let manifest = try ManifestDecoder.decode(bytes: bytes, file: "fuzz.yaml")
        precondition(manifest.fingerprint == Manifest.fingerprint(of: bytes), "the fingerprint is of the bytes read")
    } catch {
        precondition(!error.diagnostics.isEmpty, "a refusal says why")
    }
    return 0
}
