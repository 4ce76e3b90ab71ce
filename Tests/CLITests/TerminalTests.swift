import Foundation
import Testing
@testable import Orchestration
@testable import Presentation

/// ESC bytes in text: any cursor movement or colour a terminal is sent.
private func escapes(_ text: String) -> Int { text.utf8.filter { $0 == 0x1B }.count }

/// A plan with a slow step, a retried failing one and a cancelled one: the live block is drawn
/// several times, and every kind of line is printed.
private func busyPlan(_ dir: TempDir) -> String {
    dir.write("busy.json", planJSON([
        stepJSON("slow", "sleep 0.6"),
        stepJSON("flaky", "exit 3", extra: "\"retries\": 1, \"retry_delay_sec\": 0.2"),
        stepJSON("after", "true", deps: ["slow"]),
    ], id: "BUSY"))
}

@Suite("Terminals: lines without colour, colour and live redraw with it, markers, counts", .serialized,
       .timeLimit(.minutes(2)))
struct TerminalTests {
    /// TERM=dumb, CI=true, NO_COLOR and --no-color each get line progress and not one escape
    /// sequence, in a real pseudo-terminal (stdout and stderr both reach it).
    @Test(arguments: [(["TERM": "dumb"], false), (["CI": "true"], false), (["NO_COLOR": "1"], false), ([:], true)])
    func plainTerminalsGetLinesAndNoEscapes(environment: [String: String], flag: Bool) async throws {
        let dir = TempDir()
        let plan = busyPlan(dir)
        let result = await runInTerminal(["run", plan, "--state-dir", dir.path + "/s"] + (flag ? ["--no-color"] : []),
                                         in: dir.path, environment: environment)
        #expect(result.status == 1)
        #expect(escapes(result.stdout) == 0, "escape sequences on a plain terminal: \(result.stdout.debugDescription)")
        #expect(result.stdout.contains("Step 1/3: "), "line progress")
        #expect(result.stdout.contains("3 steps: 1 succeeded, 1 failed, 0 skipped, 1 cancelled"))
    }

    /// A colour terminal gets the live block redrawn in place and coloured statuses.
    @Test func aColourTerminalGetsColourAndTheLiveBlock() async throws {
        let dir = TempDir()
        let plan = busyPlan(dir)
        let result = await runInTerminal(["run", plan, "--state-dir", dir.path + "/s"], in: dir.path)
        #expect(result.status == 1)
        #expect(result.stdout.contains("\u{1B}[J"), "the block is redrawn in place")
        #expect(result.stdout.contains(") \u{1B}[31mfailed\u{1B}[0m in "), "the run's status in red")
        #expect(result.stdout.contains("\u{1B}[32m1 succeeded\u{1B}[0m"))
        #expect(result.stdout.contains("❌"))
        #expect(!result.stdout.contains("Step 1/3:"), "never both")
    }

    /// TIME means timed out; a failure that is not a timeout is FAIL; running and pending steps
    /// have markers of their own.
    @Test func theTimeMarkerMeansTimedOut() async throws {
        let dir = TempDir()
        let plan = dir.write("t.json", planJSON([
            stepJSON("hangs", "sleep 30", extra: "\"timeout_sec\": 0.5, \"on_failure\": \"continue\", \"critical\": false"),
            stepJSON("fails", "exit 1", extra: "\"on_failure\": \"continue\", \"critical\": false"),
        ]))
        let result = await runCLI(["run", plan, "--format", "human", "--state-dir", dir.path + "/s"], in: dir.path)
        let lines = result.stdout.split(separator: "\n").map(String.init)
        #expect(lines.contains { $0.hasPrefix("  TIME  hangs") }, "\(result.stdout)")
        #expect(lines.contains { $0.hasPrefix("  FAIL  fails") }, "\(result.stdout)")
        let plain = TextStyle(rich: false), rich = TextStyle(rich: true)
        #expect([StepStatus.running, .pending].map(plain.marker) == ["RUN", "WAIT"])
        #expect([StepStatus.running, .pending].map(rich.marker) == ["▶️", "⏳"])
        #expect(Set(StepStatus.allCases.map(plain.marker)).count == StepStatus.allCases.count, "one marker per status")
        #expect(!StepStatus.allCases.map(plain.marker).contains(plain.timedOutMarker))
    }

    /// One step, one try, one run: singular everywhere.
    @Test func oneIsSingular() async throws {
        let dir = TempDir()
        let plan = dir.write("one.json", planJSON([stepJSON("only", "true")]))
        let result = await runCLI(["run", plan, "--format", "human", "--state-dir", dir.path + "/s"], in: dir.path)
        #expect(result.stdout.contains("1 step: 1 succeeded"), "\(result.stdout)")
        #expect(result.stdout.contains("1 try "))
        let dry = await runCLI(["run", plan, "--mode", "dry-run", "--format", "human", "--state-dir", dir.path + "/s"], in: dir.path)
        #expect(dry.stdout.contains("1 step in order"), "\(dry.stdout)")
        let list = await runCLI(["runs", "list", "--format", "human", "--state-dir", dir.path + "/s"], in: dir.path)
        #expect(list.stdout.contains("1/1 step "), "\(list.stdout)")
        #expect(!(result.stdout + dry.stdout + list.stdout).contains("1 steps"))
    }

    /// `runs list` fits 100 columns on a wide terminal: a long plan id is cut with an ellipsis.
    @Test func runsListStaysWithinTheTerminal() async throws {
        let dir = TempDir()
        let longID = String(repeating: "a-very-long-plan-identifier-", count: 6)
        let plan = dir.write("long.json", planJSON([stepJSON("x", "true")], id: longID))
        let ran = await runCLI(["run", plan, "--format", "json", "--state-dir", dir.path + "/s"], in: dir.path)
        #expect(ran.status == 0)
        for columns in [200, 80] {
            let list = await runInTerminal(["runs", "list", "--state-dir", dir.path + "/s"], in: dir.path, columns: columns)
            #expect(list.status == 0)
            let lines = list.stdout.split(whereSeparator: \.isNewline).map(String.init)
            #expect(lines.count == 1)
            for line in lines {
                #expect(displayWidth(line) <= min(columns, 100), "\(displayWidth(line)) columns: \(line)")
                #expect(line.contains("  a-very-") && line.hasSuffix("..."), "\(line)")
            }
        }
    }

    /// A dry run fits 100 columns: it printed each step's whole command on one line (210
    /// columns for 40 arguments) and a long plan id whole. A long command goes on over
    /// continuation lines ending in ` \\`, an argument wider than a line is cut, the JSON keeps
    /// everything.
    @Test func aDryRunStaysWithinTheTerminal() async throws {
        let dir = TempDir()
        let longID = String(repeating: "a-very-long-plan-identifier-", count: 6)
        let words = Array(repeating: "\"word\"", count: 40).joined(separator: ", ")
        let plan = dir.write("p.json", """
            {"plan_id": "\(longID)", "version": "1", "steps": [
              {"id": "a", "command": "echo", "args": [\(words)]},
              {"id": "b", "command": "echo", "args": ["\(String(repeating: "x", count: 150))", "it's"]}]}
            """)
        for columns in [200, 80] {
            let dry = await runInTerminal(["run", plan, "--mode", "dry-run", "--state-dir", dir.path + "/s"], in: dir.path,
                                          columns: columns)
            #expect(dry.status == 0, "\(dry.stdout)")
            let lines = dry.stdout.split(whereSeparator: \.isNewline).map(String.init)
            for line in lines {
                #expect(displayWidth(line) <= min(columns, 100), "\(displayWidth(line)) columns: \(line)")
            }
            let a = lines.drop { !$0.hasPrefix("1. a: echo word") }.prefix { !$0.hasPrefix("2. ") }
            #expect(a.count > 1 && a.dropLast().allSatisfy { $0.hasSuffix(" \\") }, "\(lines)")
            #expect(a.joined(separator: "\n").components(separatedBy: "word").count - 1 == 40)
            #expect(lines.contains { $0.hasSuffix("'it'\\''s'") }, "\(lines)")
        }
        let json = await runCLI(["run", plan, "--mode", "dry-run", "--format", "json", "--state-dir", dir.path + "/s"],
                                in: dir.path)
        #expect(json.stdout.contains(String(repeating: "x", count: 150)))
    }

    /// The live line of a finished step shows the same duration as the report: from the first
    /// attempt's start (a retried step too) to its end, rounded the same way.
    @Test func liveLineDurationsAgreeWithTheReport() async throws {
        let dir = TempDir()
        let plan = busyPlan(dir)
        let result = await runCLI(["run", plan, "--format", "human", "--state-dir", dir.path + "/s"], in: dir.path)
        #expect(result.status == 1)
        for (id, word) in [("slow", "ok"), ("flaky", "FAILED")] {
            let live = try #require(result.stderr.split(separator: "\n").first { $0.contains(": \(id) ... \(word) ") })
            let liveTime = try #require(live.split(separator: " ").last.map(String.init))
            let row = try #require(result.stdout.split(separator: "\n").first { $0.contains("  \(id) ") })
            let fields = row.split(separator: " ")
            #expect(fields.contains { String($0) == liveTime }, "live \(live) vs report \(row)")
        }
    }

    /// `run --step` on a terminal: one key answers, without Enter; the terminal's settings are
    /// the same after the run as before it.
    @Test func stepThroughTakesOneKeyAndRestoresTheTerminal() async throws {
        let dir = TempDir()
        let plan = dir.write("p.json", planJSON([
            stepJSON("first", "touch first.ran"), stepJSON("second", "touch second.ran", deps: ["first"]),
            stepJSON("third", "touch third.ran", deps: ["second"]),
        ], globals: "{\"working_dir\": \"\(dir.path)\"}"))
        let run = ([cliPath, "run", plan, "--step", "--format", "json", "--state-dir", dir.path + "/s"]).map(ShellQuoting.quote)
            .joined(separator: " ")
        // "c" then "s", no Enter: the first step runs, the second is skipped (the third with it).
        let command = "stty -g > before; " + run + " > report.json; stty -g > after"
        let script = "printf %s cs | script -qec " + ShellQuoting.quote(command) + " /dev/null"
        let result = await runCLIProcess("/bin/sh", ["-c", script], in: dir.path, environment: ["TERM": "xterm", "NO_COLOR": "1"])
        #expect(result.stdout.contains("[c]ontinue, [s]kip, [a]bort, [r]un all? c"), "\(result.stdout)")
        #expect(FileManager.default.fileExists(atPath: dir.path + "/first.ran"), "\(result.stdout)")
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/second.ran"))
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/third.ran"))
        let before = try #require(dir.read("before")), after = try #require(dir.read("after"))
        #expect(!before.isEmpty && before == after, "the terminal's settings are restored")
    }

    /// Ctrl-C (SIGINT) while a step-through question waits for its key stops the run, and the
    /// terminal's settings are restored at exit.
    @Test func anInterruptWhileAQuestionWaitsRestoresTheTerminal() async throws {
        let dir = TempDir()
        let plan = dir.write("p.json", planJSON([stepJSON("first", "touch first.ran")], globals: "{\"working_dir\": \"\(dir.path)\"}"))
        let run = ([cliPath, "run", plan, "--step", "--format", "json", "--state-dir", dir.path + "/s"]).map(ShellQuoting.quote)
            .joined(separator: " ")
        // The engine in the background reads the terminal itself; once it asks, it is interrupted.
        // The question is waiting once the terminal has left canonical mode.
        let command = "stty -g > before; " + run + " < /dev/tty > report.json & pid=$!; "
            + "n=0; while [ \"$(stty -g)\" = \"$(cat before)\" ] && [ $n -lt 400 ]; do sleep 0.05; n=$((n+1)); done; "
            + "stty -g > during; kill -INT $pid; wait $pid; echo $? > status; stty -g > after; kill $(cat feeder.pid)"
        // `script` forwards the end of its own input to the terminal as a Ctrl-D, which the
        // question would read as its answer (abort, exit 1: seen once under load). Its input is
        // a pipe held open by a feeder until the command has finished.
        let script = "{ timeout 120 tail -f /dev/null & echo $! > feeder.pid; wait; } | script -qec "
            + ShellQuoting.quote(command) + " /dev/null"
        let result = await runCLIProcess("/bin/sh", ["-c", script], in: dir.path, environment: ["TERM": "xterm", "NO_COLOR": "1"])
        #expect(dir.read("status") == "130\n",
                "stopped as by Ctrl-C; terminal: \(result.stdout) report: \(dir.read("report.json") ?? "none")")
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/first.ran"))
        let before = try #require(dir.read("before")), during = try #require(dir.read("during"))
        let after = try #require(dir.read("after"))
        #expect(before != during, "one-key mode while the question waits")
        #expect(!before.isEmpty && before == after, "the terminal's settings are restored")
    }
}
