import COmnibaseShims
import Foundation
import Testing
@testable import Orchestration

/// Issue 11, items 4, 5 and 9: output is never dropped silently, a failed step's output is never
/// read whole into memory, and secrets never reach what the engine writes for people.
@Suite("Output safety: lost logs, bounded snapshots, masked secrets", .serialized, .timeLimit(.minutes(5)))
struct OutputSafetyTests {
    // MARK: - Item 4: step output dropped without a word

    @Test func aStepIDOverTheLimitIsRefusedAtLoadWithItsLocation() async throws {
        let dir = TempDir()
        let limit = 200
        let tooLong = String(repeating: "a", count: limit + 1)
        let plan = dir.write("p.json", planJSON([stepJSON("ok", "true"), stepJSON(tooLong, "echo hi")]))
        for command in ["validate", "run"] {
            let result = await runCLI([command, plan, "--state-dir", dir.path + "/s"], in: dir.path)
            #expect(result.status == 2, "\(command)")
            #expect(result.stderr.contains("p.json:3:8: steps[1].id:"), "\(result.stderr)")
            #expect(result.stderr.contains("201 characters long; the limit is 200"), "\(result.stderr)")
            #expect(result.stderr.split(separator: "\n").count == 1)
        }
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/s/runs.db"), "nothing was recorded")
        // The longest id allowed gets its logs whatever the attempt number's width.
        #expect(limit + ".\(Int.max).out".utf8.count <= Int(NAME_MAX))
        let longest = String(repeating: "b", count: limit)
        let fits = dir.write("fits.json", planJSON([stepJSON(longest, "echo logged")]))
        let ran = await runCLI(["run", fits, "--format", "json", "--state-dir", dir.path + "/s"], in: dir.path)
        #expect(ran.status == 0, "\(ran.stderr)")
        let runID = try #require(try ran.json()["run_id"]?.stringValue)
        #expect(dir.read("s/runs/\(runID)/logs/\(longest).1.out") == "logged\n")
    }

    @Test func aLogThatCannotBeWrittenFailsTheAttemptWithTheReason() async throws {
        let dir = TempDir()
        let state = dir.path + "/s"
        // The step puts a symbolic link where its own stdout log is about to be created, then
        // prints: the engine refuses to follow the link, so that output cannot be stored.
        let script = "ln -s \(dir.path)/target \"$S/runs/$OMNIBASE_RUN_ID/logs/$OMNIBASE_STEP_ID.$OMNIBASE_ATTEMPT.out\"; "
            + "echo lost-output; echo kept >&2"
        let plan = dir.write("p.json", planJSON([stepJSON("linked", script, extra: "\"env\": {\"S\": \"\(state)\"}"),
                                                 stepJSON("after", "true", deps: ["linked"])]))
        let result = await runCLI(["run", plan, "--format", "json", "--state-dir", state], in: dir.path)
        #expect(result.status == 1, "a lost log is not a success: \(result.stdout) \(result.stderr)")
        let report = try result.json()
        let runID = try #require(report["run_id"]?.stringValue)
        let step = try #require(report.stepReport("linked"))
        #expect(step["status"]?.stringValue == "failed")
        #expect(step["exit_code"]?.intValue == 0, "the process itself succeeded")
        let logPath = "\(state)/runs/\(runID)/logs/linked.1.out"
        // O_EXCL meets the link first (EEXIST); without O_EXCL, O_NOFOLLOW would refuse it (ELOOP).
        let reason = "cannot create the stdout log \(logPath): something is already there (a log is never overwritten)"
        #expect(step["error"]?.stringValue == reason)
        #expect(report.stepReport("after")?["status"]?.stringValue == "cancelled")
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/target"), "the link was not followed")
        #expect(dir.read("s/runs/\(runID)/logs/linked.1.err") == "kept\n")
        // The reason is in the events and in `runs show`.
        let events = await runCLI(["runs", "events", runID, "--format", "jsonl", "--state-dir", state], in: dir.path)
        let failed = events.stdout.split(separator: "\n").compactMap { try? StrictJSONParser.parse(Array($0.utf8)).toValue() }
            .filter { $0["type"]?.stringValue == "step_attempt_failed" }
        #expect(failed.count == 1)
        #expect(failed.first?["data"]?["error"]?.stringValue == reason)
        let shown = await runCLI(["runs", "show", runID, "--format", "json", "--state-dir", state], in: dir.path)
        #expect(try shown.json().stepReport("linked")?["error"]?.stringValue == reason)
    }
}

extension OutputSafetyTests {
    // MARK: - Item 5: a failed step's output is never read whole into memory

    @Test func aHugeFailingOutputLeavesABoundedSnapshotAndFlatEngineMemory() async throws {
        let dir = TempDir()
        let megabytes = 96
        let loud = "head -c \(megabytes * 1_000_000) /dev/zero | tr '\\0' 'x'; printf '\\nlast line\\n'"
        let plan = dir.write("p.json", planJSON([
            stepJSON("loud-ok", loud),
            stepJSON("loud-fail", "\(loud); head -c 3000000 /dev/zero | tr '\\0' 'e' >&2; printf '\\nthe-end\\n' >&2; exit 4"),
        ], globals: "{\"max_concurrency\": 1}"))
        let state = dir.path + "/s"
        let measured = try await runMeasuringPeakMemory([cliPath, "run", plan, "--format", "json", "--state-dir", state]) {
            // The snapshot's last file: the engine is done with it and about to print its report.
            let runs = (try? FileManager.default.contentsOfDirectory(atPath: state + "/runs")) ?? []
            return runs.contains { FileManager.default.fileExists(atPath: "\(state)/runs/\($0)/snapshot/steps/loud-fail/loud-fail.1.err") }
        }
        #expect(measured.status == 1)
        let report = try StrictJSONParser.parse(Array(measured.stdout.utf8)).toValue()
        #expect(report.stepReport("loud-ok")?["status"]?.stringValue == "succeeded")
        #expect(report.stepReport("loud-fail")?["status"]?.stringValue == "failed")
        let runID = try #require(report["run_id"]?.stringValue)
        // The engine never held the output: its peak stays near its own size (about 30 MiB),
        // far below one copy of either step's output (96 MB), let alone two.
        #expect(measured.peakKiB < 80 * 1024, "peak RSS \(measured.peakKiB) KiB for \(megabytes) MB of output")
        let steps = "\(dir.path)/s/runs/\(runID)/snapshot/steps/loud-fail"
        for (suffix, size, last) in [("out", megabytes * 1_000_000 + 11, "last line\n"), ("err", 3_000_009, "the-end\n")] {
            let path = "\(steps)/loud-fail.1.\(suffix)"
            let bytes = try #require(FileManager.default.contents(atPath: path))
            #expect(bytes.count <= FailureSnapshot.logTailBytes + 200, "\(suffix): \(bytes.count) bytes")
            let text = String(decoding: bytes, as: UTF8.self)
            let firstLine = String(text.prefix { $0 != "\n" })
            let kept = text.utf8.count - firstLine.utf8.count - 1
            #expect(firstLine == "[omnibase: the first \(size - kept) of \(size) bytes were cut; "
                    + "the whole log is runs/\(runID)/logs/loud-fail.1.\(suffix)]")
            #expect(text.hasSuffix(last))
            // The whole log is still there, untouched.
            var info = stat()
            #expect(stat("\(dir.path)/s/runs/\(runID)/logs/loud-fail.1.\(suffix)", &info) == 0 && Int(info.st_size) == size)
        }
        #expect(!FileManager.default.fileExists(atPath: "\(dir.path)/s/runs/\(runID)/snapshot/steps/loud-ok"))
    }

    @Test func aShortLogIsCopiedWholeWithoutANote() throws {
        let dir = TempDir()
        let log = dir.write("short.log", "one\ntwo\n")
        #expect(FailureSnapshot.logTail(path: log, displayPath: "x", maxBytes: 100) == Array("one\ntwo\n".utf8))
        // Cut at a line start; a single long line is cut anywhere, but never inside a character.
        #expect(FailureSnapshot.logTail(path: log, displayPath: "x", maxBytes: 6)
                == Array("[omnibase: the first 4 of 8 bytes were cut; the whole log is x]\ntwo\n".utf8))
        let wide = dir.write("wide.log", String(repeating: "é", count: 10))
        #expect(FailureSnapshot.logTail(path: wide, displayPath: "x", maxBytes: 5)
                == Array("[omnibase: the first 16 of 20 bytes were cut; the whole log is x]\néé".utf8))
        #expect(FailureSnapshot.logTail(path: dir.path + "/missing", displayPath: "x", maxBytes: 5) == nil)
    }
}

/// What a program measured by ``runMeasuringPeakMemory(_:until:)`` did.
struct MeasuredRun {
    var status: Int32
    var stdout: String
    /// The program's peak resident set (`VmHWM`), in KiB.
    var peakKiB: Int
}

/// Runs a program whose stdout is written only at its end, and reads its own peak memory
/// (`VmHWM` in `/proc/PID/status`, counted from its `exec`) once `finished` exists.
///
/// `ru_maxrss` from `wait4` would not do: a child that shares the spawning process's memory
/// until its exec (as the engine's spawn does) counts that process's own peak as its starting
/// point. To read `VmHWM` before the process exits, its
/// stdout is a pipe filled to the brim beforehand: its first write blocks until the pipe is read.
func runMeasuringPeakMemory(_ argv: [String], until finished: @escaping @Sendable () -> Bool) async throws -> MeasuredRun {
    var ends: [Int32] = [-1, -1]
    // Both ends close-on-exec from the start (no other test's child may inherit the write end).
    guard omni_output_pipe(&ends) == 0 else { throw POSIXError(.EMFILE) }
    defer { close(ends[0]) }
    _ = fcntl(ends[0], F_SETFL, 0)
    // Fill the pipe (non-blocking only while filling: the flag is shared with the child's copy).
    _ = fcntl(ends[1], F_SETFL, O_NONBLOCK)
    let chunk = [UInt8](repeating: UInt8(ascii: "#"), count: 4096)
    var filler = 0
    while true {
        let count = chunk.withUnsafeBytes { write(ends[1], $0.baseAddress, $0.count) }
        guard count > 0 else { break }
        filler += count
    }
    _ = fcntl(ends[1], F_SETFL, 0)
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_adddup2(&actions, ends[1], 1)
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
    var environment = ProcessInfo.processInfo.environment
    environment["NO_COLOR"] = "1"
    environment["OMNIBASE_STATE_DIR"] = nil
    let cArguments = argv.map { strdup($0) } + [nil]
    let cEnvironment = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer {
        cArguments.forEach { free($0) }
        cEnvironment.forEach { free($0) }
    }
    var pid: pid_t = 0
    let spawned = posix_spawn(&pid, argv[0], &actions, nil, cArguments, cEnvironment)
    close(ends[1])
    guard spawned == 0 else { throw POSIXError(POSIXErrorCode(rawValue: spawned) ?? .EINVAL) }
    let deadline = Date().addingTimeInterval(120)
    while !finished() && isAlive(pid) && Date() < deadline { try await Task.sleep(for: .milliseconds(20)) }
    let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
    let peak = status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") }
        .flatMap { Int($0.dropFirst(6).trimmingCharacters(in: .whitespaces).dropLast(3).trimmingCharacters(in: .whitespaces)) }
    let source = ends[0]
    let (exitStatus, output) = await withCheckedContinuation { (continuation: CheckedContinuation<(Int32, [UInt8]), Never>) in
        let child = pid
        Thread.detachNewThread {
            var bytes: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let count = buffer.withUnsafeMutableBytes { read(source, $0.baseAddress, $0.count) }
                if count < 0 && errno == EINTR { continue }
                guard count > 0 else { break }
                bytes += buffer[0..<count]
            }
            var status: Int32 = 0
            while waitpid(child, &status, 0) < 0 && errno == EINTR {}
            continuation.resume(returning: (status & 0x7F == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F), bytes))
        }
    }
    #expect(peak != nil, "no VmHWM in /proc/\(pid)/status: \(status)")
    return MeasuredRun(status: exitStatus, stdout: String(decoding: output.dropFirst(filler), as: UTF8.self),
                       peakKiB: peak ?? Int.max)
}

extension OutputSafetyTests {
    // MARK: - Item 9: secrets never reach what the engine writes for people

    static let secretPlan = """
    {"plan_id": "SEC", "version": "1", "variables": {"NOT_SECRET": "word-rule-value", "PLAIN": "plain-value"},
     "globals": {"secrets": ["DEPLOY_CONN"], "env": {"API_TOKEN": "tok-plan-777"}},
     "steps": [{"id": "leak", "command": "sh",
                "args": ["-c", "echo pw=$DB_PASSWORD conn=$DEPLOY_CONN tok=$API_TOKEN ns=$NOT_SECRET short=$S plain=${PLAIN}; echo err:$DB_PASSWORD:$DEPLOY_CONN >&2; exit 2"],
                "env": {"DB_PASSWORD": "${DB_PASSWORD}", "DEPLOY_CONN": "${DEPLOY_CONN}", "NOT_SECRET": "${NOT_SECRET}",
                        "S": "${SHORT_KEY}"}},
               {"id": "nocmd", "command": "/nonexistent/${DB_PASSWORD}"}]}
    """
    static let secretVars = ["--var", "DB_PASSWORD=hunter2-pw", "--var", "DEPLOY_CONN=conn-xyz", "--var", "SHORT_KEY=ab"]
    /// Every secret value of ``secretPlan`` long enough to be masked.
    static let secretValues = ["hunter2-pw", "conn-xyz", "tok-plan-777", "word-rule-value"]

    /// A run of ``secretPlan`` with ``secretVars`` in `dir`'s state folder `s`: the folder and the run's id.
    static func secretRun(_ dir: TempDir) async throws -> (state: String, runID: String) {
        let state = dir.path + "/s"
        let plan = dir.write("p.json", secretPlan)
        let run = await runCLI(["run", plan, "--format", "json", "--state-dir", state] + secretVars, in: dir.path)
        return (state, try #require(try run.json()["run_id"]?.stringValue))
    }

    func expectNoSecret(_ text: String, _ surface: String, sourceLocation: Testing.SourceLocation = #_sourceLocation) {
        for value in Self.secretValues {
            #expect(!text.contains(value), "\(surface) shows \(value)", sourceLocation: sourceLocation)
        }
    }

    @Test func secretNamesFollowTheWordRuleAndShortValuesStay() {
        for name in ["DB_PASSWORD", "api-key", "GITHUB_TOKEN", "AWS_SECRET_ACCESS_KEY", "NOT_SECRET", "x.auth",
                     "PRIVATE_PEM", "GCP_CREDENTIALS", "SSH_KEYS", "Credential",
                     // camel case starts a word too (they were shown in clear)
                     "githubToken", "dbPassword", "ApiKey", "APIKey", "awsSecretAccessKey", "x.clientSecret"] {
            #expect(SecretMask.isSecretName(name), "\(name)")
        }
        for name in ["KEYBOARD", "MONKEY", "AUTHOR", "TOKENIZER", "PASSWORDLESS_MODE", "PATH", "DBPASSWORD",
                     "Keyboard", "myKeyboard", "authorName", "tokenizerPath", "Monkey"] {
            #expect(!SecretMask.isSecretName(name), "\(name)")
        }
        let mask = SecretMask(values: ["ab", "", "abc", "abcdef"])
        #expect(mask.apply("ab abc abcdef abcabc xabcdefx") == "ab *** *** ****** x***x")
        #expect(mask.apply("é-abc-é") == "é-***-é")
        #expect(SecretMask(values: ["12"]).isEmpty)
    }

    @Test func globalsSecretsIsValidatedStrictly() async throws {
        let dir = TempDir()
        let cases: [(String, String)] = [
            ("\"DB\"", "globals.secrets: must be an array, not string"),
            ("[1]", "globals.secrets[0]: must be a variable or environment name, not number"),
            ("[\"A=B\"]", "globals.secrets[0]: \"A=B\" is not a valid name"),
            ("[\"\"]", "globals.secrets[0]: \"\" is not a valid name"),
            ("[\"CONN\", \"CONN\"]", "globals.secrets[1]: \"CONN\" is listed twice"),
        ]
        for (value, message) in cases {
            let plan = dir.write("p.json", planJSON([stepJSON("a", "true")], globals: "{\"secrets\": \(value)}"))
            let result = await runCLI(["validate", plan], in: dir.path)
            #expect(result.status == 2, "\(value)")
            #expect(result.stderr.contains("p.json:1:"), "\(result.stderr)")
            #expect(result.stderr.contains(message), "\(value): \(result.stderr)")
        }
        let good = dir.write("good.json", planJSON([stepJSON("a", "true")], globals: "{\"secrets\": [\"CONN\", \"my.conn-2\"]}"))
        #expect(await runCLI(["validate", good], in: dir.path).status == 0)
    }

    @Test func snapshotOutputAndStoreMaskSecretsWhileTheRawLogsKeepThem() async throws {
        let dir = TempDir()
        let state = dir.path + "/s"
        let plan = dir.write("p.json", Self.secretPlan)
        var runID = ""
        for format in ["json", "yaml", "human"] {
            let result = await runCLI(["run", plan, "--format", format, "--state-dir", state] + Self.secretVars, in: dir.path)
            #expect(result.status == 1, "\(result.stderr)")
            expectNoSecret(result.stdout + result.stderr, "run --format \(format)")
            #expect(result.stdout.contains("command not found: /nonexistent/***"), "\(format): \(result.stdout)")
            if format == "json" { runID = try #require(try result.json()["run_id"]?.stringValue) }
        }
        // The failure snapshot: logs, environment, variables, failures and plan.
        let snapshot = "\(state)/runs/\(runID)/snapshot"
        let files = try #require(FileManager.default.subpaths(atPath: snapshot)).filter { $0.contains(".") }
        #expect(files.count == 7, "\(files)")
        for file in files { expectNoSecret(try String(contentsOfFile: "\(snapshot)/\(file)", encoding: .utf8), file) }
        #expect(dir.read("s/runs/\(runID)/snapshot/steps/leak/leak.1.out")
                == "pw=*** conn=*** tok=*** ns=*** short=ab plain=plain-value\n")
        #expect(dir.read("s/runs/\(runID)/snapshot/steps/leak/leak.1.err") == "err:***:***\n")
        let env = try #require(dir.read("s/runs/\(runID)/snapshot/steps/leak/env.json"))
        #expect(env.contains("\"DEPLOY_CONN\": \"***\"") && env.contains("\"S\": \"ab\""))
        // The raw log is the step's own, readable by the owner only.
        let raw = "\(state)/runs/\(runID)/logs/leak.1.out"
        #expect(dir.read("s/runs/\(runID)/logs/leak.1.out")?.hasPrefix("pw=hunter2-pw conn=conn-xyz") == true)
        var info = stat()
        #expect(stat(raw, &info) == 0 && info.st_mode & 0o777 == 0o600)
        // runs.db keeps the names of secret --vars, never their values.
        for file in ["runs.db", "runs.db-wal"] {
            let bytes = FileManager.default.contents(atPath: "\(state)/\(file)") ?? Data()
            for value in ["hunter2-pw", "conn-xyz"] {
                #expect(bytes.range(of: Data(value.utf8)) == nil, "\(file) holds \(value)")
            }
        }
        let stored = try SQLiteDatabase(path: state + "/runs.db", mode: .readOnly)
            .query("SELECT variables FROM runs WHERE run_id = ?", runID).first?.string(0)
        // The withheld names are null; beside them only a 16-bit salted check of each value.
        let variables = try StrictJSONParser.parse(Array((stored ?? "").utf8)).toValue()
        #expect(variables.objectValue?.map(\.key) == ["#secret_checks", "DB_PASSWORD", "DEPLOY_CONN", "SHORT_KEY"])
        for name in ["DB_PASSWORD", "DEPLOY_CONN", "SHORT_KEY"] {
            #expect(variables[name] == .null)
            let checks = variables["#secret_checks"]?[name]?.arrayValue?.compactMap(\.stringValue) ?? []
            #expect(checks.count == 1 && checks.allSatisfy { $0.wholeMatch(of: /1:[0-9a-f]{16}:[0-9a-f]{4}/) != nil },
                    "\(name): \(checks)")
        }
        // runs show and runs events, in every format.
        for format in ["json", "yaml", "human"] {
            for command in [["runs", "show", runID], ["runs", "events", runID]] {
                let shown = await runCLI(command + ["--format", format, "--state-dir", state], in: dir.path)
                #expect(shown.status == 0)
                expectNoSecret(shown.stdout, "\(command) --format \(format)")
            }
        }
        // Dry run: the argv is shown with the secrets masked.
        for format in ["json", "human"] {
            let dry = await runCLI(["run", plan, "--mode", "dry-run", "--format", format] + Self.secretVars, in: dir.path)
            #expect(dry.status == 0)
            expectNoSecret(dry.stdout, "dry-run --format \(format)")
            #expect(dry.stdout.contains("/nonexistent/***"))
        }
    }

    @Test func theHTMLReportMasksSecretsAndLeavesOutTailsItCannotMask() async throws {
        let dir = TempDir()
        let (state, runID) = try await Self.secretRun(dir)
        // Without the --var values the tails cannot be masked: they are left out, with a note.
        let file = dir.path + "/r.html"
        let without = await runCLI(["report", runID, "--html", file, "--state-dir", state], in: dir.path)
        #expect(without.status == 0, "\(without.stderr)")
        var page = try String(contentsOfFile: file, encoding: .utf8)
        expectNoSecret(page, "report without --var")
        #expect(page.contains("secret variables DB_PASSWORD, DEPLOY_CONN, SHORT_KEY were not stored"))
        #expect(page.contains("left out (secrets that cannot be masked)"))
        #expect(!page.contains("err:"))
        // With them, the tails are shown, masked.
        let with = await runCLI(["report", runID, "--html", file, "--state-dir", state] + Self.secretVars, in: dir.path)
        #expect(with.status == 0, "\(with.stderr)")
        page = try String(contentsOfFile: file, encoding: .utf8)
        expectNoSecret(page, "report with --var")
        #expect(page.contains("err:***:***"))
        #expect(page.contains("command not found: /nonexistent/***"))
        let wrong = await runCLI(["report", runID, "--html", file, "--var", "PLAIN=x", "--state-dir", state], in: dir.path)
        #expect(wrong.status == 2)
        #expect(wrong.stderr.contains("--var PLAIN cannot be given"))
    }

    /// A report given a value the run never ran with masked that text and showed the real secret
    /// in the log tails (SPEC §10: secret values are `***` in HTML reports). The run keeps a short
    /// check of each withheld value: a wrong one is refused and nothing is written. A resume with
    /// another value (a rotated token) adds its check, and the page then leaves the tails out,
    /// since one value per name cannot mask both.
    @Test func aReportGivenAValueTheRunNeverRanWithIsRefused() async throws {
        let dir = TempDir()
        let (state, runID) = try await Self.secretRun(dir)
        let file = dir.path + "/r.html"
        let typo = ["--var", "DB_PASSWORD=hunter2-pX", "--var", "DEPLOY_CONN=conn-xyz", "--var", "SHORT_KEY=ab"]
        let refused = await runCLI(["report", runID, "--html", file, "--state-dir", state] + typo, in: dir.path)
        #expect(refused.status == 2)
        #expect(refused.stderr == "omnibase-agents: error: run \(runID) did not run with the value given for its secret "
                + "variable DB_PASSWORD: give a value it ran with (--var DB_PASSWORD=VALUE)\n")
        #expect(!FileManager.default.fileExists(atPath: file))

        // A resume with another value of DB_PASSWORD: both values are now the run's.
        let rotated = ["--var", "DB_PASSWORD=rotated-pw", "--var", "DEPLOY_CONN=conn-xyz", "--var", "SHORT_KEY=ab"]
        let resumed = await runCLI(["resume", runID, "--state-dir", state] + rotated, in: dir.path)
        #expect(resumed.status == 1, "\(resumed.stderr)")
        for values in [Self.secretVars, rotated] {
            let page = await runCLI(["report", runID, "--html", file, "--state-dir", state] + values, in: dir.path)
            #expect(page.status == 0, "\(page.stderr)")
            let text = try String(contentsOfFile: file, encoding: .utf8)
            expectNoSecret(text, "report after a resume with another value")
            #expect(!text.contains("rotated-pw"))
            #expect(text.contains("DB_PASSWORD ran with more than one value"))
        }
    }

    /// `graph --run` of a run with withheld secret `--var`s failed on the stored snapshot
    /// ("unknown variable ${DB_PASSWORD} ...; pass --var"), and refused the `--var` it asked
    /// for: the graph needs no value, so the placeholder stands in, as for the report's DAG.
    @Test func graphOfARunWithWithheldSecretsDrawsIt() async throws {
        let dir = TempDir()
        let (state, runID) = try await Self.secretRun(dir)
        for format in ["dot", "mermaid"] {
            let graph = await runCLI(["graph", "--run", runID, "--state-dir", state, "--format", format], in: dir.path)
            #expect(graph.status == 0, "\(format): \(graph.stderr)")
            #expect(graph.stdout.contains("leak") && graph.stdout.contains("nocmd"), "\(format)")
            expectNoSecret(graph.stdout, "graph --run --format \(format)")
        }
    }

    @Test func replayAndResumeAskForTheSecretsAgain() async throws {
        let dir = TempDir()
        let state = dir.path + "/s"
        let marker = dir.path + "/seen"
        let plan = dir.write("p.json", planJSON(
            [stepJSON("use", "echo \"$TOKEN_VALUE\" >> \(marker); test -e \(dir.path)/pass",
                      extra: "\"env\": {\"TOKEN_VALUE\": \"${API_TOKEN}\"}")],
            variables: "{\"API_TOKEN\": \"plan-default\"}"))
        let run = await runCLI(["run", plan, "--format", "json", "--state-dir", state, "--var", "API_TOKEN=first-token"],
                               in: dir.path)
        #expect(run.status == 1)
        let runID = try #require(try run.json()["run_id"]?.stringValue)
        let asked = "run \(runID) used secret variables whose values were not stored (API_TOKEN): pass them again with "
            + "--var API_TOKEN=VALUE"
        for command in ["replay", "resume"] {
            let refused = await runCLI([command, runID, "--format", "json", "--state-dir", state], in: dir.path)
            #expect(refused.status == 2, "\(command)")
            #expect(refused.stderr == "omnibase-agents: error: \(asked)\n", "\(command): \(refused.stderr)")
            let wrong = await runCLI([command, runID, "--var", "OTHER=1", "--state-dir", state], in: dir.path)
            #expect(wrong.status == 2)
            #expect(wrong.stderr.contains("--var OTHER cannot be given"), "\(wrong.stderr)")
        }
        #expect(try String(contentsOfFile: marker, encoding: .utf8) == "first-token\n", "nothing ran again")
        _ = dir.write("pass", "")
        let replayed = await runCLI(["replay", runID, "--format", "json", "--state-dir", state, "--var", "API_TOKEN=second-token"],
                                    in: dir.path)
        #expect(replayed.status == 0, "\(replayed.stderr)")
        let resumed = await runCLI(["resume", runID, "--format", "json", "--state-dir", state, "--var", "API_TOKEN=third-token"],
                                   in: dir.path)
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(try String(contentsOfFile: marker, encoding: .utf8) == "first-token\nsecond-token\nthird-token\n")
        // The replay is a new run that withholds the value in turn.
        let newRun = try #require(try replayed.json()["run_id"]?.stringValue)
        let again = await runCLI(["replay", newRun, "--state-dir", state], in: dir.path)
        #expect(again.status == 2)
        #expect(again.stderr.contains("(API_TOKEN): pass them again"))
    }
}
