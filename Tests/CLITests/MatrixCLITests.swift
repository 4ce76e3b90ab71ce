import Foundation
import Testing
@testable import Orchestration

/// A JSON string literal of `text`.
private func quoted(_ text: String) -> String {
    "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
}

@Suite("run: matrices end to end (SPEC §11)", .serialized, .timeLimit(.minutes(3)))
struct MatrixCLITests {
    /// Values that a shell or a second substitution pass would change reach argv and the
    /// environment byte for byte.
    @Test func matrixValuesArriveVerbatimInArgvAndEnv() async throws {
        let dir = TempDir()
        let words = ["a b", "${V}", "$$x", "$(touch pwned)", "it's \"q\"", "semi;colon|&", "${matrix.w}"]
        let script = #"printf '%s|%s\n' "$1" "$W" | tee -a seen.txt"#
        let plan = dir.write("p.json", planJSON([
            #"{"id": "echo", "command": "sh", "args": ["-c", \#(quoted(script)), "sh", "${matrix.w}"], "env": {"W": "${matrix.w}"}, "#
                + #""matrix": {"w": [\#(words.map(quoted).joined(separator: ", "))]}}"#,
        ], globals: #"{"max_concurrency": 1}"#, variables: #"{"V": "plan-variable"}"#))
        let result = await runCLI(["run", plan, "--format", "json", "--state-dir", dir.path + "/s"], in: dir.path)
        #expect(result.status == 0, "\(result.stderr)")
        let report = try result.json()
        #expect(report["steps"]?.arrayValue?.map { $0["id"]?.stringValue ?? "" }
                == ["echo.a_b", "echo.__V_", "echo.__x", "echo.__touch_pwned_", "echo.it_s__q_", "echo.semi_colon__", "echo.__matrix.w_"])
        let seen = (dir.read("seen.txt") ?? "").split(separator: "\n").map(String.init).sorted()
        #expect(seen == words.map { "\($0)|\($0)" }.sorted())
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/pwned"))
        // Each expansion is a step of its own: its own log files.
        let runID = try #require(report["run_id"]?.stringValue)
        let log = try String(contentsOfFile: "\(dir.path)/s/runs/\(runID)/logs/echo.a_b.1.out", encoding: .utf8)
        #expect(log == "a b|a b\n")
        #expect(report.stepReport("echo.a_b")?["matrix"] == .object(["step": "echo", "values": .object(["w": "a b"])]))
    }

    /// `depends_on` naming the matrix step waits for every expansion; naming one expansion waits
    /// for that one only. Order is recorded by the steps: `t.a` waits for a marker that `one`
    /// writes, which it could never see if `one` waited for every expansion.
    @Test func dependsOnTheMatrixStepWaitsForEveryExpansionAndOnAnExpansionForThatOne() async throws {
        let dir = TempDir()
        let wait = #"if [ "$1" = a ]; then i=0; while [ ! -f one.done ]; do i=$((i+1)); [ $i -gt 1200 ] && exit 9; sleep 0.05; done; fi; "#
            + #"echo "end $1" >> order.txt"#
        let plan = dir.write("p.json", planJSON([
            #"{"id": "t", "command": "sh", "args": ["-c", \#(quoted(wait)), "sh", "${matrix.x}"], "matrix": {"x": ["a", "b"]}}"#,
            stepJSON("one", "echo one >> order.txt; touch one.done", deps: ["t.b"]),
            stepJSON("all", "echo all >> order.txt", deps: ["t"]),
        ], globals: #"{"max_concurrency": 3}"#))
        for round in 0..<3 {
            try? FileManager.default.removeItem(atPath: dir.path + "/order.txt")
            try? FileManager.default.removeItem(atPath: dir.path + "/one.done")
            let result = await runCLI(["run", plan, "--format", "json", "--state-dir", dir.path + "/s"], in: dir.path)
            #expect(result.status == 0, "round \(round): \(result.stderr)")
            #expect(dir.read("order.txt") == "end b\none\nend a\nall\n", "round \(round)")
        }
        let dry = await runCLI(["run", plan, "--mode", "dry-run", "--format", "json"], in: dir.path)
        let steps = try dry.json()["steps"]?.arrayValue ?? []
        let all = steps.first { $0["id"]?.stringValue == "all" }
        #expect(all?["depends_on"] == .array(["t.a", "t.b"]))
    }

    /// `--from`/`--to` take an expansion's id like any step's.
    @Test func fromAndToTakeAnExpansionId() async throws {
        let dir = TempDir()
        let plan = dir.write("p.json", planJSON([
            #"{"id": "t", "command": "sh", "args": ["-c", "echo $0 >> ran.txt", "${matrix.x}"], "matrix": {"x": ["a", "b", "c"]}}"#,
        ]))
        let result = await runCLI(["run", plan, "--to", "t.b", "--format", "json", "--state-dir", dir.path + "/s"], in: dir.path)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(dir.read("ran.txt") == "b\n")
        #expect(try result.json().stepReport("t.a")?["status"]?.stringValue == "skipped")
    }

    /// `--from`/`--to` naming the matrix step select every expansion; `matrix.KEY` in an `if`
    /// reads the expansion's value.
    @Test func theMatrixStepsIdSelectsEveryExpansionAndConditionsReadMatrixValues() async throws {
        let dir = TempDir()
        let plan = dir.write("p.json", planJSON([
            #"{"id": "t", "command": "sh", "args": ["-c", "echo $0 >> ran.txt", "${matrix.x}"], "matrix": {"x": ["a", "b", "c"]}, "#
                + #""if": "matrix.x != 'b'"}"#,
            #"{"id": "after", "command": "sh", "args": ["-c", "echo after >> ran.txt"], "depends_on": ["t"], "if": "always()"}"#,
        ], globals: #"{"max_concurrency": 1}"#))
        let result = await runCLI(["run", plan, "--to", "t", "--format", "json", "--state-dir", dir.path + "/s"], in: dir.path)
        #expect(result.status == 0, "\(result.stderr)")
        #expect((dir.read("ran.txt") ?? "").split(separator: "\n").sorted() == ["a", "c"])
        let report = try result.json()
        #expect(["t.a", "t.b", "t.c", "after"].map { report.stepReport($0)?["status"]?.stringValue }
                == ["succeeded", "skipped", "succeeded", "skipped"])
        #expect(report.stepReport("t.b")?["error"]?.stringValue == "condition false")
        let from = await runCLI(["run", plan, "--from", "t", "--format", "json", "--state-dir", dir.path + "/s"], in: dir.path)
        #expect(from.status == 0, "\(from.stderr)")
        #expect(try from.json().stepReport("after")?["status"]?.stringValue == "succeeded")
    }

    /// Each bad matrix: exit 2, one located sentence, nothing on stdout, no run recorded.
    @Test(arguments: [
        (#"{"id": "t", "command": "true", "matrix": {"os": []}}"#, "steps[0].matrix.os: an empty value list"),
        (#"{"id": "t", "command": "true", "matrix": {"os": ["a", "a"]}}"#, "steps[0].matrix.os[1]: the value a is listed twice"),
        (#"{"id": "t", "command": "true", "matrix": {"os": ["a"], "include": [1]}}"#, "steps[0].matrix.include[0]: must be an object"),
        (#"{"id": "t", "command": "true", "matrix": {"os": ["a"], "exclude": ["a"]}}"#, "steps[0].matrix.exclude[0]: must be an object"),
        (#"{"id": "t", "command": "true", "matrix": {"os": ["a"], "exclude": [{"cpu": 1}]}}"#,
         "steps[0].matrix.exclude[0].cpu: exclude names \"cpu\", which is not a key of the matrix"),
        (#"{"id": "t", "command": "true", "matrix": {"os": ["a"], "exclude": [{"os": "a"}]}}"#,
         "steps[0].matrix: exclude removes every combination"),
        (#"{"id": "t", "command": "echo", "args": ["${matrix.so}"], "matrix": {"os": ["a"]}}"#,
         "steps[0].args[0]: unknown matrix key ${matrix.so}"),
        (#"{"id": "t", "command": "echo", "args": ["${matrix.os}"]}"#, "steps[0].args[0]: ${matrix.os} has no value: step \"t\" has no \"matrix\""),
        (#"{"id": "t", "command": "true", "matrix": {"os": ["a"]}}, {"id": "t.a", "command": "true"}"#,
         "steps[1]: step \"t.a\" (steps[1], 2:"),
        (#"{"id": "t", "command": "true", "matrix": {"a": [\#((0..<1000).map(String.init).joined(separator: ","))], "#
            + #""b": [\#((0..<1000).map(String.init).joined(separator: ","))], "c": [\#((0..<1000).map(String.init).joined(separator: ","))]}}"#,
         "steps[0].matrix: the matrix makes 1000 × 1000 × 1000 = 1000000000 combinations; a plan may have at most 100000 steps"),
        // Outputs and conditions of a plan with a matrix: the referring step and its place in
        // the file are the ones written (not an expansion's), and a matrix step's id is no step.
        (#"{"id": "t", "command": "true", "matrix": {"os": ["a", "b"]}}, "#
            + #"{"id": "u", "command": "echo", "args": ["${steps.t.outputs.v}"], "depends_on": ["t"]}"#,
         #"steps[1].args[0]: step "u" uses ${steps.t.outputs.v}, but there is no step "t" ("t" is a matrix step: "#
            + #"name one of its expansions, "t.a", "t.b")"#),
        (#"{"id": "t", "command": "true", "matrix": {"os": ["a", "b"]}}, "#
            + #"{"id": "u", "command": "true", "depends_on": ["t"], "if": "steps.t.status == 'failed'"}"#,
         #"steps[1].if: column 1 of the condition: unknown step "t" ("t" is a matrix step: name one of its expansions"#),
        (#"{"id": "t", "command": "true", "matrix": {"os": ["a"]}, "if": "matrix.so == 'a'"}"#,
         #"steps[0].if: column 1 of the condition: 'matrix.so': this expansion of matrix step "t" has no key so (it has matrix.os)"#),
        (#"{"id": "t", "command": "true", "if": "matrix.os == 'a'"}"#,
         #"steps[0].if: column 1 of the condition: 'matrix.os': the step has no "matrix", so there is no matrix.os"#),
    ])
    func aBadMatrixExitsTwoLocatedWithoutARun(_ steps: String, _ expected: String) async throws {
        for command in ["validate", "run"] {
            let dir = TempDir()
            let plan = dir.write("p.json", planJSON([steps]))
            var arguments = [command, plan]
            if command == "run" { arguments += ["--state-dir", dir.path + "/s"] }
            let result = await runCLI(arguments, in: dir.path)
            #expect(result.status == 2, "\(command): \(result.stderr)")
            #expect(result.stdout.isEmpty)
            #expect(result.stderr.split(separator: "\n").count == 1, "\(result.stderr)")
            #expect(result.stderr.hasPrefix("omnibase-agents: error: \(plan):2:") || result.stderr.hasPrefix("omnibase-agents: error: \(plan):3:"),
                    "\(result.stderr)")
            #expect(result.stderr.contains(expected), "\(command): \(result.stderr)")
            let runs = (try? FileManager.default.contentsOfDirectory(atPath: dir.path + "/s/runs")) ?? []
            #expect(runs.isEmpty, "a rejected plan is never recorded as a run")
        }
    }

    /// `graph`, `run`'s report, `runs show`, `report --html` and the profile put the expansions
    /// under their matrix step.
    @Test func reportsGraphAndProfileGroupTheExpansions() async throws {
        let dir = TempDir()
        let state = dir.path + "/s"
        let plan = dir.write("p.json", planJSON([
            stepJSON("build", "true"),
            #"{"id": "test", "command": "sh", "args": ["-c", "[ $0 != mac.2 ]", "${matrix.os}.${matrix.v}"], "depends_on": ["build"], "#
                + #""critical": false, "on_failure": "continue", "matrix": {"os": ["linux", "mac"], "v": [1, 2]}}"#,
            stepJSON("deploy", "true", deps: ["test"]),
        ]))
        let run = await runCLI(["run", plan, "--format", "human", "--mode", "profile", "--state-dir", state], in: dir.path)
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout.contains("\n  matrix test: 4 steps, 3 succeeded, 1 failed\n    PASS  test.linux.1 "), "\(run.stdout)")
        #expect(run.stdout.contains("\n  PASS  deploy "), "\(run.stdout)")
        #expect(run.stdout.contains("Matrices (expansions together):\n  test  4/4 ran, "), "\(run.stdout)")
        let listed = try await runCLI(["runs", "list", "--format", "json", "--state-dir", state], in: dir.path).json()
        let runID = try #require(listed["runs"]?[0]?["run_id"]?.stringValue)

        let show = await runCLI(["runs", "show", runID, "--format", "human", "--state-dir", state], in: dir.path)
        #expect(show.stdout.contains("\n  matrix test: 4 steps, 3 succeeded, 1 failed\n"), "\(show.stdout)")
        let shown = try await runCLI(["runs", "show", runID, "--format", "json", "--state-dir", state], in: dir.path).json()
        #expect(shown.stepReport("test.mac.2")?["matrix"] == .object(["step": "test", "values": .object(["os": "mac", "v": "2"])]))

        let html = await runCLI(["report", runID, "--html", "-", "--state-dir", state], in: dir.path)
        #expect(html.status == 0, "\(html.stderr)")
        #expect(html.stdout.contains("<tr class=\"matrix\"><td></td><td colspan=\"8\">matrix <span class=\"mono\">test</span> · "
                                     + "4 expansions: 3 succeeded, 1 failed</td></tr>"), "the step table has a heading row")
        #expect(html.stdout.components(separatedBy: "<tr class=\"step ").filter { $0.contains("in-matrix\"") }.count == 4)

        let dot = await runCLI(["graph", "--run", runID, "--state-dir", state], in: dir.path)
        #expect(dot.stdout.contains("subgraph \"cluster_test\" {\n        label=\"test (matrix, 4)\""), "\(dot.stdout)")
        let mermaid = await runCLI(["graph", plan, "--format", "mermaid"], in: dir.path)
        #expect(mermaid.stdout.contains("    subgraph m0[\"test (matrix, 4)\"]\n        s1[\"test.linux.1\"]"), "\(mermaid.stdout)")
        let dry = await runCLI(["run", plan, "--mode", "dry-run", "--format", "human"], in: dir.path)
        #expect(dry.stdout.hasPrefix("Dry run of T: 6 steps (4 from matrix test) in order, nothing started\n"), "\(dry.stdout)")
    }
}
