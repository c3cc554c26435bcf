// libFuzzer harness: the node-device XML reader (--source libvirt).
import HostdevLibvirt

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzNodeDeviceXML(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: data == nil ? 0 : size), as: UTF8.self)
    // Several devices per input, split at NUL, as one listing.
    let xmls = text.split(separator: "\0", omittingEmptySubsequences: false).map(String.init)
    _ = try? NodeDeviceInventory().inventory(fromXML: xmls, source: "fuzz")
    return 0
}
