import CLibXML2
import HostdevCore

/// An XML element read through libxml2 into plain Swift values, so that no
/// libxml2 pointer outlives the parse.
public struct XMLElement: Sendable, Equatable {
    public var name: String
    public var attributes: [String: String]
    public var children: [XMLElement]
    /// Concatenated text content directly inside this element, trimmed.
    public var text: String

    public func child(_ name: String) -> XMLElement? { children.first { $0.name == name } }
    public func children(_ name: String) -> [XMLElement] { children.filter { $0.name == name } }
    /// Text of the first child named `name`, nil when absent or empty.
    public func text(of name: String) -> String? { child(name).map(\.text).flatMap { $0.isEmpty ? nil : $0 } }

    /// Parses a document; the error says where the XML is broken.
    public static func parse(_ xml: String, source: String) throws -> XMLElement {
        let options = Int32(XML_PARSE_NONET.rawValue | XML_PARSE_NOBLANKS.rawValue | XML_PARSE_NOERROR.rawValue
            | XML_PARSE_NOWARNING.rawValue)
        let bytes = Array(xml.utf8)
        let parsed = bytes.withUnsafeBufferPointer { buffer in
            buffer.baseAddress!.withMemoryRebound(to: CChar.self, capacity: max(buffer.count, 1)) {
                xmlReadMemory($0, Int32(buffer.count), source, "UTF-8", options)
            }
        }
        guard let document = parsed else {
            let detail = xmlGetLastError().map { error in
                "line \(error.pointee.line): \(String(cString: error.pointee.message).trimmingEnd { $0 == "\n" })"
            } ?? "not well-formed"
            throw XMLParseError(source: source, detail: detail)
        }
        defer { xmlFreeDoc(document) }
        guard let root = xmlDocGetRootElement(document) else {
            throw XMLParseError(source: source, detail: "empty document")
        }
        return element(root)
    }

    static func element(_ node: xmlNodePtr) -> XMLElement {
        var attributes: [String: String] = [:]
        var attribute = node.pointee.properties
        while let current = attribute {
            let name = String(cString: current.pointee.name)
            if let value = xmlGetProp(node, current.pointee.name) {
                attributes[name] = String(cString: value)
                CLibXML2_free(value)
            }
            attribute = current.pointee.next
        }
        var children: [XMLElement] = []
        var text = ""
        var child = node.pointee.children
        while let current = child {
            switch current.pointee.type {
            case XML_ELEMENT_NODE: children.append(element(current))
            case XML_TEXT_NODE, XML_CDATA_SECTION_NODE:
                if let content = current.pointee.content { text += String(cString: content) }
            default: break
            }
            child = current.pointee.next
        }
        return XMLElement(
            name: String(cString: node.pointee.name), attributes: attributes, children: children,
            text: text.trimming())
    }
}

public struct XMLParseError: Error, Sendable, CustomStringConvertible {
    public var source: String
    public var detail: String
    public var description: String { "\(source): malformed XML: \(detail)" }
}

