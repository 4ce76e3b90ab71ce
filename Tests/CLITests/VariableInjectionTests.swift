import Foundation
import Testing

@testable import Orchestration

// End-to-end contract for `${NAME}` (SPEC §1): a variable's value reaches the step byte-identical
// as ONE argv element (or env value, or cwd), whatever it contains; nothing goes through a shell,
// nothing is expanded twice, nothing is globbed, nothing is executed.

/// One hostile or awkward variable value.
private struct Injection: Sendable, CustomTestStringConvertible {
    var label: String
    var value: String
    var testDescription: String { label }
}

private let injections: [Injection] = [
    Injection(label: "command substitution", value: "$(touch pwned)"),
    Injection(label: "backticks", value: "`touch pwned2`"),
    Injection(label: "quote breakout", value: "'; touch pwned3; '"),
    Injection(label: "double-quote breakout", value: "\"; touch pwned4; \""),
    Injection(label: "pipe and separator", value: "x | touch pwned5; touch pwned6 && touch pwned7 #"),
    Injection(label: "double quotes", value: "\"quoted\""),
    Injection(label: "newlines", value: "line one\nline two\n\nlast\n"),
    Injection(label: "spaces and tabs", value: "  a b\tc \t d  "),
    Injection(label: "another reference", value: "${OTHER}"),
    Injection(label: "shell variable", value: "$HOME"),
    Injection(label: "shell variable in braces", value: "${HOME}"),
    Injection(label: "glob star", value: "*"),
    Injection(label: "glob pattern", value: "*.json ?lan.json [a-z]*"),
    Injection(label: "leading dash", value: "-rf"),
    Injection(label: "option-like", value: "--help"),
    Injection(label: "non-ASCII", value: "héllo ✓"),
    Injection(label: "dollar-dollar", value: "cost $$5 and $$$$"),
    Injection(label: "backslashes", value: #"a\b\n\\c\"#),
    Injection(label: "printf format", value: "%s %n %% %d"),
    Injection(label: "equals signs", value: "k=v=w"),
    Injection(label: "tilde", value: "~/x ~root"),
    Injection(label: "redirect", value: "> pwned8 < /dev/null 2>&1"),
    Injection(label: "empty", value: ""),
]

/// Where a value comes from.
private enum Source: String, Sendable, CaseIterable {
    /// `--var A=VALUE` (two arguments).
    case commandLine
    /// `--var=A=VALUE` (one argument).
    case commandLineInline
    /// The plan's `variables`.
    case planVariables
}

/// A JSON string literal.
private func json(_ string: String) -> String { JSONValue.string(string).serialized() }

/// Writes each of its arguments to `$0`, each followed by a NUL; then its `MYVAR` and `GVAR` to `$0.env`.
private let recorder = #"printf '%s\0' "$@" > "$0"; printf '%s\0' "$MYVAR" "$GVAR" > "$0.env""#

/// Reads a file of NUL-terminated strings.
private func readRecorded(_ path: String) throws -> [String] {
    let data = try Data(contentsOf: URL(fileURLWithPath: path))
    var items = data.split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
    #expect(items.last == "", "every item ends with a NUL")
    items.removeLast()
    return items
}

/// Every file or folder under `root` whose name starts with "pwned": what the injected commands
/// would have created (a folder merely named after one, like the hostile cwd, does not count).
private func pwnedFiles(_ root: String) -> [String] {
    let all = (try? FileManager.default.subpathsOfDirectory(atPath: root)) ?? []
    return all.filter { ($0 as NSString).lastPathComponent.hasPrefix("pwned") }
}

@Suite struct VariableInjectionTests {
    /// The value of `A` in every position: alone, inside a word, twice, next to a `$$`-escaped
    /// reference, and in `env` (step and globals). Each argument is one argv element, byte-identical.
    @Test(arguments: injections, Source.allCases)
    fileprivate func valueReachesTheStepAsOneArgument(_ injection: Injection, source: Source) async throws {
        let dir = TempDir()
        // Files a glob or a shell would pick up.
        _ = dir.write("a.json", "{}")
        _ = dir.write("plan-dummy.json", "{}")
        let record = dir.path + "/argv.bin"
        var variables = #"{"OTHER": "EXPANDED-TWICE", "HOME": "plan-home""#
        var cliVariables: [String] = []
        switch source {
        case .planVariables: variables += ", \"A\": \(json(injection.value))"
        case .commandLine:
            variables += #", "A": "plan-value-must-lose""#
            cliVariables = ["--var", "A=" + injection.value]
        case .commandLineInline:
            variables += #", "A": "plan-value-must-lose""#
            cliVariables = ["--var=A=" + injection.value]
        }
        variables += "}"
        let step = """
            {"id": "record", "command": "sh",
             "args": [\(json("-c")), \(json(recorder)), \(json(record)),
                      "${A}", "pre${A}post", "${A}${A}", "$${A}", "$$${A}"],
             "env": {"MYVAR": "${A}"}}
            """
        _ = dir.write("plan.json", planJSON([step], globals: #"{"env": {"GVAR": "[${A}]"}}"#, variables: variables))

        let result = await runCLI(["run", "plan.json", "--state-dir", "state", "--format", "json"] + cliVariables,
                                  in: dir.path)
        #expect(result.termination == .exited(0), "stderr: \(result.stderr)")
        #expect(result.stderr.isEmpty)
        #expect(try result.json()["status"]?.stringValue == "succeeded")

        let v = injection.value
        #expect(try readRecorded(record) == [v, "pre\(v)post", v + v, "${A}", "$" + v])
        #expect(try readRecorded(record + ".env") == [v, "[\(v)]"])
        #expect(pwnedFiles(dir.path).isEmpty, "nothing was executed: \(pwnedFiles(dir.path))")
    }

    /// `--mode dry-run` shows the same argv, fully substituted, and starts nothing.
    @Test(arguments: injections)
    fileprivate func dryRunShowsTheSameArgvAndStartsNothing(_ injection: Injection) async throws {
        let dir = TempDir()
        let step = """
            {"id": "record", "command": "sh", "args": ["-c", "touch pwned-dry-run", "${A}", "x${A}"]}
            """
        _ = dir.write("plan.json", planJSON([step], variables: #"{"OTHER": "EXPANDED-TWICE"}"#))
        let result = await runCLI(["run", "plan.json", "--mode", "dry-run", "--format", "json", "--state-dir", "state",
                                   "--var", "A=" + injection.value], in: dir.path)
        #expect(result.termination == .exited(0), "stderr: \(result.stderr)")
        let argv = try result.json()["steps"]?[0]?["argv"]?.arrayValue?.compactMap(\.stringValue)
        #expect(argv == ["sh", "-c", "touch pwned-dry-run", injection.value, "x" + injection.value])
        #expect(pwnedFiles(dir.path).isEmpty, "dry-run started nothing")
    }

    /// `$$` is a literal `$`, and any other `$` stays as it is: there is no shell.
    @Test func dollarDollarIsALiteralDollar() async throws {
        let dir = TempDir()
        let record = dir.path + "/argv.bin"
        let raw = ["$$", "$$$$", "a$$b", "$${A}", "$$${A}", "$$$${A}", "100$", "$", "$HOME", "$A", "$(A)", "${A}$$"]
        let expected = ["$", "$$", "a$b", "${A}", "$v", "$${A}", "100$", "$", "$HOME", "$A", "$(A)", "v$"]
        let step = """
            {"id": "dollars", "command": "sh",
             "args": [\(json("-c")), \(json(recorder)), \(json(record)), \(raw.map(json).joined(separator: ", "))],
             "env": {"MYVAR": "$$MYVAR costs $$${A}"}}
            """
        _ = dir.write("plan.json", planJSON([step], globals: #"{"env": {"GVAR": "$$$$"}}"#, variables: #"{"A": "v"}"#))
        let result = await runCLI(["run", "plan.json", "--state-dir", "state", "--format", "json"], in: dir.path)
        #expect(result.termination == .exited(0), "stderr: \(result.stderr)")
        #expect(try readRecorded(record) == expected)
        #expect(try readRecorded(record + ".env") == ["$MYVAR costs $v", "$$"])
    }

    /// `${NAME}` in `cwd` and `command` too; a hostile folder name is just a folder name.
    @Test(arguments: Source.allCases)
    fileprivate func substitutionInCwdAndCommand(source: Source) async throws {
        let dir = TempDir()
        let folder = "sub dir ✓ $(touch pwned-cwd) *"
        try FileManager.default.createDirectory(atPath: dir.path + "/" + folder, withIntermediateDirectories: true)
        var variables = #"{"TOOL": "sh""#
        var cliVariables: [String] = []
        switch source {
        case .planVariables: variables += ", \"DIR\": \(json(folder))"
        case .commandLine: cliVariables = ["--var", "DIR=" + folder]
        case .commandLineInline: cliVariables = ["--var=DIR=" + folder]
        }
        variables += "}"
        let step = #"""
            {"id": "where", "command": "${TOOL}", "args": ["-c", "pwd -P > marker.txt"], "cwd": "${DIR}"}
            """#
        _ = dir.write("plan.json", planJSON([step], variables: variables))
        let result = await runCLI(["run", "plan.json", "--state-dir", "state", "--format", "json"] + cliVariables,
                                  in: dir.path)
        #expect(result.termination == .exited(0), "stderr: \(result.stderr)")
        let expected = (URL(fileURLWithPath: dir.path + "/" + folder).resolvingSymlinksInPath().path)
        let written = dir.read(folder + "/marker.txt")
        #expect(written == expected + "\n", "the step ran in the substituted cwd (relative to the plan's folder)")
        #expect(pwnedFiles(dir.path).isEmpty)
    }

    /// A step prints `$MYVAR` through its own shell: the value arrives verbatim.
    @Test(arguments: injections)
    fileprivate func envValueIsPrintedVerbatim(_ injection: Injection) async throws {
        let dir = TempDir()
        let step = #"""
            {"id": "show", "command": "sh", "args": ["-c", "printf %s \"$MYVAR\""], "env": {"MYVAR": "${A}"}}
            """#
        _ = dir.write("plan.json", planJSON([step], variables: "{\"A\": \(json(injection.value))}"))
        let result = await runCLI(["run", "plan.json", "--state-dir", "state", "--format", "json"], in: dir.path)
        #expect(result.termination == .exited(0), "stderr: \(result.stderr)")
        let runID = try #require(try result.json()["run_id"]?.stringValue)
        // A log file exists only once the step wrote to it: no file means no output.
        let log = (try? String(contentsOfFile: dir.path + "/state/runs/\(runID)/logs/show.1.out", encoding: .utf8)) ?? ""
        #expect(log == injection.value)
        #expect(pwnedFiles(dir.path).isEmpty)
    }

    /// Control for the "nothing executed" checks: a value that a plan itself hands to a shell as
    /// its script IS run (that is the plan's choice), and ``pwnedFiles(_:)`` sees what it creates.
    @Test func detectorSeesWhatAShellScriptCreates() async throws {
        let dir = TempDir()
        let step = #"{"id": "script", "command": "sh", "args": ["-c", "${A}"]}"#
        _ = dir.write("plan.json", planJSON([step]))
        let result = await runCLI(["run", "plan.json", "--state-dir", "state", "--format", "json",
                                   "--var", "A=touch pwned-control"], in: dir.path)
        #expect(result.termination == .exited(0), "stderr: \(result.stderr)")
        #expect(pwnedFiles(dir.path) == ["pwned-control"])
    }

    /// Steps see OMNIBASE_RUN_ID, OMNIBASE_STEP_ID and OMNIBASE_ATTEMPT, matching the report.
    @Test func stepsSeeRunStepAndAttempt() async throws {
        let dir = TempDir()
        let first = dir.path + "/first.bin"
        let second = dir.path + "/second.bin"
        let attempts = dir.path + "/attempts.txt"
        let record = #"printf '%s\0' "$OMNIBASE_RUN_ID" "$OMNIBASE_STEP_ID" "$OMNIBASE_ATTEMPT" > "$0""#
        let flaky = #"printf '%s\0' "$OMNIBASE_RUN_ID" "$OMNIBASE_STEP_ID" "$OMNIBASE_ATTEMPT" >> "$0"; [ "$OMNIBASE_ATTEMPT" -ge 3 ]"#
        let steps = [
            #"{"id": "first", "command": "sh", "args": ["-c", \#(json(record)), \#(json(first))]}"#,
            #"{"id": "second.step-2", "command": "sh", "args": ["-c", \#(json(record)), \#(json(second))], "depends_on": ["first"]}"#,
            #"{"id": "flaky", "command": "sh", "args": ["-c", \#(json(flaky)), \#(json(attempts))], "retries": 3, "retry_delay_sec": 0}"#,
        ]
        _ = dir.write("plan.json", planJSON(steps))
        let result = await runCLI(["run", "plan.json", "--state-dir", "state", "--format", "json"], in: dir.path,
                                  environment: ["OMNIBASE_RUN_ID": "spoofed", "OMNIBASE_STEP_ID": "spoofed",
                                                "OMNIBASE_ATTEMPT": "99"])
        #expect(result.termination == .exited(0), "stderr: \(result.stderr)")
        let report = try result.json()
        let runID = try #require(report["run_id"]?.stringValue)
        #expect(!runID.isEmpty && runID != "spoofed")
        #expect(try readRecorded(first) == [runID, "first", "1"])
        #expect(try readRecorded(second) == [runID, "second.step-2", "1"])
        #expect(try readRecorded(attempts) == [runID, "flaky", "1", runID, "flaky", "2", runID, "flaky", "3"])
        let flakyReport = report["steps"]?.arrayValue?.first { $0["id"]?.stringValue == "flaky" }
        #expect(flakyReport?["attempts"]?.intValue == 3)
        #expect(flakyReport?["status"]?.stringValue == "succeeded")
    }
}
