import HostdevCore

/// Console uses: the GPU whose framebuffer holds a bound virtual console,
/// and a GPU whose DRM card or render node (or, with NVIDIA's driver,
/// `/dev/nvidiaN`) a process holds open.
///
/// fbcon maps every console to the first framebuffer registered unless told
/// otherwise (`fbcon=map:`), so the console's framebuffer is the
/// lowest-numbered `fbN`. A firmware framebuffer (`efi-framebuffer.0`,
/// `simple-framebuffer.0`) is a platform device that sits on the GPU the
/// firmware booted on: the one with `boot_vga=1`.
extension HostUseScanner {
    /// `vtconN` whose `bind` is 1 and whose name is the frame buffer device,
    /// with the name as the kernel shows it (`(M) frame buffer device`).
    func boundFramebufferConsoles() -> [(number: Int, name: String)] {
        (root.list("/sys/class/vtconsole") ?? []).compactMap { entry -> (Int, String)? in
            guard entry.hasPrefix("vtcon"), let number = Int(entry.dropFirst(5)),
                root.read("/sys/class/vtconsole/\(entry)/bind") == "1",
                let name = root.read("/sys/class/vtconsole/\(entry)/name"), name.contains("frame buffer device")
            else { return nil }
            return (number, name)
        }.sorted { $0.0 < $1.0 }
    }

    /// The framebuffer the console is on: the lowest-numbered `fbN`.
    func consoleFramebuffer() -> (name: String, devicePath: String)? {
        let framebuffers = (root.list("/sys/class/graphics") ?? []).compactMap { entry -> (Int, String)? in
            guard entry.hasPrefix("fb"), let n = Int(entry.dropFirst(2)) else { return nil }
            return (n, entry)
        }.sorted { $0.0 < $1.0 }
        guard let first = framebuffers.first else { return nil }
        let fbPath = resolved("/sys/class/graphics/\(first.1)")
        guard let device = root.readLink(fbPath + "/device") else { return nil }
        return (first.1, SysfsPath.resolve(fbPath, device))
    }

    func consoleUses(_ firmwareGPU: FirmwareGPU) -> [HostUse] {
        let consoles = boundFramebufferConsoles()
        guard !consoles.isEmpty, let fb = consoleFramebuffer(), let (gpu, via) = firmwareGPU.gpu(ofDevice: fb.devicePath)
        else { return [] }
        return consoles.map { console in
            // "(M) frame buffer device": (M)/(S) say multi- or single-console driver.
            let shown = console.name.hasPrefix("(") ? String(console.name.drop { $0 != " " }.dropFirst()) : console.name
            let chain = [gpu.description] + (via.map { [$0] } ?? []) + [fb.name, "vtcon\(console.number) (\(shown))"]
            return HostUse(address: gpu, kind: .console, chain: chain, why: "the virtual console")
        }
    }

    /// Device files that hold a GPU, by path, and the GPU each belongs to:
    /// DRM `cardN` and `renderDN` nodes, and the NVIDIA driver's
    /// `/dev/nvidiaN` (its minor is in `/proc/driver/nvidia/gpus/ADDR/information`).
    func gpuNodes(_ firmwareGPU: FirmwareGPU) -> [String: (PCIAddress, via: String?)] {
        var nodes: [String: (PCIAddress, via: String?)] = [:]
        for entry in root.list("/sys/class/drm") ?? [] {
            // card0-HDMI-A-1 and the like are connectors, not device nodes.
            guard (entry.hasPrefix("card") || entry.hasPrefix("renderD")), !entry.contains("-") else { continue }
            let path = resolved("/sys/class/drm/\(entry)")
            guard let device = root.readLink(path + "/device"),
                let gpu = firmwareGPU.gpu(ofDevice: SysfsPath.resolve(path, device))
            else { continue }
            nodes["/dev/dri/" + entry] = gpu
        }
        for entry in root.list("/proc/driver/nvidia/gpus") ?? [] {
            guard let address = PCIAddress(entry),
                let information = root.read("/proc/driver/nvidia/gpus/\(entry)/information"),
                let line = information.split(separator: "\n").first(where: { $0.hasPrefix("Device Minor:") }),
                let minor = Int(line.dropFirst("Device Minor:".count).trimmingSpaces)
            else { continue }
            nodes["/dev/nvidia\(minor)"] = (address, nil)
        }
        return nodes
    }

    /// Walks `/proc` only when there is a GPU device file to find (and, for
    /// a one-device re-check, only when that device has one).
    func drmUses(only: PCIAddress?, _ firmwareGPU: FirmwareGPU) -> [HostUse] {
        let nodes = gpuNodes(firmwareGPU)
        guard !nodes.isEmpty, only.map({ address in nodes.values.contains { $0.0 == address } }) ?? true else {
            return []
        }
        let holders = OpenFiles(root: root).holders { target -> String? in nodes[target] != nil ? target : nil }
        return holders.sorted { $0.key < $1.key }.compactMap { node, processes in
            guard let (gpu, via) = nodes[node] else { return nil }
            let chain = [gpu.description] + (via.map { [$0] } ?? []) + [node]
            return HostUse(
                address: gpu, kind: .drmOpen, chain: chain,
                why: "held open by " + processes.map(\.description).joined(separator: ", "))
        }
    }
}

extension Substring {
    var trimmingSpaces: Substring {
        var text = self
        while text.first == " " || text.first == "\t" { text = text.dropFirst() }
        while text.last == " " || text.last == "\t" { text = text.dropLast() }
        return text
    }
}
