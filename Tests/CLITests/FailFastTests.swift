import Foundation
import Testing
@testable import Orchestration

/// Issue 15 item 2: on a re-run the steps that failed last time go first; `-k`/`--keep-going`
/// turns every failure into `skip_dependents` for the run, and `resume` keeps it. Orders are
/// recorded (each step appends its id to a file with one slot, or the events' order), not timed.
@Suite("fail fast on re-runs, --keep-going", .serialized, .timeLimit(.minutes(3)))
struct FailFastTests {
    /// A step that appends its id to `order` first, then runs `script`.
    static func recording(_ id: String, _ dir: TempDir, _ script: String = "true", deps: [String] = [],
                          extra: String = "") -> String {
        stepJSON(id, "echo \(id) >> '\(dir.path)/order'; \(script)", deps: deps, extra: extra)
    }

    /// The ids recorded since the last call, and the file emptied.
    static func takeOrder(_ dir: TempDir) -> [String] {
        let text = dir.read("order") ?? ""
        try? FileManager.default.removeItem(atPath: dir.path + "/order")
        return text.split(separator: "\n").map(String.init)
    }

    @Test func aRunAfterAFailedRunStartsTheFailedStepsAndWhatTheyNeedFirst() async throws {
        let dir = TempDir()
        let state = dir.path + "/s"
        let broken = dir.path + "/broken"
        let plan = dir.write("p.json", planJSON([
            Self.recording("a", dir, "sleep 0.2"),
            Self.recording("a2", dir, "sleep 0.2", deps: ["a"]),
            Self.recording("a3", dir, "sleep 0.2", deps: ["a2"]),
            Self.recording("gen", dir),
            Self.recording("bad", dir, "if [ -f '\(broken)' ]; then exit 1; fi", deps: ["gen"]),
        ], globals: "{\"max_concurrency\": 1}", id: "FAILFAST"))
        _ = FileManager.default.createFile(atPath: broken, contents: nil)
        let first = await runCLI(["run", plan, "--state-dir", state], in: dir.path)
        #expect(first.status == 1, "\(first.stderr)")
        // No history: node counts (a's chain is the longest), ties in plan order.
        #expect(Self.takeOrder(dir) == ["a", "a2", "gen", "a3", "bad"])
        try FileManager.default.removeItem(atPath: broken)
        let second = await runCLI(["run", plan, "--state-dir", state], in: dir.path)
        #expect(second.status == 0, "\(second.stderr)")
        // The last run failed at "bad": it and its dependency go first, then the rest by history.
        #expect(Self.takeOrder(dir) == ["gen", "bad", "a", "a2", "a3"])
        let third = await runCLI(["run", plan, "--state-dir", state], in: dir.path)
        #expect(third.status == 0, "\(third.stderr)")
        // The last run succeeded: history priorities again (a's chain measured 0.6 s).
        #expect(Self.takeOrder(dir) == ["a", "a2", "a3", "gen", "bad"])
    }

    @Test func resumeStartsTheStepThatFailedBeforeReadyStepsOfHigherPriority() async throws {
        let dir = TempDir()
        let state = dir.path + "/s"
        let broken = dir.path + "/broken"
        // Two slots: "hold" and "bad" start together; "hold" finishes only once the run has
        // recorded bad's failure, which aborts the run, so x and y never start.
        let wait = "until grep -q step_failed \"\(state)/runs/$OMNIBASE_RUN_ID/events.jsonl\" 2>/dev/null; do sleep 0.02; done"
        let plan = dir.write("p.json", planJSON([
            Self.recording("hold", dir, wait),
            Self.recording("x", dir, deps: ["hold"]),
            Self.recording("y", dir, deps: ["hold"]),
            Self.recording("bad", dir, "if [ -f '\(broken)' ]; then exit 1; fi"),
        ], globals: "{\"max_concurrency\": 2}", id: "RESUME-FIRST"))
        _ = FileManager.default.createFile(atPath: broken, contents: nil)
        let first = await runCLI(["run", plan, "--state-dir", state, "--format", "json"], in: dir.path)
        #expect(first.status == 1, "\(first.stderr)")
        let report = try first.json()
        let runID = try #require(report["run_id"]?.stringValue)
        #expect(report.stepReport("x")?["status"]?.stringValue == "cancelled")
        #expect(report.stepReport("hold")?["status"]?.stringValue == "succeeded")
        try FileManager.default.removeItem(atPath: broken)
        let resumed = await runCLI(["resume", runID, "--state-dir", state, "--format", "json"], in: dir.path)
        #expect(resumed.status == 0, "\(resumed.stderr)")
        // Without the boost x and y (ties, earlier in the plan) would fill both slots first.
        let store = try RunStore(stateDirectory: try StateDirectory(path: state), readOnly: true)
        let events = try store.events(runID)
        let resumedAt = try #require(events.lastIndex { $0.kind == .runResumed })
        let starts = events[resumedAt...].filter { $0.kind == .stepStarted }.compactMap(\.stepID)
        #expect(starts.first == "bad", "\(starts)")
        #expect(Set(starts) == ["bad", "x", "y"])
    }

    /// Two independent failing steps and a dependent, one slot.
    static func twoFailures(_ dir: TempDir) -> String {
        dir.write("p.json", planJSON([
            Self.recording("bad1", dir, "exit 1"),
            Self.recording("child", dir, deps: ["bad1"]),
            Self.recording("bad2", dir, "exit 1"),
            Self.recording("other", dir),
        ], globals: "{\"max_concurrency\": 1}", id: "KEEP-GOING"))
    }

    @Test func keepGoingTurnsEveryFailureIntoSkipDependentsAndResumeKeepsIt() async throws {
        let dir = TempDir()
        let state = dir.path + "/s"
        let plan = Self.twoFailures(dir)
        // Without -k the first failure aborts the run.
        let plain = await runCLI(["run", plan, "--state-dir", state, "--format", "json"], in: dir.path)
        #expect(plain.status == 1)
        #expect(Self.takeOrder(dir) == ["bad1"])
        let runID = try #require(try plain.json()["run_id"]?.stringValue)
        #expect(try plain.json().stepReport("other")?["status"]?.stringValue == "cancelled")
        // resume -k: both failures run, "other" runs, only bad1's dependent is skipped.
        let resumed = await runCLI(["resume", runID, "-k", "--state-dir", state, "--format", "json"], in: dir.path)
        #expect(resumed.status == 1, "\(resumed.stderr)")
        #expect(Self.takeOrder(dir) == ["bad1", "bad2", "other"])
        let report = try resumed.json()
        #expect(report.stepReport("child")?["status"]?.stringValue == "skipped")
        #expect(report.stepReport("bad2")?["status"]?.stringValue == "failed")
        #expect(report.stepReport("other")?["status"]?.stringValue == "succeeded")
        // A later resume without the flag keeps it (stored in the run's options).
        let again = await runCLI(["resume", runID, "--state-dir", state, "--format", "json"], in: dir.path)
        #expect(again.status == 1, "\(again.stderr)")
        #expect(Self.takeOrder(dir) == ["bad1", "bad2"])
        let store = try RunStore(stateDirectory: try StateDirectory(path: state), readOnly: true)
        #expect(try store.run(runID)?.options["keep_going"]?.boolValue == true)
        // run --keep-going and replay -k from the start.
        let run = await runCLI(["run", plan, "--keep-going", "--state-dir", state], in: dir.path)
        #expect(run.status == 1)
        #expect(Self.takeOrder(dir) == ["bad1", "bad2", "other"])
        let replay = await runCLI(["replay", runID, "-k", "--state-dir", state], in: dir.path)
        #expect(replay.status == 1)
        #expect(Self.takeOrder(dir) == ["bad1", "bad2", "other"])
    }

    /// SPEC section 4: with `-k` every failure acts as `skip_dependents`, one with `on_failure:
    /// "continue"` too (its dependent ran: `-k` only changed `abort`). Without `-k`, `continue`
    /// lets the dependent run, as before.
    @Test func keepGoingMakesAContinueFailureSkipItsDependents() async throws {
        let dir = TempDir()
        let plan = dir.write("p.json", planJSON([
            #"{"id": "a", "command": "false", "on_failure": "continue"}"#,
            stepJSON("b", "true", deps: ["a"]),
            stepJSON("c", "true"),
        ]))
        for (flags, dependent) in [([String](), "succeeded"), (["-k"], "skipped")] {
            let result = await runCLI(["run", plan, "--format", "json", "--state-dir", dir.path + "/s"] + flags, in: dir.path)
            #expect(result.status == 1, "\(flags): \(result.stderr)")
            let report = try result.json()
            #expect(report.stepReport("a")?["status"]?.stringValue == "failed")
            #expect(report.stepReport("b")?["status"]?.stringValue == dependent, "\(flags)")
            #expect(report.stepReport("c")?["status"]?.stringValue == "succeeded", "\(flags)")
        }
    }

    @Test func keepGoingIsDeclaredOnEveryCommandThatRuns() async throws {
        let dir = TempDir()
        for command in [["run"], ["resume"], ["replay"], ["orch"]] {
            let help = await runCLI(command + ["--help"], in: dir.path)
            #expect(help.stdout.contains("-k, --keep-going"), "\(command): \(help.stdout)")
        }
    }
}
