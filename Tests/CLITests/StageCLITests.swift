import Foundation
import Glibc
import Testing
@testable import Orchestration

@Suite("orch: stage orchestrators end to end", .serialized, .timeLimit(.minutes(3)))
struct StageCLITests {
    @Test func preCommitRunsTheValidatorsTaggedPreCommitOneAtATimeInRegistryOrder() async throws {
        let dir = TempDir()
        dir.put("omnibase.registry.json", registryJSON([
            componentJSON("lint", script: logScript("lint")),
            componentJSON("build", type: "tool", tags: ["build"], script: logScript("build")),
            componentJSON("schema", lifecycle: "canary", script: logScript("schema")),
            componentJSON("next-lint", lifecycle: "experimental", script: logScript("next-lint")),
            componentJSON("old-lint", lifecycle: "deprecated", script: logScript("old-lint")),
            componentJSON("unit", type: "test", tags: ["unit"], script: logScript("unit")),
        ]))
        let result = await orch(["--stage", "pre-commit"], in: dir)
        #expect(result.status == 0, "\(result.stderr)")
        let report = try result.json()
        #expect(report["stage"]?.stringValue == "pre-commit")
        #expect(report["mode"]?.stringValue == "sync")
        #expect(report["plan_id"]?.stringValue == "stage-pre-commit")
        #expect(report["status"]?.stringValue == "succeeded")
        #expect(report.stepIDs == ["lint", "schema"])
        #expect(report["trace_id"]?.stringValue?.count == 32)
        #expect(dir.read("log") == "lint\nschema\n")
        #expect(result.stderr.isEmpty)

        // The run is in the history like any other, with its stage.
        let runs = await runCLI(["runs", "list", "--format", "json", "--state-dir", dir.path + "/.state"], in: dir.path)
        #expect(try runs.json()["runs"]?[0]?["plan_id"]?.stringValue == "stage-pre-commit")

        // Deprecated components run only when asked for, and with a WARN.
        let asked = await orch(["--stage", "pre-commit", "--lifecycle", "deprecated,experimental"], in: dir)
        #expect(asked.status == 0)
        #expect(try asked.json().stepIDs == ["next-lint", "old-lint"])
        #expect(asked.stderr.contains("WARN component \"old-lint\" is deprecated"))
        #expect(asked.stderr.contains("WARN component \"next-lint\" is experimental"))

        // The test stage: components of type test.
        let tests = await orch(["--stage", "test", "--format", "yaml"], in: dir, json: false)
        #expect(tests.status == 0)
        #expect(tests.stdout.contains("stage: test"))
        #expect(tests.stdout.contains("- id: unit"))
    }

    @Test func aFlakyIdempotentComponentSucceedsAfterRetriesAndANonIdempotentOneIsNotRetried() async throws {
        let dir = TempDir()
        let flaky = "[ \"$OMNIBASE_ATTEMPT\" -ge 3 ] || exit 7"
        dir.put("omnibase.registry.json", registryJSON([
            componentJSON("flaky-idempotent", type: "test", script: flaky,
                          extra: "\"idempotent\": true, \"retries\": 3, \"retry_delay_sec\": 0.05"),
            componentJSON("flaky-once", type: "test", script: flaky, extra: "\"critical\": false"),
        ]))
        let result = await orch(["--stage", "test"], in: dir)
        #expect(result.status == 0, "\(result.stderr)")
        let report = try result.json()
        #expect(report.stepReport("flaky-idempotent")?["attempts"]?.intValue == 3)
        #expect(report.stepReport("flaky-idempotent")?["status"]?.stringValue == "succeeded")
        #expect(report.stepReport("flaky-once")?["attempts"]?.intValue == 1)
        #expect(report.stepReport("flaky-once")?["status"]?.stringValue == "failed")
        #expect(report.stepReport("flaky-once")?["exit_code"]?.intValue == 7)
        // Exponential backoff: 0.05 s, then 0.1 s.
        let runID = try #require(report["run_id"]?.stringValue)
        let events = try String(contentsOfFile: "\(dir.path)/.state/runs/\(runID)/events.jsonl", encoding: .utf8)
            .split(separator: "\n").map { try StrictJSONParser.parse(Array($0.utf8)).toValue() }
        let delays = events.filter { $0["type"]?.stringValue == "step_retry" }.compactMap { $0["data"]?["delay_sec"]?.doubleValue }
        #expect(delays == [0.05, 0.1])
    }

    @Test func aBreakerOpensAfterTheThresholdSkipsWithTheReasonHalfOpensAfterTheCooldownAndClosesOnSuccess() async throws {
        let dir = TempDir()
        dir.put("omnibase.registry.json", registryJSON([
            componentJSON("gatekeeper", script: "echo run >> runs; test -f ok"),
            componentJSON("other", script: "true", extra: "\"breaker\": false"),
            componentJSON("after", script: "true", deps: ["gatekeeper"], extra: "\"critical\": false"),
        ], extra: "\"breaker\": {\"failure_threshold\": 2, \"cooldown_sec\": 12}"))
        // The cooldown is long enough for the six commands below it to run inside it on a loaded
        // machine (4 s was not: the human `inspect` found it half-open already).
        // Two failures in a row (two processes) open the circuit.
        for expectedState in ["closed", "open"] {
            let result = await orch(["--stage", "pre-commit"], in: dir)
            #expect(result.status == 1)
            #expect(try result.json().stepReport("gatekeeper")?["status"]?.stringValue == "failed")
            let inspect = await orch(["--stage", "registry", "inspect", "gatekeeper"], in: dir)
            #expect(try inspect.json()["breaker"]?["state"]?.stringValue == expectedState)
        }
        #expect(dir.read("runs") == "run\nrun\n")

        // The next invocation does not start it: skipped with the reason, and so is its dependent.
        let skipped = await orch(["--stage", "pre-commit"], in: dir)
        #expect(skipped.status == 1, "a critical component that did not run fails the stage")
        let report = try skipped.json()
        let gatekeeper = try #require(report.stepReport("gatekeeper"))
        #expect(gatekeeper["status"]?.stringValue == "skipped")
        #expect(gatekeeper["attempts"]?.intValue == 0)
        #expect(gatekeeper["error"]?.stringValue?.hasPrefix("circuit open after 2 consecutive failures (last: exited with code 1); next trial in") == true)
        #expect(report.stepReport("after")?["status"]?.stringValue == "skipped")
        #expect(report.stepReport("other")?["status"]?.stringValue == "succeeded")
        #expect(report.stepIDs == ["gatekeeper", "other", "after"])
        #expect(report["breaker_skipped"]?.arrayValue?.count == 2)
        #expect(dir.read("runs") == "run\nrun\n")
        let inspect = await orch(["--stage", "registry", "inspect", "gatekeeper"], in: dir)
        let breaker = try #require(try inspect.json()["breaker"])
        #expect(breaker["state"]?.stringValue == "open")
        #expect(breaker["consecutive_failures"]?.intValue == 2)
        #expect((breaker["remaining_sec"]?.doubleValue ?? 0) > 0)
        #expect(breaker["reason"]?.stringValue?.contains("circuit open") == true)
        let human = await orch(["--stage", "registry", "inspect", "gatekeeper", "--format", "human"], in: dir, json: false)
        #expect(human.stdout.contains("breaker: open, 2/2 failures"))

        // After the cooldown it is half-open: one trial, which succeeds and closes it.
        let remaining = breaker["remaining_sec"]?.doubleValue ?? 12
        try await Task.sleep(for: .seconds(remaining + 0.2))
        let halfOpen = await orch(["--stage", "registry", "inspect", "gatekeeper"], in: dir)
        #expect(try halfOpen.json()["breaker"]?["state"]?.stringValue == "half_open")
        dir.put("ok", "")
        let trial = await orch(["--stage", "pre-commit"], in: dir)
        #expect(trial.status == 0, "\(trial.stdout)")
        #expect(try trial.json().stepReport("gatekeeper")?["attempts"]?.intValue == 1)
        #expect(dir.read("runs") == "run\nrun\nrun\n")
        let closed = await orch(["--stage", "registry", "inspect", "gatekeeper"], in: dir)
        #expect(try closed.json()["breaker"]?["state"]?.stringValue == "closed")
        #expect(try closed.json()["breaker"]?["consecutive_failures"]?.intValue == 0)
    }

    @Test func aFailedTrialOpensTheCircuitAgainAndResetClosesIt() async throws {
        let dir = TempDir()
        dir.put("omnibase.registry.json", registryJSON([
            componentJSON("broken", script: "exit 3", extra: "\"idempotent\": true, \"retries\": 2, \"retry_delay_sec\": 0.01"),
        ], extra: "\"breaker\": {\"failure_threshold\": 1, \"cooldown_sec\": 3}"))
        let first = await orch(["--stage", "pre-commit"], in: dir)
        #expect(try first.json().stepReport("broken")?["attempts"]?.intValue == 3)
        let open = await orch(["--stage", "registry", "inspect", "broken"], in: dir)
        try await Task.sleep(for: .seconds((try open.json()["breaker"]?["remaining_sec"]?.doubleValue ?? 3) + 0.2))
        let trial = await orch(["--stage", "pre-commit"], in: dir)
        #expect(try trial.json().stepReport("broken")?["attempts"]?.intValue == 1, "a trial is one attempt, no retries")
        let inspect = await orch(["--stage", "registry", "inspect", "broken"], in: dir)
        #expect(try inspect.json()["breaker"]?["state"]?.stringValue == "open")
        let reset = await orch(["--stage", "registry", "reset", "broken"], in: dir)
        #expect(reset.status == 0)
        let after = await orch(["--stage", "registry", "inspect", "broken"], in: dir)
        #expect(try after.json()["breaker"]?["state"]?.stringValue == "closed")
    }

    @Test func aGateRefusesCIBeforeAnythingRunsUntilPreCommitPassedOnTheCommit() async throws {
        let dir = TempDir()
        dir.put("omnibase.registry.json", registryJSON([
            componentJSON("check", script: "true"),
            componentJSON("deploy", type: "tool", tags: ["ci"], script: logScript("deploy")),
        ], extra: "\"gates\": {\"ci\": {\"require_passed\": [\"pre-commit\"]}},\n"
            + "\"hooks\": {\"pre\": [{\"name\": \"announce\", \"command\": \"sh\", \"args\": [\"-c\", \"echo hook >> log\"]}]}"))
        dir.put(".gitignore", ".state/\nlog\n.cli-*\n")
        #expect(await git(["init", "-q"], in: dir.path) == 0)
        #expect(await git(["add", "-A"], in: dir.path) == 0)
        #expect(await git(["commit", "-q", "-m", "one"], in: dir.path) == 0)

        let refused = await orch(["--stage", "ci"], in: dir)
        #expect(refused.status == 1)
        #expect(refused.stdout.isEmpty)
        #expect(refused.stderr.contains("stage ci refused by its gate: stage ci requires stage pre-commit to have passed on commit"))
        #expect(refused.stderr.contains("run 'omnibase-agents orch --stage pre-commit' first"))
        #expect(dir.read("log") == nil, "nothing ran, not even the pre hook")

        let preCommit = await orch(["--stage", "pre-commit"], in: dir)
        #expect(preCommit.status == 0)
        #expect(try preCommit.json()["git_commit"]?.stringValue?.count == 40)
        let allowed = await orch(["--stage", "ci"], in: dir)
        #expect(allowed.status == 0, "\(allowed.stderr)")
        let gates = try allowed.json()["gates"]?.arrayValue
        #expect(gates?.first?["met"]?.boolValue == true)
        #expect(dir.read("log") == "hook\nhook\ndeploy\n")

        // A new commit needs its own pre-commit pass...
        dir.put("a.txt", "a\n")
        await git(["add", "a.txt"], in: dir.path)
        await git(["commit", "-q", "-m", "two"], in: dir.path)
        #expect(await orch(["--stage", "ci"], in: dir).status == 1)
        // ...which a pre-commit run on the staged files, before the commit, provides.
        dir.put("b.txt", "b\n")
        await git(["add", "b.txt"], in: dir.path)
        #expect(await orch(["--stage", "pre-commit"], in: dir).status == 0)
        await git(["commit", "-q", "-m", "three"], in: dir.path)
        #expect(await orch(["--stage", "ci"], in: dir).status == 0)
    }

    @Test func hooksRunInOrderAroundTheStageAndAFailingPreHookStopsIt() async throws {
        let dir = TempDir()
        func hook(_ name: String, status: Int = 0, stages: String = "") -> String {
            "{\"name\": \"\(name)\", \"command\": \"sh\", \"args\": [\"-c\", \"echo \(name) $OMNIBASE_HOOK $OMNIBASE_STAGE_STATUS >> log; exit \(status)\"]\(stages)}"
        }
        dir.put("omnibase.registry.json", registryJSON([
            componentJSON("a", script: logScript("a")),
            componentJSON("b", script: logScript("b"), deps: ["a"]),
        ], extra: "\"hooks\": {\"pre\": [\(hook("p1")), \(hook("only-ci", stages: ", \"stages\": [\"ci\"]")), \(hook("p2"))],\n"
            + "\"post\": [\(hook("q1", status: 4)), \(hook("q2"))]}"))
        let result = await orch(["--stage", "pre-commit"], in: dir)
        #expect(result.status == 0, "a failing post hook is reported, not fatal")
        #expect(dir.read("log") == "p1 pre\np2 pre\na\nb\nq1 post succeeded\nq2 post succeeded\n")
        let report = try result.json()
        let hooks = report["hooks"]?.arrayValue ?? []
        #expect(hooks.map { $0["name"]?.stringValue ?? "" } == ["p1", "p2", "q1", "q2"])
        #expect(hooks[2]["status"]?.stringValue == "failed")
        #expect(hooks[2]["exit_code"]?.intValue == 4)
        #expect(result.stderr.contains("WARN post hook \"q1\" failed: exited with code 4"))

        // A failing pre hook stops the stage: no component, no post hook.
        dir.put("omnibase.registry.json", registryJSON([componentJSON("a", script: logScript("a"))],
                                                         extra: "\"hooks\": {\"pre\": [\(hook("bad", status: 9)), \(hook("never"))], \"post\": [\(hook("q"))]}"))
        try FileManager.default.removeItem(atPath: dir.path + "/log")
        let stopped = await orch(["--stage", "pre-commit"], in: dir)
        #expect(stopped.status == 1)
        #expect(stopped.stderr.contains("stage pre-commit stopped: pre hook \"bad\" failed (exited with code 9"))
        #expect(stopped.stderr.contains("no component ran"))
        #expect(dir.read("log") == "bad pre\n")
    }

    /// SIGINT or SIGTERM while a post hook ran gave exit 0 and no message (the hook showed
    /// "interrupted"); it is 130 / 143 with one sentence, as during a pre hook (SPEC section 5).
    @Test(arguments: [(SIGINT, Int32(130), "SIGINT"), (SIGTERM, Int32(143), "SIGTERM")])
    func aStopDuringAPostHookExitsAsAnInterruption(signal: Int32, expected: Int32, name: String) async throws {
        let dir = TempDir()
        dir.put("omnibase.registry.json", registryJSON([componentJSON("a", script: logScript("a"))], extra:
            "\"hooks\": {\"post\": [{\"name\": \"slow\", \"command\": \"sh\", \"args\": [\"-c\", "
            + "\"echo $PPID > engine.pid; sleep 333 & echo $! > sleeper.pid; sleep 334\"]}]}"))
        let root = dir.path
        async let stage = runCLI(["orch", "--stage", "pre-commit", "--state-dir", root + "/.state"], in: root)
        let engine = try await pidFile(dir.path + "/engine.pid")
        let sleeper = try await pidFile(dir.path + "/sleeper.pid")
        kill(engine, signal)
        let result = await stage
        #expect(result.status == expected, "\(result.stderr)")
        #expect(result.stderr.hasPrefix("omnibase-agents: error: stage pre-commit interrupted by \(name) during post hook \"slow\"; "
                                        + "run "), "\(result.stderr)")
        #expect(result.stderr.contains("had ended succeeded"), "\(result.stderr)")
        #expect(!isAlive(sleeper), "the post hook's background process survived the stop")
        #expect(dir.read("log") == "a\n")
    }

    /// `orch --format human` had a report of its own: no stderr tail under a failed component
    /// but an `output of c: PATH` line (251 columns), no progress on stderr, no pointer to the
    /// failure snapshot, and a 144-column WARN line for a failed post hook with a long name, where
    /// `run` and `runs show` show the tail, the progress and the snapshot (SPEC section 6: "the
    /// same report"). It prints `run`'s report and progress, then the stage's own lines, every
    /// line of both streams within 100 columns.
    @Test func aFailedStageReportsAsRunDoesWithinTheWidth() async throws {
        let dir = TempDir()
        let hookName = String(repeating: "a-long-hook-name-", count: 5) + "end"
        dir.put("omnibase.registry.json", registryJSON([
            componentJSON("c", script: "echo some error detail >&2; exit 2"),
            componentJSON("ok", script: "true"),
        ], extra: "\"hooks\": {\"post\": [{\"name\": \"\(hookName)\", \"command\": \"false\"}]}"))
        let result = await orch(["--stage", "ci", "--format", "human", "--no-color"], in: dir, json: false)
        #expect(result.status == 1, "\(result.stderr)")
        let runs = await runCLI(["runs", "list", "--format", "json", "--state-dir", dir.path + "/.state"], in: dir.path)
        let runID = try #require(try runs.json()["runs"]?[0]?["run_id"]?.stringValue)

        let lines = result.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first?.hasPrefix("FAIL run \(runID) (plan stage-ci stage ci) failed in ") == true, "\(lines)")
        let failed = try #require(lines.firstIndex { $0.hasPrefix("  FAIL  c ") }, "\(lines)")
        #expect(lines[failed + 1] == "      | some error detail", "\(lines)")
        #expect(lines.contains("failure snapshot: \(dir.path)/.state/runs/\(runID)/snapshot"), "\(lines)")
        #expect(lines.contains { $0.hasPrefix("hook post \(hookName.prefix(29))...: FAIL ") && $0.hasSuffix(": exited with code 1") },
                "the hook's status and error stay in view: \(lines)")
        #expect(!result.stdout.contains("output of"), "\(lines)")
        // The same tail as `runs show` gives for the run.
        let shown = await runCLI(["runs", "show", runID, "--format", "human", "--no-color", "--state-dir", dir.path + "/.state"],
                                 in: dir.path)
        let shownLines = shown.stdout.split(separator: "\n").map(String.init)
        let shownFailed = try #require(shownLines.firstIndex { $0.hasPrefix("  FAIL  c ") }, "\(shownLines)")
        #expect(shownLines[shownFailed + 1] == lines[failed + 1])

        // Progress on stderr, as `run` prints it in lines mode, and the WARN over several lines.
        let errors = result.stderr.split(separator: "\n").map(String.init)
        #expect(errors.contains { $0.hasPrefix("Step 1/2: ") } && errors.contains { $0.hasPrefix("Step 2/2: ") }, "\(errors)")
        #expect(errors.contains("WARN c attempt 1 failed: exited with code 2"), "\(errors)")
        #expect(result.stderr.contains("WARN post hook\n     \"\(hookName)\"\n     failed: exited with code 1\n"), "\(result.stderr)")
        for line in lines + errors {
            #expect(displayWidth(line) <= 100, "\(displayWidth(line)) columns: \(line)")
        }

        // JSON prints only the report, as `run` does: no progress.
        let json = await orch(["--stage", "ci"], in: dir)
        #expect(json.status == 1)
        #expect(!json.stderr.contains("Step "), "\(json.stderr)")
    }

    /// On a colour terminal a stage's run has `run`'s live progress block, cleared for good when
    /// the run ends: the post hooks that follow (0.6 s here) must not see it drawn again above the
    /// report.
    @Test func aStageShowsLiveProgressOnATerminalAndClearsItBeforeTheReport() async throws {
        let dir = TempDir()
        dir.put("omnibase.registry.json", registryJSON([
            componentJSON("a", script: "sleep 0.4"), componentJSON("b", script: "sleep 0.4"),
        ], extra: "\"hooks\": {\"post\": [{\"name\": \"slow\", \"command\": \"sleep\", \"args\": [\"0.6\"]}]}"))
        let result = await runInTerminal(["orch", "--stage", "ci", "--state-dir", dir.path + "/.state"], in: dir.path)
        #expect(result.status == 0, "\(result.stdout)")
        let screen = result.stdout
        let lastBlock = try #require(screen.range(of: "done [", options: .backwards), "\(screen)")
        let lastErase = try #require(screen.range(of: "\u{1B}[J", options: .backwards), "\(screen)")
        let report = try #require(screen.range(of: "✅ run r-"), "\(screen)")
        #expect(lastBlock.lowerBound < lastErase.lowerBound && lastErase.upperBound <= report.lowerBound,
                "the block is erased after its last drawing, before the report: \(screen)")
        #expect(!screen.contains("Step 1/2:"), "never both: no line mode on a terminal")
    }

    /// A stage stopped by its pre hook left `runs/<id>/hooks/` (the hook's logs) with no run row,
    /// and `runs prune` never removed it. Prune removes such a folder once nobody holds it, and
    /// leaves it alone while the stage's hooks still run.
    @Test func theHookFolderOfAStageThatStartedNoRunIsPrunedOnceNobodyHoldsIt() async throws {
        let dir = TempDir()
        let state = dir.path + "/.state"
        dir.put("omnibase.registry.json", registryJSON([componentJSON("a", script: logScript("a"))], extra:
            "\"hooks\": {\"pre\": [{\"name\": \"gate\", \"command\": \"sh\", \"args\": [\"-c\", "
            + "\"echo go > waiting; while [ -e hold ]; do sleep 0.05; done; exit 3\"]}]}"))
        dir.put("hold", "")
        let root = dir.path
        let stopped = Task { await runCLI(["orch", "--stage", "pre-commit", "--state-dir", state], in: root) }
        _ = try await waitForFile(root + "/waiting")
        let runs = try FileManager.default.contentsOfDirectory(atPath: state + "/runs")
        #expect(runs.count == 1)
        // While the hook runs, its folder is the stage's.
        let during = await runCLI(["runs", "prune", "--keep", "0", "--format", "json", "--state-dir", state], in: root)
        #expect(during.status == 0, "\(during.stderr)")
        #expect(try during.json()["leftover_folders"]?.arrayValue?.isEmpty == true)
        try FileManager.default.removeItem(atPath: root + "/hold")
        #expect(await stopped.value.status == 1)
        #expect(FileManager.default.fileExists(atPath: state + "/runs/\(runs[0])/hooks"))
        let after = await runCLI(["runs", "prune", "--keep", "0", "--format", "json", "--state-dir", state], in: root)
        #expect(after.status == 0, "\(after.stderr)")
        #expect(try after.json()["leftover_folders"]?.arrayValue?.compactMap(\.stringValue) == runs)
        #expect(try FileManager.default.contentsOfDirectory(atPath: state + "/runs").isEmpty)
    }

    @Test func aPipelineRunsTheNamedComponentsAsAChainInTheOrderGiven() async throws {
        let dir = TempDir()
        dir.put("omnibase.registry.json", registryJSON([
            componentJSON("extract", type: "tool", tags: [], script: logScript("extract")),
            componentJSON("transform", type: "tool", tags: [], script: logScript("transform")),
            componentJSON("check", type: "validator", tags: [], script: logScript("check")),
            componentJSON("broken", type: "tool", tags: [], script: logScript("broken", status: 5)),
        ]))
        let result = await orch(["--stage", "pipeline", "--from", "check", "--to", "extract", "--to", "transform"], in: dir)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(dir.read("log") == "check\nextract\ntransform\n")
        #expect(try result.json().stepIDs == ["check", "extract", "transform"])

        // A failing link stops the chain after it.
        try FileManager.default.removeItem(atPath: dir.path + "/log")
        let failed = await orch(["--stage", "pipeline", "--mode", "async", "--from", "extract", "--to", "broken", "--to", "check"], in: dir)
        #expect(failed.status == 1)
        #expect(dir.read("log") == "extract\nbroken\n")
        let report = try failed.json()
        #expect(report.stepReport("broken")?["status"]?.stringValue == "failed")
        #expect(report.stepReport("check")?["status"]?.stringValue != "succeeded")

        let unknown = await orch(["--stage", "pipeline", "--from", "extract", "--to", "chek"], in: dir)
        #expect(unknown.status == 3)
        #expect(unknown.stderr.contains("no component \"chek\" in the registry (did you mean \"check\"?)"))
    }

    @Test func dryRunPrintsWhatWouldRunInOrderWithResolvedCommandsAndStartsNothing() async throws {
        let dir = TempDir()
        dir.put("omnibase.registry.json", registryJSON([
            componentJSON("lint", script: "touch ran-lint", deps: ["build"]),
            componentJSON("build", type: "tool", tags: [], script: "touch ran-build",
                          extra: "\"idempotent\": true, \"cwd\": \"sub\""),
            componentJSON("schema", script: "echo '$HOME' > ran-schema"),
        ], extra: "\"hooks\": {\"pre\": [{\"name\": \"hello\", \"command\": \"echo\", \"args\": [\"hi there\"]}]}"))
        let human = await orch(["--stage", "pre-commit", "--mode", "dry-run", "--format", "human"], in: dir, json: false)
        #expect(human.status == 0, "\(human.stderr)")
        let lines = human.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first == "Dry run of stage pre-commit (sync mode): 3 components in order, nothing started")
        #expect(lines.contains("pre hook hello: echo 'hi there'"))
        #expect(lines.contains("1. build: sh -c 'touch ran-build'  (dependency of lint)"))
        #expect(lines.contains("2. lint: sh -c 'touch ran-lint'"))
        #expect(lines.contains("3. schema: sh -c 'echo '\\''$HOME'\\'' > ran-schema'"))
        #expect(lines.allSatisfy { $0.count <= 100 })

        let json = await orch(["--stage", "pre-commit", "--mode", "dry-run"], in: dir)
        let report = try json.json()
        #expect(report["mode"]?.stringValue == "dry-run")
        #expect(report["run_mode"]?.stringValue == "sync")
        #expect(report.stepIDs == ["build", "lint", "schema"])
        let build = try #require(report.stepReport("build"))
        #expect(build["cwd"]?.stringValue?.hasSuffix("/sub") == true)
        #expect(build["retries"]?.intValue == 2)
        #expect(build["selected_by"]?.stringValue == "dependency of lint")
        #expect(report.stepReport("lint")?["retries"]?.intValue == 0)
        #expect(report.stepReport("schema")?["argv"]?[2]?.stringValue == "echo '$HOME' > ran-schema")
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        #expect(!entries.contains { $0.hasPrefix("ran-") })
        #expect(!entries.contains(".state"), "a dry run creates no state folder")
    }

    @Test func profileAndReplayModes() async throws {
        let dir = TempDir()
        dir.put("omnibase.registry.json", registryJSON([
            componentJSON("slow", script: "sleep 0.2; echo slow >> log"),
            componentJSON("fast", script: "echo fast >> log", deps: ["slow"]),
        ]))
        let profiled = await orch(["--stage", "pre-commit", "--mode", "profile"], in: dir)
        #expect(profiled.status == 0)
        let profile = try #require(try profiled.json()["profile"])
        #expect(profile["components"]?[0]?["name"]?.stringValue == "slow")
        #expect((profile["components"]?[0]?["wall_sec"]?.doubleValue ?? 0) >= 0.2)
        #expect(profile["critical_path"] == ["slow", "fast"])
        #expect(profile["engine_overhead_sec"]?.doubleValue != nil)
        let human = await orch(["--stage", "pre-commit", "--mode", "profile", "--format", "human"], in: dir, json: false)
        #expect(human.stdout.contains("TIME profile: components"))
        #expect(human.stdout.contains("critical path"))

        let first = try #require(try profiled.json()["run_id"]?.stringValue)
        let latest = try #require(human.stdout.split(separator: " ").dropFirst(2).first.map(String.init))
        let replayed = await orch(["--stage", "pre-commit", "--mode", "replay"], in: dir)
        #expect(replayed.status == 0, "\(replayed.stderr)")
        let replay = try replayed.json()
        #expect(replay["mode"]?.stringValue == "replay")
        #expect(replay["run_id"]?.stringValue != latest)
        #expect(replay.stepIDs == ["slow", "fast"])
        let chosen = await orch(["--stage", "pre-commit", "--mode", "replay", "--run-id", first], in: dir)
        #expect(chosen.status == 0)
        #expect(dir.read("log")?.split(separator: "\n").count == 8)
        let wrong = await orch(["--stage", "test", "--mode", "replay", "--run-id", first], in: dir)
        #expect(wrong.status == 2)
        #expect(wrong.stderr.contains("is a run of stage pre-commit"))
    }

    /// `--mode replay`, as `replay RUN_ID`, re-executes a finished run only (SPEC section 4): a
    /// stage run still going was replayed beside it.
    @Test func replayModeRefusesARunStillGoing() async throws {
        let dir = TempDir()
        dir.put("omnibase.registry.json", registryJSON([
            componentJSON("hold", script: "echo go > started; while [ -e hold ]; do sleep 0.05; done"),
        ]))
        dir.put("hold", "")
        let root = dir.path
        let running = Task { await runCLI(["orch", "--stage", "pre-commit", "--format", "json", "--state-dir", root + "/.state"],
                                          in: root) }
        _ = try await waitForFile(root + "/started")
        let runID = try #require(try RunStore(stateDirectory: StateDirectory(path: root + "/.state"), readOnly: true)
            .runs().first?.runID)
        for extra in [[String](), ["--run-id", runID]] {
            let refused = await orch(["--stage", "pre-commit", "--mode", "replay"] + extra, in: dir)
            #expect(refused.status == 2, "\(extra): \(refused.stderr)")
            #expect(refused.stderr.contains("run \(runID) is still running (engine pid "), "\(extra): \(refused.stderr)")
        }
        try FileManager.default.removeItem(atPath: root + "/hold")
        #expect(await running.value.status == 0)
        let replayed = await orch(["--stage", "pre-commit", "--mode", "replay", "--run-id", runID], in: dir)
        #expect(replayed.status == 0, "\(replayed.stderr)")
    }
}
