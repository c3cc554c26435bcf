/// Names as libvirt's node-device driver gives them, so that output lines up
/// with `virsh nodedev-*` and with tooling written for VDSM.
public enum DeviceNaming {
    /// libvirt: `<subsystem>_<sysname>[_<suffix>]` with every non-alphanumeric
    /// character replaced by `_` (`pci_0000_01_00_0`, `usb_1_4`, `net_eth0_52_54_00_12_34_56`).
    public static func libvirtName(subsystem: String, sysname: String, suffix: String? = nil) -> String {
        var raw = subsystem + "_" + sysname
        if let suffix, !suffix.isEmpty { raw += "_" + suffix }
        return sanitize(raw)
    }

    /// libvirt names SCSI hosts and targets `scsi_<sysname>` (`scsi_host0`, `scsi_target0_0_0`).
    public static func scsiName(sysname: String) -> String { sanitize("scsi_" + sysname) }

    static func sanitize(_ raw: String) -> String {
        String(
            String.UnicodeScalarView(
                raw.unicodeScalars.map { scalar in
                    scalar.isASCII && (scalar.properties.isAlphabetic || ("0"..."9").contains(scalar)) ? scalar : "_"
                }))
    }

    /// The name libvirt uses for the root of the device tree.
    public static let computer = "computer"
}
