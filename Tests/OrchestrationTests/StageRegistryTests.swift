import Foundation
@testable import Stages
import Testing
@testable import Orchestration

private func load(_ text: String) throws(EngineError) -> LoadedRegistry {
    try RegistryLoader.load(bytes: Array(text.utf8), displayPath: "reg.json", directory: "/repo")
}

private func loadError(_ text: String) -> EngineError? {
    do { _ = try load(text); return nil } catch { return error }
}

@Suite("Stages: registry loading, plan translation, circuit breakers")
struct StageRegistryTests {
    @Test func malformedRegistriesAreLocatedConfigurationErrors() {
        let cases: [(String, String)] = [
            ("{\"components\": [}", "reg.json:1:17: invalid JSON"),
            ("{\"components\": [{\"name\": \"a\", \"type\": \"validator\", \"comand\": \"true\"}]}",
             "reg.json:1:52: components[0].comand: unknown key \"comand\" (did you mean \"command\"?)"),
            ("{\"components\": [{\"name\": \"a\", \"type\": \"validatr\", \"command\": \"true\"}]}",
             "reg.json:1:39: components[0].type: unknown value \"validatr\" (did you mean \"validator\"?)"),
            ("{\"components\": [{\"name\": \"a\", \"type\": \"tool\", \"command\": \"true\", \"retries\": 2}]}",
             "components[0].retries: component \"a\" is not idempotent, so it is never retried"),
            ("{\"components\": [{\"name\": \"a\", \"type\": \"tool\", \"command\": \"true\", \"depends_on\": [\"bb\"]},\n"
             + " {\"name\": \"b\", \"type\": \"tool\", \"command\": \"true\"}]}",
             "reg.json:1:81: components[0].depends_on[0]: component \"a\" depends on unknown component \"bb\" (did you mean \"b\"?)"),
            ("{\"components\": [{\"name\": \"a\", \"type\": \"tool\", \"command\": \"true\", \"depends_on\": [\"b\"]},\n"
             + " {\"name\": \"b\", \"type\": \"tool\", \"command\": \"true\", \"depends_on\": [\"a\"]}]}",
             "dependency cycle: a -> b -> a"),
            ("{\"components\": [{\"name\": \"a\", \"type\": \"tool\", \"command\": \"true\"}, {\"name\": \"a\", \"type\": \"tool\", \"command\": \"x\"}]}",
             "duplicate component name \"a\""),
            ("{\"components\": [], \"stages\": {\"pre-comit\": {}}}", "unknown stage \"pre-comit\" (did you mean \"pre-commit\"?)"),
            ("{\"components\": [], \"stages\": {\"ci\": {\"filter\": \"typ=tool\"}}}", "stages.ci.filter: unknown filter key \"typ\""),
            ("{\"components\": [], \"gates\": {\"ci\": {\"require_passed\": [\"ci\"]}}}", "stage ci cannot require itself"),
            ("{\"components\": [], \"breaker\": {\"failure_threshold\": 0}}", "breaker.failure_threshold: must be at least 1"),
            ("{\"components\": [], \"hooks\": {\"pre\": [{\"name\": \"x\"}]}}", "hooks.pre[0]: missing required field \"command\""),
            ("{\"components\": [], \"extra\": 1}", "reg.json:1:20: extra: unknown key \"extra\""),
            ("{}", "missing required field \"components\""),
        ]
        for (text, expected) in cases {
            let error = loadError(text)
            #expect(error?.exitCode == 2, "\(text)")
            #expect(error?.message.contains(expected) == true, "\(error?.message ?? "no error") should contain \(expected)")
            #expect(error?.message.hasPrefix("reg.json:") == true)
        }
    }

    @Test func componentsBecomePlanStepsWithRetriesOnlyWhenIdempotent() throws {
        let loaded = try load("""
            {"components": [
              {"name": "flaky", "type": "test", "command": "sh", "args": ["-c", "echo $HOME ${X}"], "idempotent": true,
               "retries": 3, "retry_delay_sec": 0.5, "timeout_sec": 10},
              {"name": "deploy", "type": "tool", "command": "deploy", "depends_on": ["flaky"], "cwd": "sub"},
              {"name": "cached", "type": "tool", "command": "true", "idempotent": true}
            ]}
            """)
        let selection = try StageSelection.select(stage: .ci, registry: loaded.registry, request: SelectionRequest())
        let plan = try StagePlanBuilder.load(stage: .ci, registry: loaded, entries: selection.entries, trials: ["cached"])
        let steps = Dictionary(uniqueKeysWithValues: plan.plan.steps.map { ($0.id, $0) })
        #expect(plan.plan.id == "stage-ci")
        #expect(steps["flaky"]?.retry.retries == 3)
        #expect(steps["flaky"]?.retry.backoff == .exponential)
        #expect(steps["flaky"]?.retry.delay == .milliseconds(500))
        #expect(steps["flaky"]?.timeout == .seconds(10))
        // `$` reaches the command untouched: registries have no variables.
        #expect(steps["flaky"]?.processCommand?.arguments == ["-c", "echo $HOME ${X}"])
        #expect(steps["deploy"]?.retry.retries == 0)
        #expect(steps["deploy"]?.dependsOn == ["flaky"])
        #expect(steps["deploy"]?.processCommand?.workingDirectory == "/repo/sub")
        #expect(steps["flaky"]?.processCommand?.workingDirectory == "/repo")
        // A half-open breaker's trial gets one attempt.
        #expect(steps["cached"]?.retry.retries == 0)
    }

    @Test func breakerOpensAtTheThresholdHalfOpensAfterTheCooldownAndClosesOnSuccess() {
        let settings = BreakerSettings(failureThreshold: 2, cooldownSeconds: 60)
        let t0 = Date(timeIntervalSince1970: 1_000_000)
        var breaker = CircuitBreaker()
        #expect(breaker.state(at: t0, settings: settings) == .closed)
        breaker.record(succeeded: false, error: "exited with code 1", runID: "r1", at: t0, settings: settings)
        #expect(breaker.state(at: t0, settings: settings) == .closed)
        breaker.record(succeeded: false, error: "exited with code 2", runID: "r2", at: t0, settings: settings)
        #expect(breaker.state(at: t0.addingTimeInterval(10), settings: settings) == .open(remaining: 50))
        #expect(breaker.skipReason(at: t0.addingTimeInterval(10), settings: settings)
                == "circuit open after 2 consecutive failures (last: exited with code 2); next trial in 50s")
        #expect(breaker.state(at: t0.addingTimeInterval(60), settings: settings) == .halfOpen)
        // A failed trial opens it again for a full cooldown.
        let t1 = t0.addingTimeInterval(61)
        breaker.record(succeeded: false, error: "exited with code 3", runID: "r3", at: t1, settings: settings)
        #expect(breaker.state(at: t1.addingTimeInterval(59), settings: settings) == .open(remaining: 1))
        #expect(breaker.consecutiveFailures == 3)
        // A successful trial closes it.
        let t2 = t1.addingTimeInterval(60)
        #expect(breaker.state(at: t2, settings: settings) == .halfOpen)
        breaker.record(succeeded: true, error: nil, runID: "r4", at: t2, settings: settings)
        #expect(breaker == CircuitBreaker(lastRunID: "r4"))
        #expect(breaker.state(at: t2, settings: settings) == .closed)
    }

    @Test func openCircuitsSkipTheirDependentsAndHalfOpenOnesAreTrials() throws {
        let loaded = try load("""
            {"components": [
              {"name": "c", "type": "tool", "command": "true", "depends_on": ["b"]},
              {"name": "a", "type": "tool", "command": "true", "critical": false},
              {"name": "b", "type": "tool", "command": "true", "depends_on": ["a"]},
              {"name": "d", "type": "tool", "command": "true", "idempotent": true, "retries": 4},
              {"name": "e", "type": "tool", "command": "true", "breaker": false}
            ], "breaker": {"failure_threshold": 1, "cooldown_sec": 30}}
            """)
        let now = Date(timeIntervalSince1970: 5_000)
        let breakers = [
            "a": CircuitBreaker(consecutiveFailures: 1, openedAt: now.addingTimeInterval(-10), lastError: "boom"),
            "d": CircuitBreaker(consecutiveFailures: 1, openedAt: now.addingTimeInterval(-31)),
            "e": CircuitBreaker(consecutiveFailures: 9, openedAt: now),
        ]
        let selection = try StageSelection.select(stage: .ci, registry: loaded.registry, request: SelectionRequest())
        let decision = BreakerDecision(entries: selection.entries, registry: loaded.registry, breakers: breakers, now: now)
        #expect(decision.runnable.map(\.component.name) == ["d", "e"])
        #expect(decision.skipped.map(\.name) == ["c", "a", "b"])
        #expect(decision.skipped.first { $0.name == "a" }?.reason.hasPrefix("circuit open after 1 consecutive failure (last: boom)") == true)
        #expect(decision.skipped.first { $0.name == "c" }?.reason.contains("dependency \"b\"") == true)
        #expect(decision.trials == ["d"])
        #expect(decision.states["e"] == "disabled")
    }

    @Test func breakerFileRoundTripsAndRefusesCorruption() throws {
        let breakers = ["x": CircuitBreaker(consecutiveFailures: 2, openedAt: Date(timeIntervalSince1970: 1_700_000_000),
                                            lastError: "exited with code 1", lastRunID: "r-1")]
        let text = BreakerStore.encode(breakers)
        #expect(try BreakerStore.decode(Array(text.utf8), path: "b.json") == breakers)
        #expect(throws: EngineError(.stateFailure, "")) { try BreakerStore.decode(Array("{\"version\": 1}".utf8), path: "b.json") }
        #expect(throws: EngineError(.stateFailure, "")) { try BreakerStore.decode(Array("{\"components\": {}}".utf8), path: "b.json") }
        // A trial's claim round-trips too.
        let claimed = ["x": CircuitBreaker(consecutiveFailures: 1, openedAt: Date(timeIntervalSince1970: 1_700_000_000),
                                           trial: .init(holder: EngineIdentity(pid: 42, startTime: 7, bootID: "boot"),
                                                        runID: "r-2", claimedAt: Date(timeIntervalSince1970: 1_700_000_100)))]
        #expect(try BreakerStore.decode(Array(BreakerStore.encode(claimed).utf8), path: "b.json") == claimed)
    }

    /// A `breakers.json` of another version was called corrupt (exit 74) with the advice to
    /// delete it: another release wrote it, so it is a protocol violation (exit 4), and its state
    /// is not ours to throw away.
    @Test func aBreakerFileOfAnotherVersionIsRefusedAsIncompatibleNotCorrupt() {
        for version in [2, 99, 0] {
            let text = "{\"version\": \(version), \"components\": {}}"
            do {
                _ = try BreakerStore.decode(Array(text.utf8), path: "b.json")
                Issue.record("version \(version) was accepted")
            } catch {
                #expect(error.exitCode == 4, "\(version): \(error.message)")
                #expect(error.message.hasPrefix("b.json is version \(version) of the breakers file, "), "\(error.message)")
                #expect(!error.message.contains("delete"), "\(error.message)")
            }
        }
    }

    /// Gates that require each other (`ci` needs `test`, `test` needs `ci`) and a stage listed twice
    /// in one `require_passed` were accepted; a cycle means none of those stages could ever run.
    @Test func gateCyclesAndRepeatedRequirementsAreLocatedErrors() {
        let cases: [(String, String)] = [
            ("{\"components\": [], \"gates\": {\"ci\": {\"require_passed\": [\"test\"]}, \"test\": {\"require_passed\": [\"ci\"]}}}",
             "reg.json:1:30: gates.ci: gate cycle: ci -> test -> ci (each requires the next to have passed first"),
            ("{\"components\": [], \"gates\": {\"ci\": {\"require_passed\": [\"pipeline\"]}, \"pipeline\": "
             + "{\"require_passed\": [\"test\"]}, \"test\": {\"require_passed\": [\"ci\"]}}}",
             "gate cycle: ci -> pipeline -> test -> ci"),
            ("{\"components\": [], \"gates\": {\"ci\": {\"require_passed\": [\"test\", \"pre-commit\", \"test\"]}}}",
             "reg.json:1:78: gates.ci.require_passed[2]: the gate of stage ci lists stage test twice"),
        ]
        for (text, expected) in cases {
            let error = loadError(text)
            #expect(error?.exitCode == 2, "\(text)")
            #expect(error?.message.contains(expected) == true, "\(error?.message ?? "no error") should contain \(expected)")
        }
        // Gates in a line are fine.
        #expect(loadError("{\"components\": [], \"gates\": {\"ci\": {\"require_passed\": [\"test\", \"pre-commit\"]}, "
                          + "\"test\": {\"require_passed\": [\"pre-commit\"]}}}") == nil)
    }

    /// A component's partial `breaker` took the keys it left out from the built-in settings
    /// (threshold 3) instead of the registry's `breaker`, which it overrides.
    @Test func aPartialComponentBreakerTakesTheMissingKeysFromTheRegistrysBreaker() throws {
        let loaded = try load("""
            {"components": [
              {"name": "a", "type": "tool", "command": "true", "breaker": {"cooldown_sec": 1}},
              {"name": "b", "type": "tool", "command": "true", "breaker": {"failure_threshold": 5}},
              {"name": "c", "type": "tool", "command": "true"}
            ], "breaker": {"failure_threshold": 2, "cooldown_sec": 100}}
            """)
        let registry = loaded.registry
        func settings(_ name: String) -> BreakerSettings? { registry.component(named: name).flatMap(registry.breakerSettings) }
        #expect(settings("a") == BreakerSettings(failureThreshold: 2, cooldownSeconds: 1))
        #expect(settings("b") == BreakerSettings(failureThreshold: 5, cooldownSeconds: 100))
        #expect(settings("c") == BreakerSettings(failureThreshold: 2, cooldownSeconds: 100))
        // Without a registry breaker, the built-in settings fill them.
        let alone = try load("{\"components\": [{\"name\": \"a\", \"type\": \"tool\", \"command\": \"true\", "
                             + "\"breaker\": {\"cooldown_sec\": 1}}]}").registry
        #expect(alone.component(named: "a").flatMap(alone.breakerSettings) == BreakerSettings(failureThreshold: 3, cooldownSeconds: 1))
    }

    /// `failure_threshold: 99999999999999999999` said "must be an integer": it is one, out of range.
    @Test func anIntegerTooLargeForAnyIntegerTypeIsOutOfRange() {
        let cases: [(String, String)] = [
            ("{\"components\": [], \"breaker\": {\"failure_threshold\": 99999999999999999999}}",
             "reg.json:1:53: breaker.failure_threshold: must be at most 1000000, not 99999999999999999999"),
            ("{\"components\": [], \"breaker\": {\"failure_threshold\": -99999999999999999999}}",
             "breaker.failure_threshold: must be at least 1, not -99999999999999999999"),
            ("{\"components\": [], \"breaker\": {\"failure_threshold\": 2.5}}", "breaker.failure_threshold: must be an integer, not 2.5"),
        ]
        for (text, expected) in cases {
            let error = loadError(text)
            #expect(error?.exitCode == 2, "\(text)")
            #expect(error?.message == expected || error?.message.hasSuffix(expected) == true,
                    "\(error?.message ?? "no error") should end with \(expected)")
        }
    }

    @Test func theRepositoryRegistryIsValidAndItsPreCommitStageIsMeaningful() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let loaded = try RegistryLoader.load(path: root.appendingPathComponent(RegistryLoader.defaultFileName).path)
        let preCommit = try StageSelection.select(stage: .preCommit, registry: loaded.registry, request: SelectionRequest())
        let names = preCommit.entries.map(\.component.name)
        #expect(names.contains("plans-json"))
        #expect(names.contains("plans-validate"))
        #expect(names.contains("build"))  // pulled in by plans-validate
        #expect(!names.contains("unit-tests"))
        let tests = try StageSelection.select(stage: .test, registry: loaded.registry, request: SelectionRequest())
        #expect(tests.entries.map(\.component.name) == ["build", "unit-tests"])
    }

    @Test func syncOrderIsTheSchedulersOrder() throws {
        let loaded = try load("""
            {"components": [
              {"name": "a", "type": "tool", "command": "true"},
              {"name": "b", "type": "tool", "command": "true", "depends_on": ["c"]},
              {"name": "c", "type": "tool", "command": "true"}
            ]}
            """)
        let selection = try StageSelection.select(stage: .ci, registry: loaded.registry, request: SelectionRequest())
        let plan = try StagePlanBuilder.load(stage: .ci, registry: loaded, entries: selection.entries)
        let order = StageRunner.syncOrder(plan).map { plan.graph.ids[$0] }
        #expect(order.count == 3)
        #expect(order.firstIndex(of: "c")! < order.firstIndex(of: "b")!)
    }
}
