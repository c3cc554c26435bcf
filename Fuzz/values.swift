// libFuzzer harness: the uevent and sysfs value parsers: PCI addresses,
// node-device names, hex IDs, uevent KEY=VALUE files, the device forms
// `hostdevctl describe` takes.
import HostdevCore
import HostdevSysfs

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzValues(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: data == nil ? 0 : size), as: UTF8.self)
    if let address = PCIAddress(text) {
        // What parses prints back to something that parses to the same.
        precondition(PCIAddress(address.description) == address, "\(address) does not round-trip")
        precondition(PCIAddress(nodeDeviceName: address.nodeDeviceName) == address, "\(address.nodeDeviceName) does not round-trip")
    }
    _ = PCIAddress(nodeDeviceName: text)
    if let id = UInt16(hexText: text) { precondition(UInt16(hexText: hex(id, 4)) == id) }
    _ = UInt32(hexText: text)
    _ = SysfsEnumerator.parseUevent(text)
    if let query = DeviceQuery.parse(text) {
        // Every form but a /dev path prints as the identifier output uses, which parses back to the same device.
        if case .scsiPath = query {} else { precondition(DeviceQuery.parse(query.description) == query, "\(query) does not round-trip") }
        // The ledger's `released` keys: a device's identifier reads back as the same device.
        if let source = query.source { precondition(DeviceQuery.parse(DeviceIdentifier.source(source))?.source == source, "\(source) does not round-trip as a ledger key") }
    }
    return 0
}
