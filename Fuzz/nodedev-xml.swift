// libFuzzer harness: the node-device XML reader (--source libvirt) and
// the VDSM device list rendered from what it read.
import HostdevCore
import HostdevLibvirt

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzNodeDeviceXML(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: data == nil ? 0 : size), as: UTF8.self)
    // Several devices per input, split at NUL, as one listing.
    let xmls = text.split(separator: "\0", omittingEmptySubsequences: false).map(String.init)
    if let inventory = try? NodeDeviceInventory().inventory(fromXML: xmls, source: "fuzz") {
        _ = VDSMDeviceList(inventory: inventory).render()
    }
    return 0
}
