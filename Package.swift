// swift-tools-version: 6.1
import PackageDescription

// Layers (DESIGN.md): C bindings → HostdevCore (pure) → adapters → executables.
// Each target may depend only on the layers above it.
let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "hostdevd",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "hostdevctl", targets: ["hostdevctl"]),
        .executable(name: "hostdevd", targets: ["hostdevd"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        // The daemon's metrics (hostdevd --metrics); hostdevctl does not link it.
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // Layer 1: system libraries, each a module map and a shim.
        .systemLibrary(name: "CLibvirt", pkgConfig: "libvirt", providers: [.apt(["libvirt-dev"])]),
        .systemLibrary(name: "CUdev", pkgConfig: "libudev", providers: [.apt(["libudev-dev"])]),
        .systemLibrary(name: "CLibXML2", pkgConfig: "libxml-2.0", providers: [.apt(["libxml2-dev"])]),
        .systemLibrary(name: "CYAML", pkgConfig: "yaml-0.1", providers: [.apt(["libyaml-dev"])]),

        // Layer 2: values and pure logic, no I/O.
        .target(name: "HostdevCore", swiftSettings: strict),

        // Layer 2: the manifest's YAML/JSON decoding with positioned
        // diagnostics (pure: libyaml parses text in memory).
        .target(name: "HostdevManifest", dependencies: ["HostdevCore", "CYAML"], swiftSettings: strict),

        // Layer 3: adapters.
        .target(name: "HostdevSysfs", dependencies: ["HostdevCore"], swiftSettings: strict),
        .target(name: "HostdevUdev", dependencies: ["HostdevCore", "HostdevSysfs", "CUdev"], swiftSettings: strict),
        .target(
            name: "HostdevLibvirt", dependencies: ["HostdevCore", "CLibvirt", "CLibXML2"], swiftSettings: strict),

        // Layer 4: observe → plan → act → report, over the adapters.
        .target(
            name: "HostdevController",
            dependencies: [
                "HostdevCore", "HostdevManifest", "HostdevSysfs", "HostdevUdev", "HostdevLibvirt",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),

        // Layer 4: the daemon's Prometheus metrics and their HTTP endpoint.
        .target(
            name: "HostdevMetrics",
            dependencies: [
                "HostdevCore", "HostdevSysfs", "HostdevController",
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: strict),

        // Layer 5: executables (argument parsing and wiring only).
        .executableTarget(
            name: "hostdevctl",
            dependencies: [
                "HostdevCore", "HostdevManifest", "HostdevSysfs", "HostdevUdev", "HostdevLibvirt", "HostdevController",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict),
        .executableTarget(
            name: "hostdevd",
            dependencies: [
                "HostdevCore", "HostdevController", "HostdevSysfs", "HostdevMetrics",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),
        .executableTarget(
            name: "hostdev-bench",
            dependencies: ["HostdevCore", "HostdevManifest", "HostdevSysfs", "HostdevController", "HostdevTestSupport"],
            swiftSettings: strict),

        // Test support shared by every test target and the benchmarks.
        .target(name: "HostdevTestSupport", dependencies: ["HostdevCore", "HostdevSysfs"], swiftSettings: strict),

        .testTarget(name: "HostdevCoreTests", dependencies: ["HostdevCore", "HostdevManifest"], swiftSettings: strict),
        .testTarget(
            name: "HostdevSysfsTests", dependencies: ["HostdevCore", "HostdevSysfs", "HostdevTestSupport"],
            swiftSettings: strict),
        .testTarget(
            name: "HostdevIntegrationTests",
            dependencies: [
                "HostdevCore", "HostdevManifest", "HostdevSysfs", "HostdevUdev", "HostdevLibvirt", "HostdevController",
                "HostdevTestSupport", "HostdevMetrics", "hostdevctl",
            ],
            swiftSettings: strict),
    ],
    swiftLanguageModes: [.v6]
)
