#if canImport(Glibc)
    import Glibc
#endif
import Synchronization

/// Vendor and product names from the `pci.ids` / `usb.ids` files (hwdata),
/// loaded only for the vendors an inventory needs: a full parse of the 1.3 MB
/// `pci.ids` would cost more than reading the whole of a large host.
public struct DeviceNameDatabase: Sendable {
    public struct Names: Sendable {
        var vendors: [UInt16: String] = [:]
        var products: [UInt32: String] = [:]

        public func vendor(_ vendor: UInt16) -> String? { vendors[vendor] }
        public func product(_ vendor: UInt16, _ product: UInt16) -> String? {
            products[UInt32(vendor) << 16 | UInt32(product)]
        }
    }

    /// Directories searched for `pci.ids` and `usb.ids`, first found wins.
    public var searchPaths: [String]

    public static let defaultSearchPaths = ["/usr/share/hwdata", "/usr/share/misc", "/usr/share"]

    public init(searchPaths: [String] = DeviceNameDatabase.defaultSearchPaths) {
        self.searchPaths = searchPaths
    }

    /// Names for `vendors` from `file` (`pci.ids` or `usb.ids`); empty when
    /// no file is found — names are a nicety, never an error. Vendors looked
    /// up before are answered from memory: a hot-added device must not cost
    /// a parse of the whole file.
    public func names(in file: String, vendors: Set<UInt16>) -> Names {
        guard !vendors.isEmpty else { return Names() }
        let key = searchPaths.joined(separator: ":") + "/" + file
        let missing = Self.memo.withLock { vendors.subtracting($0[key]?.looked ?? []) }
        if !missing.isEmpty {
            var found = Names()
            for directory in searchPaths {
                if let bytes = Self.load(directory + "/" + file) {
                    found = Self.parse(bytes, vendors: missing)
                    break
                }
            }
            Self.memo.withLock { memo in
                memo[key, default: Memo()].looked.formUnion(missing)
                memo[key]!.names.vendors.merge(found.vendors) { old, _ in old }
                memo[key]!.names.products.merge(found.products) { old, _ in old }
            }
        }
        return Self.memo.withLock { $0[key]!.names }
    }

    struct Memo {
        var looked: Set<UInt16> = []
        var names = Names()
    }

    private static let memo = Mutex<[String: Memo]>([:])

    static func load(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_size > 0 else { return nil }
        var bytes = [UInt8](repeating: 0, count: Int(st.st_size))
        var total = 0
        while total < bytes.count {
            let n = bytes.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + total, $0.count - total) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            total += n
        }
        return Array(bytes[0..<total])
    }

    /// The ids format: `vvvv  Vendor`, then `\tdddd  Device` lines, then
    /// `\t\t` subsystem lines; a line starting with `C ` begins the class list.
    static func parse(_ bytes: [UInt8], vendors: Set<UInt16>) -> Names {
        var names = Names()
        var current: UInt16?
        var lineStart = 0
        let count = bytes.count
        while lineStart < count {
            var lineEnd = lineStart
            while lineEnd < count && bytes[lineEnd] != 0x0a { lineEnd += 1 }
            defer { lineStart = lineEnd + 1 }
            guard lineEnd > lineStart, bytes[lineStart] != 0x23 /* # */ else { continue }
            if bytes[lineStart] == 0x09 /* \t */ {
                guard let vendor = current, lineEnd - lineStart > 6, bytes[lineStart + 1] != 0x09,
                    let product = hex16(bytes, lineStart + 1)
                else { continue }
                names.products[UInt32(vendor) << 16 | UInt32(product)] = text(bytes, lineStart + 5, lineEnd)
            } else {
                if bytes[lineStart] == 0x43 /* C */ && bytes[lineStart + 1] == 0x20 { break }
                current = nil
                guard let vendor = hex16(bytes, lineStart), vendors.contains(vendor) else { continue }
                current = vendor
                names.vendors[vendor] = text(bytes, lineStart + 4, lineEnd)
            }
        }
        return names
    }

    static func hex16(_ bytes: [UInt8], _ at: Int) -> UInt16? {
        guard at + 4 <= bytes.count else { return nil }
        var value: UInt16 = 0
        for i in at..<at + 4 {
            let c = bytes[i]
            let digit: UInt8
            switch c {
            case 0x30...0x39: digit = c - 0x30
            case 0x61...0x66: digit = c - 0x61 + 10
            case 0x41...0x46: digit = c - 0x41 + 10
            default: return nil
            }
            value = value << 4 | UInt16(digit)
        }
        return value
    }

    static func text(_ bytes: [UInt8], _ from: Int, _ to: Int) -> String {
        var start = from
        while start < to && (bytes[start] == 0x20 || bytes[start] == 0x09) { start += 1 }
        return String(decoding: bytes[start..<to], as: UTF8.self)
    }
}
