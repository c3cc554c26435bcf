// libFuzzer harness: the domain XML reader (the XML the hook reads on
// stdin, and what libvirt returns), through libxml2: parse, list the
// hostdevs, and add/remove one.
import HostdevCore
import HostdevLibvirt

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzDomainXML(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: data == nil ? 0 : size), as: UTF8.self)
    _ = try? XMLElement.parse(text, source: "fuzz").text(of: "name")
    if let entries = try? DomainXML.hostdevs(text, source: "fuzz") {
        let entry = entries.first ?? HostdevEntry.ours(.pci(PCIAddress(bus: 1, slot: 0, function: 0)))
        _ = try? DomainXML.adding(entry, to: text, source: "fuzz")
        _ = try? DomainXML.removing(entry, from: text, source: "fuzz")
    }
    return 0
}
