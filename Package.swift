// swift-tools-version: 6.2
import PackageDescription

let package = Package(
    name: "omnibase-agents",
    products: [
        .library(name: "Orchestration", targets: ["Orchestration", "Stages", "Presentation"]),
        .library(name: "Agents", targets: ["Agents"]),
        .executable(name: "omnibase-agents", targets: ["omnibase-agents"]),
    ],
    targets: [
        // The system SQLite library (Debian: libsqlite3-dev).
        .systemLibrary(name: "CSQLite", path: "Sources/CSQLite"),
        // Our own C helpers for what Glibc does not import: posix_spawn with chdir, pidfd, wait-status macros.
        .target(name: "COmnibaseShims", path: "Sources/COmnibaseShims"),
        // The layers, lowest first (README, Development); SwiftPM refuses a cycle between them.
        // 1. Strict JSON, SQLite, YAML, timestamps, the coded-error shape, terminal text.
        .target(name: "OmnibaseSupport", dependencies: ["CSQLite", "COmnibaseShims"], path: "Sources/Orchestration/Support"),
        // 2. The engine: plan, execution, process, state. `import Orchestration` re-exports 1.
        .target(name: "Orchestration", dependencies: ["OmnibaseSupport", "CSQLite", "COmnibaseShims"],
                path: "Sources/Orchestration/Engine"),
        // 3. The stage orchestrators (registry, pipeline, test, CI, pre-commit) on the engine.
        .target(name: "Stages", dependencies: ["Orchestration"], path: "Sources/Orchestration/Stages"),
        // 4. What people read: human and HTML reports, progress, graphs, profiles.
        .target(name: "Presentation", dependencies: ["Orchestration", "Stages"], path: "Sources/Orchestration/Presentation"),
        .target(name: "Agents", dependencies: ["Orchestration"]),
        // 6. The live monitor (`serve`): a small HTTP/1.1 server of our own that knows nothing of
        // the engine, and the pages, JSON and event feed over a state folder on top of it.
        .target(name: "MonitorHTTP", dependencies: ["OmnibaseSupport", "COmnibaseShims"], path: "Sources/Orchestration/Monitor/HTTP"),
        .target(name: "Monitor", dependencies: ["Orchestration", "Presentation", "MonitorHTTP"],
                path: "Sources/Orchestration/Monitor", exclude: ["HTTP"]),
        .executableTarget(name: "omnibase-agents", dependencies: ["Orchestration", "Stages", "Presentation", "Agents", "Monitor"]),
        // The benchmark harness: `swift run -c release omnibase-bench --help`.
        .executableTarget(name: "omnibase-bench", dependencies: ["Orchestration", "Agents"], path: "Benchmarks/omnibase-bench"),
        // Test doubles at true boundaries (a manual clock) and a tmpfs for full-disk tests, shared by
        // the test targets.
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "OrchestrationTests", dependencies: ["OmnibaseSupport", "Orchestration", "Stages", "Presentation", "COmnibaseShims", "TestSupport"]),
        .testTarget(name: "CLITests", dependencies: ["Orchestration", "Stages", "Presentation", "Monitor", "omnibase-agents",
                                                    "TestSupport"]),
        // Multi-agent orchestration (issue 6): real git repositories and processes; the CLI binary
        // is a dependency so `ci emit` and `agents run` can be run as separate processes.
        .testTarget(name: "AgentsTests", dependencies: ["Agents", "Orchestration", "omnibase-agents", "TestSupport"]),
    ]
)

// Settings for every Swift target (system and C targets are skipped): Swift 6 language mode with
// complete data-race checking comes with tools 6.2; warnings are errors.
for target in package.targets where target.type != .system && !target.name.hasPrefix("C") {
    var settings = target.swiftSettings ?? []
    settings.append(.treatAllWarnings(as: .error))
    // SE-0335: `any` spelled out for existentials.
    settings.append(.enableUpcomingFeature("ExistentialAny"))
    // SE-0444: imports are visible only in the files that write them.
    settings.append(.enableUpcomingFeature("MemberImportVisibility"))
    target.swiftSettings = settings
}
