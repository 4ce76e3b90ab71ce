import Foundation
import Testing
@testable import Orchestration

/// Whether a process exists and is not a zombie.
func isAlive(_ pid: Int32) -> Bool {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = stat.lastIndex(of: ")") else { return false }
    let state = stat[stat.index(close, offsetBy: 2)]
    return state != "Z" && state != "X"
}

/// Live processes whose process group is `pgid`.
func liveMembers(ofGroup pgid: Int32) -> [Int32] {
    guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
    return entries.compactMap(Int32.init).filter { pid in
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        let fields = stat[stat.index(close, offsetBy: 2)...].split(separator: " ")
        return fields.count > 2 && Int32(fields[2]) == pgid && fields[0] != "Z"
    }
}

/// Waits for a file to appear (a readiness marker written by a step), bounded: generously, since
/// only a failing test waits it out (under a loaded machine's full suite a step took over 20 s).
func waitForFile(_ path: String, seconds: Double = 60) async throws -> String {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if let text = try? String(contentsOfFile: path, encoding: .utf8), text.hasSuffix("\n") { return text }
        try await Task.sleep(for: .milliseconds(5))
    }
    Issue.record("no readiness marker at \(path)")
    throw CancellationError()
}

func stepJSON(_ id: String, _ script: String, deps: [String] = [], extra: String = "") -> String {
    let escaped = script.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
    let depList = deps.map { "\"\($0)\"" }.joined(separator: ",")
    return "{\"id\": \"\(id)\", \"command\": \"sh\", \"args\": [\"-c\", \"\(escaped)\"], \"depends_on\": [\(depList)]\(extra.isEmpty ? "" : ", " + extra)}"
}

extension JSONValue {
    /// The report's step object with this id.
    func stepReport(_ id: String) -> JSONValue? { self["steps"]?.arrayValue?.first { $0["id"]?.stringValue == id } }
}

@Suite("run: SPEC §2 end to end", .serialized, .timeLimit(.minutes(2)))
struct RunSemanticsTests {
    @Test func successExitsZeroWithEveryStepSucceeded() async throws {
        let dir = TempDir()
        let plan = dir.write("p.json", planJSON([stepJSON("a", "true"), stepJSON("b", "true", deps: ["a"])]))
        let result = await runCLI(["run", plan, "--format", "json", "--state-dir", dir.path + "/s"], in: dir.path)
        #expect(result.status == 0)
        let report = try result.json()
        #expect(report["status"]?.stringValue == "succeeded")
        #expect(report["exit_code"]?.intValue == 0)
        #expect(report["summary"]?["succeeded"]?.intValue == 2)
        #expect(report.stepReport("b")?["attempts"]?.intValue == 1)
        #expect(result.stderr.isEmpty)
    }

    @Test func retriesCountAttemptsAndBackoffIsRecorded() async throws {
        let dir = TempDir()
        let plan = dir.write("p.json", planJSON([
            stepJSON("flaky", "echo attempt $OMNIBASE_ATTEMPT; [ \"$OMNIBASE_ATTEMPT\" -ge 3 ] || exit 7",
                     extra: "\"retries\": 3, \"retry_delay_sec\": 0.05, \"retry_backoff\": \"exponential\""),
            stepJSON("never", "exit 4", extra: "\"retries\": 1, \"retry_delay_sec\": 0.01, \"critical\": false, \"on_failure\": \"continue\""),
        ]))
        let result = await runCLI(["run", plan, "--format", "json", "--state-dir", dir.path + "/s"], in: dir.path)
        let report = try result.json()
        #expect(result.status == 0)
        #expect(report.stepReport("flaky")?["attempts"]?.intValue == 3)
        #expect(report.stepReport("flaky")?["status"]?.stringValue == "succeeded")
        #expect(report.stepReport("never")?["attempts"]?.intValue == 2)
        #expect(report.stepReport("never")?["status"]?.stringValue == "failed")
        #expect(report.stepReport("never")?["exit_code"]?.intValue == 4)
        // The retry delays are in the event log.
        let runID = try #require(report["run_id"]?.stringValue)
        let events = try String(contentsOfFile: "\(dir.path)/s/runs/\(runID)/events.jsonl", encoding: .utf8)
            .split(separator: "\n").map { try StrictJSONParser.parse(Array($0.utf8)).toValue() }
        let delays = events.filter { $0["type"]?.stringValue == "step_retry" && $0["step_id"]?.stringValue == "flaky" }
            .compactMap { $0["data"]?["delay_sec"]?.doubleValue }
        #expect(delays == [0.05, 0.1])
        // Each attempt has its own log files.
        #expect(FileManager.default.fileExists(atPath: "\(dir.path)/s/runs/\(runID)/logs/flaky.3.out"))
    }

    @Test func criticalAbortCancelsTheRestAndExitsOne() async throws {
        let dir = TempDir()
        let plan = dir.write("p.json", planJSON([
            stepJSON("bad", "exit 3"),
            stepJSON("after", "true", deps: ["bad"]),
            stepJSON("other", "true", deps: ["bad"]),
        ], globals: "{\"max_concurrency\": 1}"))
        let result = await runCLI(["run", plan, "--format", "json", "--state-dir", dir.path + "/s"], in: dir.path)
        #expect(result.status == 1)
        let report = try result.json()
        #expect(report["status"]?.stringValue == "failed")
        #expect(report.stepReport("bad")?["exit_code"]?.intValue == 3)
        #expect(report.stepReport("bad")?["error"]?.stringValue == "exited with code 3")
        #expect(report.stepReport("after")?["status"]?.stringValue == "cancelled")
        #expect(report.stepReport("after")?["attempts"]?.intValue == 0)
        #expect(report.stepReport("after")?["started_at"]?.isNull == true)
    }

    @Test func skipDependentsAndContinueEndToEnd() async throws {
        let dir = TempDir()
        let plan = dir.write("p.json", planJSON([
            stepJSON("opt", "exit 1", extra: "\"critical\": false, \"on_failure\": \"skip_dependents\""),
            stepJSON("needs-opt", "true", deps: ["opt"], extra: "\"critical\": false"),
            stepJSON("lenient", "exit 1", extra: "\"critical\": false, \"on_failure\": \"continue\""),
            stepJSON("after-lenient", "true", deps: ["lenient"]),
            stepJSON("soft-abort", "exit 1", extra: "\"critical\": false"),
            stepJSON("after-soft", "true", deps: ["soft-abort"], extra: "\"critical\": false"),
        ]))
        let result = await runCLI(["run", plan, "--format", "json", "--state-dir", dir.path + "/s"], in: dir.path)
        let report = try result.json()
        #expect(result.status == 0, "only non-critical steps failed or were skipped")
        #expect(report.stepReport("needs-opt")?["status"]?.stringValue == "skipped")
        #expect(report.stepReport("needs-opt")?["error"]?.stringValue == "dependency \"opt\" failed")
        #expect(report.stepReport("after-lenient")?["status"]?.stringValue == "succeeded")
        #expect(report.stepReport("after-soft")?["status"]?.stringValue == "skipped")
    }

    @Test func commandNotFoundIsAnAttemptFailureNotACrash() async throws {
        let dir = TempDir()
        let plan = dir.write("p.json", planJSON(["{\"id\": \"x\", \"command\": \"no-such-command-omnibase\"}"]))
        let result = await runCLI(["run", plan, "--format", "json", "--state-dir", dir.path + "/s"], in: dir.path)
        #expect(result.status == 1)
        let error = try result.json().stepReport("x")?["error"]?.stringValue
        #expect(error?.contains("not found") == true)
    }

    @Test func fromAndToRunTheSelectedPartAndSkipTheRest() async throws {
        let dir = TempDir()
        let plan = dir.write("p.json", planJSON([
            stepJSON("a", "true"), stepJSON("b", "true", deps: ["a"]), stepJSON("c", "true", deps: ["b"]),
            stepJSON("d", "true", deps: ["c"]),
        ]))
        let result = await runCLI(["run", plan, "--from", "b", "--to", "c", "--format", "json", "--state-dir", dir.path + "/s"],
                                  in: dir.path)
        #expect(result.status == 0)
        let report = try result.json()
        #expect(report.stepReport("a")?["status"]?.stringValue == "skipped")
        #expect(report.stepReport("a")?["error"]?.stringValue == "outside the --from/--to selection")
        #expect(report.stepReport("b")?["status"]?.stringValue == "succeeded")
        #expect(report.stepReport("c")?["status"]?.stringValue == "succeeded")
        #expect(report.stepReport("d")?["status"]?.stringValue == "skipped")
    }

    @Test func dryRunPrintsTheOrderAndStartsNothing() async throws {
        let dir = TempDir()
        let plan = dir.write("p.json", planJSON([
            stepJSON("second", "touch ran", deps: ["first"]), stepJSON("first", "touch ran"),
        ]))
        let result = await runCLI(["run", plan, "--mode", "dry-run", "--format", "json", "--state-dir", dir.path + "/s"], in: dir.path)
        #expect(result.status == 0)
        let steps = try result.json()["steps"]?.arrayValue ?? []
        #expect(steps.map { $0["id"]?.stringValue } == ["first", "second"])
        #expect(steps.first?["argv"] == .array(["sh", "-c", "touch ran"]))
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/ran"))
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/s"))
    }

    @Test(arguments: [1, 2, 3])
    func processStepsRespectTheLimitAndDependencyOrder(limit: Int) async throws {
        // Each step records its own start and end (nanoseconds) in a shared log; the recorded
        // intervals lie inside the real ones, so overlaps and order are checked from what happened.
        var generator = SplitMix64(seed: UInt64(limit))
        for _ in 0..<3 {
            let dir = TempDir()
            let log = dir.path + "/intervals.log"
            let count = 16
            var steps: [String] = []
            var edges: [(Int, Int)] = []
            for index in 0..<count {
                var deps: Set<Int> = []
                if index > 0 { for _ in 0..<Int.random(in: 0...2, using: &generator) { deps.insert(Int.random(in: 0..<index, using: &generator)) } }
                edges += deps.map { ($0, index) }
                steps.append(stepJSON("s\(index)",
                                      "echo \"start s\(index) $(date +%s%N)\" >> \"$LOG\"; sleep 0.02; echo \"end s\(index) $(date +%s%N)\" >> \"$LOG\"",
                                      deps: deps.sorted().map { "s\($0)" }, extra: "\"env\": {\"LOG\": \"\(log)\"}"))
            }
            let plan = dir.write("p.json", planJSON(steps, globals: "{\"max_concurrency\": \(limit)}"))
            let result = await runCLI(["run", plan, "--format", "json", "--state-dir", dir.path + "/s"], in: dir.path)
            #expect(result.status == 0)
            var start: [String: Int] = [:], end: [String: Int] = [:]
            var timeline: [(Int, Int)] = []
            for line in (try String(contentsOfFile: log, encoding: .utf8)).split(separator: "\n") {
                let parts = line.split(separator: " ")
                let time = Int(parts[2])!
                if parts[0] == "start" { start[String(parts[1])] = time; timeline.append((time, 1)) } else { end[String(parts[1])] = time; timeline.append((time, -1)) }
            }
            #expect(start.count == count && end.count == count)
            var running = 0, most = 0
            for (_, delta) in timeline.sorted(by: { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1 < $1.1 }) {
                running += delta
                most = max(most, running)
            }
            #expect(most <= limit)
            for (parent, child) in edges {
                #expect(start["s\(child)"]! >= end["s\(parent)"]!, "s\(child) started before s\(parent) ended")
            }
        }
    }

    @Test func aTimedOutStepLeavesNoGrandchildAlive() async throws {
        let dir = TempDir()
        let plan = dir.write("p.json", planJSON([
            stepJSON("hang", "sleep 100 & echo $! > gc.pid; sleep 100 & echo $$$$ > leader.pid; wait",
                     extra: "\"timeout_sec\": 0.5, \"cwd\": \"\(dir.path)\""),
        ], globals: "{\"kill_grace_sec\": 0.5}"))
        let result = await runCLI(["run", plan, "--format", "json", "--state-dir", dir.path + "/s"], in: dir.path)
        #expect(result.status == 1)
        let report = try result.json()
        #expect(report.stepReport("hang")?["timed_out"]?.boolValue == true)
        #expect(report.stepReport("hang")?["error"]?.stringValue?.hasPrefix("timed out") == true)
        let leader = try #require(Int32((dir.read("leader.pid") ?? "").trimmingCharacters(in: .whitespacesAndNewlines)))
        let grandchild = try #require(Int32((dir.read("gc.pid") ?? "").trimmingCharacters(in: .whitespacesAndNewlines)))
        #expect(!isAlive(grandchild))
        #expect(liveMembers(ofGroup: leader).isEmpty)
    }

    /// SPEC section 2: no process that the step started survives it. A descendant that left the
    /// step's group and session and cleared its environment (`env -i setsid`), and ignores
    /// SIGTERM, survived a timeout: neither the group nor the attempt's marks in the environment
    /// find it. It still holds the step's output pipe, which is how it is found now (a daemon
    /// that also closed its output is out of reach).
    @Test(arguments: ["timeout", "SIGINT"])
    func aDescendantThatLeftTheGroupAndClearedItsEnvironmentEndsWithTheStep(_ ending: String) async throws {
        let dir = TempDir()
        let timeout = ending == "timeout" ? ", \"timeout_sec\": 0.5" : ""
        let plan = dir.write("p.json", planJSON([
            stepJSON("t", "env -i setsid sh -c 'echo $$$$ > \(dir.path)/escapee.pid; trap \"\" TERM; exec sleep 381' & "
                     + "echo $$PPID > \(dir.path)/engine.pid; sleep 60", extra: "\"cwd\": \"\(dir.path)\"\(timeout)"),
        ], globals: "{\"kill_grace_sec\": 0.5}"))
        let root = dir.path
        let run = Task { await runCLI(["run", plan, "--format", "json", "--state-dir", root + "/s"], in: root) }
        let escapee = try #require(Int32(try await waitForFile(root + "/escapee.pid").trimmingCharacters(in: .whitespacesAndNewlines)))
        if ending == "SIGINT" {
            let engine = try #require(Int32(try await waitForFile(root + "/engine.pid").trimmingCharacters(in: .whitespacesAndNewlines)))
            kill(engine, SIGINT)
        }
        let result = await run.value
        #expect(result.status == (ending == "timeout" ? 1 : 130), "\(result.stderr)")
        #expect(!isAlive(escapee), "the escaped descendant survived the \(ending)")
        if isAlive(escapee) { kill(escapee, SIGKILL) }
    }

    @Test(arguments: [(SIGINT, Int32(130)), (SIGTERM, Int32(143)), (SIGHUP, Int32(129)), (SIGQUIT, Int32(131))])
    func aSignalCancelsTheRunAndNoStepSurvives(signal: Int32, expected: Int32) async throws {
        let dir = TempDir()
        let plan = dir.write("p.json", planJSON([
            stepJSON("long", "sleep 100 & echo $$$$ > \"$D/leader.pid\"; echo $PPID > \"$D/engine.pid\"; wait",
                     extra: "\"env\": {\"D\": \"\(dir.path)\"}"),
            stepJSON("trap", "trap '' TERM INT; echo ready > \"$D/trap.ready\"; while true; do sleep 0.1; done",
                     extra: "\"env\": {\"D\": \"\(dir.path)\"}"),
            stepJSON("later", "true", deps: ["long"]),
        ], globals: "{\"kill_grace_sec\": 0.5, \"max_concurrency\": 2}"))
        async let run = runCLI(["run", plan, "--format", "json", "--state-dir", dir.path + "/s"], in: dir.path)
        let engine = try #require(Int32(try await waitForFile(dir.path + "/engine.pid").trimmingCharacters(in: .whitespacesAndNewlines)))
        let leader = try #require(Int32(try await waitForFile(dir.path + "/leader.pid").trimmingCharacters(in: .whitespacesAndNewlines)))
        _ = try await waitForFile(dir.path + "/trap.ready")
        kill(engine, signal)
        let result = await run
        #expect(result.status == expected)
        let report = try result.json()
        #expect(report["status"]?.stringValue == "cancelled")
        #expect(report.stepReport("long")?["status"]?.stringValue == "cancelled")
        #expect(report.stepReport("trap")?["status"]?.stringValue == "cancelled")
        #expect(report.stepReport("later")?["status"]?.stringValue == "cancelled")
        #expect(liveMembers(ofGroup: leader).isEmpty)
    }
}
