// swift-tools-version:6.1
// SPDX-License-Identifier: Apache-2.0
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "switchboard",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "switchboard", targets: ["SwitchboardCLI"]),
        .library(name: "SwitchboardLog", targets: ["SwitchboardLog"]),
        .library(name: "SwitchboardWire", targets: ["SwitchboardWire"]),
        .library(name: "SwitchboardRouter", targets: ["SwitchboardRouter"]),
        .library(name: "Switchboard", targets: ["Switchboard"]),
        .library(name: "SwitchboardServices", targets: ["SwitchboardServices"]),
        .library(name: "SwitchboardWorkflows", targets: ["SwitchboardWorkflows"]),
        .library(name: "SwitchboardHTTP", targets: ["SwitchboardHTTP"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        // MCP client for the tool gateway; swift-system gives its stdio transport file descriptors.
        .package(url: "https://github.com/modelcontextprotocol/swift-sdk", from: "0.12.1"),
        .package(url: "https://github.com/apple/swift-system", from: "1.4.0"),
    ],
    targets: [
        // System-library shims: a module map and a header, no logic.
        .systemLibrary(name: "CLMDB", pkgConfig: "lmdb", providers: [.apt(["liblmdb-dev"])]),
        // No pkgConfig: Debian's libzmq.pc adds a flag SwiftPM rejects; the module map links zmq.
        .systemLibrary(name: "CZeroMQ", providers: [.apt(["libzmq3-dev"])]),
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        // SHA-256 (libcrypto, already on the machine as libcurl's TLS backend) and hardware CRC-32C.
        .systemLibrary(name: "CHash", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),

        .target(name: "SwitchboardLog", dependencies: ["CLMDB", "CHash"], swiftSettings: swiftSettings),
        .target(name: "SwitchboardWire", dependencies: ["CZeroMQ"], swiftSettings: swiftSettings),
        .target(
            name: "SwitchboardRouter",
            dependencies: ["SwitchboardLog", "SwitchboardWire"],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "Switchboard",
            dependencies: [
                "SwitchboardWire", "SwitchboardLog", "SwitchboardRouter",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "SwitchboardServices",
            dependencies: [
                "Switchboard", "SwitchboardLog", "SwitchboardWire", "CCurl",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "MCP", package: "swift-sdk"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "SwitchboardWorkflows",
            dependencies: ["Switchboard", "SwitchboardServices", "SwitchboardRouter", "SwitchboardLog"],
            // A run's walk stays on its workflow actor: async helpers run where they are called.
            swiftSettings: swiftSettings + [.enableUpcomingFeature("NonisolatedNonsendingByDefault")]
        ),
        .target(
            name: "SwitchboardHTTP",
            dependencies: ["Switchboard", "SwitchboardLog"],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "SwitchboardCLI",
            dependencies: [
                "Switchboard",
                "SwitchboardLog",
                "SwitchboardRouter",
                "SwitchboardWire",
                "SwitchboardServices",
                "SwitchboardWorkflows",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings,
            // jemalloc replaces glibc's malloc in the binary: the router and hosts allocate a few
            // hundred small blocks per run, and glibc's consolidating free lists cost 10–25% of
            // the pipeline's throughput (docs/performance.md). Libraries leave the choice to their user.
            linkerSettings: [.linkedLibrary("jemalloc", .when(platforms: [.linux]))]
        ),

        // A child process for crash and multi-process tests: appends in a loop and reports each commit.
        .executableTarget(
            name: "LogAppender",
            dependencies: ["SwitchboardLog"],
            path: "Tests/Helpers/LogAppender",
            swiftSettings: swiftSettings
        ),
        .target(
            name: "TestSupport",
            dependencies: ["SwitchboardLog", "Switchboard", "SwitchboardRouter", "SwitchboardWire"],
            path: "Tests/TestSupport",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SwitchboardLogTests",
            dependencies: ["SwitchboardLog", "TestSupport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SwitchboardWireTests",
            dependencies: ["SwitchboardWire", "SwitchboardServices"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SwitchboardRouterTests",
            dependencies: ["SwitchboardRouter", "SwitchboardWire", "SwitchboardLog", "TestSupport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SwitchboardTests",
            dependencies: ["Switchboard", "SwitchboardRouter", "SwitchboardWire", "SwitchboardLog", "TestSupport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SwitchboardServicesTests",
            dependencies: ["SwitchboardServices", "Switchboard", "SwitchboardRouter", "SwitchboardLog", "TestSupport"],
            exclude: ["Python"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SwitchboardWorkflowsTests",
            dependencies: [
                "SwitchboardWorkflows", "SwitchboardServices", "Switchboard", "SwitchboardRouter", "SwitchboardLog",
                "SwitchboardWire", "TestSupport",
            ],
            swiftSettings: swiftSettings
        ),
        // Tests that start real processes: the CLI and the LogAppender helper.
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "Switchboard", "SwitchboardLog", "SwitchboardWire", "SwitchboardRouter", "TestSupport", "LogAppender",
                "SwitchboardCLI",
            ],
            exclude: ["Python"],
            swiftSettings: swiftSettings
        ),
    ]
)
