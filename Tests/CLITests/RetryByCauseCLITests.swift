import Foundation
import Testing
@testable import Orchestration

/// The events of a run, parsed.
private func events(_ stateDirectory: String, _ runID: String) throws -> [JSONValue] {
    try String(contentsOfFile: "\(stateDirectory)/runs/\(runID)/events.jsonl", encoding: .utf8)
        .split(separator: "\n").map { try StrictJSONParser.parse(Array($0.utf8)).toValue() }
}

@Suite("run: retries by cause end to end (SPEC §11)", .serialized, .timeLimit(.minutes(2)))
struct RetryByCauseCLITests {
    @Test func onlyMatchingFailuresAreRetriedAndTheReasonIsRecorded() async throws {
        let dir = TempDir()
        let plan = dir.write("p.json", planJSON([
            // Fails twice with a matching stderr line, then succeeds.
            stepJSON("transient", "[ \"$OMNIBASE_ATTEMPT\" -ge 3 ] && exit 0; echo 'read: connection reset by peer' >&2; exit 1",
                     extra: #""retries": 5, "retry_on": {"stderr_matches": ["connection reset"]}"#),
            // A listed exit code, then an unlisted one: two attempts, not six.
            stepJSON("tempfail", "[ \"$OMNIBASE_ATTEMPT\" -ge 2 ] && exit 3; exit 75",
                     extra: #""retries": 5, "retry_on": {"exit_codes": [75, 137]}, "critical": false"#),
            // Times out once (retried), then succeeds.
            stepJSON("slow", "[ \"$OMNIBASE_ATTEMPT\" -ge 2 ] && exit 0; sleep 30",
                     extra: #""retries": 1, "timeout_sec": 1, "retry_on": {"timeout": true}"#),
        ], globals: #"{"kill_grace_sec": 1}"#))
        let state = dir.path + "/s"
        let result = await runCLI(["run", plan, "--format", "json", "--state-dir", state], in: dir.path)
        #expect(result.status == 0, "\(result.stderr)")
        let report = try result.json()
        #expect(report.stepReport("transient")?["attempts"]?.intValue == 3)
        #expect(report.stepReport("transient")?["status"]?.stringValue == "succeeded")
        #expect(report.stepReport("slow")?["attempts"]?.intValue == 2)
        #expect(report.stepReport("slow")?["status"]?.stringValue == "succeeded")
        #expect(report.stepReport("tempfail")?["attempts"]?.intValue == 2)
        #expect(report.stepReport("tempfail")?["status"]?.stringValue == "failed")
        #expect(report.stepReport("tempfail")?["error"]?.stringValue
                == "exited with code 3 (not retried: exit code 3 is not in retry_on.exit_codes)")
        // The recorded sequence of the refused step: two failed attempts, one retry, the final failure.
        let runID = try #require(report["run_id"]?.stringValue)
        let tempfail = try events(state, runID).filter { $0["step_id"]?.stringValue == "tempfail" }
            .map { "\($0["type"]?.stringValue ?? "?").\($0["attempt"]?.intValue ?? 0)" }
        #expect(tempfail == ["step_started.1", "step_attempt_failed.1", "step_retry.2", "step_started.2",
                             "step_attempt_failed.2", "step_failed.2"])
        // runs.db holds both attempts with their exit codes.
        let rows = await runProgram("sqlite3", [state + "/runs.db",
                                                "SELECT attempt, exit_code FROM attempts WHERE step_id = 'tempfail' ORDER BY attempt"],
                                    in: dir.path)
        #expect(rows.stdout == "1|75\n2|3\n")
    }

    @Test func theRetryBudgetMakesFailuresFinalAndJitterStaysWithinTheDelay() async throws {
        let dir = TempDir()
        let plan = dir.write("p.json", planJSON([
            stepJSON("a", "exit 1", extra: #""retries": 3, "retry_delay_sec": 0.2, "retry_jitter": true, "critical": false"#),
            stepJSON("b", "exit 1", deps: ["a"], extra: #""retries": 3, "critical": false"#),
        ], globals: #"{"retry_budget": 2}"#))
        let state = dir.path + "/s"
        let result = await runCLI(["run", plan, "--format", "json", "--state-dir", state], in: dir.path)
        let report = try result.json()
        #expect(result.status == 0, "non-critical failures only")
        #expect(report.stepReport("a")?["attempts"]?.intValue == 3)
        #expect(report.stepReport("a")?["error"]?.stringValue
                == "exited with code 1 (not retried: the retry budget of 2 is exhausted)")
        // b depends on a (on_failure abort, non-critical: skip_dependents), so it never ran.
        #expect(report.stepReport("b")?["status"]?.stringValue == "skipped")
        let runID = try #require(report["run_id"]?.stringValue)
        let delays = try events(state, runID).filter { $0["type"]?.stringValue == "step_retry" }
            .compactMap { $0["data"]?["delay_sec"]?.doubleValue }
        #expect(delays.count == 2)
        #expect(zip(delays, [0.2, 0.4]).allSatisfy { $0 >= 0 && $0 <= $1 })
    }
}
