import Foundation
import Glibc
import Testing
@testable import Orchestration

// Issue 11, items 6 and 7: a dropped session (SIGHUP) and SIGQUIT stop a run like SIGTERM, and a
// stop or a timeout also ends the processes a step moved out of its group (`setsid`).

/// The status of a run's row in `runs.db`.
func storedRunStatus(_ state: String, _ runID: String) throws -> String? {
    let db = try SQLiteDatabase(path: state + "/runs.db", mode: .readOnly)
    return try db.query("SELECT status FROM runs WHERE run_id = ?", runID).first?.string(0)
}

/// The pid written (with a newline) by a step into `path`.
func pidFile(_ path: String, seconds: Double = 60) async throws -> Int32 {
    try #require(Int32(try await waitForFile(path, seconds: seconds).trimmingCharacters(in: .whitespacesAndNewlines)))
}

@Suite(.serialized) struct StopTeardownTests {
    @Test func sighupCancelsTheRunLikeSigtermAndTheRunResumes() async throws {
        let dir = TempDir()
        let state = dir.path + "/s"
        _ = dir.write("hold", "")
        let env = "\"env\": {\"D\": \"\(dir.path)\"}"
        let plan = dir.write("p.json", planJSON([
            // Only while held: a background `sleep` of the resumed (successful) attempt would be
            // left running, as a successful step's background work is.
            stepJSON("long", "echo $PPID > \"$D/engine.pid\"; "
                     + "if [ -e \"$D/hold\" ]; then sleep 100 & echo $$$$ > \"$D/leader.pid\"; wait; fi", extra: env),
            stepJSON("deaf", "trap '' HUP TERM INT; echo $$$$ > \"$D/deaf.pid\"; "
                     + "while [ -e \"$D/hold\" ]; do sleep 0.1; done", extra: env),
            stepJSON("after", "true", deps: ["long"]),
        ], globals: "{\"kill_grace_sec\": 0.5, \"max_concurrency\": 2}"))
        async let run = runCLI(["run", plan, "--format", "json", "--state-dir", state], in: dir.path)
        let engine = try await pidFile(dir.path + "/engine.pid")
        let leader = try await pidFile(dir.path + "/leader.pid")
        let deaf = try await pidFile(dir.path + "/deaf.pid")
        kill(engine, SIGHUP)
        let result = await run
        #expect(result.status == 129, "\(result.stderr)")
        let report = try result.json()
        let runID = try #require(report["run_id"]?.stringValue)
        #expect(report["status"]?.stringValue == "cancelled")
        #expect(report["exit_code"]?.intValue == 129)
        #expect(report.stepReport("long")?["status"]?.stringValue == "cancelled")
        #expect(report.stepReport("deaf")?["status"]?.stringValue == "cancelled")
        #expect(try storedRunStatus(state, runID) == "cancelled")
        #expect(liveMembers(ofGroup: leader).isEmpty, "a step of the hung-up engine survived")
        #expect(liveMembers(ofGroup: deaf).isEmpty, "the step that ignores SIGHUP and SIGTERM survived")
        #expect(OrphanReaper.groups(ofRun: runID).isEmpty)

        try FileManager.default.removeItem(atPath: dir.path + "/hold")
        let resumed = await runCLI(["resume", runID, "--format", "json", "--state-dir", state], in: dir.path)
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(try resumed.json()["status"]?.stringValue == "succeeded")
        #expect(try storedRunStatus(state, runID) == "succeeded")
    }
}

/// A step script that starts a process in a session of its own (out of the step's group), writes
/// that process's pid to `$D/<name>.pid`, and goes on with `rest`.
private func escapeeScript(_ name: String, then rest: String) -> String {
    "setsid sh -c 'echo $$$$ > \"$D/\(name).pid.tmp\"; mv \"$D/\(name).pid.tmp\" \"$D/\(name).pid\"; exec sleep 1000' & "
        + "while [ ! -e \"$D/\(name).pid\" ]; do sleep 0.01; done; \(rest)"
}

extension StopTeardownTests {
    /// A SIGTERM at any early moment of a run ends it 143, and its step never succeeds: the
    /// signals were SIG_IGN until libdispatch installed its handler (later, on its own thread),
    /// and one that came in between was dropped; a latch now catches it.
    @Test func aSigtermAtAnyEarlyMomentStopsTheRun() async throws {
        let dir = TempDir()
        let plan = dir.write("p.json", planJSON([stepJSON("a", "sleep 3; echo done > \"$D/done\"",
                                                          extra: "\"env\": {\"D\": \"\(dir.path)\"}")]))
        let folder = dir.path
        for delay in [0, 2, 5, 10, 20, 40, 80] {
            async let run = runProgram("sh", ["-c", "echo $$ > \"$0/engine-\(delay).pid\"; exec \"$1\" run \"$2\" --state-dir \"$0/s\"",
                                              folder, cliPath, plan],
                                       in: folder, environment: ["NO_COLOR": "1", "OMNIBASE_STATE_DIR": nil])
            let engine = try await pidFile(folder + "/engine-\(delay).pid")
            try await Task.sleep(for: .milliseconds(delay))
            kill(engine, SIGTERM)
            #expect(await run.status == 143, "SIGTERM \(delay) ms after the start")
        }
        #expect(dir.read("done") == nil, "a step ran to its end after its run was stopped")
    }

    @Test(arguments: [(SIGINT, Int32(130)), (SIGTERM, Int32(143))])
    func aStopEndsTheProcessesAStepMovedOutOfItsGroup(signal: Int32, expected: Int32) async throws {
        let dir = TempDir()
        let env = "\"env\": {\"D\": \"\(dir.path)\"}"
        let plan = dir.write("p.json", planJSON([
            stepJSON("escape", escapeeScript("escapee", then: "echo $PPID > \"$D/engine.pid\"; sleep 100"), extra: env),
        ], globals: "{\"kill_grace_sec\": 0.5}"))
        async let run = runCLI(["run", plan, "--format", "json", "--state-dir", dir.path + "/s"], in: dir.path)
        let engine = try await pidFile(dir.path + "/engine.pid")
        let escapee = try await pidFile(dir.path + "/escapee.pid")
        defer { kill(escapee, SIGKILL) }
        #expect(isAlive(escapee))
        kill(engine, signal)
        let result = await run
        #expect(result.status == expected, "\(result.stderr)")
        #expect(try result.json()["status"]?.stringValue == "cancelled")
        #expect(!isAlive(escapee), "the setsid child of a cancelled step survived the stop")
    }

    @Test func aTimeoutEndsItsAttemptsEscapeesAndNothingElse() async throws {
        let dir = TempDir()
        let env = "\"env\": {\"D\": \"\(dir.path)\"}"
        let plan = dir.write("p.json", planJSON([
            // Background work left on purpose by a step that succeeds stays (like make).
            stepJSON("daemon", escapeeScript("daemon", then: "true"), extra: env),
            stepJSON("hang", escapeeScript("escapee", then: "sleep 100"), deps: ["daemon"],
                     extra: env + ", \"timeout_sec\": 1"),
        ], globals: "{\"kill_grace_sec\": 0.5}"))
        let result = await runCLI(["run", plan, "--format", "json", "--state-dir", dir.path + "/s"], in: dir.path)
        let daemon = try await pidFile(dir.path + "/daemon.pid")
        let escapee = try await pidFile(dir.path + "/escapee.pid")
        defer {
            kill(daemon, SIGKILL)
            kill(escapee, SIGKILL)
        }
        #expect(result.status == 1, "\(result.stderr)")
        #expect(try result.json().stepReport("hang")?["timed_out"]?.boolValue == true)
        #expect(!isAlive(escapee), "the setsid child of a timed-out attempt survived the timeout")
        #expect(isAlive(daemon), "a timeout ended another step's background work")
    }
}

/// `resume` of a run whose engine was killed tears the dead engine's steps down as a timeout or
/// a stop does: SIGTERM, then SIGKILL after the plan's `kill_grace_sec` (it was a fixed 5 s, so
/// a step's cleanup that needed 6 of its 7 s was cut off). A SIGTERM to `resume` meanwhile lets
/// the takeover finish and then starts nothing (it started attempt 2 and cancelled it).
@Test func aTakeoverGivesTheKillGraceAndAStopDuringItStartsNothing() async throws {
    let dir = TempDir()
    let state = dir.path + "/s"
    let plan = dir.write("p.json", planJSON([
        stepJSON("a", "echo $PPID > \"$D/engine.pid\"; echo \"a $OMNIBASE_ATTEMPT\" >> \"$D/ran.log\"; "
                 + "if [ \"$OMNIBASE_ATTEMPT\" = 1 ]; then "
                 + "trap 'echo term >> \"$D/ran.log\"; sleep 6; echo cleanup >> \"$D/ran.log\"; exit 1' TERM; "
                 + "sleep 100 & wait; fi",
                 extra: "\"env\": {\"D\": \"\(dir.path)\"}"),
        stepJSON("b", "true", deps: ["a"]),
    ], globals: "{\"kill_grace_sec\": 7}"))
    async let run = runCLI(["run", plan, "--format", "json", "--state-dir", state], in: dir.path)
    let engine = try await pidFile(dir.path + "/engine.pid")
    #expect(kill(engine, SIGKILL) == 0)
    #expect(await run.status == 137)
    let runID = try #require(try FileManager.default.contentsOfDirectory(atPath: state + "/runs").first)

    let folder = dir.path
    async let resumed = runProgram("sh", ["-c", "echo $$ > \"$0/resume.pid\"; exec \"$1\" resume \"$2\" --format json --state-dir \"$3\"",
                                          folder, cliPath, runID, state],
                                   in: folder, environment: ["NO_COLOR": "1", "OMNIBASE_STATE_DIR": nil])
    let resume = try await pidFile(dir.path + "/resume.pid")
    let deadline = ContinuousClock.now + .seconds(60)
    while !(dir.read("ran.log") ?? "").contains("term"), ContinuousClock.now < deadline {
        try await Task.sleep(for: .milliseconds(20))
    }
    #expect(kill(resume, SIGTERM) == 0)
    let stopped = await resumed
    #expect(stopped.status == 143, "\(stopped.stderr)")
    let report = try stopped.json()
    #expect(report["status"]?.stringValue == "cancelled")
    #expect(report.stepReport("b")?["status"]?.stringValue == "cancelled")
    let ran = (dir.read("ran.log") ?? "").split(separator: "\n").map(String.init)
    #expect(ran == ["a 1", "term", "cleanup"], "the step's cleanup ran within its grace, and nothing started: \(ran)")
    #expect(OrphanReaper.groups(ofRun: runID).isEmpty)

    let finished = await runCLI(["resume", runID, "--format", "json", "--state-dir", state], in: dir.path)
    #expect(finished.status == 0, "\(finished.stderr)")
    #expect((dir.read("ran.log") ?? "").hasSuffix("a 2\n"))
}

/// The engine's own threads carry their names (`ps -L`, `perf`, `/proc/PID/task/*/comm`). Linux
/// refuses a name longer than 15 bytes, and the store's writer ("omnibase-store-writer") and the
/// events copier ("omnibase-events-copy") then showed as the pool thread that started them.
@Test func theEnginesThreadsCarryTheirNames() async throws {
    let dir = TempDir()
    _ = dir.write("hold", "")
    let plan = dir.write("p.json", planJSON([
        stepJSON("hold", "echo $PPID > \"$D/engine.pid\"; while [ -e \"$D/hold\" ]; do sleep 0.05; done",
                 extra: "\"env\": {\"D\": \"\(dir.path)\"}"),
    ]))
    async let run = runCLI(["run", plan, "--state-dir", dir.path + "/s"], in: dir.path)
    let engine = try await pidFile(dir.path + "/engine.pid")
    let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(engine)/task")) ?? []
    let names = Set(tasks.compactMap { try? String(contentsOfFile: "/proc/\(engine)/task/\($0)/comm", encoding: .utf8) }
        .map { $0.trimmingCharacters(in: .whitespacesAndNewlines) })
    try FileManager.default.removeItem(atPath: dir.path + "/hold")
    #expect(await run.status == 0)
    #expect(names.isSuperset(of: ["omnibase-loop", "omnibase-writer", "omnibase-events"]), "\(names.sorted())")
}
