import Foundation
import Glibc
@testable import Presentation
import Testing
@testable import Orchestration

// Issue 11, items 8, 10 and 12: bad input refused before anything is written, text from a plan
// or a step escaped in human output, a long cycle cut short, a report that cannot be written.

/// Runs the CLI through `sh -c` so its stdout can be redirected (`>&-`, `>/dev/full`).
private func runCLIRedirected(_ redirection: String, _ arguments: [String], in directory: String) async -> CLIResult {
    await runProgram("sh", ["-c", "exec \"$0\" \"$@\" \(redirection)", cliPath] + arguments, in: directory,
                     environment: ["NO_COLOR": "1", "OMNIBASE_STATE_DIR": nil])
}

@Suite(.serialized) struct HardeningTests {
    // MARK: Item 8

    @Test(arguments: [
        ("{\"env\": {\"A=B\": \"x\"}}", "{}", "globals.env: \"A=B\""),
        ("{\"env\": {\"\": \"x\"}}", "{}", "globals.env: an empty name"),
        ("{}", "{\"X=Y\": \"x\"}", "steps[0].env: \"X=Y\""),
        ("{}", "{\"\": \"x\"}", "steps[0].env: an empty name"),
    ])
    func anEnvironmentNameThatNoProcessCanReceiveIsRefusedAtLoad(globals: String, env: String, cause: String) async throws {
        let dir = TempDir()
        let plan = dir.write("p.json", planJSON([stepJSON("a", "true", extra: "\"env\": \(env)")], globals: globals))
        for command in ["validate", "run"] {
            let result = await runCLI([command, plan, "--state-dir", dir.path + "/s"], in: dir.path)
            #expect(result.status == 2, "\(command): \(result.stderr)")
            #expect(result.stderr.contains(cause) && result.stderr.contains("not a valid environment variable name"),
                    "\(result.stderr)")
        }
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/s"), "a refused plan wrote a state folder")
    }

    @Test func anEmptyStateDirIsRefusedByEveryCommand() async throws {
        let dir = TempDir()
        let plan = dir.write("p.json", planJSON([stepJSON("a", "true")]))
        let commands: [[String]] = [
            ["run", plan], ["validate", plan], ["resume", "r-x"], ["replay", "r-x"], ["runs", "list"], ["runs", "show", "r-x"],
            ["runs", "events", "r-x"], ["graph", plan], ["graph", "--run", "r-x"], ["report", "r-x", "--html", "-"],
            ["orch", "--stage", "pre-commit"], ["agents", "status"], ["agents", "run", dir.path], ["ci", "emit", "x"],
        ]
        for command in commands {
            for spelling in [["--state-dir", ""], ["--state-dir="]] {
                let result = await runCLI(command + spelling, in: dir.path)
                #expect(result.status == 2, "\(command + spelling): \(result.stderr)")
                #expect(result.stderr.contains("--state-dir needs a folder"), "\(command + spelling): \(result.stderr)")
            }
        }
        let left = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { !$0.hasPrefix(".run-") }
        #expect(left == ["p.json"], "state written into the current folder: \(left)")
    }

    /// `agents run` with an empty project folder, `--repo` or `--sandbox` is refused (exit 2)
    /// before anything is created; before, each meant the current folder, and `--sandbox ''`
    /// put the worktrees (`r/`, `_integration/`) untracked in the repository's root.
    @Test func anEmptyFolderForAgentsRunIsRefused() async throws {
        let dir = TempDir()
        let project = dir.path + "/project"
        let cases: [(arguments: [String], message: String)] = [
            (["agents", "run", ""], "agents run needs a project folder, not an empty value"),
            (["agents", "run", project, "--repo", ""], "--repo needs a folder, not an empty value"),
            (["agents", "run", project, "--repo=", "--sandbox", dir.path + "/sb"], "--repo needs a folder, not an empty value"),
            (["agents", "run", project, "--sandbox", ""], "--sandbox needs a folder, not an empty value"),
            (["agents", "run", project, "--sandbox="], "--sandbox needs a folder, not an empty value"),
        ]
        for (arguments, message) in cases {
            let result = await runCLI(arguments + ["--state-dir", dir.path + "/s"], in: dir.path)
            #expect(result.status == 2, "\(arguments): \(result.stderr)")
            #expect(result.stderr.contains(message) && result.stderr.split(separator: "\n").count == 1,
                    "\(arguments): \(result.stderr)")
        }
        let left = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { !$0.hasPrefix(".run-") }
        #expect(left.isEmpty, "created: \(left)")
    }

    /// A `runs.db` created but never given its schema (the first run stopped between the two:
    /// out of descriptors, kill -9) holds no runs. The read-only commands said it "has schema
    /// version 0" and to use "a matching omnibase-agents" (exit 4); now `runs list` lists none
    /// and the others say there is no run history (exit 3, as with no `runs.db`), and a run
    /// still creates the schema in it.
    @Test func aRunsDatabaseNeverGivenItsSchemaHoldsNoRuns() async throws {
        let dir = TempDir()
        let state = dir.path + "/state"
        #expect(mkdir(state, 0o700) == 0)
        #expect(FileManager.default.createFile(atPath: state + "/runs.db", contents: nil,
                                               attributes: [.posixPermissions: 0o600]))
        let none = await runCLI(["runs", "list", "--state-dir", state, "--format", "json"], in: dir.path)
        #expect(none.status == 0, "\(none.stderr)")
        #expect(try none.json()["runs"]?.arrayValue?.isEmpty == true)
        for command in [["runs", "show", "r-x"], ["runs", "events", "r-x"]] {
            let result = await runCLI(command + ["--state-dir", state], in: dir.path)
            #expect(result.status == 3, "\(command): \(result.stderr)")
            #expect(result.stderr == "omnibase-agents: error: no run history in \(state) (runs.db holds no runs yet)\n",
                    "\(command)")
        }
        let plan = dir.write("p.json", planJSON([stepJSON("a", "true")]))
        #expect(await runCLI(["run", plan, "--state-dir", state], in: dir.path).status == 0)
        let listed = await runCLI(["runs", "list", "--state-dir", state, "--format", "json"], in: dir.path)
        #expect(listed.status == 0, "\(listed.stderr)")
        #expect(try listed.json()["runs"]?.arrayValue?.count == 1)
    }

    /// `runs show` of a live run said `"exit_code": 0` (and the monitor's `/api/runs/ID` too),
    /// even with a step already failed: a script reads that as success. It is null until the
    /// run ends, like `finished_at`.
    @Test func aLiveRunHasNoExitCodeYet() async throws {
        let dir = TempDir()
        let state = dir.path + "/s"
        let env = "\"env\": {\"D\": \"\(dir.path)\"}"
        let plan = dir.write("p.json", planJSON([
            stepJSON("bad", "false"),
            stepJSON("slow", "echo go > \"$D/started\"; while [ ! -e \"$D/release\" ]; do sleep 0.05; done", extra: env),
        ], globals: "{\"max_concurrency\": 2}"))
        let root = dir.path
        async let run = runCLI(["run", plan, "--format", "json", "--state-dir", state], in: root)
        _ = try await waitForFile(root + "/started")
        let runID = try #require(try RunStore(stateDirectory: StateDirectory(path: state), readOnly: true).runs().first?.runID)
        // The failure of `bad` is recorded within the writer's window.
        var shown = try await runCLI(["runs", "show", runID, "--format", "json", "--state-dir", state], in: dir.path).json()
        for _ in 0..<100 where shown.stepReport("bad")?["status"]?.stringValue != "failed" {
            try await Task.sleep(for: .milliseconds(20))
            shown = try await runCLI(["runs", "show", runID, "--format", "json", "--state-dir", state], in: dir.path).json()
        }
        #expect(shown["status"]?.stringValue == "running")
        #expect(shown.stepReport("bad")?["status"]?.stringValue == "failed")
        #expect(shown["exit_code"] == .null)
        let yaml = await runCLI(["runs", "show", runID, "--format", "yaml", "--state-dir", state], in: dir.path)
        #expect(yaml.stdout.contains("\nexit_code: null\n"), "\(yaml.stdout)")
        _ = dir.write("release", "")
        let finished = try await run.json()
        #expect(finished["status"]?.stringValue == "failed")
        #expect(finished["exit_code"]?.intValue == 1)
    }

    /// The commands that only read created the whole path of a mistyped `--state-dir` (and
    /// `runs list` then failed, exit 3, on the folder it had just made). They create nothing: the
    /// list of a folder with no history is empty (exit 0), a run in it is unknown (exit 3).
    @Test func readingAMissingStateFolderCreatesNothing() async throws {
        let dir = TempDir()
        let state = dir.path + "/typo/x/y"
        let list = await runCLI(["runs", "list", "--state-dir", state, "--format", "json"], in: dir.path)
        #expect(list.status == 0, "\(list.stderr)")
        #expect(list.stdout == "{\n  \"runs\": []\n}\n")
        let human = await runCLI(["runs", "list", "--state-dir", state, "--format", "human"], in: dir.path)
        #expect(human.stdout == "No runs.\n")
        for command in [["runs", "show", "r-x"], ["runs", "events", "r-x"], ["report", "r-x", "--html", dir.path + "/r.html"],
                        ["graph", "--run", "r-x"]] {
            let result = await runCLI(command + ["--state-dir", state], in: dir.path)
            #expect(result.status == 3, "\(command): \(result.stderr)")
            #expect(result.stderr == "omnibase-agents: error: no run history in \(state) (no such folder)\n", "\(command)")
        }
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/typo"), "a read-only command created the folder")
    }

    /// `run` computed durations from the unrounded times and `runs show` from the stored
    /// milliseconds, so they differed by 1 ms in most runs (and `run`'s from its own printed
    /// times). Both now take the milliseconds the timestamps show.
    @Test func durationsAreTheDifferenceOfThePrintedTimesInRunAndRunsShow() async throws {
        let dir = TempDir()
        let state = dir.path + "/s"
        let plan = dir.write("p.json", planJSON([
            stepJSON("a", "true"), stepJSON("b", "sleep 0.0123"), stepJSON("c", "true", deps: ["a", "b"]),
        ]))
        func expectConsistent(_ report: JSONValue, _ label: String) {
            for item in [report] + (report["steps"]?.arrayValue ?? []) {
                guard let start = item["started_at"]?.stringValue.flatMap(Timestamp.parse),
                      let end = item["finished_at"]?.stringValue.flatMap(Timestamp.parse),
                      let duration = item["duration_sec"]?.doubleValue else {
                    Issue.record("\(label): no times in \(item)")
                    continue
                }
                let shown = Timestamp.milliseconds(end) - Timestamp.milliseconds(start)
                #expect(Int64((duration * 1000).rounded()) == shown, "\(label) \(item["id"]?.stringValue ?? "run")")
            }
        }
        for round in 0..<5 {
            let run = await runCLI(["run", plan, "--format", "json", "--state-dir", state], in: dir.path)
            let printed = try run.json()
            let runID = try #require(printed["run_id"]?.stringValue)
            let shown = try await runCLI(["runs", "show", runID, "--format", "json", "--state-dir", state], in: dir.path).json()
            expectConsistent(printed, "run, round \(round)")
            expectConsistent(shown, "runs show, round \(round)")
            // The same report, keys of `run`'s for keys (`runs show` adds live, progress...).
            let differing = (printed.objectValue ?? []).filter { shown[$0.key] != $0.value }.map(\.key)
            #expect(differing.isEmpty, "run and runs show differ in \(differing)")
        }
    }

    @Test func aVarThePlanNeverUsesIsATypo() async throws {
        let dir = TempDir()
        let plan = dir.write("p.json", planJSON([
            "{\"id\": \"a\", \"command\": \"echo\", \"args\": [\"${BRANCH}\", \"${TAG}\"]}",
        ], variables: "{\"BRANCH\": \"main\", \"UNUSED_DEFAULT\": \"1\"}"))
        for command in ["validate", "run"] {
            let typo = await runCLI([command, plan, "--var", "TAG=v1", "--var", "BRANHC=dev", "--state-dir", dir.path + "/s"],
                                    in: dir.path)
            #expect(typo.status == 2, "\(command): \(typo.stderr)")
            #expect(typo.stderr.contains("--var BRANHC") && typo.stderr.contains("did you mean BRANCH?"), "\(typo.stderr)")
        }
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/s"), "a refused --var wrote a state folder")
        // Declared in "variables" (even if unreferenced) or referenced: both are used.
        let fine = await runCLI(["run", plan, "--var", "TAG=v1", "--var", "UNUSED_DEFAULT=2", "--var", "BRANCH=dev",
                                 "--state-dir", dir.path + "/s", "--format", "json"], in: dir.path)
        #expect(fine.status == 0, "\(fine.stderr)")
    }

    // MARK: Item 10

    /// Control characters in output other than its own line breaks (the checks run with NO_COLOR,
    /// so the output has no escape sequences of its own).
    static func rawControls(_ text: String) -> [String] {
        text.unicodeScalars.filter { $0 != "\n" && TerminalText.needsEscape($0) }.map { "U+" + String($0.value, radix: 16) }
    }

    @Test func textFromAPlanOrAStepIsShownEscapedInEveryHumanView() async throws {
        let dir = TempDir()
        let state = dir.path + "/s"
        // JSON escapes: ESC sequences that clear the screen, set the window title and recolour,
        // a newline that forges a report line, a C1 CSI and a bidi override.
        let hostile = "\\u001b[2J\\u001b]0;pwned\\u0007\\nFAKE PASS line\\u009b31m\\u202e"
        let plan = dir.write("p.json", """
            {"plan_id": "P\(hostile)", "version": "1",
             "steps": [
               {"id": "ok", "name": "N\(hostile)", "command": "true"},
               {"id": "bad", "command": "no-such-command\(hostile)", "depends_on": ["ok"], "critical": false}
             ]}
            """)
        var outputs: [(String, String)] = []
        let run = await runCLI(["run", plan, "--state-dir", state, "--format", "human"], in: dir.path)
        #expect(run.status == 0, "\(run.stderr)")
        outputs += [("run stdout", run.stdout), ("run progress", run.stderr)]
        #expect(run.stdout.contains("P\\e[2J\\e]0;pwned\\u{7}\\nFAKE PASS line\\u{9B}31m\\u{202E}"), "\(run.stdout)")
        #expect(run.stdout.contains("no-such-command\\e[2J"), "the error text is shown escaped: \(run.stdout)")
        let listed = await runCLI(["runs", "list", "--state-dir", state, "--format", "json"], in: dir.path)
        let runID = try #require(try listed.json()["runs"]?[0]?["run_id"]?.stringValue)
        for arguments in [["runs", "list"], ["runs", "show", runID], ["runs", "events", runID]] {
            let result = await runCLI(arguments + ["--state-dir", state, "--format", "human"], in: dir.path)
            #expect(result.status == 0, "\(arguments): \(result.stderr)")
            outputs.append(("\(arguments)", result.stdout))
        }
        let dryRun = await runCLI(["run", plan, "--mode", "dry-run", "--format", "human"], in: dir.path)
        outputs.append(("dry run", dryRun.stdout))
        #expect(dryRun.stdout.contains("Dry run of P\\e[2J"), "\(dryRun.stdout)")
        for format in ["dot", "mermaid"] {
            let graph = await runCLI(["graph", plan, "--format", format], in: dir.path)
            #expect(graph.status == 0, "\(graph.stderr)")
            outputs.append(("graph \(format)", graph.stdout))
        }
        let unknownRun = await runCLI(["runs", "show", "r-\u{1B}[2J", "--state-dir", state], in: dir.path)
        #expect(unknownRun.status == 3)
        #expect(unknownRun.stderr.contains("r-\\e[2J"), "\(unknownRun.stderr)")
        outputs.append(("error message", unknownRun.stderr))

        // orch: a component's command and a hook in a stage dry run and report.
        let stageDir = TempDir()
        stageDir.put("omnibase.registry.json", registryJSON([
            componentJSON("check", script: "echo 'x\u{1B}[31my'; exit 3"),
        ]))
        let stageDry = await runCLI(["orch", "--stage", "pre-commit", "--mode", "dry-run", "--format", "human",
                                     "--state-dir", stageDir.path + "/.state"], in: stageDir.path)
        #expect(stageDry.status == 0, "\(stageDry.stderr)")
        #expect(stageDry.stdout.contains("x\\e[31my"), "\(stageDry.stdout)")
        outputs.append(("orch dry run", stageDry.stdout))
        let stageRun = await runCLI(["orch", "--stage", "pre-commit", "--format", "human", "--state-dir", stageDir.path + "/.state"],
                                    in: stageDir.path)
        outputs += [("orch", stageRun.stdout), ("orch stderr", stageRun.stderr)]

        for (view, text) in outputs {
            #expect(Self.rawControls(text).isEmpty, "\(view) printed raw control characters \(Self.rawControls(text)): \(text)")
            #expect(!text.contains("\nFAKE PASS line"), "\(view) printed a forged line: \(text)")
        }
    }

    @Test(arguments: [ProgressPrinter.Mode.live, .lines])
    func liveProgressShowsStepTextEscaped(mode: ProgressPrinter.Mode) async throws {
        var fds: [Int32] = [0, 0]
        try #require(pipe(&fds) == 0)
        defer { close(fds[0]) }
        let printer = ProgressPrinter(mode: mode, style: TextStyle(rich: true), stepIDs: ["a"], slots: 1, fd: fds[1])
        let hostile = "\u{1B}]0;pwned\u{07}\nFAKE\u{9B}2J"
        try await printer.record([
            RunEvent(runID: "r", kind: .runStarted),
            RunEvent(runID: "r", kind: .stepStarted, stepID: "a", attempt: 1),
            RunEvent(runID: "r", kind: .stepAttemptFailed, stepID: "a", attempt: 1, data: ["error": .string(hostile)]),
            RunEvent(runID: "r", kind: .stepFailed, stepID: "a", attempt: 1, data: ["error": .string(hostile)]),
        ])
        printer.tick()
        close(fds[1])
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = read(fds[0], &buffer, buffer.count)
            if count <= 0 { break }
            bytes += buffer[0..<count]
        }
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(text.contains("\\e]0;pwned\\u{7}\\nFAKE\\u{9B}2J"), "\(text)")
        // The live block's own cursor movements are the only escape sequences.
        let withoutOwnCodes = text.replacingOccurrences(of: #"\u{1B}\[[0-9]*A\u{1B}\[J"#, with: "", options: .regularExpression)
        #expect(Self.rawControls(withoutOwnCodes).isEmpty, "\(Self.rawControls(withoutOwnCodes)): \(text)")
    }

    // MARK: Item 12

    @Test func aCycleThroughAHundredThousandStepsIsPrintedCutInTheMiddle() async throws {
        let dir = TempDir()
        let count = 100_000
        var steps: [String] = []
        steps.reserveCapacity(count)
        for index in 0..<count {
            steps.append("{\"id\": \"s\(index)\", \"command\": \"true\", \"depends_on\": [\"s\((index + 1) % count)\"]}")
        }
        let plan = dir.write("p.json", planJSON(steps))
        let result = await runCLI(["validate", plan], in: dir.path, timeout: .seconds(120))
        #expect(result.status == 2, "\(result.stderr.prefix(300))")
        #expect(result.stderr.utf8.count < 1_000, "the message is \(result.stderr.utf8.count) bytes")
        #expect(result.stderr.split(separator: "\n").count == 1)
        #expect(result.stderr.contains("dependency cycle: "))
        #expect(result.stderr.contains(" -> ... (99,991 more) ... -> "), "\(result.stderr)")
        // The path still starts and ends on the same step.
        let path = try #require(result.stderr.components(separatedBy: "dependency cycle: ").last?
            .components(separatedBy: " (each step").first)
        let ids = path.components(separatedBy: " -> ").filter { !$0.hasPrefix("...") }
        #expect(ids.count == 10 && ids.first == ids.last, "\(path)")

        let short = dir.write("short.json", planJSON([
            stepJSON("a", "true", deps: ["b"]), stepJSON("b", "true", deps: ["c"]), stepJSON("c", "true", deps: ["a"]),
        ]))
        let shortResult = await runCLI(["validate", short], in: dir.path)
        #expect(shortResult.stderr.contains("a -> b -> c -> a"), "\(shortResult.stderr)")
    }

    @Test(arguments: [(">&-", "Bad file descriptor"), (">/dev/full", "No space left on device")])
    func aReportThatCannotBeWrittenIsExit74(redirection: String, reason: String) async throws {
        let dir = TempDir()
        let state = dir.path + "/s"
        let plan = dir.write("p.json", planJSON([stepJSON("a", "echo hello")]))
        for arguments in [["run", plan, "--state-dir", state], ["run", plan, "--state-dir", state, "--format", "human"],
                          ["runs", "list", "--state-dir", state]] {
            let result = await runCLIRedirected(redirection, arguments, in: dir.path)
            #expect(result.status == 74, "\(arguments): \(result.stderr)")
            // Human runs show progress lines on stderr first; the error is the last line.
            let last = result.stderr.split(separator: "\n").last.map(String.init) ?? ""
            #expect(last.hasPrefix("omnibase-agents: error: cannot write the output to stdout"), "\(result.stderr)")
            #expect(last.contains(reason), "\(result.stderr)")
            #expect(!result.stderr.contains("error:") || result.stderr.components(separatedBy: "error:").count == 2)
        }
        // The runs themselves are recorded whole: the report went nowhere else (no file took
        // the closed stdout's descriptor).
        let listed = await runCLI(["runs", "list", "--state-dir", state, "--format", "json"], in: dir.path)
        #expect(listed.status == 0, "\(listed.stderr)")
        let runs = try listed.json()["runs"]?.arrayValue ?? []
        #expect(runs.count == 2)
        #expect(runs.allSatisfy { $0["status"]?.stringValue == "succeeded" })
        let db = try SQLiteDatabase(path: state + "/runs.db", mode: .readOnly)
        #expect(try db.integrityCheck() == "ok")
    }

    /// `runs list | head`: the reader went away. Quiet (no error sentence) with the status of a
    /// process SIGPIPE ended, 141, and the run that was being reported is recorded whole.
    @Test func aReaderThatGoesAwayEndsTheCommandQuietly() async throws {
        let dir = TempDir()
        let state = dir.path + "/s"
        let plan = dir.write("p.json", planJSON([stepJSON("a", "echo hello")]))
        for arguments in [["run", plan, "--state-dir", state], ["runs", "list", "--state-dir", state]] {
            // A pipe whose read end is closed before the CLI starts: its first write is EPIPE.
            var fds: [Int32] = [0, 0]
            #expect(pipe(&fds) == 0)
            close(fds[0])
            let process = Process()
            process.executableURL = URL(fileURLWithPath: cliPath)
            process.arguments = arguments
            process.currentDirectoryURL = URL(fileURLWithPath: dir.path)
            process.environment = ProcessInfo.processInfo.environment.merging(["NO_COLOR": "1"]) { $1 }
                .filter { $0.key != "OMNIBASE_STATE_DIR" }
            process.standardOutput = FileHandle(fileDescriptor: fds[1], closeOnDealloc: true)
            let errors = Pipe()
            process.standardError = errors
            try process.run()
            let stderr = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            #expect(process.terminationStatus == 141, "\(arguments): \(stderr)")
            #expect(!stderr.contains("error:"), "\(arguments): \(stderr)")
        }
        let listed = await runCLI(["runs", "list", "--state-dir", state, "--format", "json"], in: dir.path)
        #expect(try listed.json()["runs"]?.arrayValue?.first?["status"]?.stringValue == "succeeded")
    }
}

/// `runs list` stopped at its default limit of 1,000 runs without a word. A list cut at
/// `--limit` (or the default) now says so on stderr; one that holds every run says nothing.
@Test func aRunsListCutAtItsLimitSaysSo() async throws {
    let dir = TempDir()
    let state = dir.path + "/s"
    let plan = dir.write("q.json", planJSON([#"{"id": "a", "command": "true"}"#]))
    for _ in 0..<3 {
        #expect(await runCLI(["run", plan, "--state-dir", state], in: dir.path).status == 0)
    }
    let cut = await runCLI(["runs", "list", "--limit", "2", "--format", "json", "--state-dir", state], in: dir.path)
    #expect(cut.status == 0)
    #expect(try cut.json()["runs"]?.arrayValue?.count == 2)
    #expect(cut.stderr == "omnibase-agents: note: more than 2 runs; these are the newest 2 (--limit N lists more)\n")
    let whole = await runCLI(["runs", "list", "--limit", "3", "--format", "human", "--state-dir", state], in: dir.path)
    #expect(whole.stderr.isEmpty)
    #expect(whole.stdout.split(separator: "\n").count == 3)
}
