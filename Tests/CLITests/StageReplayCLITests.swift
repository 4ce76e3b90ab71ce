import Foundation
import Testing
@testable import Orchestration
@testable import Stages

// `orch --mode replay` runs what the replayed run stored (SPEC section 3: "stored so that resume
// and replay need nothing else"; docs/stages.md: "the registry of that time, not today's").

/// A hook as registry JSON: `sh -c "echo WORD >> log"`.
private func hookJSON(_ name: String, _ word: String) -> String {
    "{\"name\": \"\(name)\", \"command\": \"sh\", \"args\": [\"-c\", \"echo \(word) >> log\"]}"
}

@Suite("orch: replay", .serialized, .timeLimit(.minutes(3)))
struct StageReplayCLITests {
    /// Selection options were silently ignored by a replay (SPEC section 4: no option is silently
    /// dropped); they are refused, before anything runs.
    @Test(arguments: [
        ["--tags", "pre-commit"], ["--filter", "name=a"], ["--lifecycle", "all"], ["--from", "a"], ["--to", "a"],
        ["--max-concurrency", "2"], ["--registry", "omnibase.registry.json"],
    ])
    func aReplayRefusesTheOptionsItDoesNotUse(option: [String]) async throws {
        let dir = TempDir()
        dir.put("omnibase.registry.json", registryJSON([componentJSON("a", script: logScript("a"))]))
        #expect(await orch(["--stage", "pre-commit"], in: dir).status == 0)
        let refused = await orch(["--stage", "pre-commit", "--mode", "replay"] + option, in: dir)
        #expect(refused.status == 2, "\(option): \(refused.stderr)")
        #expect(refused.stderr.hasPrefix("omnibase-agents: error: --mode replay "), "\(refused.stderr)")
        #expect(refused.stderr.contains("\(option[0]) does not apply"), "\(refused.stderr)")
        #expect(refused.stdout.isEmpty)
        #expect(dir.read("log") == "a\n", "\(option): the replay ran")
    }

    /// A replay read today's registry file (it failed without one) and ran today's hooks and
    /// gate around the old plan. It runs the registry its run stored: components, hooks, gate.
    @Test func aReplayRunsTheRegistryOfItsRunWithoutReadingTodaysFile() async throws {
        let dir = TempDir()
        dir.put("omnibase.registry.json", registryJSON([
            componentJSON("a", script: logScript("a-then")),
        ], extra: "\"hooks\": {\"pre\": [\(hookJSON("before", "pre-then"))], \"post\": [\(hookJSON("after", "post-then"))]}"))
        let original = await orch(["--stage", "pre-commit"], in: dir)
        #expect(original.status == 0, "\(original.stderr)")
        let runID = try #require(try original.json()["run_id"]?.stringValue)
        #expect(dir.read("log") == "pre-then\na-then\npost-then\n")

        // Today's registry differs, down to a gate that would refuse the stage.
        dir.put("omnibase.registry.json", registryJSON([
            componentJSON("a", script: logScript("a-now")),
        ], extra: "\"hooks\": {\"pre\": [\(hookJSON("before-now", "pre-now"))]},\n"
            + "\"gates\": {\"pre-commit\": {\"require_passed\": [\"test\"]}}"))
        try FileManager.default.removeItem(atPath: dir.path + "/log")
        let replayed = await orch(["--stage", "pre-commit", "--mode", "replay", "--run-id", runID], in: dir)
        #expect(replayed.status == 0, "\(replayed.stderr)")
        #expect(dir.read("log") == "pre-then\na-then\npost-then\n")
        let report = try replayed.json()
        #expect(report["hooks"]?.arrayValue?.compactMap { $0["name"]?.stringValue } == ["before", "after"])
        #expect(report["gates"]?.arrayValue?.isEmpty == true)

        // Without a registry file at all.
        try FileManager.default.removeItem(atPath: dir.path + "/omnibase.registry.json")
        try FileManager.default.removeItem(atPath: dir.path + "/log")
        let again = await orch(["--stage", "pre-commit", "--mode", "replay"], in: dir)
        #expect(again.status == 0, "\(again.stderr)")
        #expect(dir.read("log") == "pre-then\na-then\npost-then\n")

        // A replay runs the components of another time: it does not count as a full run of the stage.
        let replayID = try #require(try again.json()["run_id"]?.stringValue)
        let store = try RunStore(stateDirectory: StateDirectory(path: dir.path + "/.state"), readOnly: true)
        let record = try #require(try store.run(replayID))
        #expect(RunRequest(json: record.options, stage: record.stage).labels[StageLabels.narrowedBy] == "--mode replay")
    }

    /// A stage run stored before runs kept their registry has only its plan: a replay runs that
    /// plan, with no hooks and no gate, and still leaves out a component whose circuit is open.
    @Test func aRunStoredWithoutItsRegistryIsReplayedFromItsPlanAndRespectsOpenCircuits() async throws {
        let dir = TempDir()
        let state = dir.path + "/.state"
        let plan = dir.write("old.json", """
            {"plan_id": "stage-pre-commit", "version": "1",
             "metadata": {"stage": "pre-commit", "registry": "omnibase.registry.json"},
             "globals": {"working_dir": "\(dir.path)"},
             "steps": [
               {"id": "a", "command": "sh", "args": ["-c", "echo a >> log"], "retries": 0, "critical": true},
               {"id": "b", "command": "sh", "args": ["-c", "echo b >> log"], "retries": 0, "critical": true}
             ]}
            """)
        let session = try RunSession(stateDirectory: state)
        let old = try await session.start(try PlanLoader.load(path: plan),
                                          request: RunRequest(maxConcurrency: 1, stage: "pre-commit",
                                                              labels: [StageLabels.mode: "sync"], preservePlanOrder: true))
        #expect(old.status == .succeeded)
        let directory = try StateDirectory(path: state)
        try BreakerStore(stateDirectory: directory).update { breakers in
            breakers["b"] = CircuitBreaker(consecutiveFailures: 3, openedAt: Date(), lastError: "exited with code 1")
        }
        try FileManager.default.removeItem(atPath: dir.path + "/log")

        let replayed = await orch(["--stage", "pre-commit", "--mode", "replay"], in: dir)
        #expect(replayed.status == 1, "\(replayed.stderr)")
        let report = try replayed.json()
        #expect(report.stepReport("a")?["status"]?.stringValue == "succeeded")
        #expect(report.stepReport("b")?["status"]?.stringValue == "skipped")
        #expect(report.stepReport("b")?["error"]?.stringValue?.hasPrefix("circuit open after 3 consecutive failures") == true)
        #expect(dir.read("log") == "a\n")
    }
}
