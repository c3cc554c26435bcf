#if canImport(Glibc)
    import Glibc
#endif

/// A failed sysfs operation: what was tried, on which path, the errno, and
/// what an operator can do about it.
public struct SysfsError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Operation: String, Sendable {
        case read, write, readLink = "readlink", list, open
        case verify
    }

    public var operation: Operation
    public var path: String
    public var errno: Int32
    public var detail: String?

    public init(_ operation: Operation, path: String, errno: Int32, detail: String? = nil) {
        self.operation = operation
        self.path = path
        self.errno = errno
        self.detail = detail
    }

    public var description: String {
        var text = "\(operation.rawValue) \(path) failed"
        if errno != 0 { text += ": \(String(cString: strerror(errno))) (errno \(errno))" }
        if let detail { text += ": \(detail)" }
        if let hint { text += "; \(hint)" }
        return text
    }

    /// What to do next, for the errors an operator can act on.
    public var hint: String? {
        if errno == EACCES || errno == EPERM { return "run as root (sysfs driver controls are root-only)" }
        // The rest explain a kernel's answer to a write to a control file.
        guard operation == .write else { return nil }
        switch errno {
        case ENOENT: return "the device or driver is not present: check the address and that the driver module is loaded"
        case EBUSY: return "the device is busy: another driver holds it or a VM is using it"
        case ENODEV: return "the device is not bound to that driver"
        default: return nil
        }
    }
}
