/// rtnetlink messages for an SR-IOV VF's settings, as bytes: what `ip link
/// set PF vf N mac … vlan … trust … spoofchk …` sends and what `ip link
/// show PF` reads back. Pure (bytes in, bytes out); the socket is
/// `NetlinkVFConfigurator`'s. Integers are in host byte order, as netlink
/// wants them.
public enum RTNetlink {
    // linux/rtnetlink.h, linux/netlink.h, linux/if_link.h
    public static let newLink: UInt16 = 16
    public static let getLink: UInt16 = 18
    public static let setLink: UInt16 = 19
    public static let errorMessage: UInt16 = 2
    public static let doneMessage: UInt16 = 3
    static let flagRequest: UInt16 = 0x1
    static let flagAck: UInt16 = 0x4
    static let ifVFInfoList: UInt16 = 22
    static let ifExtMask: UInt16 = 29
    static let vfInfo: UInt16 = 1
    static let vfMAC: UInt16 = 1
    static let vfVLAN: UInt16 = 2
    static let vfSpoofchk: UInt16 = 4
    static let vfTrust: UInt16 = 9
    /// `RTEXT_FILTER_VF | RTEXT_FILTER_SKIP_STATS`: the VFs in a link
    /// dump, without their counters (as `ip link show` asks).
    static let filterVFWithoutStats: UInt32 = 1 | 8
    /// The top bits of an attribute's type are flags (`NLA_F_NESTED`, `NLA_F_NET_BYTEORDER`).
    static let typeMask: UInt16 = 0x3fff
    static let headerSize = 16
    static let ifinfoSize = 16

    /// `RTM_SETLINK` on interface `ifindex` with `IFLA_VFINFO_LIST`
    /// setting `settings` on VF `vf`; asks for an acknowledgement.
    public static func setVFRequest(ifindex: Int32, vf: Int, settings: VFSettings, sequence: UInt32) -> [UInt8] {
        message(type: setLink, flags: flagRequest | flagAck, sequence: sequence, ifindex: ifindex, attributes: vfInfoList(vf: vf, settings: settings))
    }

    /// `RTM_GETLINK` of interface `ifindex` with `IFLA_EXT_MASK`
    /// `RTEXT_FILTER_VF` (and `SKIP_STATS`), so the reply lists its VFs.
    public static func getLinkRequest(ifindex: Int32, sequence: UInt32) -> [UInt8] {
        message(type: getLink, flags: flagRequest, sequence: sequence, ifindex: ifindex, attributes: attribute(ifExtMask, u32(filterVFWithoutStats)))
    }

    /// `IFLA_VFINFO_LIST` → `IFLA_VF_INFO` → one attribute per setting
    /// (`IFLA_VF_MAC`, `IFLA_VF_VLAN`, `IFLA_VF_TRUST`, `IFLA_VF_SPOOFCHK`,
    /// in that order, as iproute2 writes them for that order of arguments).
    public static func vfInfoList(vf: Int, settings: VFSettings) -> [UInt8] {
        let number = u32(UInt32(truncatingIfNeeded: vf))
        var info: [UInt8] = []
        if let mac = settings.mac {
            // struct ifla_vf_mac { __u32 vf; __u8 mac[32]; }
            info += attribute(vfMAC, number + mac.octets + [UInt8](repeating: 0, count: 32 - mac.octets.count))
        }
        if let vlan = settings.vlan {
            // struct ifla_vf_vlan { __u32 vf; __u32 vlan; __u32 qos; }
            info += attribute(vfVLAN, number + u32(UInt32(vlan)) + u32(0))
        }
        if let trust = settings.trust { info += attribute(vfTrust, number + u32(trust ? 1 : 0)) }
        if let spoofchk = settings.spoofchk { info += attribute(vfSpoofchk, number + u32(spoofchk ? 1 : 0)) }
        return attribute(ifVFInfoList, attribute(vfInfo, info))
    }

    /// What the kernel answered to one request.
    public enum Reply: Sendable, Equatable {
        /// `NLMSG_ERROR` with error 0.
        case acknowledged
        /// `NLMSG_ERROR` with this errno (positive).
        case failed(errno: Int32)
        /// `RTM_NEWLINK`: the interface's VFs' settings, by VF number.
        case link(vfs: [Int: VFSettings])
    }

    /// A reply that is not a well-formed netlink message.
    public struct MalformedReply: Error, Sendable, Equatable, CustomStringConvertible {
        public var detail: String
        public var description: String { "malformed rtnetlink reply: \(detail)" }
    }

    /// The first message of a reply datagram that answers `sequence`.
    public static func parseReply(_ bytes: [UInt8], sequence: UInt32) throws(MalformedReply) -> Reply {
        var offset = 0
        while offset + headerSize <= bytes.count {
            let length = Int(readU32(bytes, offset))
            let type = readU16(bytes, offset + 4)
            let seq = readU32(bytes, offset + 8)
            guard length >= headerSize, offset + length <= bytes.count else { throw MalformedReply(detail: "message length \(length) at \(offset) of \(bytes.count) bytes") }
            let body = Array(bytes[(offset + headerSize)..<(offset + length)])
            if seq == sequence {
                switch type {
                case errorMessage:
                    guard body.count >= 4 else { throw MalformedReply(detail: "NLMSG_ERROR of \(body.count) bytes") }
                    let error = Int32(bitPattern: readU32(body, 0))
                    return error == 0 ? .acknowledged : .failed(errno: -error)
                case newLink:
                    guard body.count >= ifinfoSize else { throw MalformedReply(detail: "RTM_NEWLINK of \(body.count) bytes") }
                    return .link(vfs: try vfs(inLinkAttributes: Array(body[ifinfoSize...])))
                default: break
                }
            }
            offset += align(length)
        }
        throw MalformedReply(detail: "no answer to request \(sequence) in \(bytes.count) bytes")
    }

    /// The VFs in a link message's attributes (`IFLA_VFINFO_LIST`), by
    /// number; empty when it has none. A setting the driver does not
    /// report (trust and spoofchk read as -1) is nil.
    public static func vfs(inLinkAttributes bytes: [UInt8]) throws(MalformedReply) -> [Int: VFSettings] {
        var result: [Int: VFSettings] = [:]
        for (type, list) in try attributes(bytes) where type == ifVFInfoList {
            for (infoType, info) in try attributes(list) where infoType == vfInfo {
                var number: Int?
                var settings = VFSettings()
                for (kind, value) in try attributes(info) where value.count >= 8 {
                    let setting = readU32(value, 4)
                    switch kind {
                    case vfMAC: settings.mac = value.count >= 10 ? MACAddress(octets: Array(value[4..<10])) : nil
                    case vfVLAN: settings.vlan = Int(setting)
                    case vfTrust: settings.trust = setting == UInt32.max ? nil : setting != 0
                    case vfSpoofchk: settings.spoofchk = setting == UInt32.max ? nil : setting != 0
                    // Not every attribute starts with the VF's number: the
                    // kernel also sends IFLA_VF_BROADCAST (an address) and the
                    // nested IFLA_VF_VLAN_LIST and IFLA_VF_STATS.
                    default: continue
                    }
                    number = Int(readU32(value, 0))
                }
                if let number { result[number] = settings }
            }
        }
        return result
    }

    // MARK: encoding

    static func message(type: UInt16, flags: UInt16, sequence: UInt32, ifindex: Int32, attributes: [UInt8]) -> [UInt8] {
        // struct ifinfomsg { u8 family; u8 pad; u16 type; s32 index; u32 flags; u32 change; }, family AF_UNSPEC
        let ifinfo: [UInt8] = [0, 0, 0, 0] + u32(UInt32(bitPattern: ifindex)) + u32(0) + u32(0)
        let length = UInt32(headerSize + ifinfo.count + attributes.count)
        return u32(length) + u16(type) + u16(flags) + u32(sequence) + u32(0) + ifinfo + attributes
    }

    /// One attribute: length, type, value, padded to four bytes.
    public static func attribute(_ type: UInt16, _ value: [UInt8]) -> [UInt8] {
        let length = 4 + value.count
        return u16(UInt16(length)) + u16(type) + value + [UInt8](repeating: 0, count: align(length) - length)
    }

    static func align(_ length: Int) -> Int { (length + 3) & ~3 }

    /// An integer's bytes in host order, as netlink carries them.
    public static func u16(_ value: UInt16) -> [UInt8] { withUnsafeBytes(of: value) { Array($0) } }
    public static func u32(_ value: UInt32) -> [UInt8] { withUnsafeBytes(of: value) { Array($0) } }

    // MARK: decoding

    static func readU16(_ bytes: [UInt8], _ offset: Int) -> UInt16 {
        var value: UInt16 = 0
        withUnsafeMutableBytes(of: &value) { $0.copyBytes(from: bytes[offset..<(offset + 2)]) }
        return value
    }

    static func readU32(_ bytes: [UInt8], _ offset: Int) -> UInt32 {
        var value: UInt32 = 0
        withUnsafeMutableBytes(of: &value) { $0.copyBytes(from: bytes[offset..<(offset + 4)]) }
        return value
    }

    /// The attributes in `bytes`, by type (flags masked off), in order.
    static func attributes(_ bytes: [UInt8]) throws(MalformedReply) -> [(UInt16, [UInt8])] {
        var result: [(UInt16, [UInt8])] = []
        var offset = 0
        while offset + 4 <= bytes.count {
            let length = Int(readU16(bytes, offset))
            guard length >= 4, offset + length <= bytes.count else { throw MalformedReply(detail: "attribute length \(length) at \(offset) of \(bytes.count) bytes") }
            result.append((readU16(bytes, offset + 2) & typeMask, Array(bytes[(offset + 4)..<(offset + length)])))
            offset += align(length)
        }
        return result
    }
}
