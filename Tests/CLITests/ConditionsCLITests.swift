import Foundation
import Glibc
import Testing
@testable import Orchestration

/// The types of a run's events for one step, from `events.jsonl`, with the skip reason.
private func stepEvents(_ state: String, _ runID: String, _ step: String) throws -> [String] {
    try String(contentsOfFile: "\(state)/runs/\(runID)/events.jsonl", encoding: .utf8)
        .split(separator: "\n").map { try StrictJSONParser.parse(Array($0.utf8)).toValue() }
        .filter { $0["step_id"]?.stringValue == step }
        .map { event in
            let type = event["type"]?.stringValue ?? "?"
            return event["data"]?["reason"]?.stringValue.map { "\(type): \($0)" } ?? type
        }
}

/// `"if"` end to end with real processes (SPEC §11): cleanup and notification after an abort,
/// condition-false skips in every report, resume, and a stop.
@Suite("run: conditions end to end (SPEC §11)", .serialized, .timeLimit(.minutes(2)))
struct ConditionsCLITests {
    /// A build that fails (critical, abort), a test after it, and three steps after the test.
    static func abortPlan(_ dir: TempDir) -> String {
        let env = "\"env\": {\"D\": \"\(dir.path)\"}"
        return dir.write("p.json", planJSON([
            stepJSON("build", "echo broken >&2; exit 3"),
            stepJSON("test", "echo ran > \"$D/test.ran\"", deps: ["build"], extra: env),
            stepJSON("cleanup", "echo ran > \"$D/cleanup.ran\"", deps: ["test"], extra: env + #", "if": "always()""#),
            stepJSON("notify", "echo \"$CH\" > \"$D/notify.ran\"", deps: ["test"],
                     extra: #""env": {"D": "\#(dir.path)", "CH": "${CHANNEL}"}, "if": "failure() && vars.CHANNEL == 'ops'""#),
            stepJSON("celebrate", "echo ran > \"$D/celebrate.ran\"", deps: ["test"], extra: env + #", "if": "!failure()""#),
        ], variables: #"{"CHANNEL": "ops"}"#))
    }

    /// `steps.ID.outputs.NAME` reads what the step wrote to `$OMNIBASE_OUTPUT` (item 1 and 2
    /// together); an output it did not write reads `''`; a value is data, never code.
    @Test func conditionsReadTheOutputsOfEarlierSteps() async throws {
        let dir = TempDir()
        let plan = dir.write("p.json", planJSON([
            stepJSON("probe", #"echo 'mode=deploy' >> "$OMNIBASE_OUTPUT"; echo "odd=') || always() || ('" >> "$OMNIBASE_OUTPUT""#),
            stepJSON("deploy", "true", deps: ["probe"], extra: #""if": "steps.probe.outputs.mode == 'deploy'""#),
            stepJSON("rollback", "true", deps: ["probe"], extra: #""if": "steps.probe.outputs.mode == 'rollback'""#),
            stepJSON("unset", "true", deps: ["probe"], extra: #""if": "steps.probe.outputs.never == ''""#),
            stepJSON("odd", "true", deps: ["probe"], extra: #""if": "steps.probe.outputs.odd == 'x'""#),
        ]))
        let result = await runCLI(["run", plan, "--format", "json", "--state-dir", dir.path + "/s"], in: dir.path)
        #expect(result.status == 0, "\(result.stderr)")
        let report = try result.json()
        let statuses = ["probe", "deploy", "rollback", "unset", "odd"].map { report.stepReport($0)?["status"]?.stringValue }
        #expect(statuses == ["succeeded", "succeeded", "skipped", "succeeded", "skipped"])
        #expect(report.stepReport("rollback")?["error"]?.stringValue == "condition false")
    }

    @Test func cleanupAndNotificationRunAfterACriticalAbortAndTheRunStaysFailed() async throws {
        let dir = TempDir()
        let plan = Self.abortPlan(dir)
        let state = dir.path + "/s"
        let result = await runCLI(["run", plan, "--format", "json", "--state-dir", state], in: dir.path)
        #expect(result.status == 1, "\(result.stderr)")
        let report = try result.json()
        #expect(report["status"]?.stringValue == "failed")
        #expect(report["exit_code"]?.intValue == 1)
        let statuses = ["build", "test", "cleanup", "notify", "celebrate"].map { report.stepReport($0)?["status"]?.stringValue }
        #expect(statuses == ["failed", "cancelled", "succeeded", "succeeded", "skipped"])
        #expect(report.stepReport("celebrate")?["error"]?.stringValue == "condition false")
        #expect(report.stepReport("cleanup")?["if"]?.stringValue == "always()")
        #expect(report.stepReport("build")?["if"] == nil, "only steps with an \"if\" have the key")
        #expect(FileManager.default.fileExists(atPath: dir.path + "/cleanup.ran"))
        #expect(dir.read("notify.ran") == "ops\n")
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/test.ran"))
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/celebrate.ran"))
        let runID = try #require(report["run_id"]?.stringValue)
        #expect(try stepEvents(state, runID, "celebrate") == ["step_skipped: condition false"])
        #expect(try stepEvents(state, runID, "test") == ["step_cancelled: run aborted: critical step \"build\" failed"])
        #expect(try stepEvents(state, runID, "cleanup") == ["step_started", "step_succeeded"])

        // runs show (human and JSON) and the HTML report show the condition and the reason.
        let human = await runCLI(["runs", "show", runID, "--format", "human", "--state-dir", state], in: dir.path)
        #expect(human.status == 0, "\(human.stderr)")
        #expect(human.stdout.contains("condition false (if !failure())"), "\(human.stdout)")
        #expect(human.stdout.contains("if always()"), "\(human.stdout)")
        let shown = try await runCLI(["runs", "show", runID, "--format", "json", "--state-dir", state], in: dir.path).json()
        #expect(shown.stepReport("notify")?["if"]?.stringValue == "failure() && vars.CHANNEL == 'ops'")
        #expect(shown.stepReport("celebrate")?["error"]?.stringValue == "condition false")
        let html = await runCLI(["report", runID, "--html", dir.path + "/r.html", "--state-dir", state], in: dir.path)
        #expect(html.status == 0, "\(html.stderr)")
        let page = dir.read("r.html") ?? ""
        #expect(page.contains("condition false"))
        #expect(page.contains("if !failure()"))
        #expect(page.contains("if failure() &amp;&amp; vars.CHANNEL == &#39;ops&#39;"), "escaped as HTML text")
    }

    @Test func aFalseConditionSkipsItsStepAndDependentsAndTheRunSucceeds() async throws {
        let dir = TempDir()
        let env = "\"env\": {\"D\": \"\(dir.path)\"}"
        let plan = dir.write("p.json", planJSON([
            stepJSON("build", "true"),
            stepJSON("deploy", "echo ran > \"$D/deploy.ran\"", deps: ["build"], extra: env + #", "if": "vars.DEPLOY == 'yes'""#),
            stepJSON("smoke", "echo ran > \"$D/smoke.ran\"", deps: ["deploy"], extra: env),
        ], variables: #"{"DEPLOY": "no"}"#))
        let state = dir.path + "/s"
        let result = await runCLI(["run", plan, "--format", "json", "--state-dir", state], in: dir.path)
        #expect(result.status == 0, "\(result.stderr)")
        let report = try result.json()
        #expect(report["status"]?.stringValue == "succeeded")
        #expect(report.stepReport("deploy")?["status"]?.stringValue == "skipped")
        #expect(report.stepReport("deploy")?["error"]?.stringValue == "condition false")
        #expect(report.stepReport("smoke")?["error"]?.stringValue == "dependency \"deploy\" was skipped")
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/deploy.ran"))

        // --var decides it the other way.
        let yes = await runCLI(["run", plan, "--var", "DEPLOY=yes", "--format", "json", "--state-dir", state], in: dir.path)
        #expect(yes.status == 0, "\(yes.stderr)")
        #expect(try yes.json().stepReport("smoke")?["status"]?.stringValue == "succeeded")
        #expect(dir.read("deploy.ran") == "ran\n")

        // The dry run shows the condition (decided only when the run gets there).
        let dry = await runCLI(["run", plan, "--mode", "dry-run", "--format", "json"], in: dir.path)
        let steps = try dry.json()["steps"]?.arrayValue ?? []
        #expect(steps.map { $0["if"]?.stringValue } == [nil, "vars.DEPLOY == 'yes'", nil])
        let dryHuman = await runCLI(["run", plan, "--mode", "dry-run", "--format", "human"], in: dir.path)
        #expect(dryHuman.stdout.contains("2. deploy: sh -c 'echo ran > \"$D/deploy.ran\"' (if vars.DEPLOY == 'yes')"), "\(dryHuman.stdout)")
        let valid = await runCLI(["validate", plan], in: dir.path)
        #expect(valid.status == 0 && valid.stdout.isEmpty && valid.stderr.isEmpty)
    }

    @Test func resumeDecidesConditionsAgainAndKeepsWhatSucceeded() async throws {
        let dir = TempDir()
        let env = "\"env\": {\"D\": \"\(dir.path)\"}"
        let plan = dir.write("p.json", planJSON([
            // Fails until the file "ready" exists; its dependents run anyway (continue).
            stepJSON("probe", "test -e \"$D/ready\"", extra: env + #", "on_failure": "continue""#),
            stepJSON("publish", "echo ran >> \"$D/publish.ran\"", deps: ["probe"],
                     extra: env + #", "if": "steps.probe.status == 'succeeded'""#),
            stepJSON("cleanup", "echo ran >> \"$D/cleanup.ran\"", deps: ["probe"], extra: env + #", "if": "always()""#),
        ]))
        let state = dir.path + "/s"
        let first = await runCLI(["run", plan, "--format", "json", "--state-dir", state], in: dir.path)
        #expect(first.status == 1, "\(first.stderr)")
        let report = try first.json()
        let runID = try #require(report["run_id"]?.stringValue)
        #expect(report.stepReport("publish")?["error"]?.stringValue == "condition false")
        #expect(report.stepReport("cleanup")?["status"]?.stringValue == "succeeded")

        _ = dir.write("ready", "")
        let resumed = await runCLI(["resume", runID, "--format", "json", "--state-dir", state], in: dir.path)
        #expect(resumed.status == 0, "\(resumed.stderr)")
        let after = try resumed.json()
        #expect(after["status"]?.stringValue == "succeeded")
        #expect(after.stepReport("publish")?["status"]?.stringValue == "succeeded", "decided again, now true")
        #expect(dir.read("publish.ran") == "ran\n")
        // A step succeeds once per run (runs.db holds that): the cleanup that succeeded is kept.
        #expect(dir.read("cleanup.ran") == "ran\n")
        #expect(after.stepReport("cleanup")?["attempts"]?.intValue == 1)
    }

    @Test func aStopCancelsAPendingAlwaysStep() async throws {
        let dir = TempDir()
        let env = "\"env\": {\"D\": \"\(dir.path)\"}"
        let plan = dir.write("p.json", planJSON([
            stepJSON("long", "echo $PPID > \"$D/engine.pid\"; sleep 100", extra: env),
            stepJSON("cleanup", "echo ran > \"$D/cleanup.ran\"", deps: ["long"], extra: env + #", "if": "always()""#),
        ], globals: #"{"kill_grace_sec": 1}"#))
        let state = dir.path + "/s"
        async let run = runCLI(["run", plan, "--format", "json", "--state-dir", state], in: dir.path)
        let engine = try await pidFile(dir.path + "/engine.pid")
        kill(engine, SIGINT)
        let result = await run
        #expect(result.status == 130, "\(result.stderr)")
        let report = try result.json()
        #expect(report["status"]?.stringValue == "cancelled")
        #expect(report.stepReport("long")?["status"]?.stringValue == "cancelled")
        #expect(report.stepReport("cleanup")?["status"]?.stringValue == "cancelled")
        #expect(report.stepReport("cleanup")?["error"]?.stringValue == "run interrupted by SIGINT")
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/cleanup.ran"), "a stop is a stop")
    }
}
