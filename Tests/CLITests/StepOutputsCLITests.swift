import Foundation
@testable import Monitor
import Testing
@testable import Orchestration

/// The `step_outputs` rows of a run: step id -> name -> value.
private func storedOutputs(_ state: String, _ runID: String) throws -> [String: [String: String]] {
    let database = try SQLiteDatabase(path: state + "/runs.db", mode: .readOnly)
    var rows: [String: [String: String]] = [:]
    for row in try database.query("SELECT step_id, name, value FROM step_outputs WHERE run_id = ?", runID) {
        rows[row.string(0) ?? "", default: [:]][row.string(1) ?? ""] = row.string(2) ?? ""
    }
    return rows
}

/// A JSON string literal of `text`.
private func quoted(_ text: String) -> String { JSONValue.string(text).serialized() }

/// A step running `sh -c script sh ARGS...` (`$1`... are `arguments`, which may use outputs).
private func shellStep(_ id: String, _ script: String, arguments: [String], deps: [String] = [], extra: String = "") -> String {
    let argv = (["-c", script, "sh"] + arguments).map(quoted).joined(separator: ", ")
    let dependencies = deps.map(quoted).joined(separator: ", ")
    return "{\"id\": \(quoted(id)), \"command\": \"sh\", \"args\": [\(argv)], \"depends_on\": [\(dependencies)]"
        + (extra.isEmpty ? "" : ", " + extra) + "}"
}

@Suite("Step outputs end to end: $OMNIBASE_OUTPUT and ${steps.ID.outputs.NAME} (SPEC §11)", .serialized,
       .timeLimit(.minutes(3)))
struct StepOutputsCLITests {
    /// A value with spaces, both quotes, `$`, `${x}` (a variable of the plan), `$(...)` and
    /// newlines reaches the consumer byte for byte: as one argv element, as an environment
    /// variable, and the consumer's program and folder come from outputs too.
    @Test func aTrickyValueArrivesVerbatimAsOneArgument() async throws {
        let dir = TempDir()
        let value = "a b  \"c\" 'd' $HOME ${x} $(echo no) `id`\nsecond line\n\nlast"
        _ = dir.write("value.txt", value)
        try FileManager.default.createDirectory(atPath: dir.path + "/work", withIntermediateDirectories: true)
        let producer = stepJSON("make", "{ echo 'v<<EOF_V'; cat value.txt; echo; echo EOF_V; echo shell=sh; echo dir=work; } >> \"$OMNIBASE_OUTPUT\"")
        let consumer = """
            {"id": "use", "depends_on": ["make"], "command": "${steps.make.outputs.shell}",
             "args": ["-c", "printf '%s' \\"$#\\" > ../argc; printf '%s' \\"$1\\" > ../arg1; printf '%s' \\"$V\\" > ../env; pwd > ../cwd", "sh",
                      "${steps.make.outputs.v}"],
             "cwd": "${steps.make.outputs.dir}", "env": {"V": "<${steps.make.outputs.v}>"}}
            """
        let plan = dir.write("p.json", planJSON([producer, consumer], variables: #"{"x": "EXPANDED"}"#))
        let result = await runCLI(["run", plan, "--format", "json", "--state-dir", dir.path + "/s"], in: dir.path)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(dir.read("argc") == "1", "one argv element")
        #expect(dir.read("arg1") == value)
        #expect(dir.read("env") == "<\(value)>")
        #expect(dir.read("cwd") == dir.path + "/work\n", "a relative folder resolves against the plan's")
        let report = try result.json()
        #expect(report.stepReport("make")?["outputs"]?["v"]?.stringValue == value)
        #expect(report.stepReport("use")?["outputs"] == nil, "a step without outputs has no key")
    }

    /// `NAME<<DELIM` blocks keep their lines (empty ones too); a later write of a name wins.
    @Test func aMultiLineBlockAndTheLastWriteOfANameWins() async throws {
        let dir = TempDir()
        let producer = stepJSON("make", "printf 'v=first\\nnotes<<END\\nl1\\n\\nl3 = x << y\\nEND\\n\\nv=second=2\\nempty=\\n' >> \"$OMNIBASE_OUTPUT\"")
        let consumer = #"{"id": "use", "depends_on": ["make"], "command": "sh", "args": ["-c", "printf '%s|%s|%s' \"$1\" \"$2\" \"$3\" > got", "sh", "${steps.make.outputs.v}", "${steps.make.outputs.notes}", "${steps.make.outputs.empty}"]}"#
        let plan = dir.write("p.json", planJSON([producer, consumer]))
        let state = dir.path + "/s"
        let result = await runCLI(["run", plan, "--format", "json", "--state-dir", state], in: dir.path)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(dir.read("got") == "second=2|l1\n\nl3 = x << y|")
        let runID = try #require(try result.json()["run_id"]?.stringValue)
        #expect(try storedOutputs(state, runID) == ["make": ["v": "second=2", "notes": "l1\n\nl3 = x << y", "empty": ""]])
        let shown = await runCLI(["runs", "show", runID, "--format", "json", "--state-dir", state], in: dir.path)
        let outputs = try #require(try shown.json().stepReport("make")?["outputs"]?.objectValue)
        #expect(outputs.map(\.key) == ["v", "notes", "empty"], "in the order the names first appear")
        #expect(outputs.first?.value.stringValue == "second=2")
        let human = await runCLI(["runs", "show", runID, "--format", "human", "--state-dir", state], in: dir.path)
        #expect(human.stdout.contains("        v = second=2\n        notes = l1\\n\\nl3 = x << y\n"), "\(human.stdout)")
    }

    /// An output the producer did not write fails the consumer's attempt before its process
    /// starts, with the reason, and is not retried; the producer and the rest of the run are
    /// untouched.
    @Test func aMissingOutputFailsOnlyTheConsumer() async throws {
        let dir = TempDir()
        let plan = dir.write("p.json", planJSON([
            stepJSON("build", "echo name=app >> \"$OMNIBASE_OUTPUT\""),
            shellStep("use", "touch ran", arguments: ["${steps.build.outputs.version}"], deps: ["build"],
                      extra: #""retries": 3, "critical": false"#),
            stepJSON("other", "echo \"$N\" > other", deps: ["build"], extra: #""env": {"N": "${steps.build.outputs.name}"}"#),
        ]))
        let result = await runCLI(["run", plan, "--format", "json", "--state-dir", dir.path + "/s"], in: dir.path)
        #expect(result.status == 0, "the consumer is not critical")
        let report = try result.json()
        #expect(report.stepReport("build")?["status"]?.stringValue == "succeeded")
        #expect(report.stepReport("other")?["status"]?.stringValue == "succeeded")
        #expect(dir.read("other") == "app\n")
        let use = try #require(report.stepReport("use"))
        #expect(use["status"]?.stringValue == "failed")
        #expect(use["attempts"]?.intValue == 1, "a retry cannot make the output appear")
        #expect(use["exit_code"] == .null)
        #expect(use["error"]?.stringValue == "step build did not write output version, which ${steps.build.outputs.version} "
                + "needs (not retried: the outputs it uses cannot change on a retry)")
        #expect(dir.read("ran") == nil, "no process started")
    }

    /// Malformed outputs fail the producer's attempt with the reason (retries apply); its
    /// dependents are skipped (it is not critical).
    @Test(arguments: [
        ("echo 'no equals here' >> \"$OMNIBASE_OUTPUT\"", "$OMNIBASE_OUTPUT line 1 is neither NAME=VALUE nor NAME<<DELIMITER"),
        ("printf 'a=1\\nx<<EOF\\nline\\n' >> \"$OMNIBASE_OUTPUT\"", "$OMNIBASE_OUTPUT line 2: the block x<<EOF has no closing line EOF"),
        ("echo '1x=2' >> \"$OMNIBASE_OUTPUT\"", "$OMNIBASE_OUTPUT line 1: \"1x\" is not a valid output name"),
        ("echo 'my-name=2' >> \"$OMNIBASE_OUTPUT\"", "$OMNIBASE_OUTPUT line 1: \"my-name\" is not a valid output name"),
        ("{ printf 'v='; head -c 1048576 /dev/zero | tr '\\\\0' a; } >> \"$OMNIBASE_OUTPUT\"",
         "outputs refused: it wrote 1048578 bytes of outputs to $OMNIBASE_OUTPUT; the limit is 1 MiB (1048576 bytes) per step"),
    ])
    func malformedOrOversizedOutputsFailTheProducer(_ script: String, _ reason: String) async throws {
        let dir = TempDir()
        let plan = dir.write("p.json", planJSON([
            stepJSON("make", script + "; echo \"$OMNIBASE_ATTEMPT\" >> attempts", extra: #""retries": 1, "critical": false"#),
            stepJSON("use", "true", deps: ["make"]),
        ]))
        let result = await runCLI(["run", plan, "--format", "json", "--state-dir", dir.path + "/s"], in: dir.path)
        #expect(result.status == 1, "a step was skipped: the run did not succeed")
        let report = try result.json()
        let make = try #require(report.stepReport("make"))
        #expect(make["status"]?.stringValue == "failed")
        #expect(make["exit_code"]?.intValue == 0, "the process itself succeeded")
        #expect(make["attempts"]?.intValue == 2, "refused outputs fail the attempt: retries apply")
        #expect(dir.read("attempts") == "1\n2\n")
        let error = try #require(make["error"]?.stringValue)
        #expect(error.hasPrefix("outputs refused: "), "\(error)")
        #expect(error.contains(reason), "\(error)")
        #expect(make["outputs"] == nil)
        #expect(report.stepReport("use")?["status"]?.stringValue == "skipped")
    }

    /// An output reference to an unknown step, to a step that is not a dependency, to the step
    /// itself, or where outputs cannot be used: exit 2, located, nothing recorded.
    @Test(arguments: ["validate", "run"])
    func badReferencesAreLocatedLoadErrors(_ command: String) async throws {
        let cases: [(steps: [String], globals: String, message: String)] = [
            ([#"{"id": "build", "command": "true"}"#,
              #"{"id": "use", "command": "echo", "args": ["x", "${steps.biuld.outputs.v}"], "depends_on": ["build"]}"#],
             "{}", "p.json:3:48: steps[1].args[1]: step \"use\" uses ${steps.biuld.outputs.v}, but there is no step \"biuld\" (did you mean \"build\"?)"),
            ([#"{"id": "build", "command": "true"}"#, #"{"id": "lint", "command": "true", "depends_on": ["build"]}"#,
              #"{"id": "use", "command": "echo", "env": {"A": "${steps.lint.outputs.v}"}, "depends_on": ["build"]}"#],
             "{}", "p.json:4:47: steps[2].env.A: step \"use\" uses ${steps.lint.outputs.v}, but \"lint\" is not among its dependencies"),
            ([#"{"id": "a", "command": "true"}"#, #"{"id": "b", "command": "true", "cwd": "${steps.b.outputs.dir}", "depends_on": ["a"]}"#],
             "{}", "p.json:3:39: steps[1].cwd: step \"b\" uses its own output ${steps.b.outputs.dir}"),
            ([#"{"id": "a", "command": "true"}"#],
             #"{"env": {"X": "${steps.a.outputs.v}"}}"#, "p.json:1:76: globals.env.X: ${steps.a.outputs.v}: step outputs can only be used in a step's command, args, cwd and env"),
            ([#"{"id": "a", "command": "true"}"#, #"{"id": "b", "command": "${steps.a.outputs.bad-name}", "depends_on": ["a"]}"#],
             "{}", "p.json:3:24: steps[1].command: malformed output reference ${steps.a.outputs.bad-name} in step \"b\""),
        ]
        for (steps, globals, message) in cases {
            let dir = TempDir()
            let plan = dir.write("p.json", planJSON(steps, globals: globals))
            var arguments = [command, plan]
            if command == "run" { arguments += ["--state-dir", dir.path + "/s"] }
            let result = await runCLI(arguments, in: dir.path)
            #expect(result.status == 2, "\(message): \(result.stderr)")
            #expect(result.stdout.isEmpty)
            #expect(result.stderr.split(separator: "\n").count == 1, "\(result.stderr)")
            #expect(result.stderr.hasPrefix("omnibase-agents: error: \(dir.path)/\(message)"), "\(result.stderr)")
            if command == "run", FileManager.default.fileExists(atPath: dir.path + "/s/runs.db") {
                let database = try SQLiteDatabase(path: dir.path + "/s/runs.db", mode: .readOnly)
                #expect(try database.query("SELECT run_id FROM runs").isEmpty, "a rejected plan is never recorded as a run")
            }
        }
    }

    /// A downstream failure, then `resume`: the producer is not run again and its consumer gets
    /// the outputs from the first session; `replay` runs the producer again and gets new ones.
    @Test func resumeKeepsTheOutputsOfSucceededStepsAndReplayMakesThemAnew() async throws {
        let dir = TempDir()
        let plan = dir.write("p.json", planJSON([
            stepJSON("make", "echo run >> made; echo \"v=run $(wc -l < made) of make\" >> \"$OMNIBASE_OUTPUT\""),
            shellStep("use", "[ -f ok ] && printf '%s\\n' \"$1\" >> got", arguments: ["${steps.make.outputs.v}"], deps: ["make"]),
        ]))
        let state = dir.path + "/s"
        let first = await runCLI(["run", plan, "--format", "json", "--state-dir", state], in: dir.path)
        #expect(first.status == 1)
        let runID = try #require(try first.json()["run_id"]?.stringValue)
        _ = dir.write("ok", "")
        let resumed = await runCLI(["resume", runID, "--format", "json", "--state-dir", state], in: dir.path)
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(dir.read("made") == "run\n", "the producer succeeded before: not run again")
        #expect(dir.read("got") == "run 1 of make\n")
        let resumedReport = try resumed.json()
        #expect(resumedReport.stepReport("make")?["outputs"]?["v"]?.stringValue == "run 1 of make")
        let replayed = await runCLI(["replay", runID, "--format", "json", "--state-dir", state], in: dir.path)
        #expect(replayed.status == 0, "\(replayed.stderr)")
        #expect(dir.read("got") == "run 1 of make\nrun 2 of make\n")
        let replayID = try #require(try replayed.json()["run_id"]?.stringValue)
        #expect(try storedOutputs(state, replayID) == ["make": ["v": "run 2 of make"]])
        #expect(try storedOutputs(state, runID) == ["make": ["v": "run 1 of make"]])
    }

    /// `kill -9` of the engine while the consumer runs (the producer's success and outputs are
    /// committed, in `runs.db` or in the run's commit record: the consumer only starts once they
    /// are durable); `resume` gives the consumer's next attempt the same outputs without running
    /// the producer again.
    @Test func resumeAfterKillNineBetweenProducerAndConsumerKeepsTheOutputs() async throws {
        let dir = TempDir()
        let consumer = "echo $PPID > engine; printf '%s\\n' \"$1\" >> got; [ -f go ] || sleep 120"
        let plan = dir.write("p.json", planJSON([
            stepJSON("make", "echo run >> made; echo \"TOKEN_FREE=v-$$$$\" >> \"$OMNIBASE_OUTPUT\""),
            shellStep("use", consumer, arguments: ["${steps.make.outputs.TOKEN_FREE}"], deps: ["make"]),
        ]))
        let state = dir.path + "/s"
        let folder = dir.path
        let running = Task { await runCLI(["run", plan, "--format", "json", "--state-dir", state], in: folder) }
        let got = try await waitForFile(dir.path + "/got")
        let engine = try #require(Int32(try await waitForFile(dir.path + "/engine").trimmingCharacters(in: .whitespacesAndNewlines)))
        kill(engine, SIGKILL)
        #expect(await running.value.status == 128 + SIGKILL)
        let runID = try #require(try FileManager.default.contentsOfDirectory(atPath: state + "/runs").first)
        let value = got.trimmingCharacters(in: .newlines)
        let record = (try? String(contentsOfFile: "\(state)/runs/\(runID)/committed", encoding: .utf8)) ?? ""
        #expect(try storedOutputs(state, runID)["make"]?["TOKEN_FREE"] == value
                || record.contains("\"values\":{\"TOKEN_FREE\":\"\(value)\"}"), "the producer's output was not committed")
        _ = dir.write("go", "")
        let resumed = await runCLI(["resume", runID, "--format", "json", "--state-dir", state], in: dir.path)
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(dir.read("made") == "run\n", "the producer is not run again")
        #expect(dir.read("got") == got + got, "the consumer's second attempt got the same value")
        #expect(try storedOutputs(state, runID)["make"]?["TOKEN_FREE"] == value)
        #expect(try resumed.json().stepReport("use")?["attempts"]?.intValue == 2)
    }

    /// The value of an output whose name looks secret never shows: not in `run`, `runs show`
    /// (human, JSON, YAML), `runs events`, `events.jsonl`, the `events` table, the failure
    /// snapshot or the HTML report, even where a step prints it to its stderr. Only
    /// `step_outputs` holds it, for the steps that use it.
    @Test func aSecretOutputIsMaskedWhereverItWouldShow() async throws {
        let dir = TempDir()
        let secret = "tok-\(UInt64.random(in: 1 << 40 ..< 1 << 50))"
        let plan = dir.write("p.json", planJSON([
            stepJSON("login", "echo API_TOKEN=\(secret) >> \"$OMNIBASE_OUTPUT\"; echo plain=visible >> \"$OMNIBASE_OUTPUT\""),
            stepJSON("deploy", "echo \"deploying with $T\" >&2; exit 4", deps: ["login"],
                     extra: #""env": {"T": "${steps.login.outputs.API_TOKEN}"}"#),
        ]))
        let state = dir.path + "/s"
        var seen: [(String, String)] = []
        let run = await runCLI(["run", plan, "--format", "human", "--state-dir", state], in: dir.path)
        #expect(run.status == 1)
        seen.append(("run", run.stdout + run.stderr))
        #expect(run.stdout.contains("deploying with ***"), "the failure tail is masked: \(run.stdout)")
        let runID = try #require(try FileManager.default.contentsOfDirectory(atPath: state + "/runs").first)
        for format in ["human", "json", "yaml"] {
            let shown = await runCLI(["runs", "show", runID, "--format", format, "--state-dir", state], in: dir.path)
            #expect(shown.status == 0)
            #expect(shown.stdout.contains("***"))
            #expect(shown.stdout.contains("visible"))
            seen.append(("runs show --format \(format)", shown.stdout))
        }
        let shownJSON = await runCLI(["runs", "show", runID, "--format", "json", "--state-dir", state], in: dir.path)
        #expect(try shownJSON.json().stepReport("login")?["outputs"]?["API_TOKEN"]?.stringValue == "***")
        let events = await runCLI(["runs", "events", runID, "--format", "jsonl", "--state-dir", state], in: dir.path)
        seen.append(("runs events", events.stdout))
        seen.append(("events.jsonl", try String(contentsOfFile: "\(state)/runs/\(runID)/events.jsonl", encoding: .utf8)))
        let database = try SQLiteDatabase(path: state + "/runs.db", mode: .readOnly)
        let data = try database.query("SELECT coalesce(data, '') FROM events WHERE run_id = ?", runID).map { $0.string(0) ?? "" }
        #expect(data.contains { $0.contains("\"API_TOKEN\":\"***\"") })
        seen.append(("events table", data.joined(separator: "\n")))
        let snapshot = "\(state)/\(FailureSnapshot.relativePath(runID: runID))"
        let files = try FileManager.default.subpathsOfDirectory(atPath: snapshot)
        let stderrTail = try #require(files.first { $0.hasSuffix("deploy.1.err") }, "\(files)")
        #expect(try String(contentsOfFile: snapshot + "/" + stderrTail, encoding: .utf8).contains("deploying with ***"))
        for file in files {
            seen.append(("failure snapshot \(file)", (try? String(contentsOfFile: snapshot + "/" + file, encoding: .utf8)) ?? ""))
        }
        let html = await runCLI(["report", runID, "--html", dir.path + "/r.html", "--state-dir", state], in: dir.path)
        #expect(html.status == 0, "\(html.stderr)")
        let page = try #require(dir.read("r.html"))
        #expect(page.contains("<dt>API_TOKEN</dt><dd>***</dd>"))
        #expect(page.contains("deploying with ***"))
        seen.append(("HTML report", page))
        for (place, text) in seen {
            #expect(!text.contains(secret), "the secret output's value shows in \(place)")
        }
        #expect(try storedOutputs(state, runID)["login"]?["API_TOKEN"] == secret)
    }

    /// An output whose value holds a secret variable's value is secret whatever its name: its
    /// events (events.jsonl, the events table, and so the monitor's API and pages, which read
    /// them) show `***`. They held the value, masked only where the CLI printed it. The step
    /// that uses the output still gets it verbatim.
    @Test func anOutputHoldingASecretValueIsMaskedInTheEventsAndTheMonitor() async throws {
        let dir = TempDir()
        let secret = "pw-\(UInt64.random(in: 1 << 40 ..< 1 << 50))"
        let plan = dir.write("p.json", planJSON([
            stepJSON("a", "echo COPY=$P >> \"$OMNIBASE_OUTPUT\"; printf 'ML<<EOF\\nline1 %s\\nEOF\\n' \"$P\" >> \"$OMNIBASE_OUTPUT\"; "
                     + "echo plain=visible >> \"$OMNIBASE_OUTPUT\"", extra: #""env": {"P": "${DB_PASSWORD}"}"#),
            stepJSON("b", "printf %s \"$C\" > used.txt", deps: ["a"], extra: #""env": {"C": "${steps.a.outputs.COPY}"}"#),
        ], variables: "{\"DB_PASSWORD\": \"\(secret)\"}"))
        let state = dir.path + "/s"
        let run = await runCLI(["run", plan, "--format", "json", "--state-dir", state], in: dir.path)
        #expect(run.status == 0, "\(run.stderr)")
        #expect(dir.read("used.txt") == secret, "the consumer gets the value verbatim")
        let runID = try #require(try run.json()["run_id"]?.stringValue)
        let events = try String(contentsOfFile: "\(state)/runs/\(runID)/events.jsonl", encoding: .utf8)
        #expect(events.contains("\"COPY\":\"***\"") && events.contains("visible"), "\(events)")
        let database = try SQLiteDatabase(path: state + "/runs.db", mode: .readOnly)
        let data = try database.query("SELECT coalesce(data, '') FROM events WHERE run_id = ?", runID).map { $0.string(0) ?? "" }
        let directory = try StateDirectory(path: state)
        let store = try RunStore(stateDirectory: directory, readOnly: true)
        var live = try #require(try LiveRun.load(runID: runID, store: store, directory: directory))
        live.prepare(store: store, directory: directory)
        let page = live.page.renderContent()
        #expect(page.contains("<dt>COPY</dt><dd>***</dd>"), "\(page)")
        for (place, text) in [("events.jsonl", events), ("events table", data.joined(separator: "\n")), ("monitor page", page)] {
            #expect(!text.contains(secret), "the secret value shows in \(place)")
        }
        #expect(try storedOutputs(state, runID)["a"]?["COPY"] == secret)
    }

    /// The live monitor's page, loaded before a secret output existed, masks its value in the
    /// log tails it reads after the output appears (the page is not loaded again).
    @Test func theMonitorMasksASecretOutputThatAppearsWhileItWatches() async throws {
        let dir = TempDir()
        let secret = "tok-\(UInt64.random(in: 1 << 40 ..< 1 << 50))"
        let plan = dir.write("p.json", planJSON([
            stepJSON("gate", "[ -f open ]"),
            stepJSON("login", "echo API_TOKEN=\(secret) >> \"$OMNIBASE_OUTPUT\"", deps: ["gate"]),
            stepJSON("deploy", "echo \"deploying with $T\" >&2; exit 4", deps: ["login"],
                     extra: #""env": {"T": "${steps.login.outputs.API_TOKEN}"}"#),
        ]))
        let state = dir.path + "/s"
        let first = await runCLI(["run", plan, "--format", "json", "--state-dir", state], in: dir.path)
        #expect(first.status == 1)
        let runID = try #require(try first.json()["run_id"]?.stringValue)
        let directory = try StateDirectory(path: state)
        let store = try RunStore(stateDirectory: directory, readOnly: true)
        var live = try #require(try LiveRun.load(runID: runID, store: store, directory: directory))
        _ = dir.write("open", "")
        let resumed = await runCLI(["resume", runID, "--format", "json", "--state-dir", state], in: dir.path)
        #expect(resumed.status == 1)
        #expect(!(try live.update(store: store)).isEmpty)
        live.prepare(store: store, directory: directory)
        let page = live.page.renderContent()
        #expect(page.contains("deploying with ***"), "the tail was read again")
        #expect(page.contains("<dt>API_TOKEN</dt><dd>***</dd>"))
        #expect(!page.contains(secret))
    }

    /// A step that runs as a Slurm job writes its outputs file in the run's folder, which the
    /// loopback cluster's node shares; the engine reads it after the job (`sbatch` on the PATH,
    /// as the other Slurm tests).
    @Test(.enabled(if: slurmTestsEnabled)) func aSlurmStepWritesOutputsToTheSharedStateFolder() async throws {
        let dir = TempDir()
        let consumer = "printf '%s' \"$1\" > \"$D/got\""
        let plan = dir.write("p.json", planJSON([
            stepJSON("make", "printf 'v<<EOF\\nfrom %s\\nsecond line\\nEOF\\n' \"$SLURM_JOB_ID\" >> \"$OMNIBASE_OUTPUT\""),
            shellStep("use", consumer, arguments: ["${steps.make.outputs.v}"], deps: ["make"],
                      extra: "\"env\": {\"D\": \(quoted(dir.path))}"),
        ]))
        let result = await runCLI(["run", plan, "--executor", "slurm", "--format", "json", "--state-dir", dir.path + "/s"],
                                  in: dir.path)
        #expect(result.status == 0, "\(result.stderr)")
        let report = try result.json()
        let jobID = try #require(report.stepReport("make")?["job_id"]?.stringValue)
        #expect(dir.read("got") == "from \(jobID)\nsecond line")
        #expect(report.stepReport("make")?["outputs"]?["v"]?.stringValue == "from \(jobID)\nsecond line")
    }
}
