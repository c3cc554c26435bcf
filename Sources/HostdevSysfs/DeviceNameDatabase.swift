#if canImport(Glibc)
    import Glibc
#endif
import HostdevCore
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
                if let names = Self.parseFile(directory + "/" + file, vendors: missing) {
                    found = names
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

    /// Reads `path` in 64 KiB chunks, a line at a time: the 1.3 MB
    /// `pci.ids` is never held whole. Nil when the file cannot be opened.
    static func parseFile(_ path: String, vendors: Set<UInt16>) -> Names? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var parser = Parser(vendors: vendors)
        var pending: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while !parser.finished {
            let n = read(fd, &chunk, chunk.count)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            pending += chunk[0..<n]
            let consumed = parser.lines(pending, final: false)
            pending.removeFirst(consumed)
        }
        if !parser.finished { _ = parser.lines(pending, final: true) }
        return parser.names
    }

    /// Names for `vendors` from a whole ids file's bytes.
    static func parse(_ bytes: [UInt8], vendors: Set<UInt16>) -> Names {
        var parser = Parser(vendors: vendors)
        _ = parser.lines(bytes, final: true)
        return parser.names
    }

    /// The ids format: `vvvv  Vendor`, then `\tdddd  Device` lines, then
    /// `\t\t` subsystem lines; a line starting with `C ` begins the class list.
    struct Parser {
        let vendors: Set<UInt16>
        var names = Names()
        var current: UInt16?
        /// The class list was reached: nothing more to read.
        var finished = false

        init(vendors: Set<UInt16>) { self.vendors = vendors }

        /// Parses the complete lines of `bytes` (and, when `final`, a last
        /// line without a newline); returns how many bytes it consumed.
        mutating func lines(_ bytes: [UInt8], final: Bool) -> Int {
            var lineStart = 0
            let count = bytes.count
            while lineStart < count && !finished {
                var lineEnd = lineStart
                while lineEnd < count && bytes[lineEnd] != 0x0a { lineEnd += 1 }
                if lineEnd == count && !final { return lineStart }
                line(bytes, lineStart, lineEnd)
                lineStart = lineEnd + 1
            }
            return min(lineStart, count)
        }

        mutating func line(_ bytes: [UInt8], _ lineStart: Int, _ lineEnd: Int) {
            guard lineEnd > lineStart, bytes[lineStart] != 0x23 /* # */ else { return }
            if bytes[lineStart] == 0x09 /* \t */ {
                guard let vendor = current, lineEnd - lineStart > 6, bytes[lineStart + 1] != 0x09,
                    let product = DeviceNameDatabase.hex16(bytes, lineStart + 1)
                else { return }
                names.products[UInt32(vendor) << 16 | UInt32(product)] = DeviceNameDatabase.text(bytes, lineStart + 5, lineEnd)
            } else {
                if bytes[lineStart] == 0x43 /* C */ && lineEnd - lineStart > 1 && bytes[lineStart + 1] == 0x20 {
                    finished = true
                    return
                }
                current = nil
                guard let vendor = DeviceNameDatabase.hex16(bytes, lineStart), vendors.contains(vendor) else { return }
                current = vendor
                names.vendors[vendor] = DeviceNameDatabase.text(bytes, lineStart + 4, lineEnd)
            }
        }
    }

    static func hex16(_ bytes: [UInt8], _ at: Int) -> UInt16? {
        at + 4 <= bytes.count ? UInt16(hexDigits: bytes[at..<at + 4]) : nil
    }

    static func text(_ bytes: [UInt8], _ from: Int, _ to: Int) -> String {
        var start = from
        while start < to && (bytes[start] == 0x20 || bytes[start] == 0x09) { start += 1 }
        return String(decoding: bytes[start..<to], as: UTF8.self)
    }
}
