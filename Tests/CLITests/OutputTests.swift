import Foundation
import Testing
@testable import Orchestration

/// Runs the CLI inside a pseudo-terminal (`script`), with a terminal of `columns` columns.
func runInTerminal(_ arguments: [String], in directory: String, columns: Int = 100, input: String? = nil,
                   environment extra: [String: String] = [:]) async -> CLIResult {
    let command = "stty cols \(columns) rows 50; exec " + ([cliPath] + arguments).map(ShellQuoting.quote).joined(separator: " ")
    var script = "script -qec " + ShellQuoting.quote(command) + " /dev/null"
    if let input { script = "printf %s " + ShellQuoting.quote(input) + " | " + script }
    var environment = extra
    environment["TERM"] = environment["TERM"] ?? "xterm-256color"
    return await runCLIProcess("/bin/sh", ["-c", script], in: directory, environment: environment)
}

/// Runs any program with colour allowed (no NO_COLOR, no CI).
func runCLIProcess(_ command: String, _ arguments: [String], in directory: String,
                   environment extra: [String: String]) async -> CLIResult {
    var changes: [String: String?] = ["NO_COLOR": nil, "CI": nil]
    for (key, value) in extra { changes[key] = value }
    return await runProgram(command, arguments, in: directory, environment: changes)
}

/// Display columns of a line: escape sequences take none, emoji and other wide characters two.
func displayWidth(_ line: String) -> Int {
    var width = 0
    var inEscape = false
    for scalar in line.unicodeScalars {
        if inEscape {
            if (0x40...0x7E).contains(scalar.value) && scalar != "[" { inEscape = false }
            continue
        }
        switch scalar.value {
        case 0x1B: inEscape = true
        case 0xFE0F, 0x200D, 0x0D: continue
        case 0x1F000...0x1FAFF, 0x2600...0x27BF, 0x2B00...0x2BFF, 0x23E9...0x23FA: width += 2
        default: width += scalar.properties.isGraphemeExtend ? 0 : 1
        }
    }
    return width
}

/// A plan with every final status: succeeded, failed (after a retry), skipped, cancelled.
func everyStatusPlan(_ dir: TempDir, longIDs: Bool = false) -> String {
    let prefix = longIDs ? String(repeating: "very-long-step-name-", count: 5) : ""
    // The statuses do not depend on the order the steps happen to run in.
    return dir.write("every.json", planJSON([
        stepJSON("\(prefix)ok", "echo fine"),
        stepJSON("\(prefix)flaky-fail", "echo 'this step always fails, with a long explanation that does not fit on one line of any terminal' >&2; exit 2",
                 deps: ["\(prefix)ok"], extra: "\"retries\": 1, \"retry_delay_sec\": 0.01, \"on_failure\": \"continue\", \"critical\": false"),
        stepJSON("\(prefix)optional", "exit 4", deps: ["\(prefix)ok"],
                 extra: "\"on_failure\": \"skip_dependents\", \"critical\": false"),
        stepJSON("\(prefix)skipped", "true", deps: ["\(prefix)optional"], extra: "\"critical\": false"),
        stepJSON("\(prefix)fatal", "exit 1", deps: ["\(prefix)flaky-fail"]),
        stepJSON("\(prefix)cancelled", "true", deps: ["\(prefix)fatal"]),
    ], globals: "{\"max_concurrency\": 1}", id: "EVERY"))
}

/// The human report with run ids and durations replaced by fixed text.
func normalized(_ text: String) -> String {
    var text = text.replacingOccurrences(of: #"r-\d{8}-[0-9a-f]{6}"#, with: "r-ID", options: .regularExpression)
    // Durations are always five columns wide (0.42s, 12.3s, 2m05s): keep the width.
    text = text.replacingOccurrences(of: #"\b(\d\.\d\d|\d\d\.\d|\dm\d\d)s\b"#, with: "#.##s", options: .regularExpression)
    return text
}

@Suite("Output: json, yaml, human, progress, profile, snapshot", .serialized, .timeLimit(.minutes(2)))
struct OutputTests {
    @Test func humanGoldenInASCII() async throws {
        let dir = TempDir()
        let plan = everyStatusPlan(dir)
        let result = await runCLI(["run", plan, "--format", "human", "--state-dir", dir.path + "/s"], in: dir.path)
        #expect(result.status == 1)
        #expect(normalized(result.stdout) == """
        FAIL run r-ID (plan EVERY) failed in #.##s
          PASS  ok          1 try     #.##s
          FAIL  flaky-fail  2 tries   #.##s     exited with code 2
              | this step always fails, with a long explanation that does not fit on one line of any term...
          FAIL  optional    1 try     #.##s     exited with code 4
          SKIP  skipped     0 tries   -         dependency "optional" failed
          FAIL  fatal       1 try     #.##s     exited with code 1
          WARN  cancelled   0 tries   -         run aborted: critical step "fatal" failed
        6 steps: 1 succeeded, 3 failed, 1 skipped, 1 cancelled

        """)
        // Line mode progress on stderr (not a terminal): one line per finished step.
        #expect(result.stderr.contains("Step 1/6: ok ... ok"))
        #expect(!result.stderr.contains("\u{1B}["))
    }

    @Test func jsonAndYAMLCarryTheSameReport() async throws {
        let dir = TempDir()
        let plan = everyStatusPlan(dir)
        let json = await runCLI(["run", plan, "--format", "json", "--state-dir", dir.path + "/s"], in: dir.path)
        let report = try json.json()
        #expect(report["summary"] == ["total": 6, "succeeded": 1, "failed": 3, "skipped": 1, "cancelled": 1])
        #expect(report["steps"]?.arrayValue?.map { $0["status"]?.stringValue ?? "" }
                == ["succeeded", "failed", "failed", "skipped", "failed", "cancelled"])
        #expect(json.stderr.isEmpty, "no progress in json mode")
        let keys = report.objectValue?.map(\.key) ?? []
        #expect(Array(keys.prefix(9)) == ["run_id", "plan_id", "status", "exit_code", "started_at", "finished_at",
                                          "duration_sec", "summary", "steps"])
        let runID = try #require(report["run_id"]?.stringValue)
        let yaml = await runCLI(["runs", "show", runID, "--format", "yaml", "--state-dir", dir.path + "/s"], in: dir.path)
        #expect(yaml.status == 0)
        let shown = await runCLI(["runs", "show", runID, "--format", "json", "--state-dir", dir.path + "/s"], in: dir.path)
        try yaml.stdout.write(toFile: dir.path + "/r.yaml", atomically: true, encoding: .utf8)
        try shown.stdout.write(toFile: dir.path + "/r.json", atomically: true, encoding: .utf8)
        let check = await runCLIProcess("python3", ["-c", """
            import json, sys, yaml
            sys.exit(0 if yaml.safe_load(open(sys.argv[1])) == json.load(open(sys.argv[2])) else 1)
            """, dir.path + "/r.yaml", dir.path + "/r.json"], in: dir.path, environment: [:])
        #expect(check.status == 0, "YAML and JSON differ: \(check.stderr)")
    }

    @Test(arguments: [80, 200])
    func humanLinesStayWithinTheTerminal(columns: Int) async throws {
        let dir = TempDir()
        let plan = everyStatusPlan(dir, longIDs: true)
        for environment in [["NO_COLOR": "1"], [:]] {
            let result = await runInTerminal(["run", plan, "--state-dir", dir.path + "/s"], in: dir.path, columns: columns,
                                             environment: environment)
            #expect(result.status == 1)
            let limit = min(columns, 100)
            for line in result.stdout.split(whereSeparator: \.isNewline) {
                #expect(displayWidth(String(line)) <= limit, "\(displayWidth(String(line))) columns: \(line)")
            }
        }
    }

    @Test func liveProgressRedrawsOnATerminalThenSummarises() async throws {
        let dir = TempDir()
        let plan = dir.write("p.json", planJSON([
            stepJSON("a", "sleep 0.4"), stepJSON("b", "sleep 0.4"), stepJSON("c", "true", deps: ["a", "b"]),
        ]))
        // A colour terminal: with NO_COLOR the progress is lines (TerminalTests).
        let result = await runInTerminal(["run", plan, "--state-dir", dir.path + "/s"], in: dir.path)
        #expect(result.status == 0)
        let screen = result.stdout
        #expect(screen.contains("\u{1B}[J"), "the block is redrawn in place")
        #expect(screen.contains("done ["))
        #expect(screen.contains("3 steps: \u{1B}[32m3 succeeded\u{1B}[0m"), "the summary, coloured")
        #expect(!screen.contains("Step 1/3:"), "never both: no line mode on a terminal")
    }

    @Test func profileShowsTimingsCriticalPathAndOverhead() async throws {
        let dir = TempDir()
        let plan = dir.write("p.json", planJSON([
            // "a" is the slowest by far more than a loaded machine's process start (was 0.2 s vs 0.1 s).
            stepJSON("a", "sleep 1"), stepJSON("b", "true"), stepJSON("c", "sleep 0.1", deps: ["a"]),
        ]))
        let result = await runCLI(["run", plan, "--mode", "profile", "--format", "json", "--state-dir", dir.path + "/s"], in: dir.path)
        #expect(result.status == 0)
        let profile = try #require(try result.json()["profile"])
        #expect(profile["critical_path"] == ["a", "c"])
        #expect(profile["steps"]?.arrayValue?.count == 3)
        #expect(profile["engine_overhead"]?["mean_ms"]?.doubleValue != nil)
        #expect(profile["slowest"]?[0] == "a")
        let human = await runCLI(["run", plan, "--mode", "profile", "--format", "human", "--state-dir", dir.path + "/s"], in: dir.path)
        #expect(human.stdout.contains("Critical path (2 steps, "))
        #expect(human.stdout.contains("): a -> c\n"))
        #expect(human.stdout.contains("Engine overhead"))
    }

    /// The critical path comes from the DAG and the measured durations: with one slot, "tail"
    /// waits for the chain and finishes last, yet the longest chain is x1 -> x2.
    @Test func profileCriticalPathIsTheLongestChainNotTheLastToFinish() async throws {
        let dir = TempDir()
        let plan = dir.write("p.json", planJSON([
            stepJSON("x1", "sleep 0.5"), stepJSON("x2", "sleep 0.5", deps: ["x1"]), stepJSON("tail", "sleep 0.1"),
        ], globals: "{\"max_concurrency\": 1}"))
        let result = await runCLI(["run", plan, "--mode", "profile", "--format", "json", "--state-dir", dir.path + "/s"], in: dir.path)
        #expect(result.status == 0, "\(result.stderr)")
        let json = try result.json()
        let profile = try #require(json["profile"])
        // "tail" finished last (one slot, lower priority than the chain).
        let stepObjects = try #require(json["steps"]?.arrayValue)
        let finished = stepObjects.compactMap { step -> (String, String)? in
            guard let id = step["id"]?.stringValue, let at = step["finished_at"]?.stringValue else { return nil }
            return (id, at)
        }
        #expect(finished.max { $0.1 < $1.1 }?.0 == "tail", "\(finished)")
        #expect(profile["critical_path"] == ["x1", "x2"])
        let pathSeconds = try #require(profile["critical_path_sec"]?.doubleValue)
        let makespan = try #require(profile["makespan_sec"]?.doubleValue)
        #expect(pathSeconds >= 1.0 && pathSeconds <= makespan)
        // Utilisation adds up: busy + idle = slots x makespan; the time at each level = makespan.
        let usage = try #require(profile["utilisation"])
        #expect(usage["slots"]?.intValue == 1)
        let busy = try #require(usage["busy_slot_sec"]?.doubleValue)
        let idle = try #require(usage["idle_slot_sec"]?.doubleValue)
        #expect(abs(busy + idle - makespan) < 0.01, "\(busy) + \(idle) vs \(makespan)")
        #expect(busy >= 1.1)
        let levels = (usage["sec_at_concurrency"]?.arrayValue ?? []).compactMap { $0.doubleValue }
        #expect(levels.count == 2 && abs(levels.reduce(0, +) - makespan) < 0.01, "\(levels)")
        #expect(usage["busy_over_time"]?.arrayValue?.count == 40)
        #expect(profile["engine_overhead"]?["cpu_per_attempt_ms"]?.doubleValue != nil)
        // The human view names the path with its length, the slots, and each step's priority.
        let human = await runCLI(["run", plan, "--mode", "profile", "--format", "human", "--state-dir", dir.path + "/s"], in: dir.path)
        #expect(human.stdout.contains("): x1 -> x2\n"), "\(human.stdout)")
        #expect(human.stdout.contains("Slots: 1, busy "), "\(human.stdout)")
        #expect(human.stdout.contains("priority"), "\(human.stdout)")
        let rows = human.stdout.split(separator: "\n").filter { $0.hasPrefix("  * ") }.map { $0.split(separator: " ").first { $0 != "*" } }
        #expect(rows.compactMap { $0.map(String.init) } == ["x1", "x2"], "\(human.stdout)")
    }

    @Test func stepThroughAsksOnATerminalAndRefusesWithoutOne() async throws {
        let dir = TempDir()
        let plan = dir.write("p.json", planJSON([
            stepJSON("first", "touch first.ran"), stepJSON("second", "touch second.ran", deps: ["first"]),
            stepJSON("third", "touch third.ran"),
        ], globals: "{\"working_dir\": \"\(dir.path)\"}"))
        let result = await runInTerminal(["run", plan, "--step", "--format", "json", "--state-dir", dir.path + "/s"],
                                         in: dir.path, input: "c\ns\n", environment: ["NO_COLOR": "1"])
        #expect(result.stdout.contains("[c]ontinue, [s]kip, [a]bort, [r]un all?"))
        #expect(FileManager.default.fileExists(atPath: dir.path + "/first.ran"))
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/second.ran") || !FileManager.default.fileExists(atPath: dir.path + "/third.ran"),
                "the skipped step did not run")
        let refused = await runCLI(["run", plan, "--step", "--state-dir", dir.path + "/s"], in: dir.path)
        #expect(refused.status == 2)
        #expect(refused.stderr.contains("--step needs a terminal"))
    }

    /// The question comes before the attempt's start is recorded: a step skipped at it has no
    /// attempt, and the time a person sits at it is not the step's duration (issue 15 item 6).
    @Test func stepThroughRecordsNoAttemptForASkipAndNotTheTimeSpentAsking() async throws {
        let dir = TempDir()
        let plan = dir.write("p.json", planJSON([stepJSON("first", "true"), stepJSON("second", "touch second.ran")],
                                                globals: "{\"working_dir\": \"\(dir.path)\"}"))
        let command = "stty cols 100 rows 50; exec " + ([cliPath, "run", plan, "--step", "--format", "json", "--state-dir",
                                                         dir.path + "/s"]).map(ShellQuoting.quote).joined(separator: " ")
        // A person who thinks for 3 s before continuing, then skips the second step.
        let script = "(sleep 3; printf c; sleep 0.5; printf s) | script -qec " + ShellQuoting.quote(command) + " /dev/null"
        let result = await runCLIProcess("/bin/sh", ["-c", script], in: dir.path, environment: ["NO_COLOR": "1"])
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/second.ran"), "the skipped step did not run")
        let shown = await runCLI(["runs", "list", "--format", "json", "--state-dir", dir.path + "/s"], in: dir.path)
        let runID = try #require(try shown.json()["runs"]?[0]?["run_id"]?.stringValue, "\(result.stdout)")
        let report = try await runCLI(["runs", "show", runID, "--format", "json", "--state-dir", dir.path + "/s"], in: dir.path).json()
        let first = try #require(report.stepReport("first"))
        #expect(first["status"]?.stringValue == "succeeded")
        #expect((first["duration_sec"]?.doubleValue ?? 99) < 2.0, "the 3 s at the question are not the step's: \(first)")
        let second = try #require(report.stepReport("second"))
        #expect(second["status"]?.stringValue == "skipped")
        #expect(second["attempts"]?.intValue == 0)
        #expect(second["started_at"] == .null)
        #expect(second["error"]?.stringValue == "skipped by the user")
    }

    @Test func aFailedRunLeavesARedactedSnapshot() async throws {
        let dir = TempDir()
        let plan = dir.write("p.json", """
        {"plan_id": "SNAP", "version": "1", "variables": {"API_TOKEN": "s3cret-token", "NAME": "visible"},
         "globals": {"env": {"AWS_SECRET_ACCESS_KEY": "s3cret-aws"}},
         "steps": [{"id": "bad", "command": "sh", "args": ["-c", "echo to-out; echo to-err >&2; exit 3"],
                    "env": {"DB_PASSWORD": "s3cret-db", "MODE": "ci"}},
                   {"id": "good", "command": "true"}]}
        """)
        let result = await runCLI(["run", plan, "--format", "json", "--state-dir", dir.path + "/s"], in: dir.path)
        #expect(result.status == 1)
        let runID = try #require(try result.json()["run_id"]?.stringValue)
        let snapshot = "\(dir.path)/s/runs/\(runID)/snapshot"
        let env = try String(contentsOfFile: snapshot + "/steps/bad/env.json", encoding: .utf8)
        #expect(env.contains("\"MODE\": \"ci\""))
        #expect(env.contains("\"DB_PASSWORD\": \"***\""))
        #expect(try String(contentsOfFile: snapshot + "/steps/bad/bad.1.err", encoding: .utf8) == "to-err\n")
        #expect(!FileManager.default.fileExists(atPath: snapshot + "/steps/good"), "only failing steps")
        for file in ["plan.json", "variables.json", "steps/bad/env.json"] {
            let text = try String(contentsOfFile: snapshot + "/" + file, encoding: .utf8)
            #expect(!text.contains("s3cret"), "\(file) leaks a secret")
        }
        #expect(try String(contentsOfFile: snapshot + "/variables.json", encoding: .utf8).contains("visible"))
        let shown = await runCLI(["runs", "show", runID, "--format", "json", "--state-dir", dir.path + "/s"], in: dir.path)
        #expect(try shown.json()["snapshot"]?.stringValue == snapshot)
    }
}
