// swift-tools-version:6.1
// SPDX-License-Identifier: Apache-2.0
// Benchmarks live in their own package so the benchmark tooling never enters the main build graph.
import PackageDescription

// A path dependency is named after its directory, which depends on where the repository was cloned.
let root = Context.packageDirectory.split(separator: "/").dropLast().last.map(String.init) ?? "switchboard"
/// The `switchboard` binary links jemalloc (see ../Package.swift); the targets that replay link it too,
/// so they measure the allocator users run.
let jemalloc: [LinkerSetting] = [.linkedLibrary("jemalloc", .when(platforms: [.linux]))]
/// What the targets that replay `ReplayFixture`'s run import.
let replaying: [Target.Dependency] = [
    "ReplayFixture", .product(name: "Switchboard", package: root), .product(name: "SwitchboardLog", package: root),
]

let package = Package(
    name: "switchboard-benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: ".."),
        // The default traits need a package that is not available here; the malloc interposer suffices.
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "EventLogBenchmarks",
            dependencies: [
                .product(name: "SwitchboardLog", package: root),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/EventLogBenchmarks",
            swiftSettings: [.swiftLanguageMode(.v6)],
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "RuntimeBenchmarks",
            dependencies: replaying + [.product(name: "Benchmark", package: "benchmark")],
            path: "Benchmarks/RuntimeBenchmarks",
            swiftSettings: [.swiftLanguageMode(.v6)],
            linkerSettings: jemalloc,
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        // The run the replay benchmark records, and a tool that replays it in rounds for side-by-side
        // comparisons of two builds (scripts/bench-replay-ab.sh).
        .target(
            name: "ReplayFixture",
            dependencies: [
                .product(name: "Switchboard", package: root),
                .product(name: "SwitchboardLog", package: root),
                .product(name: "SwitchboardRouter", package: root),
                .product(name: "SwitchboardWire", package: root),
            ],
            path: "Sources/ReplayFixture",
            swiftSettings: [.swiftLanguageMode(.v6), .enableUpcomingFeature("InternalImportsByDefault")]
        ),
        .executableTarget(
            name: "ReplayRounds",
            dependencies: replaying,
            path: "Sources/ReplayRounds",
            swiftSettings: [.swiftLanguageMode(.v6)],
            linkerSettings: jemalloc
        ),
    ]
)
