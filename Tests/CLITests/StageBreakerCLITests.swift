import Foundation
import Glibc
import Testing
@testable import Orchestration

// Circuit breakers against the run history, replays and concurrent invocations (a hostile
// tester's report on `orch`).

/// The events of a run's `events.jsonl`.
private func events(_ dir: TempDir, _ runID: String) throws -> [JSONValue] {
    try String(contentsOfFile: "\(dir.path)/.state/runs/\(runID)/events.jsonl", encoding: .utf8)
        .split(separator: "\n").map { try StrictJSONParser.parse(Array($0.utf8)).toValue() }
}

/// `(id, status, attempts)` of a report's steps.
private func outline(_ report: JSONValue) -> [String] {
    (report["steps"]?.arrayValue ?? []).map {
        "\($0["id"]?.stringValue ?? "?") \($0["status"]?.stringValue ?? "?") \($0["attempts"]?.intValue ?? -1)"
    }
}

@Suite("orch: circuit breakers, the run history and replays", .serialized, .timeLimit(.minutes(3)))
struct StageBreakerCLITests {
    /// A run whose critical component an open circuit kept out was reported failed (exit 1) but
    /// stored succeeded with only the components that ran: `runs show`, `runs list`, runs.db and
    /// events.jsonl disagreed with the report.
    @Test func aRunWhoseCriticalComponentTheBreakerSkippedIsStoredAsItIsReported() async throws {
        let dir = TempDir()
        dir.put("omnibase.registry.json", registryJSON([
            componentJSON("f", script: "echo f >> log; test -f ok"),
            componentJSON("g", script: "true"),
        ], extra: "\"breaker\": {\"failure_threshold\": 1, \"cooldown_sec\": 600}"))
        let state = dir.path + "/.state"
        #expect(await orch(["--stage", "pre-commit"], in: dir).status == 1)
        let second = await orch(["--stage", "pre-commit"], in: dir)
        #expect(second.status == 1, "\(second.stderr)")
        let report = try second.json()
        let runID = try #require(report["run_id"]?.stringValue)
        #expect(report["status"]?.stringValue == "failed")
        #expect(outline(report) == ["f skipped 0", "g succeeded 1"])
        let reason = try #require(report.stepReport("f")?["error"]?.stringValue)
        #expect(reason.hasPrefix("circuit open after 1 consecutive failure"))
        #expect(dir.read("log") == "f\n", "the open circuit's component was started")

        // The stored run is the reported one.
        let shown = await runCLI(["runs", "show", runID, "--format", "json", "--state-dir", state], in: dir.path)
        #expect(shown.status == 0, "\(shown.stderr)")
        let stored = try shown.json()
        #expect(stored["status"]?.stringValue == "failed")
        #expect(stored["exit_code"]?.intValue == 1)
        #expect(stored["summary"] == report["summary"])
        #expect(stored["summary"]?["total"]?.intValue == 2)
        #expect(outline(stored) == ["f skipped 0", "g succeeded 1"])
        #expect(stored.stepReport("f")?["error"]?.stringValue == reason)
        let db = try SQLiteDatabase(path: state + "/runs.db", mode: .readOnly)
        let row = try #require(try db.query("SELECT status, exit_code FROM runs WHERE run_id = ?", runID).first)
        #expect(row.string(0) == "failed")
        #expect(row.int(1) == 1)
        let finished = try #require(try events(dir, runID).last)
        #expect(finished["type"]?.stringValue == "run_finished")
        #expect(finished["data"]?["status"]?.stringValue == "failed")
        #expect(finished["data"]?["summary"]?["total"]?.intValue == 2)
        #expect(try events(dir, runID).contains {
            $0["type"]?.stringValue == "step_skipped" && $0["step_id"]?.stringValue == "f"
                && $0["data"]?["reason"]?.stringValue == reason
        })
        let listed = await runCLI(["runs", "list", "--format", "json", "--state-dir", state], in: dir.path)
        let entry = try #require(try listed.json()["runs"]?.arrayValue?.first { $0["run_id"]?.stringValue == runID })
        #expect(entry["status"]?.stringValue == "failed")
        #expect(entry["summary"]?["total"]?.intValue == 2)

        // Resume does not start what the breaker kept out either.
        let resumed = await runCLI(["resume", runID, "--format", "json", "--state-dir", state], in: dir.path)
        #expect(resumed.status == 1, "\(resumed.stderr)")
        #expect(outline(try resumed.json()) == ["f skipped 0", "g succeeded 1"])
        #expect(dir.read("log") == "f\n")
    }

    /// `--mode replay` started a component whose circuit was open and counted its result in the
    /// breaker (SPEC section 6: until the cooldown has passed it is not started).
    @Test func aReplayDoesNotStartAComponentWhoseCircuitIsOpen() async throws {
        let dir = TempDir()
        dir.put("omnibase.registry.json", registryJSON([
            componentJSON("f", script: "echo f >> log; test -f ok"),
            componentJSON("g", script: "echo g >> log"),
        ], extra: "\"breaker\": {\"failure_threshold\": 1, \"cooldown_sec\": 600}"))
        let first = await orch(["--stage", "pre-commit"], in: dir)
        #expect(first.status == 1)
        let firstID = try #require(try first.json()["run_id"]?.stringValue)
        let before = dir.read(".state/breakers.json")
        #expect(before?.contains("\"consecutive_failures\": 1") == true)

        for extra in [["--run-id", firstID], []] {
            let replayed = await orch(["--stage", "pre-commit", "--mode", "replay"] + extra, in: dir)
            #expect(replayed.status == 1, "\(extra): \(replayed.stderr)")
            let report = try replayed.json()
            #expect(report["mode"]?.stringValue == "replay")
            #expect(outline(report) == ["f skipped 0", "g succeeded 1"], "\(extra)")
            #expect(report.stepReport("f")?["error"]?.stringValue?.hasPrefix("circuit open after 1 consecutive failure") == true)
        }
        // The first run's failure of f aborted it before g; each replay ran g alone.
        #expect(dir.read("log") == "f\ng\ng\n", "a replay started the component whose circuit is open")
        #expect(dir.read(".state/breakers.json")?.contains("\"consecutive_failures\": 1") == true,
                "a replay counted a result of the open circuit's component")
    }

    /// The breakers judge what a run may start: with `--from`, a component upstream of it (outside
    /// the selection) is not run whatever its circuit says, and lets its dependents run.
    @Test func anOpenCircuitOutsideTheFromToSelectionDoesNotKeepItsDependentsOut() async throws {
        let dir = TempDir()
        dir.put("omnibase.registry.json", registryJSON([
            componentJSON("a", script: "echo a >> log; test -f ok"),
            componentJSON("b", script: "echo b >> log", deps: ["a"]),
        ], extra: "\"breaker\": {\"failure_threshold\": 1, \"cooldown_sec\": 600}"))
        #expect(await orch(["--stage", "pre-commit"], in: dir).status == 1)
        let from = await orch(["--stage", "pre-commit", "--from", "b"], in: dir)
        #expect(from.status == 0, "\(from.stderr)")
        let report = try from.json()
        #expect(outline(report) == ["a skipped 0", "b succeeded 1"])
        #expect(report.stepReport("a")?["error"]?.stringValue == "outside the --from/--to selection")
        #expect(report["breaker_skipped"]?.arrayValue?.isEmpty == true)
        // Without --from, the open circuit keeps both out.
        let full = await orch(["--stage", "pre-commit"], in: dir)
        #expect(full.status == 1)
        #expect(outline(try full.json()) == ["a skipped 0", "b skipped 0"])
        #expect(dir.read("log") == "a\nb\n")
    }

    /// With a half-open circuit every concurrent invocation ran its "one trial". Only one claims
    /// it; the others skip the component, with the reason, while the claim's process lives.
    @Test func onlyOneOfConcurrentInvocationsRunsTheTrialOfAHalfOpenCircuit() async throws {
        let dir = TempDir()
        // The trial holds until the other invocations have decided (or 20 s have passed).
        dir.put("omnibase.registry.json", registryJSON([
            componentJSON("f", script: "echo f >> log; while [ -e hold ]; do sleep 0.05; done; test -f ok"),
        ], extra: "\"breaker\": {\"failure_threshold\": 1, \"cooldown_sec\": 1}"))
        #expect(await orch(["--stage", "pre-commit"], in: dir).status == 1)
        try await Task.sleep(for: .seconds(1.3))
        dir.put("hold", "")
        let root = dir.path
        let results = await withTaskGroup(of: CLIResult?.self) { group in
            for _ in 0..<4 {
                group.addTask {
                    await runCLI(["orch", "--stage", "pre-commit", "--format", "json", "--state-dir", root + "/.state"], in: root)
                }
            }
            group.addTask {
                try? await Task.sleep(for: .seconds(20))
                return nil
            }
            var results: [CLIResult] = []
            for await result in group {
                if let result { results.append(result) }
                if result == nil || results.count == 3 { try? FileManager.default.removeItem(atPath: root + "/hold") }
                if results.count == 4 { group.cancelAll() }
            }
            return results
        }
        #expect(dir.read("log") == "f\nf\n", "more than one invocation ran the trial")
        let reports = try results.map { try $0.json() }
        let ran = reports.filter { $0.stepReport("f")?["attempts"]?.intValue == 1 }
        #expect(ran.count == 1)
        let skipped = reports.filter { $0.stepReport("f")?["status"]?.stringValue == "skipped" }
        #expect(skipped.count == 3)
        for report in skipped {
            let reason = report.stepReport("f")?["error"]?.stringValue ?? ""
            #expect(reason.contains("its one trial runs in another invocation (pid "), "\(reason)")
        }
        #expect(results.allSatisfy { $0.status == 1 })
        // The trial failed: open again (half-open once more after its second), no claim left behind.
        let inspect = try await orch(["--stage", "registry", "inspect", "f"], in: dir).json()
        #expect(inspect["breaker"]?["consecutive_failures"]?.intValue == 2)
        #expect(inspect["breaker"]?["state"]?.stringValue != "closed")
        #expect(inspect["breaker"]?["trial"] == .null)
        #expect(dir.read(".state/breakers.json")?.contains("\"trial\"") == false)
    }

    /// The claim on a trial belongs to a live process: an invocation killed with SIGKILL while
    /// its trial runs does not keep the component out for ever.
    @Test func theTrialClaimOfAKilledInvocationIsTakenOverByTheNextOne() async throws {
        let dir = TempDir()
        dir.put("hold", "")
        dir.put("omnibase.registry.json", registryJSON([
            componentJSON("f", script: "echo f >> log; if [ -e hold ]; then echo $PPID > engine.pid; echo $$ > step.pid; "
                          + "while [ -e hold ]; do sleep 0.05; done; fi; test -f ok"),
        ], extra: "\"breaker\": {\"failure_threshold\": 1, \"cooldown_sec\": 1}"))
        try FileManager.default.removeItem(atPath: dir.path + "/hold")
        #expect(await orch(["--stage", "pre-commit"], in: dir).status == 1)
        try await Task.sleep(for: .seconds(1.3))
        dir.put("hold", "")
        let root = dir.path
        async let trial = runCLI(["orch", "--stage", "pre-commit", "--state-dir", root + "/.state"], in: root)
        let engine = try await pidFile(dir.path + "/engine.pid")
        let step = try await pidFile(dir.path + "/step.pid")
        // While the trial's invocation lives, another one leaves the component alone.
        let meanwhile = await orch(["--stage", "pre-commit"], in: dir)
        #expect(try meanwhile.json().stepReport("f")?["error"]?.stringValue?.contains("(pid \(engine), run ") == true,
                "\(meanwhile.stdout)")
        kill(engine, SIGKILL)
        kill(-step, SIGKILL)
        _ = await trial
        try FileManager.default.removeItem(atPath: dir.path + "/hold")
        dir.put("ok", "")
        let next = await orch(["--stage", "pre-commit"], in: dir)
        #expect(next.status == 0, "\(next.stdout)\(next.stderr)")
        #expect(try next.json().stepReport("f")?["attempts"]?.intValue == 1)
        #expect(dir.read("log") == "f\nf\nf\n")
        let inspect = try await orch(["--stage", "registry", "inspect", "f"], in: dir).json()
        #expect(inspect["breaker"]?["state"]?.stringValue == "closed")
    }
}
