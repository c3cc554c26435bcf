import CLibXML2
public import HostdevCore

/// Reading and editing a domain's `<hostdev>` entries. Edits go through
/// libxml2 on the document libvirt gave, so everything else in it —
/// including hand-written hostdevs, comments and unknown elements — is
/// written back exactly as it was.
public enum DomainXML {
    /// The `<hostdev mode='subsystem'>` entries of a domain document, and
    /// hostdevd's own `<interface type='hostdev'>`s (SR-IOV VFs; others'
    /// interfaces are VM uses, see `uses`).
    public static func hostdevs(_ xml: String, source: String) throws -> [HostdevEntry] {
        let devices = try XMLElement.parse(xml, source: source).child("devices")
        let interfaces = (devices?.children("interface") ?? []).compactMap(interfaceEntry).filter(\.isOurs)
        return (devices?.children("hostdev") ?? []).compactMap(entry) + interfaces
    }

    /// An `<interface type='hostdev'>` with a PCI source, as an entry.
    static func interfaceEntry(_ element: XMLElement) -> HostdevEntry? {
        guard element.attributes["type"] == "hostdev",
            let address = element.child("source")?.child("address").flatMap(NodeDeviceInventory.address)
        else { return nil }
        let mac = element.child("mac")?.attributes["address"].flatMap { MACAddress($0.lowercased()) }
        let vlan = element.child("vlan")?.child("tag")?.attributes["id"].flatMap(NodeDeviceInventory.integer)
        return HostdevEntry(
            source: .pci(address), alias: element.child("alias")?.attributes["name"], managed: element.attributes["managed"] == "yes",
            interface: HostdevEntry.Interface(mac: mac, vlan: vlan))
    }

    /// Every element of a domain document that uses a host device:
    /// `<hostdev>` of type pci, usb, scsi, scsi_host (vhost) and mdev;
    /// `<interface type='hostdev'>` and `type='direct'` (macvtap); `<disk
    /// type='block'>`. hostdevd's own `<hostdev>`s (its alias) are left out.
    public static func uses(_ xml: String, source: String) throws -> [VMUse] {
        let devices = try XMLElement.parse(xml, source: source).child("devices")?.children ?? []
        return devices.compactMap(use)
    }

    static func use(_ element: XMLElement) -> VMUse? {
        let type = element.attributes["type"] ?? ""
        let shown = "<\(element.name) type='\(type)'>"
        let src = element.child("source")
        switch element.name {
        case "hostdev":
            if let entry = entry(element) {
                guard !entry.isOurs else { return nil }
                switch entry.source {
                case .pci(let address): return VMUse(element: shown, target: .pci(address))
                case .usbID, .usbAddress: return VMUse(element: shown, target: .usb(entry.source))
                case .mdev(let uuid): return VMUse(element: shown, target: .mdev(uuid))
                case .scsi(let address): return VMUse(element: shown, target: .scsiHost(address.adapter))
                }
            }
            switch type {
            case "scsi":
                // An iSCSI source or an unusual adapter name: the adapter alone.
                guard let adapter = src?.child("adapter")?.attributes["name"] else { return nil }
                return VMUse(element: shown, target: .scsiHost(adapter))
            case "scsi_host":
                guard let wwpn = src?.attributes["wwpn"] else { return nil }
                return VMUse(element: shown, target: .vhostSCSI(wwpn))
            default: return nil
            }
        case "interface":
            switch type {
            case "hostdev":
                if let entry = interfaceEntry(element), entry.isOurs { return nil }
                guard let address = src?.child("address").flatMap(NodeDeviceInventory.address) else { return nil }
                return VMUse(element: shown, target: .pci(address))
            case "direct":
                guard let dev = src?.attributes["dev"] else { return nil }
                return VMUse(element: shown, target: .netdev(dev))
            default: return nil
            }
        case "disk":
            guard type == "block", let dev = src?.attributes["dev"] else { return nil }
            return VMUse(element: shown, target: .block(dev))
        default: return nil
        }
    }

    static func entry(_ hostdev: XMLElement) -> HostdevEntry? {
        guard hostdev.attributes["mode"] ?? "subsystem" == "subsystem", let src = hostdev.child("source") else { return nil }
        let alias = hostdev.child("alias")?.attributes["name"]
        let managed = hostdev.attributes["managed"] == "yes"
        switch hostdev.attributes["type"] {
        case "pci":
            guard let address = src.child("address").flatMap(NodeDeviceInventory.address) else { return nil }
            return HostdevEntry(source: .pci(address), alias: alias, managed: managed)
        case "usb":
            if let vendor = src.child("vendor")?.attributes["id"].flatMap({ UInt16(hexText: $0) }),
                let product = src.child("product")?.attributes["id"].flatMap({ UInt16(hexText: $0) })
            {
                return HostdevEntry(source: .usbID(vendor: vendor, product: product), alias: alias, managed: managed)
            }
            if let address = src.child("address"), let bus = address.attributes["bus"].flatMap(NodeDeviceInventory.integer),
                let device = address.attributes["device"].flatMap(NodeDeviceInventory.integer)
            {
                return HostdevEntry(source: .usbAddress(bus: bus, device: device), alias: alias, managed: managed)
            }
            return nil
        case "scsi":
            guard src.attributes["protocol"] == nil,
                let adapter = src.child("adapter")?.attributes["name"], adapter.hasPrefix("scsi_host"),
                let host = Int(adapter.dropFirst("scsi_host".count)), let address = src.child("address"),
                let bus = address.attributes["bus"].flatMap(NodeDeviceInventory.integer),
                let target = address.attributes["target"].flatMap(NodeDeviceInventory.integer),
                let unit = address.attributes["unit"].flatMap(NodeDeviceInventory.integer)
            else { return nil }
            return HostdevEntry(source: .scsi(SCSIAddress(host: host, bus: bus, target: target, unit: unit)), alias: alias, managed: managed)
        case "mdev":
            guard let uuid = src.child("address")?.attributes["uuid"] else { return nil }
            return HostdevEntry(source: .mdev(MdevSpec.normalizedUUID(uuid) ?? uuid), alias: alias, managed: managed)
        default:
            return nil
        }
    }

    /// The `<hostdev>` element hostdevd writes: `managed='no'` (it binds the
    /// driver itself) and its user alias, so it can tell its own entries
    /// apart. A mediated device's has no `managed` (hostdevd creates and
    /// removes the device itself) and `model='vfio-pci'`.
    public static func element(_ entry: HostdevEntry) -> String {
        let source: String
        let type: String
        let alias = entry.alias.map { "<alias name='\($0)'/>" } ?? ""
        if let interface = entry.interface, case .pci(let a) = entry.source {
            // An SR-IOV VF as a NIC: libvirt sets no MAC or VLAN itself
            // (managed='no'); hostdevd set them through the PF already.
            let mac = interface.mac.map { "<mac address='\($0)'/>" } ?? ""
            let vlan = interface.vlan.map { "<vlan><tag id='\($0)'/></vlan>" } ?? ""
            return "<interface type='hostdev' managed='\(entry.managed ? "yes" : "no")'><source>\(pciAddressElement(a, type: true))</source>"
                + "\(mac)\(vlan)\(alias)</interface>"
        }
        switch entry.source {
        case .mdev(let uuid):
            return "<hostdev mode='subsystem' type='mdev' model='vfio-pci'><source><address uuid='\(uuid)'/></source>\(alias)</hostdev>"
        case .scsi(let a):
            // No `managed`: nothing moves between drivers; QEMU opens /dev/sgN.
            return "<hostdev mode='subsystem' type='scsi'><source><adapter name='\(a.adapter)'/>"
                + "<address bus='\(a.bus)' target='\(a.target)' unit='\(a.unit)'/></source>\(alias)</hostdev>"
        case .pci(let a):
            type = "pci"
            source = pciAddressElement(a, type: false)
        case .usbID(let vendor, let product):
            type = "usb"
            source = "<vendor id='0x\(hex(vendor, 4))'/><product id='0x\(hex(product, 4))'/>"
        case .usbAddress(let bus, let device):
            type = "usb"
            source = "<address bus='\(bus)' device='\(device)'/>"
        }
        return "<hostdev mode='subsystem' type='\(type)' managed='\(entry.managed ? "yes" : "no")'><source>\(source)</source>\(alias)</hostdev>"
    }

    /// `<address domain='0x0000' bus='0x01' slot='0x00' function='0x0'/>`
    /// (with `type='pci'`, as `<interface>` wants it).
    static func pciAddressElement(_ a: PCIAddress, type: Bool) -> String {
        "<address \(type ? "type='pci' " : "")domain='0x\(hex(a.domain, 4))' bus='0x\(hex(a.bus, 2))' slot='0x\(hex(a.slot, 2))' function='0x\(a.function)'/>"
    }

    /// The domain document with `entry` added to `<devices>`.
    public static func adding(_ entry: HostdevEntry, to xml: String, source: String) throws -> String {
        try edit(xml, source: source) { document, devices in
            let fragment = try parseFragment(element(entry), source: "hostdev")
            defer { xmlFreeDoc(fragment) }
            guard let root = xmlDocGetRootElement(fragment), let copy = xmlDocCopyNode(root, document, 1) else {
                throw XMLParseError(source: source, detail: "cannot build the <hostdev> element")
            }
            xmlAddChild(devices, copy)
        }
    }

    /// The domain document without hostdevd's `<hostdev>` (or `<interface>`)
    /// for `entry`'s source (found by its user alias; hand-written entries
    /// never match).
    public static func removing(_ entry: HostdevEntry, from xml: String, source: String) throws -> String {
        try edit(xml, source: source) { _, devices in
            var child = devices.pointee.children
            while let node = child {
                child = node.pointee.next
                guard node.pointee.type == XML_ELEMENT_NODE, ["hostdev", "interface"].contains(name(node)),
                    let alias = aliasName(node), alias == entry.alias
                else { continue }
                xmlUnlinkNode(node)
                xmlFreeNode(node)
            }
        }
    }

    // MARK: libxml2 plumbing

    static func name(_ node: xmlNodePtr) -> String { String(cString: node.pointee.name) }

    static func aliasName(_ hostdev: xmlNodePtr) -> String? {
        var child = hostdev.pointee.children
        while let node = child {
            if node.pointee.type == XML_ELEMENT_NODE, name(node) == "alias", let value = xmlGetProp(node, "name") {
                defer { CLibXML2_free(value) }
                return String(cString: value)
            }
            child = node.pointee.next
        }
        return nil
    }

    static func parseFragment(_ xml: String, source: String) throws -> xmlDocPtr {
        let bytes = Array(xml.utf8)
        let options = Int32(XML_PARSE_NONET.rawValue | XML_PARSE_NOERROR.rawValue | XML_PARSE_NOWARNING.rawValue)
        let parsed = bytes.withUnsafeBufferPointer { buffer in
            buffer.baseAddress!.withMemoryRebound(to: CChar.self, capacity: buffer.count) {
                xmlReadMemory($0, Int32(buffer.count), source, "UTF-8", options)
            }
        }
        guard let parsed else { throw XMLParseError(source: source, detail: "not well-formed") }
        return parsed
    }

    static func edit(_ xml: String, source: String, _ change: (xmlDocPtr, xmlNodePtr) throws -> Void) throws -> String {
        let document = try parseFragment(xml, source: source)
        defer { xmlFreeDoc(document) }
        guard let root = xmlDocGetRootElement(document), name(root) == "domain" else {
            throw XMLParseError(source: source, detail: "not a <domain> document")
        }
        var devices: xmlNodePtr?
        var child = root.pointee.children
        while let node = child {
            if node.pointee.type == XML_ELEMENT_NODE, name(node) == "devices" { devices = node }
            child = node.pointee.next
        }
        if devices == nil { devices = xmlNewChild(root, nil, "devices", nil) }
        try change(document, devices!)
        var buffer: UnsafeMutablePointer<xmlChar>?
        var size: Int32 = 0
        xmlDocDumpMemory(document, &buffer, &size)
        guard let buffer else { throw XMLParseError(source: source, detail: "cannot serialise the edited domain") }
        defer { CLibXML2_free(buffer) }
        return String(cString: buffer)
    }
}
