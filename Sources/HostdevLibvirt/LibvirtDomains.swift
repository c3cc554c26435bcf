#if canImport(Glibc)
    import Glibc
#endif
import CLibvirt
public import HostdevCore

extension LibvirtConnection {
    /// Every domain with its state and `<hostdev>`s (config and live).
    public func domains() throws -> [DomainState] {
        var list: UnsafeMutablePointer<virDomainPtr?>?
        let count = virConnectListAllDomains(pointer, &list, 0)
        guard count >= 0, let list else { throw LibvirtError.last("listing domains on \(uri)") }
        defer { free(list) }
        var domains: [DomainState] = []
        for i in 0..<Int(count) {
            guard let domain = list[i] else { continue }
            defer { virDomainFree(domain) }
            domains.append(try state(of: domain))
        }
        return domains.sorted { $0.name < $1.name }
    }

    func state(of domain: virDomainPtr) throws -> DomainState {
        let name = String(cString: virDomainGetName(domain))
        var uuid = [CChar](repeating: 0, count: Int(VIR_UUID_STRING_BUFLEN))
        virDomainGetUUIDString(domain, &uuid)
        var rawState: Int32 = 0
        var reason: Int32 = 0
        guard virDomainGetState(domain, &rawState, &reason, 0) == 0 else { throw LibvirtError.last("reading the state of \(name)") }
        let state: DomainState.RunState
        switch UInt32(rawState) {
        case VIR_DOMAIN_RUNNING.rawValue, VIR_DOMAIN_BLOCKED.rawValue: state = .running
        case VIR_DOMAIN_PAUSED.rawValue: state = .paused
        case VIR_DOMAIN_PMSUSPENDED.rawValue: state = .suspended
        case VIR_DOMAIN_SHUTDOWN.rawValue: state = .shuttingDown
        case VIR_DOMAIN_SHUTOFF.rawValue: state = .shutoff
        case VIR_DOMAIN_CRASHED.rawValue: state = .crashed
        default: state = .other
        }
        // Whether QEMU holds the devices is libvirt's own notion of active,
        // not a reading of the state: a domain shutting down, crashed with
        // on_crash=preserve, suspended or without a state still has QEMU.
        let isActive = virDomainIsActive(domain)
        guard isActive >= 0 else { throw LibvirtError.last("asking whether \(name) is active") }
        let persistent = virDomainIsPersistent(domain) == 1
        let active = isActive == 1
        let configXML = persistent ? try xml(domain, name, inactive: true) : nil
        let liveXML = active ? try xml(domain, name, inactive: false) : nil
        let config = try configXML.map { try DomainXML.hostdevs($0, source: "domain \(name)") } ?? []
        let live = try liveXML.map { try DomainXML.hostdevs($0, source: "domain \(name)") } ?? []
        var observed = DomainState(
            name: name, uuid: String(decoding: uuid.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self), state: state, active: active, persistent: persistent, configHostdevs: config,
            liveHostdevs: live)
        if let current = liveXML ?? configXML { observed.uses = try DomainXML.uses(current, source: "domain \(name)") }
        return observed
    }

    func xml(_ domain: virDomainPtr, _ name: String, inactive: Bool) throws -> String {
        // SECURE keeps secrets in an XML hostdevd may redefine; a read-only
        // connection may not ask for them (and never redefines).
        let secure = readOnly ? 0 : VIR_DOMAIN_XML_SECURE.rawValue
        let flags = inactive ? UInt32(VIR_DOMAIN_XML_INACTIVE.rawValue | secure) : 0
        guard let text = virDomainGetXMLDesc(domain, flags) else { throw LibvirtError.last("reading the XML of \(name)") }
        defer { free(text) }
        return String(cString: text)
    }

    func lookup(_ vm: String) throws -> virDomainPtr {
        guard let domain = virDomainLookupByName(pointer, vm) else { throw LibvirtError.last("looking up VM \(vm)") }
        return domain
    }

    /// Adds hostdevd's `<hostdev>` for `entry` to the VM's persistent config
    /// (`live: false`) or to the running VM (`live: true`). Config edits fall
    /// back to redefining the domain where the driver has no attach (the
    /// test driver answers VIR_ERR_NO_SUPPORT).
    public func attach(_ entry: HostdevEntry, to vm: String, live: Bool) throws {
        try change(vm, live: live, verb: "adding \(entry) to", apply: virDomainAttachDeviceFlags, entry: entry) { xml, name in
            try DomainXML.adding(entry, to: xml, source: name)
        }
    }

    public func detach(_ entry: HostdevEntry, from vm: String, live: Bool) throws {
        try change(vm, live: live, verb: "removing \(entry) from", apply: virDomainDetachDeviceFlags, entry: entry) { xml, name in
            try DomainXML.removing(entry, from: xml, source: name)
        }
    }

    private func change(
        _ vm: String, live: Bool, verb: String,
        apply: (virDomainPtr?, UnsafePointer<CChar>?, UInt32) -> Int32, entry: HostdevEntry,
        redefine: (String, String) throws -> String
    ) throws {
        let domain = try lookup(vm)
        defer { virDomainFree(domain) }
        let flags = live ? VIR_DOMAIN_AFFECT_LIVE.rawValue : VIR_DOMAIN_AFFECT_CONFIG.rawValue
        let operation = "\(verb) \(vm)'s \(live ? "live domain" : "config")"
        if apply(domain, DomainXML.element(entry), flags) == 0 { return }
        let error = LibvirtError.last(operation)
        guard error.isNotSupported, !live else { throw error }
        let edited = try redefine(try xml(domain, vm, inactive: true), "domain \(vm)")
        guard let defined = virDomainDefineXML(pointer, edited) else { throw LibvirtError.last("\(operation) (redefining)") }
        virDomainFree(defined)
    }
}

extension LibvirtConnection {
    /// Defines (or redefines) a persistent domain from XML.
    public func define(xml: String) throws {
        guard let domain = virDomainDefineXML(pointer, xml) else { throw LibvirtError.last("defining a domain") }
        virDomainFree(domain)
    }

    /// Undefines a shut-off domain; a missing one is not an error.
    public func undefine(_ vm: String) throws {
        guard let domain = virDomainLookupByName(pointer, vm) else { return }
        defer { virDomainFree(domain) }
        guard virDomainUndefine(domain) == 0 else { throw LibvirtError.last("undefining \(vm)") }
    }

    /// The persistent definition's XML, as libvirt dumps it.
    public func configXML(_ vm: String) throws -> String {
        let domain = try lookup(vm)
        defer { virDomainFree(domain) }
        return try xml(domain, vm, inactive: true)
    }
}

extension LibvirtConnection {
    /// Starts a defined domain (`virsh start`).
    public func start(_ vm: String) throws {
        let domain = try lookup(vm)
        defer { virDomainFree(domain) }
        guard virDomainCreate(domain) == 0 else { throw LibvirtError.last("starting \(vm)") }
    }

    /// Stops a running domain at once (`virsh destroy`).
    public func destroy(_ vm: String) throws {
        let domain = try lookup(vm)
        defer { virDomainFree(domain) }
        guard virDomainDestroy(domain) == 0 else { throw LibvirtError.last("destroying \(vm)") }
    }
}

extension LibvirtConnection {
    /// One domain's state, or nil when it is not defined (any more).
    public func domain(named vm: String) throws -> DomainState? {
        guard let domain = virDomainLookupByName(pointer, vm) else {
            let error = LibvirtError.last("looking up VM \(vm)")
            if error.code == Int32(VIR_ERR_NO_DOMAIN.rawValue) { return nil }
            throw error
        }
        defer { virDomainFree(domain) }
        return try state(of: domain)
    }
}
