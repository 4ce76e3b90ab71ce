import Foundation
@testable import Stages
import Testing
@testable import Orchestration

/// A registry for selection tests: every combination of type and lifecycle that matters, with tags.
private let selectionRegistry: Registry = {
    func c(_ name: String, _ kind: Component.Kind, _ lifecycle: Component.Lifecycle, _ tags: [String],
           deps: [String] = []) -> Component {
        Component(name: name, kind: kind, lifecycle: lifecycle, tags: tags, command: "true", dependsOn: deps)
    }
    return Registry(components: [
        c("lint", .validator, .stable, ["pre-commit", "style"]),
        c("schema", .validator, .canary, ["pre-commit", "schema"]),
        c("old-lint", .validator, .deprecated, ["pre-commit", "style"]),
        c("new-lint", .validator, .experimental, ["pre-commit", "style"]),
        c("ci-only-check", .validator, .stable, ["ci"]),
        c("build", .tool, .stable, ["build"]),
        c("unit", .test, .stable, ["unit"], deps: ["build"]),
        c("integration", .test, .canary, ["integration", "slow"], deps: ["build"]),
        c("flaky-e2e", .test, .experimental, ["integration", "e2e"]),
        c("legacy-test", .test, .deprecated, ["unit"]),
    ])
}()

private struct SelectionCase: CustomTestStringConvertible, Sendable {
    var stage: Stage
    var tags: [String]?
    var filter: String?
    var lifecycle: [Component.Lifecycle]?
    var expected: [String]
    var testDescription: String {
        "\(stage) tags=\(tags ?? []) filter=\(filter ?? "-") lifecycle=\(lifecycle?.map(\.rawValue) ?? [])"
    }
}

@Suite("Stages: selection per stage, lifecycle, tags and filters")
struct StageSelectionTests {
    private static let cases: [SelectionCase] = [
        // SPEC §6 defaults.
        .init(stage: .preCommit, expected: ["lint", "schema"]),
        .init(stage: .test, expected: ["build", "unit", "integration"]),
        .init(stage: .ci, expected: ["lint", "schema", "ci-only-check", "build", "unit", "integration"]),
        // --tags narrows (any of the listed tags), dependencies are pulled in.
        .init(stage: .test, tags: ["integration"], expected: ["build", "integration"]),
        .init(stage: .test, tags: ["unit", "integration"], expected: ["build", "unit", "integration"]),
        .init(stage: .preCommit, tags: ["schema"], expected: ["schema"]),
        // --lifecycle replaces the stage's phases: deprecated and experimental only when asked.
        .init(stage: .preCommit, lifecycle: [.deprecated], expected: ["old-lint"]),
        .init(stage: .preCommit, lifecycle: [.stable, .experimental], expected: ["lint", "new-lint"]),
        .init(stage: .test, lifecycle: Component.Lifecycle.allCases,
              expected: ["build", "unit", "integration", "flaky-e2e", "legacy-test"]),
        .init(stage: .test, tags: ["e2e"], expected: []),
        .init(stage: .test, tags: ["e2e"], lifecycle: [.experimental], expected: ["flaky-e2e"]),
        // --filter is ANDed with the stage's filter; a lifecycle clause replaces the phases.
        .init(stage: .ci, filter: "type=validator,lifecycle=canary", expected: ["schema"]),
        .init(stage: .ci, filter: "type=tool", expected: ["build"]),
        .init(stage: .ci, filter: "type=test|tool,tags=unit", expected: ["build", "unit"]),
        .init(stage: .ci, filter: "name=lint|integration", expected: ["lint", "build", "integration"]),
        .init(stage: .preCommit, filter: "type=test", expected: []),
        .init(stage: .preCommit, filter: "lifecycle=experimental|deprecated", expected: ["old-lint", "new-lint"]),
        .init(stage: .ci, filter: "tags=style", lifecycle: [.canary, .stable, .deprecated], expected: ["lint", "old-lint"]),
    ]

    @Test(arguments: cases)
    private func selects(_ example: SelectionCase) throws {
        let request = SelectionRequest(tags: example.tags, filter: try example.filter.map { try ComponentFilter(parsing: $0) },
                                       lifecycle: example.lifecycle)
        if example.expected.isEmpty {
            #expect(throws: EngineError.self) {
                try StageSelection.select(stage: example.stage, registry: selectionRegistry, request: request)
            }
            return
        }
        let selection = try StageSelection.select(stage: example.stage, registry: selectionRegistry, request: request)
        #expect(selection.entries.map(\.component.name) == example.expected)
    }

    @Test func emptySelectionIsAUsageErrorNamingTheCriteria() {
        do {
            _ = try StageSelection.select(stage: .test, registry: selectionRegistry,
                                          request: SelectionRequest(tags: ["nope"]))
            Issue.record("expected an error")
        } catch {
            #expect(error.exitCode == 2)
            #expect(error.message.contains("stage test selects no component"))
            #expect(error.message.contains("tags=nope"))
        }
    }

    @Test func registryStageSettingsReplaceTheDefaults() throws {
        var registry = selectionRegistry
        registry.stages[.preCommit] = Registry.StageSettings(filter: try ComponentFilter(parsing: "tags=style"),
                                                             lifecycle: [.stable, .deprecated])
        let selection = try StageSelection.select(stage: .preCommit, registry: registry, request: SelectionRequest())
        #expect(selection.entries.map(\.component.name) == ["lint", "old-lint"])
        #expect(selection.warnings.count == 1)
        #expect(selection.warnings.first?.contains("\"old-lint\" is deprecated") == true)
        // The command line's lifecycle replaces the stage's.
        let asked = try StageSelection.select(stage: .preCommit, registry: registry,
                                              request: SelectionRequest(lifecycle: [.experimental]))
        #expect(asked.entries.map(\.component.name) == ["new-lint"])
        #expect(asked.warnings.first?.contains("experimental") == true)
    }

    @Test func pulledInDependenciesSayWhy() throws {
        let selection = try StageSelection.select(stage: .test, registry: selectionRegistry,
                                                  request: SelectionRequest(tags: ["unit"]))
        #expect(selection.entry(named: "build")?.reason == .dependency(of: "unit"))
        #expect(selection.entry(named: "unit")?.reason == .matched)
    }

    @Test func pipelineChainsTheNamedComponentsInOrder() throws {
        let selection = try StageSelection.select(stage: .pipeline, registry: selectionRegistry,
                                                  request: SelectionRequest(chain: ["schema", "lint", "unit"]))
        #expect(selection.entries.map(\.component.name) == ["schema", "lint", "build", "unit"])
        #expect(selection.entry(named: "lint")?.dependsOn == ["schema"])
        #expect(selection.entry(named: "unit")?.dependsOn == ["build", "lint"])
        #expect(selection.entry(named: "build")?.reason == .dependency(of: "unit"))
    }

    @Test func pipelineErrors() {
        #expect(throws: EngineError(.unknownReference, "")) {
            try StageSelection.select(stage: .pipeline, registry: selectionRegistry, request: SelectionRequest(chain: ["lnt"]))
        }
        #expect(throws: EngineError(.usage, "")) {
            try StageSelection.select(stage: .pipeline, registry: selectionRegistry, request: SelectionRequest(chain: ["lint", "lint"]))
        }
        // The registry says unit needs build; a chain that puts build after unit is a cycle.
        do {
            _ = try StageSelection.select(stage: .pipeline, registry: selectionRegistry, request: SelectionRequest(chain: ["unit", "build"]))
            Issue.record("expected a cycle")
        } catch {
            #expect(error.exitCode == 2)
            #expect(error.message.contains("build -> unit -> build") || error.message.contains("unit -> build -> unit"))
        }
    }

    @Test func filterParsingErrorsSuggest() {
        #expect(throws: ComponentFilter.ParseError.self) { try ComponentFilter(parsing: "typ=validator") }
        do { _ = try ComponentFilter(parsing: "typ=validator") } catch { #expect(error.message.contains("did you mean \"type\"")) }
        do { _ = try ComponentFilter(parsing: "type=validatr") } catch { #expect(error.message.contains("did you mean \"validator\"")) }
        do { _ = try ComponentFilter(parsing: "type=validator,,") } catch { #expect(error.message.contains("empty clause")) }
        #expect((try? ComponentFilter(parsing: "tag=a|b, type = test"))?.description == "tags=a|b,type=test")
    }

    /// Selection and `registry inspect` looked each component up by scanning the registry, once
    /// per selected component (dependencies, pipeline placement): 60,000 components took 50 s to
    /// dry-run and 42 s to inspect in a release build, against 2 s and 1 s now. They examine O(n)
    /// components now; ``Registry/lookups`` counts every component a lookup examines, so a scan
    /// per component (n²/2 here) fails this without timing anything.
    @Test func selectionAndInspectExamineALinearNumberOfComponents() async throws {
        let n = 2000
        // A chain, each component needing the one before it: every selection pulls them all in.
        let components = (0..<n).map { index in
            Component(name: "c\(index)", kind: .tool, command: "true", dependsOn: index == 0 ? [] : ["c\(index - 1)"])
        }
        let registry = Registry(components: components)
        func examined(_ body: () async throws -> Void) async rethrows -> Int {
            let counter = LookupCounter()
            try await Registry.$lookups.withValue(counter) { try await body() }
            return counter.value
        }

        let ci = try await examined {
            let selection = try StageSelection.select(stage: .ci, registry: registry, request: SelectionRequest())
            #expect(selection.entries.count == n)
        }
        #expect(ci <= 2 * n, "stage ci examined \(ci) components for \(n)")
        let narrowed = try await examined {
            let selection = try StageSelection.select(stage: .ci, registry: registry,
                                                      request: SelectionRequest(filter: try ComponentFilter(parsing: "name=c\(n - 1)")))
            #expect(selection.entries.count == n)
        }
        #expect(narrowed <= 2 * n, "a selection pulling in \(n) dependencies examined \(narrowed) components")
        let pipeline = try await examined {
            let selection = try StageSelection.select(stage: .pipeline, registry: registry,
                                                      request: SelectionRequest(chain: ["c0", "c\(n - 1)"]))
            #expect(selection.entries.count == n)
        }
        #expect(pipeline <= 4 * n, "a pipeline examined \(pipeline) components for \(n)")

        let text = JSONValue.object(["components": .array(components.map { component in
            .object(["name": .string(component.name), "type": "tool", "command": "true",
                     "depends_on": .array(component.dependsOn.map { .string($0) })])
        })]).serialized()
        let loaded = try RegistryLoader.load(bytes: Array(text.utf8), displayPath: "r.json", directory: "/tmp")
        let missing = NSTemporaryDirectory() + "/no-state-\(UUID().uuidString)"
        let inspect = try await examined {
            let context = ExecutionContext(registry: loaded, stateDirectory: missing, registryAction: .inspect("c5"))
            let report = try await RegistryOrchestrator().run(context)
            #expect(report.json["dependents"] == ["c6"])
        }
        #expect(inspect <= 4 * n, "inspect examined \(inspect) components for \(n)")
        let dryRun = try await examined {
            let context = ExecutionContext(registry: loaded, workingDirectory: NSTemporaryDirectory(), stateDirectory: missing,
                                           mode: .dryRun)
            let report = try await StageRunner(stage: .ci).run(context)
            #expect(report.json["steps"]?.arrayValue?.count == n)
        }
        #expect(dryRun <= 4 * n, "a dry run examined \(dryRun) components for \(n)")
    }
}
