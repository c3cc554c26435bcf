#if canImport(Glibc)
    import Glibc
#endif
import CLibvirt

/// A libvirt failure with libvirt's own message and what to do about it.
public struct LibvirtError: Error, Sendable, CustomStringConvertible {
    /// `virErrorNumber` (`VIR_ERR_NO_SUPPORT` = 3, …).
    public var code: Int32
    public var message: String
    /// What hostdevd was doing: "connecting to qemu:///system".
    public var operation: String

    public var description: String {
        var text = "libvirt: \(operation) failed: \(message)"
        if let hint { text += "; \(hint)" }
        return text
    }

    public var isNotSupported: Bool { code == Int32(VIR_ERR_NO_SUPPORT.rawValue) }

    public var hint: String? {
        switch code {
        case Int32(VIR_ERR_NO_CONNECT.rawValue), Int32(VIR_ERR_SYSTEM_ERROR.rawValue):
            return "is libvirtd running and the URI right (qemu:///system, test:///default, test:///ABSOLUTE/PATH.xml)?"
        case Int32(VIR_ERR_AUTH_FAILED.rawValue), Int32(VIR_ERR_AUTH_CANCELLED.rawValue):
            return "run as root or as a member of the libvirt group"
        case Int32(VIR_ERR_NO_DOMAIN.rawValue): return "check the VM name with 'virsh list --all'"
        default: return nil
        }
    }

    /// The error libvirt recorded for this thread.
    static func last(_ operation: String) -> LibvirtError {
        guard let error = virGetLastError() else {
            return LibvirtError(code: -1, message: "unknown error", operation: operation)
        }
        // libvirt's XML errors add a context line and a caret line; the first
        // line says what is wrong, and one line is what an operator reads.
        let message = error.pointee.message.map { String(cString: $0) }?
            .split(separator: "\n").first.map(String.init) ?? "unknown error"
        return LibvirtError(code: error.pointee.code, message: message, operation: operation)
    }
}

/// One open libvirt connection. Closing happens on deinit.
public final class LibvirtConnection: @unchecked Sendable {
    // @unchecked: libvirt connections are thread-safe (libvirt documents
    // virConnectPtr as usable from several threads); this class holds no
    // mutable Swift state.

    let pointer: virConnectPtr
    public let uri: String
    public let readOnly: Bool

    /// libvirt prints every error to stderr by default; hostdevd reports
    /// errors itself, with context, so that printing is switched off once.
    private static let silenced: Void = {
        virSetErrorFunc(nil) { _, _ in }
        // A write to the socket of a libvirtd that died raises SIGPIPE, which
        // would kill the whole process; libvirt expects its users to ignore
        // it and reports the broken connection as an error instead.
        signal(SIGPIPE, SIG_IGN)
    }()

    public init(uri: String, readOnly: Bool = false) throws {
        _ = Self.silenced
        let opened = readOnly ? virConnectOpenReadOnly(uri) : virConnectOpen(uri)
        guard let opened else { throw LibvirtError.last("connecting to \(uri)") }
        self.pointer = opened
        self.uri = uri
        self.readOnly = readOnly
    }

    deinit { virConnectClose(pointer) }

    /// Every node device's XML description (flags 0: the test driver rejects
    /// the ACTIVE/INACTIVE filter flags that virsh adds).
    public func nodeDeviceXMLs() throws -> [String] {
        var devices: UnsafeMutablePointer<virNodeDevicePtr?>?
        let count = virConnectListAllNodeDevices(pointer, &devices, 0)
        guard count >= 0, let devices else { throw LibvirtError.last("listing node devices on \(uri)") }
        defer { free(devices) }
        var xmls: [String] = []
        for i in 0..<Int(count) {
            guard let device = devices[i] else { continue }
            defer { virNodeDeviceFree(device) }
            guard let xml = virNodeDeviceGetXMLDesc(device, 0) else {
                throw LibvirtError.last("reading node device XML on \(uri)")
            }
            defer { free(xml) }
            xmls.append(String(cString: xml))
        }
        return xmls
    }
}

extension LibvirtConnection {
    /// Creates a transient node device (`virsh nodedev-create`; on the test
    /// driver, a vHBA under `scsi_host1`); returns its name.
    @discardableResult
    public func createNodeDevice(xml: String) throws -> String {
        guard let device = virNodeDeviceCreateXML(pointer, xml, 0) else { throw LibvirtError.last("creating a node device on \(uri)") }
        defer { virNodeDeviceFree(device) }
        return virNodeDeviceGetName(device).map { String(cString: $0) } ?? ""
    }

    /// Destroys a node device made by `createNodeDevice`.
    public func destroyNodeDevice(_ name: String) throws {
        guard let device = virNodeDeviceLookupByName(pointer, name) else { throw LibvirtError.last("looking up node device \(name)") }
        defer { virNodeDeviceFree(device) }
        guard virNodeDeviceDestroy(device) == 0 else { throw LibvirtError.last("destroying node device \(name)") }
    }
}
